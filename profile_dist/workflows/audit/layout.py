"""Where an audit keeps things, and how a dated result is published exactly once.

```
<output>/ingest/<corpus>/<fingerprint>/        one canonical ingest per input file version (cache)
<output>/annotations/<corpus>/<fingerprint>/   its annotations (cache; finished shards are skipped)
<output>/models/<model>/date=YYYY-MM-DD/{judge,generate}/<corpus>/NNNN[-annotations]/
                                               what each configured model judged and generated that night
<output>/_llm_cache/                           their LLM reply cache (unless $PROFILE_LLM_CACHE names one)
<output>/audits/date=YYYY-MM-DD/               the published audit of that date:
    influence.parquet alignment.parquet replicates.parquet ... report.md results.json
    drift_influence.parquet drift_alignment.parquet summary.json
    _CLAIM.json      which run owns this date (created once, with If-None-Match / O_EXCL)
    _SUCCESS.json    written last: the date is complete (its summary, status and exit code)
<output>/audits/date=YYYY-MM-DD/.runs/<run_id>/ a run's private staging area
```

A run computes everything into its own staging area, then claims the date with an exclusive create.
Only the claimant's files are copied to the date's prefix, so a run never overwrites another run's
outputs: a run that loses the claim discards its staging and reports the winner's result. A rerun
finds ``_SUCCESS.json`` and changes nothing; a run that died between claim and success is finished
by the next run from the claimant's (complete) staging area.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

from profile_dist import storage

DATE_PREFIX = "date="
CLAIM = "_CLAIM.json"
SUCCESS = "_SUCCESS.json"
STAGED = "_STAGED.json"


def fingerprint(info: storage.FileInfo) -> str:
    """Names one version of one input file: a changed file is new data, an unchanged one is cached."""
    return hashlib.sha256(f"{info.uri}\n{info.size}\n{info.version}".encode()).hexdigest()[:16]


class AuditLayout:
    def __init__(self, root: str):
        self.root = root

    @property
    def audits(self) -> str:
        return storage.join(self.root, "audits")

    def date_dir(self, date: str) -> str:
        return storage.join(self.audits, f"{DATE_PREFIX}{date}")

    def staging(self, date: str, run_id: str) -> str:
        return storage.join(self.date_dir(date), ".runs", run_id)

    def ingest_dir(self, corpus: str, print_: str) -> str:
        return storage.join(self.root, "ingest", corpus, print_)

    def annotations_dir(self, corpus: str, print_: str) -> str:
        return storage.join(self.root, "annotations", corpus, print_)

    def is_published(self, date: str) -> bool:
        return storage.exists(storage.join(self.date_dir(date), SUCCESS))

    def published_summary(self, date: str) -> dict[str, Any] | None:
        path = storage.join(self.date_dir(date), SUCCESS)
        return storage.read_json(path) if storage.exists(path) else None

    def dates(self) -> list[str]:
        """Dates with a partition (published or not), oldest first."""
        found = []
        for name in storage.list_dirs(self.audits):
            if name.startswith(DATE_PREFIX):
                date = name[len(DATE_PREFIX):]
                try:
                    datetime.date.fromisoformat(date)
                except ValueError:
                    continue
                found.append(date)
        return sorted(found)

    def previous(self, date: str) -> str | None:
        """The latest published audit strictly before ``date``."""
        for earlier in reversed([d for d in self.dates() if d < date]):
            if self.is_published(earlier):
                return earlier
        return None


def stage_complete(layout: AuditLayout, date: str, run_id: str, summary: dict[str, Any]) -> None:
    """Seal a staging area: the list of its files and the summary, written after everything else."""
    staging = layout.staging(date, run_id)
    prefix = staging.rstrip("/") + "/"
    files = [uri[len(prefix):] for uri in storage.list_tree(staging)]
    files = [f for f in files if f != STAGED and not f.startswith(".tmp-") and "/.tmp-" not in f]
    storage.write_json_atomic({"run_id": run_id, "files": files, "summary": summary}, storage.join(staging, STAGED))


def _publish(layout: AuditLayout, date: str, run_id: str) -> None:
    staging = layout.staging(date, run_id)
    staged = storage.read_json(storage.join(staging, STAGED))
    target = layout.date_dir(date)
    for relative in staged["files"]:
        storage.copy_file(storage.join(staging, relative), storage.join(target, relative))
    # Written last and only once: its presence certifies the whole partition.
    storage.write_bytes_exclusive(storage.json_bytes(staged["summary"]), storage.join(target, SUCCESS))
    storage.remove_tree(staging)
    runs = storage.join(target, ".runs")
    if not storage.list_tree(runs):  # local disk keeps empty directories; S3 has none
        storage.remove_tree(runs)


def commit(layout: AuditLayout, date: str, run_id: str) -> tuple[bool, dict[str, Any]]:
    """Claim ``date`` for ``run_id`` and publish its staging area.

    Returns (won, summary): ``won`` is False when another run had claimed the date; the summary is
    then that run's, and this run's staging area is discarded.
    """
    target = layout.date_dir(date)
    claim = storage.json_bytes({"run_id": run_id, "claimed_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    won = storage.write_bytes_exclusive(claim, storage.join(target, CLAIM))
    if not won:
        storage.remove_tree(layout.staging(date, run_id))
    finish(layout, date)
    summary = layout.published_summary(date)
    assert summary is not None
    return won, summary


def claimed_run(layout: AuditLayout, date: str) -> str | None:
    path = storage.join(layout.date_dir(date), CLAIM)
    return storage.read_json(path)["run_id"] if storage.exists(path) else None


def finish(layout: AuditLayout, date: str) -> bool:
    """Publish a claimed but unpublished date from its claimant's staging area; True if it did."""
    if layout.is_published(date):
        return False
    run_id = claimed_run(layout, date)
    if run_id is None:
        return False
    _publish(layout, date, run_id)
    return True
