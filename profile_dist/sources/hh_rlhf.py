"""Anthropic HH-RLHF: JSON lines with ``chosen`` and ``rejected`` whole dialogues."""

from __future__ import annotations

from profile_dist.sources.base import JsonLinesSource, RawPair, Record, RowProblem, register_source, require_text

ASSISTANT_MARKER = "\n\nAssistant:"


def split_last_turn(dialogue: str) -> tuple[str, str] | None:
    """(prompt up to and including the last Assistant marker, the final reply), or None.

    Splitting at the marker, not at the character-wise common prefix of chosen and rejected, keeps
    words the two replies happen to start with inside the replies.
    """
    cut = dialogue.rfind(ASSISTANT_MARKER)
    if cut < 0:
        return None
    end = cut + len(ASSISTANT_MARKER)
    return dialogue[:end], dialogue[end:]


@register_source
class HHRLHF(JsonLinesSource):
    name = "hh_rlhf"
    description = "Anthropic HH-RLHF JSONL(.gz): chosen/rejected dialogues; chosen is preferred (labeler human)"
    default_task = "helpful"

    def record(self, row: int, obj: dict) -> Record:
        texts = {}
        for field_name in ("chosen", "rejected"):
            value = require_text(obj, field_name, row)
            if isinstance(value, RowProblem):
                return value
            parts = split_last_turn(value)
            if parts is None:
                return RowProblem(row, field_name, "no '\\n\\nAssistant:' turn in the dialogue")
            texts[field_name] = parts
        (prompt, chosen), (rejected_prompt, rejected) = texts["chosen"], texts["rejected"]
        notes = () if prompt == rejected_prompt else ("chosen and rejected dialogues differ before the last turn; prompt taken from chosen",)
        return RawPair(row, prompt, chosen, rejected, "a", self.default_labeler, notes=notes)
