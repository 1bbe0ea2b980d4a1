"""The ``improve`` command group: ``profile-dist improve feedback ...``."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_improve_feedback(args: argparse.Namespace) -> int:
    from profile_dist.improve.feedback import improve_feedback

    summary = improve_feedback(
        args.results, args.llm, args.output, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, template=args.template, top=args.top, reference=args.reference, task=args.task,
        labeler=args.labeler, annotate_llm=args.annotate_llm, address=args.address, say=print,
    )
    print("\n".join(summary.lines()))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    improve = sub.add_parser("improve", parents=[common], help="act on an audit and measure the change",
                             description="act on an audit and measure the change")
    kinds = improve.add_subparsers(dest="improve_kind", required=True)
    p = kinds.add_parser("feedback", parents=[common], help="factor-level guidance to a generator, regenerated and re-measured",
                         description="factor-level guidance to a generator, regenerated and re-measured (docs/improve.md)")
    p.set_defaults(handler=cmd_improve_feedback)
    p.add_argument("--results", required=True, help="the audit: a reduce output including the generator's generate output")
    p.add_argument("--llm", required=True, help="the generator's endpoint name")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--endpoints", default=None, help="endpoints YAML file (default: $PROFILE_ENDPOINTS)")
    p.add_argument("--cache-dir", default=None, help="LLM reply cache (default: OUTPUT/_llm_cache)")
    p.add_argument("--max-cost", type=float, default=None, help="refuse to spend more than this many USD")
    p.add_argument("--dry-run", action="store_true", help="print the guidance and the projected cost; send nothing")
    p.add_argument("--template", default="feedback/v1", help="guidance template version (default feedback/v1)")
    p.add_argument("--top", type=int, default=2, help="how many significantly misaligned factors to name (default 2)")
    p.add_argument("--reference", default=None, metavar="LABELER/SETTING", help="the human source (default: the only one)")
    p.add_argument("--task", default=None, help="the task, when the generator has several")
    p.add_argument("--labeler", default=None, help="the generator's labeler in the audit (default: found by endpoint)")
    p.add_argument("--annotate-llm", default=None, help="annotator endpoint, when the audit's factors include LLM factors")
