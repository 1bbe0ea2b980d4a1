"""``profile-dist discover``: propose factors the existing ones miss and keep those that hold on held-out pairs."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_discover(args: argparse.Namespace) -> int:
    from profile_dist.workflows.discover import discover  # on use: keeps CLI start-up light

    summary = discover(
        args.pairs, args.annotations, args.llm, args.annotate_llm or args.llm, args.output, task=args.task,
        source=args.source, candidates=args.candidates, seed=args.seed, proposal_pairs=args.proposal_pairs,
        batch_size=args.batch, endpoints=args.endpoints, cache_dir=args.cache_dir, max_cost=args.max_cost,
        dry_run=args.dry_run, n_bootstrap=args.bootstrap, level=args.confidence, address=args.address, say=print,
    )
    print("\n".join(summary.lines()))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    text = "propose new factors from the pairs the existing ones explain worst; keep those that hold on a held-out half"
    p = sub.add_parser("discover", parents=[common], help=text, description=text + " (docs/discovery.md)")
    p.set_defaults(handler=cmd_discover)
    p.add_argument("--pairs", required=True, help="an ingest (or judge/generate) output directory")
    p.add_argument("--annotations", required=True, nargs="+", help="annotations of the existing factors")
    p.add_argument("--llm", required=True, help="endpoint name (from --endpoints) of the proposer")
    p.add_argument("--annotate-llm", default=None, help="endpoint that annotates the candidates (default: --llm)")
    p.add_argument("--output", required=True, help="output directory (discovered.yaml, discovery.parquet, discovery.md)")
    p.add_argument("--task", default=None, help="the task (default: the only one in the pairs)")
    p.add_argument("--source", default=None, metavar="LABELER/SETTING", help="whose preferences (default: the only one)")
    p.add_argument("--candidates", type=int, default=5, help="at most this many candidate factors (default 5)")
    p.add_argument("--proposal-pairs", type=int, default=40, help="worst-explained proposal pairs shown (default 40)")
    p.add_argument("--batch", type=int, default=8, help="pairs per proposer call (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompt split and the bootstrap (default 0)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates of the validation reduce (default 200)")
    p.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals (default 0.95)")
    p.add_argument("--endpoints", default=None, help="endpoints YAML file (default: $PROFILE_ENDPOINTS)")
    p.add_argument("--cache-dir", default=None, help="LLM reply cache (default: OUTPUT/_llm_cache)")
    p.add_argument("--max-cost", type=float, default=None, help="refuse to spend more than this many USD over both phases")
    p.add_argument("--dry-run", action="store_true", help="print requests, tokens and cost of both phases; send nothing")
