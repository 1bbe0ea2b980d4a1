"""Simulated annotator for the LLM factors (``profile_dist.factors.llm_response`` and ``.atomic``).

Recognised by the ``response_format`` schema name; every answer is a documented, deterministic function of
the delimited texts in the prompt, so tests can compute the expected factor values independently:

- ``clarity``: by mean words per sentence: <= 12 -> 5, <= 20 -> 4, <= 30 -> 3, <= 45 -> 2, else 1;
- ``formality_alignment``: 5 if response and source are both informal or both formal, else 2 (informal:
  a contraction such as "don't", an exclamation mark, or "lol");
- ``intent_alignment``: 1 + round(4 * share of the source's long words (5+ letters) found in the response);
  3 when the source has none;
- ``receptiveness``: 5 if the response addresses the asker ("you"/"your"), else 2;
- ``response_factors`` (the combined prompt): each requested field as above, fluency as the server's
  :func:`~profile_dist.testing.llm_server.reference_fluency`;
- ``atomic_facts``: the response's sentences; ``source_key_facts``: the source's sentences;
- ``fact_judgements``: per fact, ``supported`` iff at least half of its content words (4+ letters) occur in the
  source (a fact without any is supported); ``on_focus`` iff it shares a content word with the source's first
  sentence; ``helpful`` iff it has 5 or more words; ``incorrect`` iff it says "never" or "always";
- ``key_fact_coverage``: a key fact is covered iff at least half of its content words occur in the response.
"""

from __future__ import annotations

import re
from typing import Any

from profile_dist.prompts.fencing import find_block
from profile_dist.testing.behaviours import register_behaviour, schema_name
from profile_dist.testing.llm_server import reference_fluency


def sentences(text: str) -> list[str]:
    return [s for s in (p.strip() for p in re.split(r"(?<=[.!?])\s+", text)) if s]


def _words(text: str, min_len: int = 1) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if len(w) >= min_len]


def clarity(text: str) -> int:
    sents = sentences(text)
    if not sents:
        return 1
    mean = sum(len(s.split()) for s in sents) / len(sents)
    for limit, score in ((12, 5), (20, 4), (30, 3), (45, 2)):
        if mean <= limit:
            return score
    return 1


def informal(text: str) -> bool:
    return re.search(r"\b\w+'\w+\b|!|\blol\b", text, flags=re.IGNORECASE) is not None


def formality_alignment(text: str, source: str) -> int:
    return 5 if informal(text) == informal(source) else 2


def intent_alignment(text: str, source: str) -> int:
    wanted = set(_words(source, 5))
    if not wanted:
        return 3
    return 1 + round(4 * len(wanted & set(_words(text))) / len(wanted))


def receptiveness(text: str, source: str) -> int:
    return 5 if re.search(r"\byour?\b", text, flags=re.IGNORECASE) else 2


def _share_in(part: str, whole: str) -> float:
    content = _words(part, 4)
    if not content:
        return 1.0
    present = set(_words(whole))
    return sum(1 for w in content if w in present) / len(content)


def judge_fact(fact: str, source: str) -> dict[str, bool]:
    first = sentences(source)[:1]
    return {
        "supported": _share_in(fact, source) >= 0.5,
        "on_focus": bool(set(_words(fact, 4)) & set(_words(first[0], 4))) if first else False,
        "helpful": len(fact.split()) >= 5,
        "incorrect": re.search(r"\b(never|always)\b", fact, flags=re.IGNORECASE) is not None,
    }


def covered(key_fact: str, response: str) -> bool:
    return _share_in(key_fact, response) >= 0.5


RESPONSE_LEVEL = {
    "fluency": lambda text, source: reference_fluency(text),
    "clarity": lambda text, source: clarity(text),
    "formality_alignment": formality_alignment,
    "intent_alignment": intent_alignment,
    "receptiveness": receptiveness,
}


def _user(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), "")


def _numbered(block: str | None, prefix: str) -> list[str]:
    return re.findall(rf"(?m)^{prefix}_\d+: (.*)$", block or "")


def _schema_fields(request: dict[str, Any]) -> list[str]:
    schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
    return list(schema.get("properties", {}))


@register_behaviour("factors_annotator")
def _annotator(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    name = schema_name(request)
    if name is None:
        return None
    user = _user(messages)
    response = find_block("RESPONSE", user) or ""
    source = find_block("SOURCE", user) or ""
    if name in RESPONSE_LEVEL and name != "fluency":
        return {"score": RESPONSE_LEVEL[name](response, source)}
    if name == "response_factors":
        return {field: RESPONSE_LEVEL[field](response, source) for field in _schema_fields(request)}
    if name == "atomic_facts":
        return {"facts": sentences(response)}
    if name == "source_key_facts":
        return {"facts": sentences(source)}
    if name == "fact_judgements":
        facts = _numbered(find_block("FACTS", user), "fact")
        wanted = list(request["response_format"]["json_schema"]["schema"]["properties"]["fact_1"]["properties"])
        return {f"fact_{i}": {p: judge_fact(f, source)[p] for p in wanted} for i, f in enumerate(facts, 1)}
    if name == "key_fact_coverage":
        keys = _numbered(find_block("KEY_FACTS", user), "key")
        return {f"key_{i}": covered(k, response) for i, k in enumerate(keys, 1)}
    return None
