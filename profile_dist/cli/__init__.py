"""profile-dist <command>: the stages one by one, a whole job from YAML, and the demo."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from profile_dist.errors import ProfileDistError


def _split_list(values: list[str] | None) -> list[str] | None:
    """Accept both `--factors a b` and `--factors a,b`."""
    if not values:
        return None
    return [item for value in values for item in value.split(",") if item]


def cmd_ingest(args: argparse.Namespace) -> int:
    from profile_dist.stages.ingest import ingest

    summary = ingest(
        args.format, args.input, args.output, task=args.task, dataset=args.dataset,
        rows_per_shard=args.rows_per_shard, skip_bad_rows=args.skip_bad_rows, address=args.address,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from profile_dist.stages.annotate import annotate

    summary = annotate(
        args.pairs, args.output, factors=_split_list(args.factors), llm=args.llm, endpoints=args.endpoints,
        cache_dir=args.cache_dir, max_cost=args.max_cost, dry_run=args.dry_run, address=args.address,
        llm_calls=args.llm_calls, factor_file=args.factor_file,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from profile_dist.stages.judge import judge

    summary = judge(
        args.pairs, args.llm, args.output, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, inconsistent=args.inconsistent, labeler=args.labeler, address=args.address, say=print,
    )
    if not args.dry_run:  # a dry run's estimate was printed already
        print("\n".join(summary.lines()))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from profile_dist.stages.generate import generate

    summary = generate(
        args.prompts, args.llm, args.output, levels=args.levels, mode=args.mode, check_llm=args.check_llm,
        task=args.task, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, labeler=args.labeler, address=args.address, say=print,
    )
    if not args.dry_run:  # a dry run's estimate was printed already
        print("\n".join(summary.lines()))
    return 0


def cmd_reduce(args: argparse.Namespace) -> int:
    from profile_dist.stages.reduce import reduce

    summary = reduce(
        args.pairs, args.annotations, args.output, factors=_split_list(args.factors),
        n_bootstrap=args.bootstrap, seed=args.seed, level=args.confidence, address=args.address,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from profile_dist.report import build_report

    print("\n".join(build_report(args.results, args.output, history=args.history).lines()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from profile_dist.workflows.job import load_job, run_job

    results = run_job(load_job(args.job), address=args.address)
    print(f"done: open {os.path.join(results, 'report.md')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from profile_dist.workflows.demo import default_shared_data, demo_job
    from profile_dist.workflows.job import run_job

    data_dir = None
    if args.data is not None:
        data_dir = args.data or default_shared_data()
    results = run_job(demo_job(args.output, data_dir, args.bootstrap), address=args.address)
    print(f"done: open {os.path.join(results, 'report.md')}  (machine-readable: {os.path.join(results, 'results.json')})")
    return 0


def cmd_factors(args: argparse.Namespace) -> int:
    from profile_dist.factors import all_factors
    from profile_dist.stages.annotate import prompt_version
    from profile_dist.tasks import all_tasks, get_task

    factors = all_factors()
    if args.task:
        # A task's default factors, then the rule factors every task can add at no cost.
        wanted = list(get_task(args.task).default_factors)
        wanted += [f.name for f in factors if f.kind == "rule" and f.name not in wanted]
        by_name = {f.name: f for f in factors}
        factors = [by_name[name] for name in wanted if name in by_name]
        missing = [name for name in wanted if name not in by_name]
    else:
        missing = []
    if args.factor_file:  # validates the file too: a bad entry is reported as annotate would
        from profile_dist.factors.user import load_factor_file

        factors += [f for f in load_factor_file(args.factor_file) if not args.task or f.applies_to(args.task)]
    defaults = {f.name: [t.name for t in all_tasks() if f.name in t.default_factors] for f in factors}
    rows = [("factor", "kind", "applies to", "default in tasks", "prompt version", "description")]
    for factor in factors:
        applies = ", ".join(sorted(factor.tasks)) if factor.tasks is not None else "all tasks"
        rows.append((factor.name, factor.kind, applies, ", ".join(defaults[factor.name]) or "-",
                     prompt_version(factor), factor.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[5])
    for name in missing:
        print(f"{name} (a default of task {args.task!r}, not registered in this version)")
    return 0


def cmd_formats(args: argparse.Namespace) -> int:
    from profile_dist.sources import all_sources

    for source in all_sources():
        print(f"{source.name:14s} {source.description}")
    return 0


def _is_user_error(exc: BaseException) -> bool:
    """Errors the user can act on: shown as one line, no traceback."""
    if isinstance(exc, ProfileDistError):
        return True
    llm_engine = sys.modules.get("profile_dist.llm.engine")  # only loaded when a stage used the LLM engine
    llm_budget = sys.modules.get("profile_dist.llm.budget")
    llm_endpoints = sys.modules.get("profile_dist.llm.endpoints")
    known = tuple(getattr(m, n) for m, n in ((llm_engine, "EndpointFatalError"), (llm_budget, "BudgetExceededError"),
                                             (llm_endpoints, "EndpointConfigError")) if m)
    return bool(known) and isinstance(exc, known)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray started on demand)")
    common.add_argument("--s3-endpoint-url", default=None, metavar="URL",
                        help="S3-compatible endpoint for s3:// paths, for this process and its Ray workers (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)")
    common.add_argument("--verbose", action="store_true",
                        help="show Ray's own banners, warnings and worker output (default: into a log file named at the end)")
    parser = argparse.ArgumentParser(prog="profile-dist", description="PROFILE factor-level preference analysis on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    p = add("ingest", cmd_ingest, "read corpus files into canonical prompts/responses/pairs Parquet tables")
    p.add_argument("--format", required=True, help="input format (see `profile-dist formats`)")
    p.add_argument("--input", required=True, nargs="+", help="input file(s), local or s3://")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--task", default=None, help="task of the pairs (default: the format's, or a task column)")
    p.add_argument("--dataset", default=None, help="dataset name recorded on each pair (default: the format name)")
    p.add_argument("--rows-per-shard", type=int, default=100_000, help="rows per Parquet shard (default 100000)")
    p.add_argument("--skip-bad-rows", action="store_true", help="write bad rows to the rejected table and go on, instead of stopping")

    p = add("annotate", cmd_annotate, "compute factor values for every response")
    p.add_argument("--pairs", required=True, help="an ingest output directory")
    p.add_argument("--output", required=True, help="annotations directory")
    p.add_argument("--factors", nargs="+", default=None, help="factor names (default: every rule factor, plus with --llm the default LLM factors of the tasks in the pairs)")
    p.add_argument("--llm", default=None, help="endpoint name (from --endpoints) that scores the LLM factors")
    p.add_argument("--endpoints", default=None, help="endpoints YAML file (default: $PROFILE_ENDPOINTS)")
    p.add_argument("--cache-dir", default=None, help="LLM reply cache (default: OUTPUT/_llm_cache)")
    p.add_argument("--max-cost", type=float, default=None, help="refuse to start, or stop cleanly, before spending more than this (USD)")
    p.add_argument("--dry-run", action="store_true", help="print the requests, tokens and cost the LLM factors would need; send nothing")
    p.add_argument("--llm-calls", choices=("combined", "per_factor"), default="combined",
                   help="response-level LLM factors: one call per response for all of them (default) or one per factor")
    p.add_argument("--factor-file", default=None, metavar="FILE.yaml",
                   help="user-defined LLM factors (docs/discovery.md); all of them are annotated unless --factors names some")

    p = add("judge", cmd_judge, "evaluation setting: a model labels pairs, each asked in both orders")
    p.add_argument("--pairs", required=True, help="an ingest output directory (its human pairs are judged)")
    p.add_argument("--llm", required=True, help="endpoint name (from --endpoints) of the judge")
    p.add_argument("--output", required=True, help="output directory (ingest-shaped, plus judgments and judge_agreement)")
    p.add_argument("--endpoints", default=None, help="endpoints YAML file (default: $PROFILE_ENDPOINTS)")
    p.add_argument("--inconsistent", default="drop", choices=["drop", "first", "tie"],
                   help="pairs whose two orders disagree: drop (default), keep the first order's vote, or call them a tie")
    p.add_argument("--labeler", default=None, help="labeler name on the judged pairs (default: the endpoint's model)")
    p.add_argument("--cache-dir", default=None, help="LLM reply cache (default: OUTPUT/_llm_cache)")
    p.add_argument("--max-cost", type=float, default=None, help="refuse to start, or stop cleanly, before spending more than this (USD)")
    p.add_argument("--dry-run", action="store_true", help="print the requests, tokens and cost; send nothing")

    p = add("generate", cmd_generate, "generation setting: a model writes responses at quality levels 1..K per prompt")
    p.add_argument("--prompts", required=True, help="an ingest output directory (its prompts; tasks from its pairs)")
    p.add_argument("--llm", required=True, help="endpoint name (from --endpoints) of the generator")
    p.add_argument("--output", required=True, help="output directory (ingest-shaped, plus generations and manipulation_check)")
    p.add_argument("--levels", type=int, default=5, help="quality levels K (default 5): C(K,2) pairs per prompt")
    p.add_argument("--mode", default="joint", choices=["joint", "separate"],
                   help="joint: one call returns all K responses (default); separate: one call per level")
    p.add_argument("--check-llm", default=None, help="endpoint of an independent rater for the manipulation check")
    p.add_argument("--task", default=None, help="task of every prompt (default: from the input's pairs)")
    p.add_argument("--endpoints", default=None, help="endpoints YAML file (default: $PROFILE_ENDPOINTS)")
    p.add_argument("--labeler", default=None, help="labeler name on the pairs (default: the endpoint's model)")
    p.add_argument("--cache-dir", default=None, help="LLM reply cache (default: OUTPUT/_llm_cache)")
    p.add_argument("--max-cost", type=float, default=None, help="refuse to start, or stop cleanly, before spending more than this (USD)")
    p.add_argument("--dry-run", action="store_true", help="print the requests, tokens and cost; send nothing")

    p = add("reduce", cmd_reduce, "factor influence (tau with bootstrap CIs) per source, and alignment between sources")
    p.add_argument("--pairs", required=True, nargs="+", help="ingest output directory(ies)")
    p.add_argument("--annotations", required=True, nargs="+", help="annotations directory(ies)")
    p.add_argument("--output", required=True, help="results directory")
    p.add_argument("--factors", nargs="+", default=None, help="restrict to these factors (default: all annotated)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200; 0 for none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")

    p = add("report", cmd_report, "write report.md, results.json and report.html from reduce results")
    p.add_argument("--results", required=True, help="a reduce output directory")
    p.add_argument("--history", nargs="+", default=None, metavar="DIR",
                   help="earlier audits' reduce (or report) directories, oldest first: report.html then shows drift over time")
    p.add_argument("--output", default=None, help="where to write the report (default: the results directory)")

    p = add("run", cmd_run, "run ingest, annotate, reduce and report from a job YAML file")
    p.add_argument("job", help="job YAML file (see jobs/)")

    p = add("demo", cmd_demo, "run the whole pipeline on a built-in demo corpus (no network, no API key)")
    p.add_argument("--output", default="profile-dist-demo", help="output directory (default ./profile-dist-demo)")
    p.add_argument("--data", nargs="?", const="", default=None, help="run on the real corpora in DIR (default ../shared/data or PROFILE_SHARED_DATA)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200)")

    p = add("factors", cmd_factors, "list registered factors")
    p.add_argument("--task", default=None, help="only the factors a task uses")
    p.add_argument("--factor-file", default=None, metavar="FILE.yaml", help="also list (and validate) a file's user-defined factors")
    add("formats", cmd_formats, "list input formats")

    from profile_dist.cli.export import add_parser as add_export
    from profile_dist.cli.improve import add_parser as add_improve

    add_export(sub, common)
    add_improve(sub, common)
    from profile_dist.cli.discover import add_parser as add_discover; add_discover(sub, common)  # noqa: E702
    return parser


def main(argv: list[str] | None = None) -> int:
    from profile_dist.stages.ray_messages import default_log_path, ray_messages

    args = build_parser().parse_args(argv)
    routing = None
    try:
        with ray_messages(args.verbose, default_log_path(args.command)) as routing:
            return _run(args)
    finally:
        if routing is not None and routing.kept():  # named last: Ray's exit messages are in it by now
            print(f"Ray's messages: {routing.path}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.s3_endpoint_url:
            from profile_dist.storage import set_s3_endpoint

            set_s3_endpoint(args.s3_endpoint_url)
        return args.handler(args)
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        print(f"profile-dist {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"profile-dist {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
