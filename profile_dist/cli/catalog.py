"""What this version knows: ``profile-dist factors`` and ``profile-dist formats``."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_factors(args: argparse.Namespace) -> int:
    from profile_dist.factors import all_factors  # on use: keeps CLI start-up light
    from profile_dist.user_factors import load_factor_file  # on use: keeps CLI start-up light
    from profile_dist.stages.annotate import prompt_version  # on use: keeps CLI start-up light
    from profile_dist.tasks import all_tasks, get_task  # on use: keeps CLI start-up light

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
    from profile_dist.sources import all_sources  # on use: keeps CLI start-up light

    for source in all_sources():
        print(f"{source.name:14s} {source.description}")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("factors", parents=[common], help="list registered factors", description="list registered factors")
    p.set_defaults(handler=cmd_factors)
    p.add_argument("--task", default=None, help="only the factors a task uses")
    p.add_argument("--factor-file", default=None, metavar="FILE.yaml", help="also list (and validate) a file's user-defined factors")
    p = sub.add_parser("formats", parents=[common], help="list input formats", description="list input formats")
    p.set_defaults(handler=cmd_formats)
