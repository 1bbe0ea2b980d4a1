"""The source noun: an adapter that turns one corpus file into raw preference pairs.

An adapter only parses; ids, deduplication, sharding and writing belong to the ingest stage. It
yields ``RawPair`` for every usable row and ``RowProblem`` for every row it cannot use, so the
stage decides whether a problem stops the run (the default) or is written to ``rejected``.
Adding a corpus format is one module in this package with one ``@register_source`` class.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterator

from profile_dist.sources.batches import Batch, Split, batches_from_records, plan_lines, read_split_bytes
from profile_dist.sources.records import (  # noqa: F401  (re-exported: adapters import them from here)
    RawPair, Record, RowProblem, iter_json_lines, iter_json_lines_in, load_json_document, parse_json_line, read_bytes,
    require_text,
)


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
        return [Split(path, 0, sum(1 for _ in self.records(path)))]

    def batches(self, split: Split) -> Iterator[Batch]:
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
        return plan_lines(path, target_bytes)

    def batches(self, split: Split) -> Iterator[Batch]:
        def records() -> Iterator[Record]:
            for row, obj in iter_json_lines_in(read_split_bytes(split), split.first_row):
                yield obj if isinstance(obj, RowProblem) else self.record(row, obj)

        yield from batches_from_records(records())


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
