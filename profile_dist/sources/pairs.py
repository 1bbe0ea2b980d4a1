"""Generic pairs from CSV, JSON lines or Parquet.

Two layouts are recognised from the columns present:
- ``prompt, response_a, response_b, label`` (label a, b or tie), optional ``labeler``, ``task``,
  ``setting`` and ``source``;
- Feedback Forensics' ``text_a, text_b, preferred_text`` (``text_a``/``text_b``/``tie``), optional
  ``prompt`` and the same optional columns.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Iterator

import pyarrow.parquet as pq

from profile_dist.errors import BadInputError
from profile_dist.schema import LABELS, SETTINGS
from profile_dist.sources.base import RawPair, Record, RowProblem, Source, iter_json_lines, read_bytes, register_source

CANONICAL = {"prompt": "prompt", "a": "response_a", "b": "response_b", "label": "label"}
FEEDBACK_FORENSICS = {"prompt": "prompt", "a": "text_a", "b": "text_b", "label": "preferred_text"}
LABEL_ALIASES = {
    "a": "a", "b": "b", "tie": "tie",
    "response_a": "a", "response_b": "b", "text_a": "a", "text_b": "b",
}
OPTIONAL = ("labeler", "task", "setting", "source")


def _layout(columns: set[str], path: str) -> dict[str, str]:
    if {"text_a", "text_b", "preferred_text"} <= columns:
        return FEEDBACK_FORENSICS
    needed = [CANONICAL[k] for k in ("prompt", "a", "b", "label")]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise BadInputError(
            path, None, missing[0],
            f"missing column(s) {', '.join(missing)}; expected prompt, response_a, response_b, label "
            "(or Feedback Forensics' text_a, text_b, preferred_text)",
        )
    return CANONICAL


def _rows(path: str) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    lower = path.lower().removesuffix(".gz")
    if lower.endswith(".parquet"):
        try:
            table = pq.read_table(io.BytesIO(read_bytes(path)))
        except BadInputError:
            raise
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise BadInputError(path, None, None, f"not a readable Parquet file: {exc}") from None
        yield from enumerate(table.to_pylist())
    elif lower.endswith(".csv"):
        try:
            text = read_bytes(path).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInputError(path, None, None, f"not valid UTF-8 at byte {exc.start}") from None
        yield from enumerate(csv.DictReader(io.StringIO(text, newline="")))
    elif lower.endswith((".jsonl", ".json", ".ndjson")):
        yield from iter_json_lines(path)
    else:
        raise BadInputError(path, None, None, "unknown file type; expected .csv, .jsonl, .json or .parquet (optionally .gz)")


@register_source
class Pairs(Source):
    name = "pairs"
    description = "generic CSV/JSONL/Parquet: prompt, response_a, response_b, label [labeler, task, setting, source]; or text_a, text_b, preferred_text"
    default_task = "helpful"

    def records(self, path: str) -> Iterator[Record]:
        layout: dict[str, str] | None = None
        for row, obj in _rows(path):
            if isinstance(obj, RowProblem):
                yield obj
                continue
            if layout is None:
                layout = _layout(set(obj), path)
            yield self._record(row, obj, layout)

    def _record(self, row: int, obj: dict[str, Any], layout: dict[str, str]) -> Record:
        texts = {}
        for key in ("prompt", "a", "b"):
            column = layout[key]
            value = obj.get(column, "" if key == "prompt" and layout is FEEDBACK_FORENSICS else None)
            if not isinstance(value, str):
                got = "missing" if column not in obj else ("null" if value is None else type(value).__name__)
                return RowProblem(row, column, f"expected a string, got {got}")
            texts[key] = value
        raw_label = obj.get(layout["label"])
        label = LABEL_ALIASES.get(str(raw_label).strip().lower()) if raw_label is not None else None
        if label is None:
            allowed = "text_a, text_b, tie" if layout is FEEDBACK_FORENSICS else ", ".join(LABELS)
            return RowProblem(row, layout["label"], f"unknown label {raw_label!r}; expected one of {allowed}")
        extra = {}
        for name in OPTIONAL:
            value = obj.get(name)
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                return RowProblem(row, name, f"expected a string, got {type(value).__name__}")
            extra[name] = value
        setting = extra.get("setting", "human")
        if setting not in SETTINGS:
            return RowProblem(row, "setting", f"unknown setting {setting!r}; expected one of {', '.join(SETTINGS)}")
        return RawPair(
            row, texts["prompt"], texts["a"], texts["b"], label,
            labeler=extra.get("labeler", self.default_labeler), task=extra.get("task"),
            source=extra.get("source"), setting=setting,
        )
