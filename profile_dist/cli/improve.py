"""The ``improve`` command group: ``profile-dist improve feedback ...``."""

from __future__ import annotations

import argparse
from typing import Any

from profile_dist.cli.options import add_llm_options, split_list


def cmd_improve_feedback(args: argparse.Namespace) -> int:
    from profile_dist.workflows.improve.feedback import improve_feedback  # on use: keeps CLI start-up light

    summary = improve_feedback(
        args.results, args.llm, args.output, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, template=args.template, top=args.top, reference=args.reference, task=args.task,
        labeler=args.labeler, split_seed=args.split_seed, sample=args.sample, annotate_llm=args.annotate_llm, address=args.address, say=print,
    )
    print("\n".join(summary.lines()))
    return 0


def cmd_improve_best_of_n(args: argparse.Namespace) -> int:
    from profile_dist.workflows.improve.bestofn import best_of_n  # on use: keeps CLI start-up light

    summary = best_of_n(
        args.prompts, args.llm, args.judge, args.output, n=args.n, pick=args.pick, task=args.task,
        factors=split_list(args.factors), human=args.human, human_annotations=args.human_annotations,
        endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost, dry_run=args.dry_run, seed=args.seed,
        n_bootstrap=args.bootstrap, levels=args.levels, annotate_llm=args.annotate_llm, address=args.address, say=print,
    )
    if not args.dry_run:
        print("\n".join(summary.lines()))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    improve = sub.add_parser("improve", help="act on an audit and measure the change",
                             description="act on an audit and measure the change")
    kinds = improve.add_subparsers(dest="improve_kind", required=True)
    p = kinds.add_parser("feedback", parents=[common], help="factor-level guidance to a generator, regenerated and re-measured",
                         description="factor-level guidance to a generator, regenerated and re-measured (docs/improve.md)")
    p.set_defaults(handler=cmd_improve_feedback)
    p.add_argument("--results", required=True, help="the audit: a reduce output including the generator's generate output")
    p.add_argument("--llm", required=True, help="the generator's endpoint name")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--template", default="feedback/v2", help="guidance template version (default feedback/v2)")
    p.add_argument("--top", type=int, default=2, help="how many significantly misaligned factors to name (default 2)")
    p.add_argument("--reference", default=None, metavar="LABELER/SETTING", help="the human source (default: the only one)")
    p.add_argument("--task", default=None, help="the task, when the generator has several")
    p.add_argument("--labeler", default=None, help="the generator's labeler in the audit (default: found by endpoint)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the prompt split: factors chosen on one half, measured on the other (default 0)")
    p.add_argument("--sample", type=int, default=1,
                   help="sample index of the guided and control regenerations (the `seed` decoding parameter; default 1)")
    p.add_argument("--annotate-llm", default=None, help="annotator endpoint, when the audit's factors include LLM factors")
    add_llm_options(p, dry_run_help="print the guidance and the projected cost; send nothing")

    p = kinds.add_parser("best-of-n", parents=[common], help="N candidates per prompt, a judge picks one; profile of the picks",
                         description="N candidates per prompt, a judge picks one; factor profile of picked vs random (docs/improve.md)")
    p.set_defaults(handler=cmd_improve_best_of_n)
    p.add_argument("--prompts", required=True, help="an ingest output (its prompts; tasks from its pairs or --task)")
    p.add_argument("--llm", required=True, help="the generator's endpoint name")
    p.add_argument("--judge", required=True, help="the picking endpoint (the generator itself for self-evaluation)")
    p.add_argument("--n", type=int, default=4, help="candidates per prompt (default 4)")
    p.add_argument("--pick", choices=["knockout", "pointwise"], default="knockout",
                   help="knockout: pairwise bracket, both orders; pointwise: highest 1..10 rating (default knockout)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--task", default=None, help="task of every prompt (default: from the prompts' pairs)")
    p.add_argument("--factors", nargs="+", default=None, help="factors to annotate and reduce (default: annotate's)")
    p.add_argument("--human", nargs="+", default=None, metavar="DIR", help="human pairs dirs to compare the picks with")
    p.add_argument("--human-annotations", nargs="+", default=None, metavar="DIR", help="annotations of the human pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random comparison candidate and the bootstrap")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates of the reduce (default 200)")
    p.add_argument("--levels", type=int, default=5,
                   help="with --human: quality levels of the judge model's generation setting, compared with the picks (default 5)")
    p.add_argument("--annotate-llm", default=None, help="annotator endpoint, when the factors include LLM factors")
    add_llm_options(p, dry_run_help="print the projected cost; send nothing")
