#!/usr/bin/env python
"""Nightly PROFILE audit: python jobs/nightly_audit.py --config jobs/nightly_audit.yaml [--date YYYY-MM-DD]

Ingests new input files, annotates what is not cached, (with models configured) judges and generates,
reduces, compares with the previous published audit and publishes under
<output>/audits/date=YYYY-MM-DD/. Prints a one-paragraph summary on stdout; progress goes to stderr.

Exit codes: 0 healthy (or first audit), 3 alignment with humans dropped past the configured threshold,
1 the run failed (nothing published; rerun the same command to resume). Rerunning a published date
changes nothing and exits with that audit's code; --status only reads the published result.

On a cluster: ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/nightly_audit.py --config ...
(see docs/cluster.md).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

# Run against the code beside this script (as submitted with --working-dir), installed or not.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPO, "profile_dist")) and _REPO not in sys.path:
    sys.path.insert(0, _REPO)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nightly_audit.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="audit config YAML (local or s3://)")
    parser.add_argument("--date", default=None, help="audit date YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: the config's, RAY_ADDRESS, else local)")
    parser.add_argument("--s3-endpoint-url", default=None, metavar="URL", help="S3-compatible endpoint for s3:// paths")
    parser.add_argument("--status", action="store_true",
                        help="only report the published audit of --date (its paragraph and exit code; 1 if not published); runs nothing")
    return parser.parse_args(argv)


def report_status(config, date: str) -> int:
    """The published result of ``date`` without running anything (e.g. after `ray job submit`, whose own
    exit code cannot tell a drop (3) from a failure (1))."""
    from profile_dist.workflows.audit.layout import AuditLayout
    from profile_dist.workflows.audit.run import EXIT_FAILED

    summary = AuditLayout(config.output).published_summary(date)
    if summary is None:
        print(f"Audit {date}: not published (the run failed or has not finished). Status: failed (exit {EXIT_FAILED}).", flush=True)
        return EXIT_FAILED
    print(summary["paragraph"], flush=True)
    return int(summary["exit_code"])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    date = args.date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    from profile_dist.workflows.audit.run import EXIT_FAILED, failure_paragraph

    try:
        from profile_dist import storage
        from profile_dist.workflows.audit.config import check_date, load_audit_config
        from profile_dist.workflows.audit.run import run_audit

        if args.s3_endpoint_url:
            storage.set_s3_endpoint(args.s3_endpoint_url)
        check_date(date)
        config = load_audit_config(args.config)
        if args.status:
            return report_status(config, date)
        outcome = run_audit(config, date, address=args.address)
    except KeyboardInterrupt:
        print(failure_paragraph(date, RuntimeError("interrupted")), flush=True)
        return EXIT_FAILED
    except Exception as exc:  # any failure is exit 1 with a readable paragraph; details on stderr
        from profile_dist.errors import ProfileDistError

        if not isinstance(exc, ProfileDistError):
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(failure_paragraph(date, exc), flush=True)
        return EXIT_FAILED
    print(outcome.paragraph, flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
