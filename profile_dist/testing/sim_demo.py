"""The demo's simulated writer: responses in the built-in corpus' own style, more elaborate at higher levels.

Claims generation requests (``leveled_generations`` / ``leveled_generation``) only when the server's
behaviour has ``demo_writer=1`` (``profile-dist demo`` sets it), before ``settings_generator`` (behaviours
run in name order). Like a verbose LLM, it equates quality with elaboration. A level-L response:

- opens on the prompt's topic, ``To <topic>, start small and repeat it daily.`` (the topic: what follows
  "How do I" / "What is the best way to", else the first eight words of the prompt's last line);
- adds L padding sentences (:data:`PADDING`, drawn per prompt, level and position), as a bulleted list from
  level 3 on;
- from level 4 on, opens with ``**Short version:**`` and ends with the overclaim :data:`OVERCLAIM` (a short,
  absolute sentence: an unhelpful, incorrect atomic fact for sim_factors' fact judge);
- at level K (K >= 2), starts with a ``## Guide`` header.

So the writer's higher levels are longer, hold more sentences (facts), lists, bold text and headers, whatever
the prompt: the opposite of the demo corpus' humans, who reward short, on-topic answers.
"""

from __future__ import annotations

import re
from typing import Any

from profile_dist.prompts.fencing import find_block
from profile_dist.testing.behaviours import register_behaviour, schema_name, uniform

#: Filler sentences, shared with the demo corpus (profile_dist/workflows/demo.py).
PADDING = (
    "There are many considerations worth weighing carefully before you begin.",
    "Experts frequently emphasise that patience and consistency matter enormously.",
    "Remember that everyone's circumstances differ, so results may vary considerably.",
    "It can also help to research additional resources and community recommendations.",
    "Many people find that tracking progress in a notebook keeps motivation high.",
    "Consider asking friends or colleagues what worked well for them.",
)
OVERCLAIM = "It always works."
ASKED = re.compile(r"^(?:How do I|What is the best way to) (.+?)\?$")


def on_topic_opening(topic: str) -> str:
    return f"To {topic}, start small and repeat it daily."


def topic_of(prompt: str) -> str:
    text = prompt.strip()
    match = ASKED.match(text)
    if match:
        return match.group(1)
    last = text.splitlines()[-1] if text else ""
    last = re.sub(r"^\s*(?:Human|User)\s*:\s*", "", last)
    return " ".join(last.rstrip("?.! ").split()[:8]).lower() or "do this"


def written(prompt: str, level: int, levels: int) -> str:
    """The demo writer's level-``level`` response (of ``levels``) to ``prompt``."""
    opening = on_topic_opening(topic_of(prompt))
    if level >= 4:
        opening = "**Short version:** " + opening
    body = [PADDING[int(uniform(f"{prompt}\x1e{level}\x1e{i}", "demo_padding") * len(PADDING))] for i in range(level)]
    lines = ["## Guide"] if level == levels and levels >= 2 else []
    lines.append(opening)
    lines += [f"- {s}" for s in body] if level >= 3 else [" ".join(body)]
    if level >= 4:
        lines.append(OVERCLAIM)
    return "\n".join(lines)


def _user_text(messages: list[dict[str, Any]]) -> str:
    return next((m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)), "")


@register_behaviour("demo_writer")
def writer(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    name = schema_name(request)
    if not int(params.get("demo_writer", 0)) or name not in ("leveled_generations", "leveled_generation"):
        return None
    user = _user_text(messages)
    prompt = find_block("PROMPT", user) or ""
    if name == "leveled_generation":
        m = re.search(r"quality level (\d+) of (\d+)", user)
        level, levels = (int(m.group(1)), int(m.group(2))) if m else (1, 5)
        return {"text": written(prompt, level, levels)}
    m = re.search(r"\(K = (\d+)\)", user)
    levels = int(m.group(1)) if m else 5
    return {"responses": [{"level": lv, "text": written(prompt, lv, levels)} for lv in range(1, levels + 1)]}
