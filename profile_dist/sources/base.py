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
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from profile_dist import storage
from profile_dist.errors import BadInputError

if TYPE_CHECKING:
    from profile_dist.sources.batches import Batch, Split


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
    """Base class of corpus adapters: set the class attributes and implement ``records``.

    ``records`` is the reference: every row of a file in order. Ingest calls ``plan`` (cut a file into
    splits, one task each) and ``batches`` (one split's rows as Arrow tables); their defaults treat the
    file as one split parsed by ``records``. A format overrides them to split large files and to parse
    column-wise, and must give exactly what ``records`` gives (tests/test_ingest_splits.py checks it).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    default_task: ClassVar[str] = "helpful"
    default_labeler: ClassVar[str] = "human"

    def records(self, path: str) -> Iterator[Record]:
        raise NotImplementedError

    def dataset_name(self, path: str) -> str:
        return self.name

    def plan(self, path: str, target_bytes: int) -> list[Split]:
        """The file as one split; counting its rows parses it once (documents small enough to read whole)."""
        from profile_dist.sources.batches import Split

        return [Split(path, 0, sum(1 for _ in self.records(path)))]

    def batches(self, split: Split) -> Iterator[Batch]:
        from profile_dist.sources.batches import batches_from_records

        yield from batches_from_records(self.records(split.path))


class JsonLinesSource(Source):
    """A format with one JSON object per line: subclasses turn one object into a record.

    Files are cut at line boundaries into splits of about ``target_bytes``; each object is still parsed
    by ``record`` (nested dialogues and documents need a Python loop per row).
    """

    def records(self, path: str) -> Iterator[Record]:
        for row, obj in iter_json_lines(path):
            yield obj if isinstance(obj, RowProblem) else self.record(row, obj)

    def record(self, row: int, obj: dict[str, Any]) -> Record:
        raise NotImplementedError

    def plan(self, path: str, target_bytes: int) -> list[Split]:
        from profile_dist.sources.batches import plan_lines

        return plan_lines(path, target_bytes)

    def batches(self, split: Split) -> Iterator[Batch]:
        from profile_dist.sources.batches import batches_from_records, read_split_bytes

        def records() -> Iterator[Record]:
            for row, obj in iter_json_lines_in(read_split_bytes(split), split.first_row):
                yield obj if isinstance(obj, RowProblem) else self.record(row, obj)

        yield from batches_from_records(records())


_SOURCES: dict[str, type[Source]] = {}


def register_source(cls: type[Source]) -> type[Source]:
    if cls.name in _SOURCES:
        raise ValueError(f"source format {cls.name!r} is already registered")
    _SOURCES[cls.name] = cls
    return cls


def get_source(name: str) -> Source:
    import profile_dist.sources  # noqa: F401  (registers the built-in formats)

    try:
        return _SOURCES[name]()
    except KeyError:
        raise KeyError(f"unknown input format {name!r}; known formats: {', '.join(sorted(_SOURCES))}") from None


def all_sources() -> list[type[Source]]:
    import profile_dist.sources  # noqa: F401

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
