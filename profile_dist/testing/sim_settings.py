"""Simulated judge, leveled generator and rater for the evaluation and generation settings.

Recognised by the ``response_format`` schema name of the prompts in ``profile_dist.prompts.settings``.
Parameters (server ``--behaviour KEY=VALUE``; defaults in brackets):

judge (``pairwise_judgment``)
  judge_prefers_longer [0.5]  probability of preferring the response with more words. The draw is made
                              per *pair* (the two texts, in either order), so an unbiased judge is
                              position-consistent and the planted effect survives the consistency filter.
  judge_position_bias [0.0]   probability, per request, of answering "1" whatever is shown; expected
                              position consistency is then 1 - bias.
generator (``leveled_generations``: all levels in one reply; ``leveled_generation``: one level)
  gen_base_words [10], gen_words_per_level [12], gen_noise_words [20]
                              a level-L response has base + per_level * L + floor(u * noise) words
                              (u uniform per prompt and level, so both call modes write the same text);
  gen_list_from [3]           levels >= this end with (L - gen_list_from + 1) "- " list items, and
                              every level has L // 2 **bold** words (formatting keeps the word count).
rater (``generation_rating``)
  rate_words_per_point [12]   rating = clamp(1 + words // this, 1, 10) ...
  rate_noise [0.2]            ... replaced by a uniform rating 1..10 with this probability per request.
"""

from __future__ import annotations

import re
from typing import Any

from profile_dist.prompts.fencing import find_block
from profile_dist.testing.behaviours import register_behaviour, schema_name, uniform

VOCAB = ("clear", "answer", "detail", "context", "example", "reason", "result", "point", "method", "value",
         "source", "summary", "option", "factor", "review", "claim", "evidence", "step", "note", "case")


def user_text(messages: list[dict[str, Any]]) -> str:
    """The first user message's text ('' when there is none)."""
    return next((m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), "")


def words(text: str) -> int:
    return len(text.split())


# -- judge ------------------------------------------------------------------------------------------------
@register_behaviour("settings_judge")
def judge(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    if schema_name(request) != "pairwise_judgment":
        return None
    user = user_text(messages)
    first, second = find_block("RESPONSE_ONE", user), find_block("RESPONSE_TWO", user)
    if first is None or second is None:
        return {"preferred": "tie"}
    if uniform(key, "judge_position") < float(params.get("judge_position_bias", 0.0)):
        return {"preferred": "1"}
    pair = "\x1e".join(sorted((first, second)))
    u = uniform(pair, "judge_preference")
    p_longer = float(params.get("judge_prefers_longer", 0.5))
    if words(first) == words(second):
        winner = min(first, second) if u < 0.5 else max(first, second)
    else:
        longer, shorter = (first, second) if words(first) > words(second) else (second, first)
        winner = longer if u < p_longer else shorter
    return {"preferred": "1" if winner == first else "2"}


# -- generator --------------------------------------------------------------------------------------------
def generated_text(prompt: str, level: int, params: dict[str, Any]) -> str:
    base, step = int(params.get("gen_base_words", 10)), int(params.get("gen_words_per_level", 12))
    noise = int(params.get("gen_noise_words", 20))
    n = base + step * level + int(uniform(f"{prompt}\x1e{level}", "gen_length") * noise)
    tokens = [VOCAB[int(uniform(f"{prompt}\x1e{level}\x1e{i}", "gen_word") * len(VOCAB))] for i in range(n)]
    tokens[0] = f"L{level}"  # responses of different levels never coincide
    for i in range(level // 2):
        j = 1 + i
        if j < n:
            tokens[j] = f"**{tokens[j]}**"
    items = max(0, level - int(params.get("gen_list_from", 3)) + 1)
    lines = [" ".join(tokens[: max(1, n - 3 * items)])]
    for k in range(items):  # each item is "- w w": the dash replaces a word, so the word count stays n
        start = n - 3 * (items - k)
        if start >= 1:
            lines.append(" ".join(["-", *tokens[start + 1: start + 3]]))
    return "\n".join(lines)


@register_behaviour("settings_generator")
def generator(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    name = schema_name(request)
    if name not in ("leveled_generations", "leveled_generation"):
        return None
    user = user_text(messages)
    prompt = find_block("PROMPT", user) or ""
    if name == "leveled_generation":
        m = re.search(r"quality level (\d+) of (\d+)", user)
        level = int(m.group(1)) if m else 1
        return {"text": generated_text(prompt, level, params)}
    m = re.search(r"\(K = (\d+)\)", user)
    levels = int(m.group(1)) if m else 5
    return {"responses": [{"level": lv, "text": generated_text(prompt, lv, params)} for lv in range(1, levels + 1)]}


# -- rater ------------------------------------------------------------------------------------------------
@register_behaviour("settings_rater")
def rater(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    if schema_name(request) != "generation_rating":
        return None
    text = find_block("RESPONSE", user_text(messages)) or ""
    if uniform(key, "rate_noise") < float(params.get("rate_noise", 0.2)):
        return {"rating": 1 + int(uniform(key, "rate_random") * 10)}
    return {"rating": max(1, min(10, 1 + words(text) // int(params.get("rate_words_per_point", 12))))}
