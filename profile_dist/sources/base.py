"""The source noun: an adapter that turns one corpus file into raw preference pairs.

An adapter only parses; ids, deduplication, sharding and writing belong to the ingest stage. It
yields ``RawPair`` for every usable row and ``RowProblem`` for every row it cannot use, so the
stage decides whether a problem stops the run (the default) or is written to ``rejected``.
Adding a corpus format is one module in this package with one ``@register_source`` class.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

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


class Source:
    """Base class of corpus adapters: set the class attributes and implement ``records``."""

    name: ClassVar[str]
    description: ClassVar[str]
    default_task: ClassVar[str] = "helpful"
    default_labeler: ClassVar[str] = "human"

    def records(self, path: str) -> Iterator[Record]:
        raise NotImplementedError

    def dataset_name(self, path: str) -> str:
        return self.name


class JsonLinesSource(Source):
    """A format with one JSON object per line: subclasses turn one object into a record."""

    def records(self, path: str) -> Iterator[Record]:
        for row, obj in iter_json_lines(path):
            yield obj if isinstance(obj, RowProblem) else self.record(row, obj)

    def record(self, row: int, obj: dict[str, Any]) -> Record:
        raise NotImplementedError


#: Filled by the format modules, which the package's __init__ imports before anyone can reach this module.
_SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    if cls.name in _SOURCES:
        raise ValueError(f"source format {cls.name!r} is already registered")
    _SOURCES[cls.name] = cls
    return cls


def get_source(name: str) -> Source:
    try:
        return _SOURCES[name]()
    except KeyError:
        raise KeyError(f"unknown input format {name!r}; known formats: {', '.join(sorted(_SOURCES))}") from None


def all_sources() -> list[type[Source]]:
    return [_SOURCES[name] for name in sorted(_SOURCES)]


# --- helpers shared by adapters -------------------------------------------------------------


def read_bytes(path: str) -> bytes:
    """The file's bytes, decompressed when its name ends in .gz; a clear error when unreadable."""
    try:
        return storage.read_bytes(path, decompress=True)
    except FileNotFoundError:
        raise BadInputError(path, None, None, "file not found") from None
    except OSError as exc:
        raise BadInputError(path, None, None, f"cannot read file: {exc}") from None


def iter_json_lines(path: str) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    """(row, object) per non-blank line; undecodable or non-object lines become RowProblems."""
    data = read_bytes(path)
    for row, raw in enumerate(io.BytesIO(data)):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            yield row, RowProblem(row, "<line>", f"not valid UTF-8 at byte {exc.start}")
            continue
        except json.JSONDecodeError as exc:
            yield row, RowProblem(row, "<line>", f"malformed JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(obj, dict):
            yield row, RowProblem(row, "<line>", f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield row, obj


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
