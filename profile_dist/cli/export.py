"""The ``export`` command group: ``profile-dist export dpo ...``."""

from __future__ import annotations

import argparse
from typing import Any

from profile_dist.errors import ConfigError
from profile_dist.export import ONLY_LONGER, SOURCES


def cmd_export_dpo(args: argparse.Namespace) -> int:
    from profile_dist.export.dpo import export_dpo, reproduce  # on use: keeps CLI start-up light

    if args.reproduce:
        if args.results or args.drop or args.drop_if_only_longer or args.labeler:
            raise ConfigError("--reproduce takes its arguments from the manifest; pass only --output")
        summary = reproduce(args.reproduce, args.output)
    else:
        if not args.results:
            raise ConfigError("pass --results DIR (a reduce output) or --reproduce MANIFEST")
        drop = list(args.drop or []) + ([ONLY_LONGER] if args.drop_if_only_longer else [])
        summary = export_dpo(args.results, args.output, source=args.source, labeler=args.labeler, drop=drop)
    print("\n".join(summary.lines()))
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    export = sub.add_parser("export", help="training data from a PROFILE run",
                            description="training data from a PROFILE run")
    kinds = export.add_subparsers(dest="export_kind", required=True)
    p = kinds.add_parser("dpo", parents=[common], help="preference pairs as DPO JSONL (prompt/chosen/rejected/selection)",
                         description="preference pairs as DPO JSONL (prompt/chosen/rejected/selection) with a manifest beside it")
    p.set_defaults(handler=cmd_export_dpo)
    p.add_argument("--results", default=None, help="a reduce output directory (its manifest names the pairs and annotations)")
    p.add_argument("--output", required=True, help="the JSONL file to write; FILE.manifest.json is written beside it")
    p.add_argument("--source", choices=sorted(SOURCES), default="judge",
                   help="judge: a judge's verdicts (evaluation setting); generation: a model's own level ranking; human")
    p.add_argument("--labeler", default=None, help="only this labeler's pairs (default: every labeler of the source)")
    p.add_argument("--drop", action="append", default=None, metavar="RULE",
                   help="drop pairs a factor rule matches: only:F (chosen wins only by more F), more:F=X, less:F=X; repeatable")
    p.add_argument("--drop-if-only-longer", action="store_true", help=f"shorthand for --drop {ONLY_LONGER}")
    p.add_argument("--reproduce", default=None, metavar="MANIFEST", help="re-run the export a manifest describes")
