"""Helpers of the settings tests: a planted test server, its endpoints file and a human corpus."""

from __future__ import annotations

import json
import random

from profile_dist.testing.llm_server import ServerProcess
from profile_dist.testing.endpoints import write_endpoints_file

KEY_ENV, KEY = "PROFILE_TEST_SETTINGS_KEY", "sk-settings-test-0123456789"
MODEL, RATER = "sim-model", "sim-rater"
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")


def human_rows(n_pairs: int, n_prompts: int, seed: int = 7, ties: float = 0.0) -> list[dict]:
    """Pairs whose two responses always differ in length; humans prefer the longer one 70% of the time
    (with probability ``ties``, they tie instead). Some responses carry a bold word or a list item, so
    formatting factors are defined for every source."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_pairs):
        prompt = f"Question {i % n_prompts}: explain {WORDS[(i % n_prompts) % len(WORDS)]} in a few words."
        n_short = rng.randint(5, 30)
        n_long = n_short + rng.randint(3, 30)
        short = " ".join(rng.choice(WORDS) for _ in range(n_short)) + f" r{i}s"
        long = " ".join(rng.choice(WORDS) for _ in range(n_long)) + f" r{i}l"
        if rng.random() < 0.3:
            short = f"**{WORDS[i % len(WORDS)]}** {short}"
        if rng.random() < 0.3:
            long = f"{long}\n- {rng.choice(WORDS)}"
        a_is_long = rng.random() < 0.5
        a, b = (long, short) if a_is_long else (short, long)
        prefers_long = rng.random() < 0.7
        label = "a" if a_is_long == prefers_long else "b"
        if ties and rng.random() < ties:  # drawn only when asked for: the default corpus is unchanged
            label = "tie"
        rows.append({"prompt": prompt, "response_a": a, "response_b": b, "label": label, "task": "helpful"})
    return rows


def write_human_corpus(path, n_pairs: int, n_prompts: int, ties: float = 0.0) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in human_rows(n_pairs, n_prompts, ties=ties)))
    return str(path)


def endpoints_file(tmp_path, server: ServerProcess) -> str:
    return write_endpoints_file(tmp_path / "endpoints.yaml", server.base_url, {"model": MODEL, "rater": RATER},
                                key_env=KEY_ENV, max_concurrency=16)


def planted_server(*behaviour: str) -> ServerProcess:
    args = ["--api-key", KEY, "--model", MODEL, "--model", RATER]
    for item in behaviour:
        args += ["--behaviour", item]
    return ServerProcess(args)
