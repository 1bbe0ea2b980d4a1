"""The command line as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
import yaml

from profile_dist.cli import build_parser, main, starts_ray

REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_the_papers_flow_through_a_simulated_server_and_labels_it(tmp_path):
    """`profile-dist demo` as the README runs it: LLM factors, the model as judge and as writer, the gap, every
    section of report.md filled, everything from the simulated server marked, and the server gone afterwards."""
    from profile_dist.factors import all_factors

    env = {**os.environ, "RAY_ADDRESS": ""}
    env.pop("RAY_ADDRESS")
    result = subprocess.run(
        [sys.executable, "-m", "profile_dist.cli", "demo", "--output", str(tmp_path / "demo"), "--bootstrap", "50"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results_dir = tmp_path / "demo" / "results"
    assert f"done: open {results_dir / 'report.md'} or {results_dir / 'report.html'}" in result.stdout
    out = result.stdout.splitlines()
    assert any(line.startswith("SIMULATED: sim-model and sim-rater") for line in out)
    # Every line of an LLM stage (it names the simulated model) is marked; ingest's and reduce's are not.
    assert [line for line in out if "sim-model" in line and not line.startswith(("[simulated]", "SIMULATED", "  sim-model"))] == []
    assert any(line.startswith("[simulated] judged 190 pairs with sim-model in both orders") for line in out)
    assert any(line.startswith("ingested 190 pairs") for line in out)
    assert any(line.startswith("[simulated] generation-evaluation gap of sim-model on helpful") for line in out)

    results = json.loads((results_dir / "results.json").read_text())
    llm_factors = {f.name for f in all_factors() if f.kind != "rule"}  # the registry's, not the report's own list
    taus = {(r["labeler"], r["setting"], r["factor"]): r["tau"] for r in results["influence"]}
    sources = {(labeler, setting) for labeler, setting, _ in taus}
    assert sources == {("human", "human"), ("sim-model", "evaluation"), ("sim-model", "generation")}
    measured = {f for (_, _, f), tau in taus.items() if tau is not None}
    assert {"fluency", "intent_alignment", "facts"} <= measured  # response-level and atomic-fact LLM factors
    assert results["simulated"] == {"models": ["sim-model", "sim-rater"],
                                    "sources": ["sim-model/evaluation", "sim-model/generation"],
                                    "factors": sorted(llm_factors & {f for _, _, f in taus})}
    # The demo's humans reward short answers; its simulated writer's higher levels are longer.
    assert taus[("human", "human", "length")] < 0 < taus[("sim-model", "generation", "length")]
    assert {g["model"] for g in results["gap"]} == {"sim-model"}
    assert results["judge_agreement"] and results["manipulation_check"] and results["adjusted"]
    assert {(r["stage"], r["model"]) for r in results["cost"]} == {
        ("annotate", "sim-model"), ("judge", "sim-model"), ("generate", "sim-model"), ("generate", "sim-rater")}

    report = (results_dir / "report.md").read_text()
    assert report.startswith("# PROFILE report\n\n> **Simulated: sim-model, sim-rater are simulated models")
    for section in ("## Strongest findings", "## Task: helpful", "### Alignment between sources",
                    "## Generation-evaluation gap", "## Adjusted vs plain effects", "## Models as judges",
                    "## Generation setting: manipulation check", "## LLM cost"):
        assert section in report, section
    table = report[report.index("| factor |"):report.index("Pairs per source")]
    assert "| human/human | sim-model/evaluation (simulated) | sim-model/generation (simulated) |" in table
    for factor in llm_factors & {f for _, _, f in taus}:
        assert f"\n| {factor} (simulated) |" in table, factor
    assert "\n| length |" in table and "length (simulated)" not in report
    gap = report[report.index("## Generation-evaluation gap"):report.index("## Adjusted vs plain effects")]
    assert "| helpful | sim-model (simulated) | human/human | spearman_rho |" in gap
    cost = report[report.index("## LLM cost"):report.index("## Rows left out")]
    assert cost.count("(simulated)") == len(results["cost"])

    # The server was stopped: its port (from the endpoints file the demo wrote) refuses connections.
    endpoints = yaml.safe_load((tmp_path / "demo" / "simulated_endpoints.yaml").read_text())["endpoints"]
    assert all(e["simulated"] is True for e in endpoints.values())
    port = urllib.parse.urlsplit(endpoints["sim-model"]["base_url"]).port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


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


def test_which_commands_start_ray_as_they_begin():
    """Commands that always use Ray start it first thing (runtime.ray_started_early); those whose fully cached
    reruns need none (LLM annotation, judge, generate) and report leave it to whoever needs it."""

    def starts(argv: list[str]) -> bool:
        return starts_ray(build_parser().parse_args(argv))

    assert starts(["ingest", "--format", "pairs", "--input", "x", "--output", "y"])
    assert starts(["annotate", "--pairs", "p", "--output", "a"])
    assert starts(["reduce", "--pairs", "p", "--annotations", "a", "--output", "r"])
    assert starts(["run", "job.yaml"])
    assert not starts(["annotate", "--pairs", "p", "--output", "a", "--llm", "judge"])
    assert not starts(["judge", "--pairs", "p", "--llm", "judge", "--output", "j"])
    assert not starts(["report", "--results", "r"])
