"""Planted world for user-defined factors and ``profile-dist discover`` (docs/discovery.md).

A corpus whose preferences depend on response length and on a hidden property no built-in factor
measures (the response cites a source: a line ``Source: ...``), a simulated annotator for the factors a
factor file may define about them, and a simulated proposer that, shown pairs, proposes the hidden
factor plus a decoy that is length in other words. Every answer is a documented, deterministic function
of the delimited texts, so tests compute expected values independently:

- ``cites_source`` / ``names_a_source`` (annotator, recognised by schema name): 5 if the response has a
  ``Source:`` line, else 1; as a binary question: true/false;
- ``level_of_detail`` (the decoy): ``detail_score(words)`` = 1 + min(4, words // 15);
- ``factor_proposals`` (the proposer): always the decoy; the hidden factor when, among the batch's pairs
  whose two responses differ in citing, the preferred one cites more often than not; on batches with an
  odd number of pairs it also proposes ``names_a_source``, a near-duplicate of the hidden factor that the
  merge must fold into it.

The corpus: ``planted_rows(n, seed)`` gives one pair per prompt; each response has a uniform length in
[LENGTH_MIN, LENGTH_MAX] words and cites a source with probability 1/2, independently; response a is
preferred with probability sigmoid(LENGTH_WEIGHT * (len_a - len_b) / LENGTH_UNIT + CITE_WEIGHT * (cite_a - cite_b)).
:func:`planted_cite_tau` is the tau of a 0/1 citing factor this implies, computed by enumeration.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

from profile_dist.prompts.fencing import find_block
from profile_dist.prompts.discover import letters as _letters
from profile_dist.testing.behaviours import register_behaviour, schema_name

LENGTH_MIN, LENGTH_MAX, LENGTH_UNIT = 15, 75, 20.0
LENGTH_WEIGHT, CITE_WEIGHT = 0.8, 1.5
CITE_LINE = "Source: the 2019 national gardening survey."
_CITE = re.compile(r"(?m)^Source: ")
_FILLER = ("water the plant when the top soil feels dry and keep it near a bright window "
           "turn the pot every few days so every side gets light and trim the top leaves often").split()

HIDDEN = {
    "name": "cites_source",
    "description": "Whether the response backs its claims with a named source",
    "question": "Does the response cite a source (a named publication, survey or study) for its claims?",
    "rubric": ["no source at all", "a vague appeal to authority", "a source for a minor claim",
               "named sources for most claims", "a named source for every substantive claim"],
}
DUPLICATE = {
    "name": "names_a_source",
    "description": "Whether the response names a source for what it claims",
    "question": "Does the response cite a named source (a publication, survey or study) for its claims?",
    "rubric": HIDDEN["rubric"],
}
DECOY = {
    "name": "level_of_detail",
    "description": "How much detail the response gives",
    "question": "How detailed and thorough is the response?",
    "rubric": ["a bare one-liner", "a little detail", "some detail", "detailed", "exhaustive detail"],
}


def cites(text: str) -> bool:
    return _CITE.search(text) is not None


def detail_score(words: int) -> int:
    return 1 + min(4, words // 15)


def words(text: str) -> int:
    return len(text.split())


ANNOTATED = {
    "cites_source": lambda text: 5 if cites(text) else 1,
    "names_a_source": lambda text: 5 if cites(text) else 1,
    "level_of_detail": lambda text: detail_score(words(text)),
}


def _response(rng: random.Random, n_words: int, cite: bool) -> str:
    body = n_words - (len(CITE_LINE.split()) if cite else 0)
    start = rng.randrange(len(_FILLER))
    filler = [_FILLER[(start + i) % len(_FILLER)] for i in range(body)]
    text = " ".join(filler).capitalize() + "."
    return f"{text}\n{CITE_LINE}" if cite else text


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def planted_rows(n: int, seed: int = 0, task: str = "helpful") -> list[dict[str, Any]]:
    """``n`` pairs (ingest format ``pairs``), one per prompt, labels drawn from the planted model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        lens = [rng.randint(LENGTH_MIN, LENGTH_MAX) for _ in range(2)]
        cite = [rng.random() < 0.5 for _ in range(2)]
        p_a = sigmoid(LENGTH_WEIGHT * (lens[0] - lens[1]) / LENGTH_UNIT + CITE_WEIGHT * (cite[0] - cite[1]))
        rows.append({"prompt": f"Question {i}: how do I keep my plant number {i} alive indoors?",
                     "response_a": _response(rng, lens[0], cite[0]), "response_b": _response(rng, lens[1], cite[1]),
                     "label": "a" if rng.random() < p_a else "b", "task": task})
    return rows


def planted_cite_tau() -> float:
    """tau of the citing factor: 2 P(the citing response is preferred | exactly one cites) - 1, where the two
    lengths are independent uniforms (enumerated exactly)."""
    lengths = range(LENGTH_MIN, LENGTH_MAX + 1)
    total = sum(sigmoid(CITE_WEIGHT + LENGTH_WEIGHT * (x - y) / LENGTH_UNIT) for x in lengths for y in lengths)
    return 2 * total / len(lengths) ** 2 - 1


def _user(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), "")


def shown_pairs(user: str) -> list[tuple[str, str]]:
    """(preferred, other) texts of a proposer prompt, as rendered by profile_dist.prompts.discover."""
    out = []
    i = 1
    while True:
        block = find_block(f"PAIR_{_letters(i)}", user)
        if block is None:
            return out
        out.append((find_block("PREFERRED", block) or "", find_block("OTHER", block) or ""))
        i += 1


@register_behaviour("discover")
def _discover(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    name = schema_name(request)
    if name is None:
        return None
    user = _user(messages)
    if name == "factor_proposals":
        pairs = shown_pairs(user)
        net = sum(cites(p) - cites(o) for p, o in pairs)
        proposals = [dict(DECOY)]
        if net > 0:
            proposals.append(dict(HIDDEN))
            if len(pairs) % 2 == 1:
                proposals.append(dict(DUPLICATE))
        return {"proposals": proposals}
    if name in ANNOTATED:
        value = ANNOTATED[name](find_block("RESPONSE", user) or "")
        props = (request.get("response_format") or {}).get("json_schema", {}).get("schema", {}).get("properties", {})
        return {"answer": value >= 3} if "answer" in props else {"score": value}
    return None
