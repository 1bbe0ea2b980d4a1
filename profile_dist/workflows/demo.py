"""The demo: all of PROFILE, offline, on a small corpus the project writes itself (or the real corpora in
shared/data), with a simulated model in the roles a real LLM plays in the paper.

The generated corpus has 48 prompts, each with four pairs of responses drawn with random style: more or fewer
padding sentences, a bulleted list, bold text, a header, and whether it repeats the question's own
words (on-topic) or wanders. ``human`` labels every pair from a hidden utility that rewards on-topic,
short answers.

``run_demo`` starts the project's simulated OpenAI-compatible server (profile_dist/testing/llm_server.py)
on loopback and runs a ``profile-dist run`` job through it: the simulated model ``sim-model`` scores the
LLM factors (response-level and atomic-fact; profile_dist/testing/sim_factors.py), judges the human pairs
in both orders (evaluation) and writes responses at K quality levels per prompt (generation);
``sim-rater`` rates the generations for the manipulation check (profile_dist/testing/sim_settings.py).
The endpoints file says ``simulated: true``, so the stages record it and the report and this terminal
label everything those models produced as simulated. The server is stopped when the job ends or fails.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import yaml

from profile_dist import storage
from profile_dist.errors import ConfigError
from profile_dist.testing.sim_demo import PADDING, on_topic_opening
from profile_dist.workflows.job import CorpusConfig, GenerateConfig, JobConfig, JudgeConfig, ModelConfig, run_job
from profile_dist.factors import all_factors

TOPICS = [
    "keep basil alive indoors", "back up a laptop", "start running", "brew pour-over coffee",
    "learn a new language", "fix a squeaky door", "write a cover letter", "save for a holiday",
    "sleep better", "clean a cast-iron pan", "choose a bicycle", "prepare for an interview",
    "reduce screen time", "plan a garden", "train a puppy to sit", "cook rice on the stove",
    "memorise a speech", "organise a closet", "stay focused while studying", "water succulents",
    "pick a password manager", "remove a coffee stain", "make friends in a new city", "read more books",
]
ASKS = ["How do I {}?", "What is the best way to {}?"]
WANDERING = [
    "Interestingly, history offers countless examples of unexpected discoveries.",
    "Weather patterns and seasons influence nearly every hobby imaginable.",
]

# Hidden utilities (log-odds per unit) of the corpus' two labelers (``demo-judge``: a pre-labelled judge that
# other tests use; the demo itself lets the simulated model judge instead).
HUMAN_WEIGHTS = {"sentences": -0.5, "on_topic": 2.0, "list": 0.0, "bold": -0.5}
JUDGE_WEIGHTS = {"sentences": 0.6, "on_topic": 0.3, "list": 1.2, "bold": 0.8}
PAIRS_PER_PROMPT = 4


def styled_response(topic: str, rng: random.Random) -> tuple[str, dict[str, float]]:
    """A random demo response on ``topic`` and the style features it was built with."""
    style = {
        "sentences": rng.randint(0, 6), "on_topic": float(rng.random() < 0.6),
        "list": float(rng.random() < 0.4), "bold": float(rng.random() < 0.4),
    }
    opening = on_topic_opening(topic) if style["on_topic"] else rng.choice(WANDERING)
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


def demo_rows(seed: int = 7, with_judge: bool = True) -> list[dict[str, str]]:
    """Pairs in the generic ``pairs`` layout, labelled by ``human`` and (``with_judge``) by ``demo-judge``.
    The same seed draws the same pairs and human labels either way."""
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
                    if labeler != "human" and not with_judge:
                        continue
                    rows.append({"prompt": prompt, "response_a": a, "response_b": b, "label": label,
                                 "labeler": labeler, "setting": setting, "task": "helpful"})
    return rows


def write_demo_corpus(path: str, with_judge: bool = True) -> str:
    data = "".join(json.dumps(row) + "\n" for row in demo_rows(with_judge=with_judge)).encode()
    storage.write_bytes_atomic(data, path)
    return path


# -- the simulated model ----------------------------------------------------------------------------------
SIM_MODEL, SIM_RATER = "sim-model", "sim-rater"
SIM_KEY = "EMPTY"  # what the client sends for a keyless endpoint (api_key_env: null)
#: Planted behaviour. As judge (profile_dist/testing/sim_settings.py), sim-model prefers the shorter response
#: of a pair 70% of the time, as the corpus' humans mostly do; as writer (profile_dist/testing/sim_demo.py),
#: its higher quality levels are longer and more formatted. So it judges more like the humans than it
#: writes: the generation-evaluation gap the paper reports.
SIM_BEHAVIOUR = ("judge_prefers_longer=0.3", "demo_writer=1")
#: Priced like a frontier model (USD per 1,000 tokens of the server's word count), so the cost section
#: shows what such a run would spend; nothing is paid.
SIM_PRICE = {"input": 0.0025, "output": 0.01}
DEMO_LEVELS = 5
#: Corpora whose labels are human (the demo's own, HH-RLHF); AlpacaEval's labels are GPT-4's.
HUMAN_CORPORA = ("demo", "hh_rlhf")


@contextmanager
def simulated_server() -> Iterator[Any]:
    """The project's simulated OpenAI-compatible server, as a child process on a free loopback port; stopped
    on leaving the block, whether the job finished or failed."""
    from profile_dist.testing.llm_server import ServerProcess  # on use: the server module loads only for a demo run

    args = ["--api-key", SIM_KEY, "--model", SIM_MODEL, "--model", SIM_RATER]
    for item in SIM_BEHAVIOUR:
        args += ["--behaviour", item]
    server = ServerProcess(args)
    try:
        yield server
    finally:
        server.stop()


def write_simulated_endpoints(path: str, base_url: str) -> str:
    """An endpoints file naming the simulated server's two models, each marked ``simulated: true``."""
    entry = {"base_url": base_url, "api_key_env": None, "simulated": True, "max_concurrency": 64,
             "price_per_1k": dict(SIM_PRICE)}
    doc = {"endpoints": {name: {**entry, "model": name} for name in (SIM_MODEL, SIM_RATER)}}
    header = ("# Written by `profile-dist demo`: the project's simulated server (profile_dist/testing/llm_server.py)\n"
              "# on loopback, for this run only (its port changes every run). Not a real LLM.\n")
    storage.write_bytes_atomic((header + yaml.safe_dump(doc, sort_keys=False)).encode(), path)
    return path


def demo_job(output: str, data_dir: str | None, bootstrap: int, endpoints: str) -> JobConfig:
    """The paper's whole flow with the simulated models of ``endpoints`` (see ``write_simulated_endpoints``):
    LLM factors, sim-model as judge and as writer, sim-rater's manipulation check."""
    if data_dir is None:
        corpus = write_demo_corpus(storage.join(output, "corpus", "demo_pairs.jsonl"), with_judge=False)
        corpora = [CorpusConfig(name="demo", format="pairs", input=[corpus])]
    else:
        corpora = shared_data_corpora(data_dir)
    # The model judges and writes for the corpora with human labels: the gap compares it with them.
    human = [c.name for c in corpora if c.name in HUMAN_CORPORA] or None
    return JobConfig(output=output, corpora=corpora, bootstrap=bootstrap, endpoints=endpoints, annotate_llm=SIM_MODEL,
                     models=[ModelConfig(name=SIM_MODEL)], judge=JudgeConfig(corpora=human),
                     generate=GenerateConfig(corpora=human, levels=DEMO_LEVELS, check_llm=SIM_RATER))


def run_demo(output: str, data_dir: str | None = None, bootstrap: int = 200, *, address: str | None = None,
             say: Callable[[str], None] = print, progress: bool | None = None) -> str:
    """Start the simulated server, run the demo job through it, stop the server; returns the results directory."""
    with simulated_server() as server:
        endpoints = write_simulated_endpoints(storage.join(output, "simulated_endpoints.yaml"), server.base_url)
        for line in intro_lines(server.base_url, data_dir):
            say(line)
        results = run_job(demo_job(output, data_dir, bootstrap, endpoints), address=address,
                          say=marking_simulated(say), progress=progress)
    for line in outcome_lines(results):
        say(line)
    return results


def intro_lines(base_url: str, data_dir: str | None) -> list[str]:
    corpus = (f"the real corpora in {data_dir} (human labels: HH-RLHF; model judges: AlpacaEval's GPT-4)"
              if data_dir else f"a synthetic corpus ({len(TOPICS) * len(ASKS)} prompts; human labels drawn from a hidden utility)")
    return [
        f"demo: {corpus}.",
        f"SIMULATED: {SIM_MODEL} and {SIM_RATER} are simulated models, served by the project's test server at {base_url}; "
        "not real LLMs.",
        f"  {SIM_MODEL} scores the LLM factors, judges the human pairs in both orders (evaluation) and writes "
        f"{DEMO_LEVELS} quality levels per prompt (generation); {SIM_RATER} rates the generations (manipulation check).",
        "  Everything they produce is marked [simulated] here and (simulated) in the report. Nothing leaves this machine.",
    ]


def marking_simulated(say: Callable[[str], None]) -> Callable[[str], None]:
    """``say`` that prefixes [simulated] to every line naming a simulated model or an LLM factor (the LLM
    stages' lines: their counts, costs and values come from the simulated server)."""
    names = [SIM_MODEL, SIM_RATER] + [f.name for f in all_factors() if f.kind != "rule"]
    pattern = re.compile(r"\b(?:%s)\b" % "|".join(re.escape(n) for n in names))

    def marked(line: str) -> None:
        say(f"[simulated] {line}" if pattern.search(line) else line)
    return marked


def outcome_lines(results_dir: str) -> list[str]:
    """What came out, with the simulated parts named: sources, factors, and the generation-evaluation gap."""
    results = storage.read_json(storage.join(results_dir, "results.json"))
    simulated = results.get("simulated") or {}
    lines = []
    if simulated.get("sources"):
        lines.append(f"[simulated] sources labelled by a simulated model: {', '.join(simulated['sources'])}")
    if simulated.get("factors"):
        lines.append(f"[simulated] LLM factors scored by a simulated model: {', '.join(simulated['factors'])}")
    for g in results.get("gap") or []:
        if g["metric"] != "spearman_rho":
            continue
        mark = "[simulated] " if g["model"] in set(simulated.get("models") or ()) else ""
        lines.append(f"{mark}generation-evaluation gap of {g['model']} on {g['task']} (Spearman rho with "
                     f"{g['reference']}): as judge {_signed(g['evaluation'])}, as writer {_signed(g['generation'])}, "
                     f"gap {_signed(g['gap'])}")
    return lines


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


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
