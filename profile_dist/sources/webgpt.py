"""WebGPT comparisons: question.full_text, answer_0/1 with quotes_0/1, score_0/1 in [-1, 1]."""

from __future__ import annotations

from typing import Any

from profile_dist.sources.base import RawPair, Record, RowProblem, JsonLinesSource, register_source, require_text


def quotes_text(quotes: Any) -> list[str] | None:
    """Each quote as 'title: extract'; None when the field is not the public layout."""
    if quotes is None:
        return []
    if not isinstance(quotes, dict):
        return None
    titles, extracts = quotes.get("title", []), quotes.get("extract", [])
    if not isinstance(titles, list) or not isinstance(extracts, list) or len(titles) != len(extracts):
        return None
    return [f"{t}: {e}" for t, e in zip(titles, extracts)]


@register_source
class WebGPT(JsonLinesSource):
    name = "webgpt"
    description = ("WebGPT comparisons JSONL: score_0 > score_1 means answer_0 preferred, equal scores tie; each "
                   "answer is judged against the question plus its OWN quotes (responses.source), the prompt's "
                   "source is the question plus both answers' quotes (what a generated answer is given)")
    default_task = "document_qa"

    def record(self, row: int, obj: dict) -> Record:
        question = obj.get("question")
        if not isinstance(question, dict):
            return RowProblem(row, "question", "expected an object with full_text")
        full_text = require_text(question, "full_text", row)
        if isinstance(full_text, RowProblem):
            return RowProblem(row, "question.full_text", full_text.reason)
        answers, own, documents = [], [], []
        for i in (0, 1):
            answer = require_text(obj, f"answer_{i}", row)
            if isinstance(answer, RowProblem):
                return answer
            answers.append(answer)
            quotes = quotes_text(obj.get(f"quotes_{i}"))
            if quotes is None:
                return RowProblem(row, f"quotes_{i}", "expected {title: [...], extract: [...]} of equal length")
            own.append(quotes)
            documents += [q for q in quotes if q not in documents]
        scores = [obj.get("score_0"), obj.get("score_1")]
        for i, score in enumerate(scores):
            if not isinstance(score, (int, float)) or isinstance(score, bool) or not -1 <= score <= 1:
                return RowProblem(row, f"score_{i}", f"expected a number in [-1, 1], got {score!r}")
        label = "a" if scores[0] > scores[1] else "b" if scores[1] > scores[0] else "tie"
        # An answer is judged (hallucination, coverage) against what it retrieved, not what the other answer
        # retrieved; the union stays the prompt's source, the documents a generated answer is written from.
        return RawPair(row, full_text, answers[0], answers[1], label, self.default_labeler,
                       source=source_text(full_text, documents),
                       source_a=source_text(full_text, own[0]), source_b=source_text(full_text, own[1]))


def source_text(question: str, quotes: list[str]) -> str:
    return "\n\n".join([f"QUESTION: {question}", *quotes])
