"""Simulated generator of the ``improve feedback`` tests: its "better" responses are only longer, and it
follows factor-level guidance found in the generation prompt.

Claims generation requests (``leveled_generations`` / ``leveled_generation``) only when the server's
behaviour has ``improve_generator=1``, before ``settings_generator`` (behaviours run in name order).

Unguided, a level-L response has ``gen_base_words + gen_words_per_level * L + floor(u * gen_noise_words)``
words (defaults 10, 12, 20: the ``settings_generator`` shape); one **bold** word with probability
``improve_bold`` [0.3] and one "- " list item with probability ``improve_list`` [0.3], both drawn per
(prompt, level) independently of L, so only length tracks the level.

Guidance lines (``profile_dist.prompts.guidance``) it obeys, one per factor, recognised by their wording:
  "- length: ... Keep length about the same across quality levels"   every level gets the words of level 2
  "- list_items: ... Give higher quality levels more list_items"     level L ends with L - 1 list items
Any other guidance is read and ignored, as a model ignores advice it cannot act on.

A request with a ``seed`` decoding parameter (``generate(sample=S)``) is a fresh draw: every per-(prompt,
level) draw above also hashes the seed, so the same prompt gives other lengths, bold and list items, from
the same distribution. Without one, replies are exactly what they always were.
"""

from __future__ import annotations

import re
from typing import Any

from profile_dist.prompts.fencing import find_block
from profile_dist.testing.behaviours import register_behaviour, schema_name, uniform
from profile_dist.testing.sim_settings import VOCAB, user_text

HOLD = re.compile(r"^- (\w+): .*Keep \1 about the same across quality levels", re.M)
MORE = re.compile(r"^- (\w+): .*Give higher quality levels more \1", re.M)


def guided_text(prompt: str, level: int, params: dict[str, Any], hold: set[str], more: set[str],
                sample: int | None = None) -> str:
    base, step = int(params.get("gen_base_words", 10)), int(params.get("gen_words_per_level", 12))
    noise = int(params.get("gen_noise_words", 20))
    # A sampled request is a fresh draw; a guided one is a different prompt, so a different draw from an
    # unguided request with the same sample index (a real model's seed does not pair up two prompts' words).
    seed = f"{prompt}\x1e{level}" + ("" if sample is None else f"\x1esample {sample}{' guided' if hold or more else ''}")
    n = base + step * (2 if "length" in hold else level) + int(uniform(seed, "gen_length") * noise)
    tokens = [VOCAB[int(uniform(f"{seed}\x1e{i}", "gen_word") * len(VOCAB))] for i in range(n)]
    tokens[0] = f"{'G' if hold or more else 'L'}{level}"  # guided and unguided texts never coincide
    if uniform(seed, "improve_bold") < float(params.get("improve_bold", 0.3)):
        tokens[1] = f"**{tokens[1]}**"
    items = level - 1 if "list_items" in more else int(uniform(seed, "improve_list") < float(params.get("improve_list", 0.3)))
    items = min(items, (n - 1) // 3)
    lines = [" ".join(tokens[: n - 3 * items])]
    for k in range(items):  # "- w w" replaces three words, so the word count stays n
        start = n - 3 * (items - k)
        lines.append(" ".join(["-", *tokens[start + 1: start + 3]]))
    return "\n".join(lines)


@register_behaviour("improve_generator")
def generator(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    name = schema_name(request)
    if not int(params.get("improve_generator", 0)) or name not in ("leveled_generations", "leveled_generation"):
        return None
    user = user_text(messages)
    prompt = find_block("PROMPT", user) or ""
    hold, more = set(HOLD.findall(user)), set(MORE.findall(user))
    sample = request.get("seed")
    if name == "leveled_generation":
        m = re.search(r"quality level (\d+) of (\d+)", user)
        return {"text": guided_text(prompt, int(m.group(1)) if m else 1, params, hold, more, sample)}
    m = re.search(r"\(K = (\d+)\)", user)
    levels = int(m.group(1)) if m else 5
    return {"responses": [{"level": lv, "text": guided_text(prompt, lv, params, hold, more, sample)}
                          for lv in range(1, levels + 1)]}


# -- best-of-n candidates ----------------------------------------------------------------------------------
# ``candidate_response`` (claimed whenever it appears): candidate k has gen_base_words + floor(u * cand_spread
# [40]) words, a list item with probability improve_list and a bold word with probability improve_bold, all
# drawn per (prompt, k): candidates differ in length, so a judge that prefers longer picks the longest.
@register_behaviour("improve_candidates")
def candidates(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    if schema_name(request) != "candidate_response":
        return None
    user = user_text(messages)
    prompt = find_block("PROMPT", user) or ""
    m = re.search(r"candidate (\d+) of (\d+)", user)
    k = int(m.group(1)) if m else 1
    seed = f"{prompt}\x1ecandidate {k}"
    n = int(params.get("gen_base_words", 10)) + int(uniform(seed, "cand_length") * int(params.get("cand_spread", 40)))
    tokens = [VOCAB[int(uniform(f"{seed}\x1e{i}", "gen_word") * len(VOCAB))] for i in range(n)]
    tokens[0] = f"C{k}"
    if uniform(seed, "improve_bold") < float(params.get("improve_bold", 0.3)):
        tokens[1] = f"**{tokens[1]}**"
    text = " ".join(tokens)
    if uniform(seed, "improve_list") < float(params.get("improve_list", 0.3)):
        text = " ".join(tokens[:-3]) + "\n- " + " ".join(tokens[-2:])
    return {"text": text}
