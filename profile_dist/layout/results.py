"""The results directory ``profile-dist reduce`` writes and report, open_results, improve/, audit/ and export/
read: its file names and the one check that a directory is one."""

from __future__ import annotations

from typing import Any

from profile_dist import storage
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.layout.published import MANIFEST, require_complete

#: The reduce's tables, each written as ``<name>.parquet`` (analysis/tables.py builds them).
TABLES = ("influence", "alignment", "gap", "adjusted", "skipped", "replicates")
INFLUENCE = "influence.parquet"
RESULTS_JSON = "results.json"  # written by `profile-dist report`, beside the tables
REPORT_MD = "report.md"
REPORT_HTML = "report.html"


def table_path(directory: str, table: str) -> str:
    """``<directory>/<table>.parquet`` for one of :data:`TABLES`."""
    if table not in TABLES:
        raise ValueError(f"{table!r} is not a reduce table ({', '.join(TABLES)})")
    return storage.join(directory, f"{table}.parquet")


def manifest_path(directory: str) -> str:
    return storage.join(directory, MANIFEST)


def read_manifest(directory: str) -> dict[str, Any]:
    """The directory's ``_manifest.json``, or {} where there is none (written by hand or an older version)."""
    path = manifest_path(directory)
    return storage.read_json(path) if storage.exists(path) else {}


def require_results_dir(directory: str, *, manifest: bool = False) -> dict[str, Any]:
    """The manifest of a ``profile-dist reduce`` output directory ({} if it has none and ``manifest`` is
    False), or an error naming the directory: no influence.parquet (saying which stage wrote it, if
    another one did), a manifest of another stage, or, with ``manifest=True``, no manifest."""
    found = read_manifest(directory)
    require_complete(directory, found)
    if not storage.exists(storage.join(directory, INFLUENCE)):
        stage = found.get("stage")
        what = f"it is the output of `profile-dist {stage}`" if stage and stage != "reduce" else f"no {INFLUENCE}"
        raise ConfigError(f"{directory}: not a `profile-dist reduce` output directory ({what}); "
                          "open the directory given to reduce --output")
    if manifest and not found:
        raise BadInputError(manifest_path(directory), None, MANIFEST,
                            "missing; is this the output directory of `profile-dist reduce`?")
    # A manifest naming no stage (hand-written, older versions) passes unless the caller needs its fields.
    if found and (manifest or "stage" in found) and found.get("stage") != "reduce":
        raise BadInputError(manifest_path(directory), None, "stage", f"is {found.get('stage')!r}, expected 'reduce'")
    return found
