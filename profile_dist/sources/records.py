"""What an adapter yields (``RawPair`` for a usable row, ``RowProblem`` for one it cannot use) and the
helpers adapters share to read files and JSON lines. The lowest layer of sources/: it imports no other
module of the package."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

from profile_dist import storage
from profile_dist.errors import BadInputError


@dataclass(frozen=True)
class RawPair:
    source_row: int
    prompt: str
    response_a: str
    response_b: str
    label: str  # "a", "b" or "tie"
    labeler: str
    task: str | None = None  # None: the adapter's or the command line's task
    source: str | None = None  # the document judged against, where it differs from the prompt
    #: Each response's own document where the two differ (WebGPT: each answer's quotes); None: ``source``.
    source_a: str | None = None
    source_b: str | None = None
    setting: str = "human"
    #: Facts worth counting about a row that is still used (e.g. "prompt taken from chosen").
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RowProblem:
    source_row: int
    field: str
    reason: str
    kind: str = "invalid"  # "invalid" stops a strict run; "skipped" is a documented no-preference value


Record = RawPair | RowProblem


# --- helpers shared by adapters -------------------------------------------------------------


def read_bytes(path: str) -> bytes:
    """The file's bytes, decompressed when its name ends in .gz; a clear error when unreadable."""
    try:
        return storage.read_bytes(path, decompress=True)
    except FileNotFoundError:
        raise BadInputError(path, None, None, "file not found") from None
    except OSError as exc:
        raise BadInputError(path, None, None, f"cannot read file: {exc}") from None


def parse_json_line(row: int, raw: bytes) -> dict[str, Any] | RowProblem | None:
    """One line as a JSON object, a RowProblem saying why not, or None for a blank line."""
    if not raw.strip():
        return None
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return RowProblem(row, "<line>", f"not valid UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        return RowProblem(row, "<line>", f"malformed JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return RowProblem(row, "<line>", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_json_lines(path: str) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    """(row, object) per non-blank line; undecodable or non-object lines become RowProblems."""
    yield from iter_json_lines_in(read_bytes(path))


def iter_json_lines_in(data: bytes, first_row: int = 0) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    """Like :func:`iter_json_lines` over the lines of ``data``, numbered from ``first_row``."""
    for offset, raw in enumerate(io.BytesIO(data)):
        obj = parse_json_line(first_row + offset, raw)
        if obj is not None:
            yield first_row + offset, obj


def load_json_document(path: str) -> Any:
    data = read_bytes(path)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInputError(path, None, None, f"not valid UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(path, None, None, f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def require_text(obj: dict[str, Any], field_name: str, row: int) -> str | RowProblem:
    """The field as a string, or a RowProblem saying why not (missing, null, not a string)."""
    if field_name not in obj:
        return RowProblem(row, field_name, "missing field")
    value = obj[field_name]
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        return RowProblem(row, field_name, f"expected a string, got {kind}")
    return value
