"""Outputs that have one writer at a time and appear as a whole: a claim while a job writes, a manifest last.

- **Claim.** ``<output>/_claim.json`` is created only if nothing is there (O_EXCL locally, ``If-None-Match``
  on S3) and names its owner (host, pid, run id, stage, start time). A second job given the same output is
  refused with that owner in the message instead of overwriting the first. The claim is removed when the
  job ends, whether it succeeded or failed; a claim left by a process that no longer exists on this host is
  stale and taken over (a claim from another host is never guessed stale: the message says how to remove it).
- **Manifest.** ``_manifest.json`` is written last and lists every file of every table (name, bytes, rows).
  Before a rewrite touches any table, the old manifest is replaced by a ``writing`` marker, so a reader sees
  either one complete run or an error, never tables of two runs side by side (S3 has no directory rename:
  tables are copied into place one object at a time).
- **Readers** call :func:`table_files`, which trusts only the manifest: files it does not list (a stray
  copy, leftovers) are not read. A directory with no manifest at all (written by hand or by an older
  version) is read by listing.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from profile_dist import storage
from profile_dist.errors import ConfigError

MANIFEST = "_manifest.json"
CLAIM = "_claim.json"
WRITING = "writing"
COMPLETE = "complete"


class OutputClaimedError(ConfigError):
    """Another job is writing the same output."""


class IncompleteOutputError(ConfigError):
    """An output whose manifest says a job is rewriting it (or died doing so)."""


@dataclass(frozen=True)
class Claim:
    output: str
    stage: str
    run: str
    host: str
    pid: int
    since: str

    def describe(self) -> str:
        return f"{self.stage} run {self.run}, pid {self.pid} on {self.host}, since {self.since}"

    def staging(self) -> str:
        """The run's private directory beside the output (hidden from listings: it starts with '.')."""
        return storage.join(self.output, f".staging-{self.run}")


def _new_claim(output: str, stage: str) -> Claim:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return Claim(output, stage, uuid.uuid4().hex, socket.gethostname(), os.getpid(), now)


def _read_claim(path: str) -> Claim | None:
    try:
        return Claim(**json.loads(storage.read_bytes(path)))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError):  # not our format: someone else's claim; keep it
        return Claim(path, "?", "?", "?", -1, "?")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _is_stale(holder: Claim) -> bool:
    return holder.host == socket.gethostname() and holder.pid > 0 and not _process_exists(holder.pid)


@contextlib.contextmanager
def claimed(output: str, stage: str) -> Iterator[Claim]:
    """Hold ``output`` for this job while the block runs; refuse if another live job holds it."""
    claim = _new_claim(output, stage)
    path = storage.join(output, CLAIM)
    while not storage.write_bytes_exclusive(storage.json_bytes(asdict(claim)), path):
        holder = _read_claim(path)
        if holder is None:  # released between our attempt and the read: try again
            continue
        if not _is_stale(holder):
            raise OutputClaimedError(
                f"{output} is being written by another job ({holder.describe()}); refusing to overwrite it. "
                f"Wait for that job to finish, or if it is gone, delete {path}"
            )
        # Its owner died without releasing it: take over, and drop what it had staged.
        if _read_claim(path) == holder:
            storage.remove_tree(storage.join(output, f".staging-{holder.run}"))
            storage.remove_file(path)
    try:
        yield claim
    finally:
        if _read_claim(path) == claim:
            storage.remove_file(path)


def withdraw(output: str, claim: Claim) -> None:
    """Mark ``output`` as being rewritten: readers refuse it until :func:`certify` writes the new manifest."""
    storage.write_json_atomic({"state": WRITING, "claim": asdict(claim)}, storage.join(output, MANIFEST))


def certify(output: str, manifest: dict[str, Any]) -> None:
    """Write the manifest that makes ``output`` readable; it must list its files under ``files``."""
    if "files" not in manifest:
        raise ValueError("a published manifest lists its files")
    storage.write_json_atomic({**manifest, "state": COMPLETE}, storage.join(output, MANIFEST))


def publish(output: str, claim: Claim, tables: list[str], manifest: dict[str, Any]) -> None:
    """Move the staged table directories into ``output`` and certify them with ``manifest``."""
    withdraw(output, claim)
    for name in tables:
        storage.replace_dir(storage.join(claim.staging(), name), storage.join(output, name))
    certify(output, manifest)


def require_complete(directory: str, manifest: dict[str, Any]) -> None:
    """Refuse a directory whose manifest says a job is rewriting it (or died doing so)."""
    if manifest.get("state") == WRITING:
        holder = manifest.get("claim") or {}
        raise IncompleteOutputError(
            f"{directory} is incomplete: a {holder.get('stage', 'job')} run (pid {holder.get('pid')} on {holder.get('host')}, "
            f"since {holder.get('since')}) is rewriting it or died doing so; wait for it, or rerun that stage"
        )


def table_files(directory: str, table: str) -> list[str]:
    """The files of one table of an ingest-shaped directory, as its manifest lists them."""
    manifest_path = storage.join(directory, MANIFEST)
    try:
        manifest = storage.read_json(manifest_path)
    except FileNotFoundError:
        return storage.list_files(storage.join(directory, table))
    require_complete(directory, manifest)
    files = manifest.get("files")
    if files is None:  # stages whose manifests do not list files yet
        return storage.list_files(storage.join(directory, table))
    return [storage.join(directory, table, entry["name"]) for entry in files.get(table, [])]


def table_rows(directory: str, table: str) -> int | None:
    """The rows of one table as its manifest counts them; None when the manifest does not say."""
    try:
        manifest = storage.read_json(storage.join(directory, MANIFEST))
    except FileNotFoundError:
        return None
    entries = (manifest.get("files") or {}).get(table)
    if entries is None or any("rows" not in entry for entry in entries):
        return None
    return sum(int(entry["rows"]) for entry in entries)
