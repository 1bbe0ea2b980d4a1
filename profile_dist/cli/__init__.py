"""profile-dist <command>: the stages one by one, a whole job from YAML, the demo, and the command groups.

Each module here declares its commands (``add_parser``) and runs them (``cmd_*``); the options several
commands share are declared once in :mod:`profile_dist.cli.options`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import sys
from typing import Any

from profile_dist.cli import catalog, discover, export, improve, jobs, stages
from profile_dist.cli.options import common_parser
from profile_dist.errors import ProfileDistError
from profile_dist.stages.ray_messages import default_log_path, ray_messages

#: The command modules, in the order ``profile-dist --help`` lists their commands.
COMMAND_MODULES = (stages, jobs, catalog, discover, export, improve)


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    parser = argparse.ArgumentParser(prog="profile-dist", description="PROFILE factor-level preference analysis on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    routing = None
    try:
        with ray_messages(args.verbose, default_log_path(args.command)) as routing:
            return _run(args)
    finally:
        if routing is not None and routing.kept():  # named last: Ray's exit messages are in it by now
            print(f"Ray's messages: {routing.path}", file=sys.stderr)


def starts_ray(args: argparse.Namespace) -> bool:
    """Whether the parsed command starts Ray as it begins: its ``starts_ray`` default, a bool or a predicate
    of the arguments (``annotate`` only without ``--llm``)."""
    rule = getattr(args, "starts_ray", False)
    return bool(rule(args) if callable(rule) else rule)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.s3_endpoint_url:
            from profile_dist.storage import set_s3_endpoint  # on use: storage loads pyarrow

            set_s3_endpoint(args.s3_endpoint_url)
        early: Any = contextlib.nullcontext()
        if starts_ray(args):
            from profile_dist.stages.runtime import ray_started_early  # on use: imports ray

            early = ray_started_early(args.address)  # Ray starts while the command imports its stage and plans
        with early:
            return args.handler(args)
    except ProfileDistError as exc:  # errors the user can act on: one line, no traceback
        print(f"profile-dist {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"profile-dist {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def console() -> None:
    """The ``profile-dist`` command (and ``python -m profile_dist.cli``): ``main``, then exit without the
    interpreter's teardown.

    By the time ``main`` returns everything is done: outputs are certified, Ray is shut down, files are
    closed. Tearing down the interpreter then unloads Ray's core worker and polars' and Arrow's native
    thread pools, which took 0.4-0.75 s of every command on 2 cores (docs/benchmarks.md, "Time to first
    useful work"). The exit handlers still run, and the streams are flushed; only that teardown is skipped.
    ``main`` itself returns normally, for callers in the same process (the tests).
    """
    code = main()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
