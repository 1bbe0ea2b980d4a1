"""The command line as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from profile_dist.cli import main

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_in_a_fresh_process_and_prints_the_report_path(tmp_path):
    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    result = subprocess.run(
        [sys.executable, "-m", "profile_dist.cli", "demo", "--output", str(tmp_path / "demo"), "--bootstrap", "50"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = tmp_path / "demo" / "results" / "report.md"
    assert f"done: open {report}" in result.stdout
    text = report.read_text()
    assert "## Task: helpful" in text and "human/human" in text and "demo-judge/evaluation" in text
    results = json.loads((tmp_path / "demo" / "results" / "results.json").read_text())
    taus = {(r["labeler"], r["factor"]): r["tau"] for r in results["influence"]}
    # The demo's two sources disagree on length by construction: humans reward short answers.
    assert taus[("human", "length")] < 0 < taus[("demo-judge", "length")]


@pytest.mark.usefixtures("ray_session")
def test_run_job_yaml(tmp_path, shared_data, capsys):
    job = tmp_path / "job.yaml"
    job.write_text(
        f"output: {tmp_path / 'out'}\n"
        "ingest:\n"
        "  - name: gpt4\n"
        "    format: alpaca_eval\n"
        f"    input: [{shared_data / 'alpaca_eval' / 'claude-2.alpaca_eval_gpt4.annotations.json.gz'}]\n"
        "annotate:\n  factors: [length, list_items]\n"
        "reduce:\n  bootstrap: 20\n"
    )
    assert main(["run", str(job)]) == 0
    out = capsys.readouterr().out
    assert "done: open" in out and "ingested 804 pairs" in out
    assert "1 row(s) not used: skipped: preference: null preference" in out
    report = (tmp_path / "out" / "results" / "report.md").read_text()
    assert "| length |" in report and "| list_items |" in report and "alpaca_eval_gpt4/evaluation" in report


@pytest.mark.parametrize("argv, message", [
    (["ingest", "--format", "pairs", "--input", "/nope/missing.jsonl", "--output", "/tmp/x"], "/nope/missing.jsonl: file not found"),
    (["ingest", "--format", "nope", "--input", "a", "--output", "/tmp/x"], "unknown input format 'nope'"),
    (["annotate", "--pairs", "/nope", "--output", "/tmp/x", "--factors", "wat"], "unknown factor 'wat'"),
    (["report", "--results", "/nope"], "no influence.parquet"),
])
def test_errors_are_one_clear_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_job_file_names_the_key(tmp_path, capsys):
    job = tmp_path / "job.yaml"
    job.write_text("output: out\ningest:\n  - name: x\n    format: pairs\n    input: a.jsonl\n    colour: blue\n")
    assert main(["run", str(job)]) == 2
    assert "ingest[0]: unknown key(s) colour" in capsys.readouterr().err


def test_factors_and_formats_are_listed(capsys):
    assert main(["factors"]) == 0
    out = capsys.readouterr().out
    assert "length" in out and "rule" in out
    assert main(["formats"]) == 0
    assert "hh_rlhf" in capsys.readouterr().out
