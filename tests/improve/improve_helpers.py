"""Helpers of the improve/export tests: the factors and the human corpus of the planted audit."""

from __future__ import annotations

import random

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
