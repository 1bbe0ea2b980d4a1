"""Token estimates made before a request is sent, so the limiter can pace tokens/min.

tiktoken is used when it is installed and can load the model's encoding (it downloads encodings on first
use; where that fails, e.g. offline, or for models it does not know, the fallback applies). The fallback
is ceil(UTF-8 bytes / 3) per message plus OpenAI's chat overhead (4 per message, 3 for the reply primer):
English averages about 4 bytes per token, so it overestimates by about a third, and non-Latin scripts
(2-3 bytes per character, about one token each) stay close. Overestimating wastes a little budget;
underestimating would draw 429s. Either way the estimator calibrates itself from the ``usage`` each reply
reports (a moving ratio of reported to estimated prompt tokens, and a moving mean of completion tokens),
and the limiter's books are corrected with the reported usage of every request.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

_PER_MESSAGE = 4
_REPLY_PRIMER = 3
_DEFAULT_COMPLETION = 256
_EMA = 0.05


def _load_tiktoken(model: str) -> Callable[[str], int] | None:
    try:
        import tiktoken  # optional

        enc = tiktoken.encoding_for_model(model)
        enc.encode("probe")  # forces the (possibly network) load now, not mid-run
    except Exception:  # not installed, unknown model, or encodings unavailable offline
        return None
    return lambda text: len(enc.encode(text, disallowed_special=()))


def fallback_count(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / 3)


class TokenEstimator:
    def __init__(self, model: str, max_tokens: int | None = None) -> None:
        self._count = _load_tiktoken(model)
        self.source = "tiktoken" if self._count else "fallback"
        if self._count is None:
            self._count = fallback_count
        self.max_tokens = max_tokens
        self.ratio = 1.0  # reported / estimated prompt tokens
        self.completion = float(min(max_tokens, _DEFAULT_COMPLETION) if max_tokens else _DEFAULT_COMPLETION)
        self._seen = 0

    def prompt_tokens(self, messages: Sequence[dict[str, Any]]) -> int:
        """Uncalibrated prompt estimate (what :meth:`observe` compares with the reported usage)."""
        total = _REPLY_PRIMER
        for m in messages:
            content = m.get("content") or ""
            total += _PER_MESSAGE + self._count(content if isinstance(content, str) else str(content))
        return total

    def estimate(self, raw_prompt: int, max_tokens: int | None = None) -> int:
        """Calibrated total (prompt + expected completion) for a prompt of ``raw_prompt`` estimated tokens."""
        completion = self.completion
        cap = max_tokens or self.max_tokens
        if cap:
            completion = min(completion, cap)
        return max(1, math.ceil(raw_prompt * self.ratio + completion))

    def observe(self, raw_prompt: int, prompt_tokens: int, completion_tokens: int) -> None:
        self._seen += 1
        weight = max(_EMA, 1.0 / self._seen)  # a plain mean at first, then a moving one
        if raw_prompt > 0 and prompt_tokens > 0:
            r = min(4.0, max(0.25, prompt_tokens / raw_prompt))
            self.ratio += weight * (r - self.ratio)
        self.completion += weight * (completion_tokens - self.completion)
