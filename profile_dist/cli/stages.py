"""The stage commands, one each: ingest, annotate, judge, generate, reduce, report."""

from __future__ import annotations

import argparse
from typing import Any

from profile_dist.cli.options import add_llm_options, split_list


def cmd_ingest(args: argparse.Namespace) -> int:
    from profile_dist.stages.ingest import ingest  # on use: keeps CLI start-up light

    summary = ingest(
        args.format, args.input, args.output, task=args.task, dataset=args.dataset,
        rows_per_shard=args.rows_per_shard, skip_bad_rows=args.skip_bad_rows, address=args.address,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from profile_dist.stages.annotate import annotate  # on use: keeps CLI start-up light

    summary = annotate(
        args.pairs, args.output, factors=split_list(args.factors), llm=args.llm, endpoints=args.endpoints,
        cache_dir=args.cache_dir, max_cost=args.max_cost, dry_run=args.dry_run, address=args.address,
        llm_calls=args.llm_calls, factor_file=args.factor_file,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from profile_dist.stages.judge import judge  # on use: keeps CLI start-up light

    summary = judge(
        args.pairs, args.llm, args.output, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, inconsistent=args.inconsistent, labeler=args.labeler, address=args.address, say=print,
    )
    if not args.dry_run:  # a dry run's estimate was printed already
        print("\n".join(summary.lines()))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from profile_dist.stages.generate import generate  # on use: keeps CLI start-up light

    summary = generate(
        args.prompts, args.llm, args.output, levels=args.levels, mode=args.mode, check_llm=args.check_llm,
        task=args.task, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, labeler=args.labeler, address=args.address, say=print,
    )
    if not args.dry_run:  # a dry run's estimate was printed already
        print("\n".join(summary.lines()))
    return 0


def cmd_reduce(args: argparse.Namespace) -> int:
    from profile_dist.stages.reduce import reduce  # on use: keeps CLI start-up light

    summary = reduce(
        args.pairs, args.annotations, args.output, factors=split_list(args.factors),
        n_bootstrap=args.bootstrap, seed=args.seed, level=args.confidence, address=args.address,
        alignment_factors=split_list(args.alignment_factors), bootstrap_unit=args.bootstrap_unit,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from profile_dist.report import build_report  # on use: keeps CLI start-up light

    print("\n".join(build_report(args.results, args.output, history=args.history).lines()))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    def add(name: str, handler: Any, help_text: str, starts_ray: Any = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        command.set_defaults(handler=handler, starts_ray=starts_ray)  # starts_ray: see cli._run
        return command

    p = add("ingest", cmd_ingest, "read corpus files into canonical prompts/responses/pairs Parquet tables")
    p.add_argument("--format", required=True, help="input format (see `profile-dist formats`)")
    p.add_argument("--input", required=True, nargs="+", help="input file(s), directories (their data files, recursively) or quoted glob patterns; local or s3://")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--task", default=None, help="task of the pairs (default: the format's, or a task column)")
    p.add_argument("--dataset", default=None, help="dataset name recorded on each pair (default: the format name)")
    p.add_argument("--rows-per-shard", type=int, default=100_000, help="pairs per shard on average: rows are hash-partitioned into ceil(rows / N) buckets (default 100000)")
    p.add_argument("--skip-bad-rows", action="store_true", help="write bad rows to the rejected table and go on, instead of stopping")

    # With --llm, a rerun whose replies are all cached needs no Ray; the LLM engine starts its own when needed.
    p = add("annotate", cmd_annotate, "compute factor values for every response", starts_ray=lambda args: not args.llm)
    p.add_argument("--pairs", required=True, help="an ingest output directory")
    p.add_argument("--output", required=True, help="annotations directory")
    p.add_argument("--factors", nargs="+", default=None, help="factor names (default: every rule factor, plus with --llm the default LLM factors of the tasks in the pairs)")
    p.add_argument("--llm", default=None, help="endpoint name (from --endpoints) that scores the LLM factors")
    p.add_argument("--llm-calls", choices=("combined", "per_factor"), default="combined",
                   help="response-level LLM factors: one call per response for all of them (default) or one per factor")
    p.add_argument("--factor-file", default=None, metavar="FILE.yaml",
                   help="user-defined LLM factors (docs/discovery.md); all of them are annotated unless --factors names some")
    add_llm_options(p, dry_run_help="print the requests, tokens and cost the LLM factors would need; send nothing")

    p = add("judge", cmd_judge, "evaluation setting: a model labels pairs, each asked in both orders", starts_ray=False)
    p.add_argument("--pairs", required=True, help="an ingest output directory (its human pairs are judged)")
    p.add_argument("--llm", required=True, help="endpoint name (from --endpoints) of the judge")
    p.add_argument("--output", required=True, help="output directory (ingest-shaped, plus judgments and judge_agreement)")
    p.add_argument("--inconsistent", default="drop", choices=["drop", "first", "tie"],
                   help="pairs whose two orders disagree: drop (default), keep the first order's vote, or call them a tie")
    p.add_argument("--labeler", default=None, help="labeler name on the judged pairs (default: the endpoint's model)")
    add_llm_options(p)

    p = add("generate", cmd_generate, "generation setting: a model writes responses at quality levels 1..K per prompt",
            starts_ray=False)
    p.add_argument("--prompts", required=True, help="an ingest output directory (its prompts; tasks from its pairs)")
    p.add_argument("--llm", required=True, help="endpoint name (from --endpoints) of the generator")
    p.add_argument("--output", required=True, help="output directory (ingest-shaped, plus generations and manipulation_check)")
    p.add_argument("--levels", type=int, default=5, help="quality levels K (default 5): C(K,2) pairs per prompt")
    p.add_argument("--mode", default="joint", choices=["joint", "separate"],
                   help="joint: one call returns all K responses (default); separate: one call per level")
    p.add_argument("--check-llm", default=None, help="endpoint of an independent rater for the manipulation check")
    p.add_argument("--task", default=None, help="task of every prompt (default: from the input's pairs)")
    p.add_argument("--labeler", default=None, help="labeler name on the pairs (default: the endpoint's model)")
    add_llm_options(p)

    p = add("reduce", cmd_reduce, "factor influence (tau with bootstrap CIs) per source, and alignment between sources")
    p.add_argument("--pairs", required=True, nargs="+", help="ingest output directory(ies)")
    p.add_argument("--annotations", required=True, nargs="+", help="annotations directory(ies)")
    p.add_argument("--output", required=True, help="results directory")
    p.add_argument("--factors", nargs="+", default=None, help="restrict to these factors (default: all annotated)")
    p.add_argument("--alignment-factors", nargs="+", default=None, metavar="SET",
                   help="factors alignment and the gap compare: 'task' (each task's factors, profile_dist/tasks.py), "
                        "'all' (every reduced factor) or factor names (default: the --factors given, else 'task')")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200; 0 for none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--bootstrap-unit", choices=("auto", "pair", "prompt"), default="auto",
                   help="what the bootstrap resamples: auto (default) resamples prompts, which is resampling pairs "
                        "where each prompt has one pair; pair ignores that pairs of one prompt are not independent")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")

    p = add("report", cmd_report, "write report.md, results.json and report.html from reduce results", starts_ray=False)
    p.add_argument("--results", required=True, help="a reduce output directory")
    p.add_argument("--history", nargs="+", default=None, metavar="DIR",
                   help="earlier audits' reduce (or report) directories, oldest first: report.html then shows drift over time")
    p.add_argument("--output", default=None, help="where to write the report (default: the results directory)")
