"""Tokens per response: all response-level LLM factors in one combined call vs one call per factor.

Takes the first N AlpacaEval pairs (alpaca-7b vs the reference, GPT-4 judge; ../shared/data), writes them in
the generic pairs layout (task helpful, the instruction is the source), ingests them, and annotates the five
response-level factors (fluency, clarity, formality_alignment, intent_alignment, receptiveness) twice through
the annotate stage against the project's test server (a child process on loopback, simulated annotator in
profile_dist/testing/sim_factors.py): --llm-calls combined, then per_factor, each with a fresh cache. Token
counts are the server's ``usage`` (its tokenizer counts words and punctuation marks), summed by the engine.
Then the six atomic-fact factors once, for their cost per response.

    python bench/llm_factor_tokens.py              # N=200 pairs
The last line holds the figures as key=value pairs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import tempfile
from pathlib import Path

from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.testing.llm_server import ServerProcess

RESPONSE_LEVEL = ["fluency", "clarity", "formality_alignment", "intent_alignment", "receptiveness"]
FACT_LEVEL = ["facts", "hallucination", "off_focus", "source_coverage", "helpfulness", "misinformation"]
KEY_ENV, KEY = "PROFILE_BENCH_FACTORS_KEY", "sk-bench-factors"
DATA = Path(os.environ.get("PROFILE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def write_pairs(path: Path, n: int) -> None:
    with gzip.open(DATA / "alpaca_eval" / "alpaca-7b.alpaca_eval_gpt4.annotations.json.gz", "rt") as fh:
        rows = json.load(fh)[:n]
    with open(path, "w") as out:
        for r in rows:
            label = {1: "a", 2: "b"}.get(r["preference"], "tie")
            out.write(json.dumps({"prompt": r["instruction"], "response_a": r["output_1"],
                                  "response_b": r["output_2"], "label": label, "task": "helpful"}) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=200)
    a = p.parse_args()
    os.environ[KEY_ENV] = KEY
    figures: dict[str, object] = {"pairs": a.pairs, "nproc": os.cpu_count(), "machine": platform.machine()}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(["--api-key", KEY, "--no-quantize"]) as server:
        tmp_path = Path(tmp)
        write_pairs(tmp_path / "pairs.jsonl", a.pairs)
        ingest("pairs", [str(tmp_path / "pairs.jsonl")], str(tmp_path / "corpus"), progress=False)
        endpoints = tmp_path / "endpoints.yaml"
        endpoints.write_text(f"endpoints:\n  sim:\n    base_url: {server.base_url}\n    model: test-judge\n"
                             f"    api_key_env: {KEY_ENV}\n    max_concurrency: 16\n"
                             "    price_per_1k: {input: 0.00015, output: 0.0006}\n")
        runs = [("combined", RESPONSE_LEVEL, "combined"), ("per_factor", RESPONSE_LEVEL, "per_factor"),
                ("facts", FACT_LEVEL, "combined")]
        for tag, factors, mode in runs:
            server.reset()
            s = annotate(str(tmp_path / "corpus"), str(tmp_path / f"ann-{tag}"), factors=factors, llm="sim",
                         endpoints=str(endpoints), llm_calls=mode, progress=False)
            n = s.llm["costs"]["responses"]
            figures[f"{tag}_responses"] = n
            figures[f"{tag}_requests_per_response"] = round(s.llm["sent"] / n, 3)
            figures[f"{tag}_prompt_tokens_per_response"] = round(s.llm["input_tokens"] / n, 1)
            figures[f"{tag}_completion_tokens_per_response"] = round(s.llm["output_tokens"] / n, 1)
            figures[f"{tag}_spend_per_1k_responses"] = round(1000 * s.llm["spend"] / n, 4)
            figures[f"{tag}_failed"] = s.llm["failed"]
            figures[f"{tag}_server_tokens"] = server.stats()["tokens"]
            print(tag, json.dumps(s.llm["costs"]["per_factor_per_response"]))
    total = lambda t: figures[f"{t}_prompt_tokens_per_response"] + figures[f"{t}_completion_tokens_per_response"]  # noqa: E731
    figures["per_factor_over_combined_tokens"] = round(total("per_factor") / total("combined"), 2)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
