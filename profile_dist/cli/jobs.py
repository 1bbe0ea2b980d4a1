"""Whole jobs: ``profile-dist run JOB.yaml`` and ``profile-dist demo``."""

from __future__ import annotations

import argparse
import os
from typing import Any


def cmd_run(args: argparse.Namespace) -> int:
    from profile_dist.workflows.job import load_job, run_job  # on use: keeps CLI start-up light

    results = run_job(load_job(args.job), address=args.address)
    print(f"done: open {os.path.join(results, 'report.md')}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from profile_dist.workflows.demo import default_shared_data, run_demo  # on use: keeps CLI start-up light

    data_dir = None
    if args.data is not None:
        data_dir = args.data or default_shared_data()
    results = run_demo(args.output, data_dir, args.bootstrap, address=args.address)
    print(f"done: open {os.path.join(results, 'report.md')} or {os.path.join(results, 'report.html')}  "
          f"(machine-readable: {os.path.join(results, 'results.json')})")
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help_text = "run ingest, annotate, reduce and report from a job YAML file"
    p = sub.add_parser("run", parents=[common], help=help_text, description=help_text)
    p.set_defaults(handler=cmd_run, starts_ray=True)
    p.add_argument("job", help="job YAML file (see jobs/)")

    help_text = ("the paper's whole flow on a built-in corpus with a simulated LLM on loopback "
                 "(LLM factors, judge, writer, gap; no network, no API key)")
    p = sub.add_parser("demo", parents=[common], help=help_text, description=help_text)
    p.set_defaults(handler=cmd_demo, starts_ray=True)
    p.add_argument("--output", default="profile-dist-demo", help="output directory (default ./profile-dist-demo)")
    p.add_argument("--data", nargs="?", const="", default=None, help="run on the real corpora in DIR (default ../shared/data or PROFILE_SHARED_DATA)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200)")
