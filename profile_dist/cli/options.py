"""Options more than one command takes, declared once: the Ray/S3 options of every command, the LLM call
options of every command that calls a model (annotate --llm, judge, generate, improve ...), and list values."""

from __future__ import annotations

import argparse

LLM_DRY_RUN_HELP = "print the requests, tokens and cost; send nothing"


def common_parser() -> argparse.ArgumentParser:
    """The parent parser of every command: where Ray runs and which S3 store s3:// paths mean."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray started on demand)")
    common.add_argument("--s3-endpoint-url", default=None, metavar="URL",
                        help="S3-compatible endpoint for s3:// paths, for this process and its Ray workers (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS)")
    common.add_argument("--verbose", action="store_true",
                        help="show Ray's own banners, warnings and worker output (default: into a log file named at the end)")
    return common


def add_llm_options(parser: argparse.ArgumentParser, *, dry_run_help: str = LLM_DRY_RUN_HELP) -> None:
    """--endpoints, --cache-dir, --max-cost and --dry-run, as every command that calls a model takes them
    (the handler passes them on as endpoints=, cache_dir=, max_cost=, dry_run=)."""
    group = parser.add_argument_group("LLM calls")
    group.add_argument("--endpoints", default=None, help="endpoints YAML file (default: $PROFILE_ENDPOINTS)")
    group.add_argument("--cache-dir", default=None, help="LLM reply cache (default: OUTPUT/_llm_cache)")
    group.add_argument("--max-cost", type=float, default=None,
                       help="refuse to start, or stop cleanly, before spending more than this (USD)")
    group.add_argument("--dry-run", action="store_true", help=dry_run_help)


def split_list(values: list[str] | None) -> list[str] | None:
    """Accept both `--factors a b` and `--factors a,b`."""
    if not values:
        return None
    return [item for value in values for item in value.split(",") if item]
