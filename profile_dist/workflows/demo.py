"""The demo: a small corpus the project writes itself, or the real corpora in shared/data.

The generated corpus has 48 prompts, each with four pairs of responses drawn with random style: more or fewer
padding sentences, a bulleted list, bold text, a header, and whether it repeats the question's own
words (on-topic) or wanders. Two sources label every pair from different hidden utilities:
``human`` rewards on-topic, short answers; ``demo-judge`` (a simulated model judge, evaluation
setting) rewards length, lists and bold. The report shows those preferences as opposite taus.
"""

from __future__ import annotations

import json
import math
import os
import random

from profile_dist import storage
from profile_dist.errors import ConfigError
from profile_dist.workflows.job import CorpusConfig, JobConfig

TOPICS = [
    "keep basil alive indoors", "back up a laptop", "start running", "brew pour-over coffee",
    "learn a new language", "fix a squeaky door", "write a cover letter", "save for a holiday",
    "sleep better", "clean a cast-iron pan", "choose a bicycle", "prepare for an interview",
    "reduce screen time", "plan a garden", "train a puppy to sit", "cook rice on the stove",
    "memorise a speech", "organise a closet", "stay focused while studying", "water succulents",
    "pick a password manager", "remove a coffee stain", "make friends in a new city", "read more books",
]
ASKS = ["How do I {}?", "What is the best way to {}?"]
PADDING = [
    "There are many considerations worth weighing carefully before you begin.",
    "Experts frequently emphasise that patience and consistency matter enormously.",
    "Remember that everyone's circumstances differ, so results may vary considerably.",
    "It can also help to research additional resources and community recommendations.",
    "Many people find that tracking progress in a notebook keeps motivation high.",
    "Consider asking friends or colleagues what worked well for them.",
]
WANDERING = [
    "Interestingly, history offers countless examples of unexpected discoveries.",
    "Weather patterns and seasons influence nearly every hobby imaginable.",
]

# Hidden utilities (log-odds per unit) of the two simulated labelers.
HUMAN_WEIGHTS = {"sentences": -0.5, "on_topic": 2.0, "list": 0.0, "bold": -0.5}
JUDGE_WEIGHTS = {"sentences": 0.6, "on_topic": 0.3, "list": 1.2, "bold": 0.8}
PAIRS_PER_PROMPT = 4


def styled_response(topic: str, rng: random.Random) -> tuple[str, dict[str, float]]:
    """A random demo response on ``topic`` and the style features it was built with."""
    style = {
        "sentences": rng.randint(0, 6), "on_topic": float(rng.random() < 0.6),
        "list": float(rng.random() < 0.4), "bold": float(rng.random() < 0.4),
    }
    opening = f"To {topic}, start small and repeat it daily." if style["on_topic"] else rng.choice(WANDERING)
    if style["bold"]:
        opening = "**Short version:** " + opening
    lines = ["## Guide" if rng.random() < 0.15 else "", opening]
    body = [rng.choice(PADDING) for _ in range(int(style["sentences"]))]
    lines += [f"- {s}" for s in body] if style["list"] else [" ".join(body)]
    return "\n".join(line for line in lines if line), style


def prefers_a(weights: dict[str, float], a: dict[str, float], b: dict[str, float], rng: random.Random) -> bool:
    """A Bradley-Terry draw: does a labeler with these feature ``weights`` prefer style ``a`` to ``b``?"""
    margin = sum(w * (a[k] - b[k]) for k, w in weights.items())
    return rng.random() < 1 / (1 + math.exp(-margin))


def demo_rows(seed: int = 7) -> list[dict[str, str]]:
    """Pairs in the generic ``pairs`` layout, labelled by ``human`` and by ``demo-judge``."""
    rng = random.Random(seed)
    rows = []
    for topic in TOPICS:
        for ask in ASKS:
            prompt = ask.format(topic)
            for _ in range(PAIRS_PER_PROMPT):
                (a, style_a), (b, style_b) = styled_response(topic, rng), styled_response(topic, rng)
                if a == b:
                    continue
                for labeler, setting, weights in (("human", "human", HUMAN_WEIGHTS), ("demo-judge", "evaluation", JUDGE_WEIGHTS)):
                    label = "a" if prefers_a(weights, style_a, style_b, rng) else "b"
                    rows.append({"prompt": prompt, "response_a": a, "response_b": b, "label": label,
                                 "labeler": labeler, "setting": setting, "task": "helpful"})
    return rows


def write_demo_corpus(path: str) -> str:
    data = "".join(json.dumps(row) + "\n" for row in demo_rows()).encode()
    storage.write_bytes_atomic(data, path)
    return path


def demo_job(output: str, data_dir: str | None = None, bootstrap: int = 200) -> JobConfig:
    if data_dir is None:
        corpus = write_demo_corpus(storage.join(output, "corpus", "demo_pairs.jsonl"))
        corpora = [CorpusConfig(name="demo", format="pairs", input=[corpus])]
    else:
        corpora = shared_data_corpora(data_dir)
    return JobConfig(output=output, corpora=corpora, bootstrap=bootstrap)


def shared_data_corpora(data_dir: str) -> list[CorpusConfig]:
    """HH-RLHF (humans) and every AlpacaEval annotations file (model judges), all as task 'helpful'."""
    hh = sorted(storage.list_files(storage.join(data_dir, "hh-rlhf"), suffix=".jsonl.gz"))
    alpaca = sorted(storage.list_files(storage.join(data_dir, "alpaca_eval"), suffix=".annotations.json.gz"))
    if not hh and not alpaca:
        raise ConfigError(f"{data_dir}: found neither hh-rlhf/*.jsonl.gz nor alpaca_eval/*.annotations.json.gz")
    corpora = []
    if hh:
        corpora.append(CorpusConfig(name="hh_rlhf", format="hh_rlhf", input=hh, task="helpful"))
    if alpaca:
        corpora.append(CorpusConfig(name="alpaca_eval", format="alpaca_eval", input=alpaca, task="helpful"))
    return corpora


def default_shared_data() -> str:
    return os.environ.get("PROFILE_SHARED_DATA") or os.path.join("..", "shared", "data")
