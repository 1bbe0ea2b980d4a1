"""Stanford Human Preferences (SHP): history, human_ref_A/B, labels (1: A preferred), score_A/B."""

from __future__ import annotations

from profile_dist.sources.base import RawPair, Record, RowProblem, JsonLinesSource, register_source, require_text


@register_source
class SHP(JsonLinesSource):
    name = "shp"
    description = "SHP JSONL: history is the question; labels 1 = human_ref_A preferred, 0 = B (must agree with score_A vs score_B)"
    default_task = "helpful"

    def record(self, row: int, obj: dict) -> Record:
        texts = {}
        for name in ("history", "human_ref_A", "human_ref_B"):
            value = require_text(obj, name, row)
            if isinstance(value, RowProblem):
                return value
            texts[name] = value
        label = obj.get("labels")
        if label not in (0, 1) or isinstance(label, bool):
            return RowProblem(row, "labels", f"expected 1 (A preferred) or 0 (B preferred), got {label!r}")
        score_a, score_b = obj.get("score_A"), obj.get("score_B")
        if isinstance(score_a, (int, float)) and isinstance(score_b, (int, float)) and score_a != score_b:
            if (score_a > score_b) != (label == 1):
                return RowProblem(row, "labels", f"labels={label} disagrees with score_A={score_a}, score_B={score_b}")
        return RawPair(row, texts["history"], texts["human_ref_A"], texts["human_ref_B"], "a" if label == 1 else "b", self.default_labeler)
