"""AlpacaEval judge annotations: a JSON list of {instruction, output_1, output_2, annotator, preference}."""

from __future__ import annotations

import math
from typing import Any, Iterator

from profile_dist.errors import BadInputError
from profile_dist.sources.base import RawPair, Record, RowProblem, Source, load_json_document, register_source, require_text


def preference_label(value: Any) -> str | None:
    """Map AlpacaEval's preference to a label; None for a value outside the format.

    1 or 2 name the preferred output; a float in [1, 2] is probability-weighted (< 1.5: output_1);
    0 (AlpacaEval's draw) and exactly 1.5 are ties. Numbers may arrive as strings in newer files.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or math.isnan(value):
        return None
    if value == 0 or value == 1.5:
        return "tie"
    if 1 <= value < 1.5:
        return "a"
    if 1.5 < value <= 2:
        return "b"
    return None


@register_source
class AlpacaEval(Source):
    name = "alpaca_eval"
    description = "AlpacaEval annotations JSON(.gz): preference 1/2 or a float in [1, 2]; labeler = annotator"
    default_task = "helpful"

    def records(self, path: str) -> Iterator[Record]:
        document = load_json_document(path)
        if not isinstance(document, list):
            raise BadInputError(path, None, None, f"expected a JSON list of annotations, got {type(document).__name__}")
        for row, obj in enumerate(document):
            if not isinstance(obj, dict):
                yield RowProblem(row, "<element>", f"expected a JSON object, got {type(obj).__name__}")
                continue
            fields = {}
            problem = None
            for name in ("instruction", "output_1", "output_2", "annotator"):
                value = require_text(obj, name, row)
                if isinstance(value, RowProblem):
                    problem = value
                    break
                fields[name] = value
            if problem is not None:
                yield problem
                continue
            if "preference" not in obj:
                yield RowProblem(row, "preference", "missing field")
                continue
            raw = obj["preference"]
            if raw is None:
                yield RowProblem(row, "preference", "null preference (the judge's reply was not parsed)", kind="skipped")
                continue
            label = preference_label(raw)
            if label is None:
                yield RowProblem(row, "preference", f"unknown preference value {raw!r}; expected 0, 1, 2 or a number in [1, 2]")
                continue
            yield RawPair(row, fields["instruction"], fields["output_1"], fields["output_2"], label, fields["annotator"], setting="evaluation")
