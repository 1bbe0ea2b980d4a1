"""A small audit you can run anywhere (local or s3://): a fixed human corpus plus a nightly judge.

Every night the same response pairs are labelled by ``nightly-judge`` (setting "evaluation") with the
hidden utility of that night. With ``ALIGNED`` weights the judge prefers what humans prefer; with
``DRIFTED`` (a checkpoint that learned to reward length, lists and bold) its factor influences turn
away from the humans', which the audit reports as a significant drop in alignment (exit 3).

    python -m profile_dist.workflows.audit.example --root /tmp/audit-demo --dates 2024-05-01:aligned 2024-05-02:drifted
    python jobs/nightly_audit.py --config /tmp/audit-demo/audit.yaml --date 2024-05-01
"""

from __future__ import annotations

import argparse
import json
import random

import yaml

from profile_dist import storage
from profile_dist.workflows.demo import ASKS, HUMAN_WEIGHTS, JUDGE_WEIGHTS, TOPICS, prefers_a, styled_response

ALIGNED = dict(HUMAN_WEIGHTS)
DRIFTED = dict(JUDGE_WEIGHTS)
BEHAVIOURS = {"aligned": ALIGNED, "drifted": DRIFTED}
JUDGE = "nightly-judge"


def example_pairs(pairs_per_prompt: int = 6, seed: int = 11) -> list[tuple[str, str, dict, str, dict]]:
    rng = random.Random(seed)
    pairs = []
    for topic in TOPICS:
        for ask in ASKS:
            for _ in range(pairs_per_prompt):
                (a, style_a), (b, style_b) = styled_response(topic, rng), styled_response(topic, rng)
                if a != b:
                    pairs.append((ask.format(topic), a, style_a, b, style_b))
    return pairs


def labelled_rows(pairs: list, labeler: str, setting: str, weights: dict[str, float], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"prompt": prompt, "response_a": a, "response_b": b, "label": "a" if prefers_a(weights, sa, sb, rng) else "b",
         "labeler": labeler, "setting": setting, "task": "helpful"}
        for prompt, a, sa, b, sb in pairs
    ]


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def write_human_corpus(root: str, pairs_per_prompt: int = 6) -> str:
    path = storage.join(root, "corpora", "human", "human.jsonl")
    storage.write_bytes_atomic(_jsonl(labelled_rows(example_pairs(pairs_per_prompt), "human", "human", HUMAN_WEIGHTS, 1)), path)
    return path


def write_judgments(root: str, date: str, weights: dict[str, float], pairs_per_prompt: int = 6) -> str:
    """The judge's labels of the same pairs for one night (same file name: the same pair ids every night)."""
    path = storage.join(root, "judgments", f"date={date}", "judge.jsonl")
    storage.write_bytes_atomic(_jsonl(labelled_rows(example_pairs(pairs_per_prompt), JUDGE, "evaluation", weights, 2)), path)
    return path


def example_config(root: str, output: str, *, bootstrap: int = 200, max_drop: float = 0.10) -> dict:
    return {
        "output": output,
        "corpora": [
            {"name": "human", "format": "pairs", "input": storage.join(root, "corpora", "human") + "/", "suffix": ".jsonl"},
            {"name": "judged", "format": "pairs", "input": storage.join(root, "judgments", "date={date}") + "/", "suffix": ".jsonl"},
        ],
        # The planted drift is in rule factors (length, lists, bold); helpful's own factor set is mostly
        # LLM-scored, so the example compares sources over every reduced factor, and says so.
        "reduce": {"bootstrap": bootstrap, "seed": 0, "confidence": 0.95, "alignment_factors": "all"},
        "drift": {"reference": "human", "max_drop": {"sign_agreement": 0.2, "mean_abs_diff": max_drop}, "require_significant": True},
        "rows_per_shard": 500,
    }


def write_example(root: str, nights: dict[str, str], *, output: str | None = None, bootstrap: int = 200) -> str:
    """Corpus, one judgment file per night (date -> 'aligned' | 'drifted') and audit.yaml; returns its path."""
    write_human_corpus(root)
    for date, behaviour in nights.items():
        write_judgments(root, date, BEHAVIOURS[behaviour])
    config_path = storage.join(root, "audit.yaml")
    config = example_config(root, output or storage.join(root, "audit-output"), bootstrap=bootstrap)
    storage.write_bytes_atomic(yaml.safe_dump(config, sort_keys=False).encode(), config_path)
    return config_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="write the example audit corpus and config")
    parser.add_argument("--root", required=True, help="directory or s3:// prefix to write to")
    parser.add_argument("--dates", nargs="+", required=True, metavar="DATE:BEHAVIOUR", help="e.g. 2024-05-01:aligned 2024-05-02:drifted")
    parser.add_argument("--output", default=None, help="the audit's output (default ROOT/audit-output)")
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args(argv)
    nights = {}
    for item in args.dates:
        date, _, behaviour = item.partition(":")
        if behaviour not in BEHAVIOURS:
            parser.error(f"{item}: behaviour must be one of {', '.join(BEHAVIOURS)}")
        nights[date] = behaviour
    print(write_example(args.root, nights, output=args.output, bootstrap=args.bootstrap))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
