"""Deterministic content ids: the same input always yields the same ids, on any machine."""

from __future__ import annotations

import hashlib

_SEP = "\x1f"  # unit separator: cannot be confused with text that merely contains the parts


def content_id(*parts: str | int) -> str:
    """A 128-bit hex id of the parts (sha256, truncated; collisions are not a practical concern)."""
    digest = hashlib.sha256(_SEP.join(str(p) for p in parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def prompt_id(text: str, source: str | None) -> str:
    return content_id("prompt", text, source if source is not None else "")


def response_id(prompt_id_: str, text: str, source: str | None = None) -> str:
    """A response's own source (see schema.RESPONSES) is part of its identity; without one the id is what
    it always was."""
    if source is None:
        return content_id("response", prompt_id_, text)
    return content_id("response", prompt_id_, text, source)


def pair_id(
    dataset: str, labeler: str, setting: str, task: str, source_file_name: str, source_row: int,
    response_a_id: str, response_b_id: str,
) -> str:
    return content_id("pair", dataset, labeler, setting, task, source_file_name, source_row, response_a_id, response_b_id)
