"""Anthropic HH-RLHF: JSON lines with ``chosen`` and ``rejected`` whole dialogues."""

from __future__ import annotations

from typing import Iterator

from profile_dist.sources.base import RawPair, Record, RowProblem, Source, iter_json_lines, register_source, require_text

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
class HHRLHF(Source):
    name = "hh_rlhf"
    description = "Anthropic HH-RLHF JSONL(.gz): chosen/rejected dialogues; chosen is preferred (labeler human)"
    default_task = "helpful"

    def records(self, path: str) -> Iterator[Record]:
        for row, obj in iter_json_lines(path):
            if isinstance(obj, RowProblem):
                yield obj
                continue
            texts = {}
            problem = None
            for field_name in ("chosen", "rejected"):
                value = require_text(obj, field_name, row)
                if isinstance(value, RowProblem):
                    problem = value
                    break
                parts = split_last_turn(value)
                if parts is None:
                    problem = RowProblem(row, field_name, "no '\\n\\nAssistant:' turn in the dialogue")
                    break
                texts[field_name] = parts
            if problem is not None:
                yield problem
                continue
            (prompt, chosen), (rejected_prompt, rejected) = texts["chosen"], texts["rejected"]
            notes = () if prompt == rejected_prompt else ("chosen and rejected dialogues differ before the last turn; prompt taken from chosen",)
            yield RawPair(row, prompt, chosen, rejected, "a", self.default_labeler, notes=notes)
