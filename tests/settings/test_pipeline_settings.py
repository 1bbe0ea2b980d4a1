"""`profile-dist run` with models: judge and generate per model, reduced with the corpus, shown in results.json."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from profile_dist.cli import main
from profile_dist.errors import ConfigError
from profile_dist.workflows.job import load_job, parse_job

from settings_helpers import MODEL, RATER, endpoints_file, planted_server, write_human_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("ray_session", "api_key")
def test_a_job_with_models_reports_agreement_manipulation_check_gap_and_spend(tmp_path, capsys):
    corpus = write_human_corpus(tmp_path / "human.jsonl", 120, 20)
    with planted_server("judge_prefers_longer=0.8") as server:
        job = {
            "output": str(tmp_path / "out"), "endpoints": endpoints_file(tmp_path, server),
            "ingest": [{"name": "human", "format": "pairs", "input": [corpus], "task": "helpful"}],
            "annotate": {"factors": ["length", "list_items", "bold", "fluency", "clarity"], "llm": "model",
                         "llm_calls": "per_factor"},
            "models": ["model"], "generate": {"levels": 4, "check_llm": "rater"},
            # helpful's factor set has only length, fluency and clarity of these: compare all
            "reduce": {"bootstrap": 50, "alignment_factors": "all"},
        }
        (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
        assert main(["run", str(tmp_path / "job.yaml")]) == 0
        sent = server.stats()["requests"]
    out = capsys.readouterr().out
    # Each LLM stage prints its estimate before it runs.
    assert out.index("dry run (judge, judge: model = sim-model): 240 requests") < out.index("judged 120 pairs")
    assert out.index("dry run (generate, checker: rater = sim-rater): 80 requests") < out.index("generated 80 responses")
    results = json.loads((tmp_path / "out" / "results" / "results.json").read_text())
    assert [r["judge"] for r in results["judge_agreement"]] == [MODEL]
    assert [(r["generator"], r["checker"]) for r in results["manipulation_check"]] == [(MODEL, RATER)]
    costs = {(r["stage"], r["role"], r["model"]): r for r in results["cost"]}
    annotated = [r for r in results["cost"] if r["stage"] == "annotate"]
    assert set(costs) == {("judge", "judge", MODEL), ("generate", "generator", MODEL), ("generate", "checker", RATER),
                          ("annotate", "annotator", MODEL)}
    assert sum(r["sent"] for r in results["cost"]) == sent
    assert sum(r["sent"] for r in results["cost"] if r["stage"] != "annotate") == 240 + 20 + 80
    assert all(r["spend"] > 0 and r["input_tokens"] > 0 for r in results["cost"])
    # fluency and clarity of every human response, and of every generation (its own annotations directory),
    # each asked with its own prompt (the job's llm_calls: per_factor), not the combined one
    assert sorted(r["responses"] for r in annotated) == [80, 240]
    versions = pl.read_parquet(tmp_path / "out" / "annotations" / "human" / "*.parquet").group_by("factor").agg(
        pl.col("prompt_version").unique())
    versions = dict(versions.iter_rows())
    assert versions["clarity"] == ["v2/clarity-v2"] and versions["fluency"] == ["v1/fluency-v1"]
    assert all(r["spend_per_response"] == pytest.approx(r["spend"] / r["responses"]) for r in annotated)
    sources = {(r["labeler"], r["setting"]) for r in results["influence"]}
    assert sources == {("human", "human"), (MODEL, "evaluation"), (MODEL, "generation")}
    assert {r["model"] for r in results["gap"]} == {MODEL}
    assert results["reduce"]["alignment"]["factor_set"] == "all" and {r["factor_set"] for r in results["alignment"]} == {"all"}


def test_settings_sections_are_checked_and_the_paper_job_parses():
    base = {"output": "o", "ingest": [{"name": "h", "format": "pairs", "input": "x.jsonl"}]}
    with pytest.raises(ConfigError, match=r"judge: corpora: unknown corpus name\(s\) nope"):
        parse_job({**base, "models": ["m"], "judge": {"corpora": ["nope"]}}, "job.yaml")
    with pytest.raises(ConfigError, match=r"job.yaml: reduce: alignment factors: expected 'task', 'all' or a list"):
        parse_job({**base, "reduce": {"alignment_factors": [3]}}, "job.yaml")
    assert parse_job({**base, "reduce": {"alignment_factors": ["length", "fluency"]}}, "j").alignment_factors == ["length", "fluency"]
    with pytest.raises(ConfigError, match=r"models\[0\]: unknown key\(s\) colour"):
        parse_job({**base, "models": [{"name": "m", "colour": "red"}]}, "job.yaml")
    with pytest.raises(ConfigError, match="generate: max_cost: expected a number"):
        parse_job({**base, "generate": {"max_cost": "lots"}}, "job.yaml")
    plain = parse_job(base, "job.yaml")
    assert plain.models == [] and plain.annotate_llm is None  # jobs without the new sections are unchanged
    paper = load_job(str(REPO / "jobs" / "profile_paper.yaml"))
    assert [m.name for m in paper.models] == ["gpt-4o", "gemini-1.5-pro", "llama-3.1-70b"]
    assert paper.judge.corpora == paper.generate.corpora == ["tldr", "shp", "webgpt"] and paper.generate.levels == 5
    # The paper asks each response-level factor in a call of its own; the combined call is the cheaper option.
    assert paper.annotate_llm_calls == "per_factor" and plain.annotate_llm_calls == "combined"
    with pytest.raises(ConfigError, match="annotate: llm_calls: expected one of combined, per_factor"):
        parse_job({**base, "annotate": {"llm_calls": "one"}}, "job.yaml")
