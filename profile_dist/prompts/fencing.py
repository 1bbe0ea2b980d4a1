"""Prompt specs: how an LLM factor turns (prompt, response) into chat messages and a reply into a number.

Text under judgement is delimited as data. Each block is fenced by markers that carry a nonce derived
from the text itself (``<<<RESPONSE 1a2b...>>>`` ... ``<<<END RESPONSE 1a2b...>>>``), so a response cannot
close its own block (it would have to contain the hash of itself), and rendering stays deterministic, which
the content-addressed cache needs. The system prompt says the fenced text is data, never instructions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, str]

_NONCE_CHARS = 12


def block_nonce(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_NONCE_CHARS]


def delimit(label: str, text: str) -> str:
    """Fence ``text`` as a data block named ``label`` (upper-case letters and underscores)."""
    if not re.fullmatch(r"[A-Z_]+", label):
        raise ValueError(f"block label must be upper-case letters, got {label!r}")
    nonce = block_nonce(text)
    return f"<<<{label} {nonce}>>>\n{text}\n<<<END {label} {nonce}>>>"


def find_block(label: str, content: str) -> str | None:
    """Inverse of :func:`delimit`: the text of the first well-formed ``label`` block in ``content``."""
    pattern = rf"<<<{label} ([0-9a-f]{{{_NONCE_CHARS}}})>>>\n(.*?)\n<<<END {label} \1>>>"
    m = re.search(pattern, content, flags=re.DOTALL)
    return m.group(2) if m else None


@dataclass(frozen=True)
class PromptSpec:
    """One annotation prompt: a template, the JSON schema its reply must match, and the reply's value.

    ``user_template`` may use ``{response}`` and ``{source}``; each is replaced by a delimited block.
    Bump ``template_version`` whenever the wording or schema changes: it is part of the cache key.
    """

    name: str
    template_version: str
    system: str
    user_template: str
    json_schema: dict[str, Any]
    value_field: str
    #: Decoding parameters this prompt needs on top of the endpoint's (e.g. a small max_tokens).
    params: dict[str, Any] = field(default_factory=dict)

    def render(self, prompt_text: str | None, response_text: str) -> list[Message]:
        # One regex pass, not str.format: templates may show literal JSON braces, and a substituted
        # text that itself contains "{source}" must stay untouched.
        blocks = {"response": lambda: delimit("RESPONSE", response_text),
                  "source": lambda: delimit("SOURCE", prompt_text or "")}
        user = re.sub(r"\{(response|source)\}", lambda m: blocks[m.group(1)](), self.user_template)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def parse(self, reply: dict[str, Any]) -> float:
        """The factor value of a schema-valid reply."""
        return float(reply[self.value_field])
