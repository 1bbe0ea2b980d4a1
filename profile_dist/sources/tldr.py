"""OpenAI summarize-from-feedback TL;DR comparisons: JSON lines with info, summaries[0..1], choice."""

from __future__ import annotations

from profile_dist.sources.base import RawPair, Record, RowProblem, JsonLinesSource, register_source, require_text


def summarization_prompt(info: dict) -> str:
    """The post as OpenAI's comparison tool showed it: subreddit, title, post."""
    parts = []
    if isinstance(info.get("subreddit"), str):
        parts.append(f"SUBREDDIT: r/{info['subreddit']}")
    if isinstance(info.get("title"), str):
        parts.append(f"TITLE: {info['title']}")
    parts.append(f"POST: {info['post']}")
    return "\n".join(parts)


@register_source
class TLDR(JsonLinesSource):
    name = "tldr"
    description = "TL;DR comparisons (summarize-from-feedback JSONL): info.post is the source; choice = index of the preferred summary"
    default_task = "summarization"

    def record(self, row: int, obj: dict) -> Record:
        info = obj.get("info")
        if not isinstance(info, dict):
            return RowProblem(row, "info", "missing field" if info is None else "expected an object")
        post = require_text(info, "post", row)
        if isinstance(post, RowProblem):
            return RowProblem(row, "info.post", post.reason)
        summaries = obj.get("summaries")
        if not isinstance(summaries, list) or len(summaries) != 2:
            return RowProblem(row, "summaries", "expected a list of exactly two summaries")
        texts = []
        for i, summary in enumerate(summaries):
            text = summary.get("text") if isinstance(summary, dict) else None
            if not isinstance(text, str):
                return RowProblem(row, f"summaries[{i}].text", "expected a string")
            texts.append(text)
        choice = obj.get("choice")
        if choice not in (0, 1) or isinstance(choice, bool):
            return RowProblem(row, "choice", f"expected 0 or 1 (the index of the preferred summary), got {choice!r}")
        return RawPair(row, summarization_prompt(info), texts[0], texts[1], "a" if choice == 0 else "b",
                       self.default_labeler, source=post)
