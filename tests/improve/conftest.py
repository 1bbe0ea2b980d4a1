"""A small planted audit shared by the improve and export tests (built once per session, on first use).

Humans (our corpus) do not reward length but reward list items; the test server's judge prefers the
longer response 80% of the time and its generator (``sim_improve``) makes better levels only longer.
The audit is human -> judge and generate -> annotate -> reduce, exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "settings"))
from settings_helpers import KEY, KEY_ENV, MODEL, endpoints_file, planted_server  # noqa: E402

FACTORS = ["length", "list_items", "bold"]
WORDS = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")


def human_rows(n_pairs: int, n_prompts: int, seed: int = 11) -> list[dict]:
    """Lengths always differ but the preferred one is longer only half the time (tau_human(length) ~ 0);
    the preferred response carries a list item 60% of the time, the other 10% (tau_human(list_items) > 0)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_pairs):
        prompt = f"Question {i % n_prompts}: explain {WORDS[(i % n_prompts) % len(WORDS)]}."
        n1 = rng.randint(8, 40)
        n2 = n1 + rng.randint(8, 30)  # list items and bold add at most 4 words: they never flip which is longer
        preferred_long = i % 2 == 0  # exactly half the time
        win_words, lose_words = (n2, n1) if preferred_long else (n1, n2)
        win = " ".join(rng.choice(WORDS) for _ in range(win_words)) + f" w{i}"
        lose = " ".join(rng.choice(WORDS) for _ in range(lose_words)) + f" l{i}"
        if rng.random() < 0.6:
            win += f"\n- {rng.choice(WORDS)} {rng.choice(WORDS)}"
        if rng.random() < 0.1:
            lose += f"\n- {rng.choice(WORDS)} {rng.choice(WORDS)}"
        if rng.random() < 0.3:  # bold on either response at random: humans indifferent to it
            if rng.random() < 0.5:
                win = f"**{rng.choice(WORDS)}** {win}"
            else:
                lose = f"**{rng.choice(WORDS)}** {lose}"
        a_wins = rng.random() < 0.5
        a, b = (win, lose) if a_wins else (lose, win)
        rows.append({"prompt": prompt, "response_a": a, "response_b": b, "label": "a" if a_wins else "b", "task": "helpful"})
    return rows


@pytest.fixture(scope="session")
def api_key_env():
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = KEY
    yield
    if old is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = old


@pytest.fixture(scope="session")
def server():
    with planted_server("improve_generator=1", "judge_prefers_longer=0.8") as process:
        yield process


@pytest.fixture(scope="session")
def audit(tmp_path_factory, ray_session, api_key_env, server):
    """dict of paths: endpoints, human, judge, generate, results (a reduce with bootstrap replicates)."""
    from profile_dist.stages.annotate import annotate
    from profile_dist.stages.generate import generate
    from profile_dist.stages.ingest import ingest
    from profile_dist.stages.judge import judge
    from profile_dist.stages.reduce import reduce

    root = tmp_path_factory.mktemp("audit")
    corpus = root / "human.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in human_rows(400, 80)))
    paths = {"root": root, "endpoints": endpoints_file(root, server), "human": str(root / "human"),
             "judge": str(root / "judge"), "generate": str(root / "generate"), "results": str(root / "results")}
    ingest("pairs", [str(corpus)], paths["human"], progress=False)
    judge(paths["human"], "model", paths["judge"], endpoints=paths["endpoints"], progress=False)
    generate(paths["human"], "model", paths["generate"], levels=5, endpoints=paths["endpoints"], progress=False)
    ann = [str(root / "ann" / n) for n in ("human", "generate")]
    annotate(paths["human"], ann[0], factors=FACTORS, progress=False)
    annotate(paths["generate"], ann[1], factors=FACTORS, progress=False)
    reduce([paths["human"], paths["judge"], paths["generate"]], ann, paths["results"], n_bootstrap=200, progress=False)
    return paths
