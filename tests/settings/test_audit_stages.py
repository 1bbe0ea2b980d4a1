"""The judge and generate stages in the nightly audit (workflows/models.py, as `profile-dist run` uses them)."""

from __future__ import annotations

import pytest

from profile_dist import schema, storage
from profile_dist.workflows.audit.config import parse_audit_config
from profile_dist.workflows.audit.example import example_config, write_human_corpus
from profile_dist.workflows.audit.run import run_audit

from settings_helpers import KEY, KEY_ENV, endpoints_file, planted_server

from profile_dist.testing.llm_server import ServerProcess

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")


def test_an_audit_with_a_model_judges_and_generates_and_reduces_both_settings(tmp_path):
    root = str(tmp_path / "data")
    write_human_corpus(root, pairs_per_prompt=2)
    with planted_server("judge_prefers_longer=0.8") as server:
        raw = example_config(root, str(tmp_path / "out"), bootstrap=20)
        raw["corpora"] = raw["corpora"][:1]
        raw.update(models=["model"], endpoints=endpoints_file(tmp_path, server))
        outcome = run_audit(parse_audit_config(raw, "audit.yaml"), "2024-05-01", progress=False, say=lambda line: None)
        first = server.stats()["requests"]
        assert outcome.exit_code == 0 and first > 0
        # The next night: same corpus, nothing new to ask (every reply is cached under the audit root).
        run_audit(parse_audit_config(raw, "audit.yaml"), "2024-05-02", progress=False, say=lambda line: None)
        assert server.stats()["requests"] == first
    influence = storage.read_parquet(str(tmp_path / "out" / "audits" / "date=2024-05-01" / "influence.parquet"), schema.INFLUENCE)
    sources = set(zip(influence.column("labeler").to_pylist(), influence.column("setting").to_pylist()))
    # Sources are named by the audited endpoint ("model"), stable across checkpoints it serves.
    assert sources == {("human", "human"), ("model", "evaluation"), ("model", "generation")}
    night = tmp_path / "out" / "models" / "model" / "date=2024-05-01"
    assert (night / "judge" / "human" / "0000" / "_manifest.json").is_file()
    assert (night / "generate" / "human" / "0000-annotations").is_dir()


def _endpoints(tmp_path, server, served_model: str) -> str:
    """The audited endpoint is always called "model"; what it serves changes with the checkpoint."""
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n  model:\n"
        f"    base_url: {server.base_url}\n    model: {served_model}\n    api_key_env: {KEY_ENV}\n"
        "    max_concurrency: 16\n    price_per_1k: {input: 0.001, output: 0.002}\n"
    )
    return str(path)


def test_a_new_checkpoint_whose_judge_drifts_is_reported_and_the_rerun_changes_nothing(tmp_path):
    """Issue 6's acceptance: two nights, a planted change in the model's judge behaviour between them."""
    from profile_dist.workflows.audit.run import EXIT_ALIGNMENT_DROP

    root = str(tmp_path / "data")
    write_human_corpus(root, pairs_per_prompt=3)  # humans prefer short, on-topic answers
    raw = example_config(root, str(tmp_path / "out"), bootstrap=100)
    raw["corpora"] = raw["corpora"][:1]
    raw["models"] = ["model"]
    with ServerProcess(["--api-key", KEY, "--model", "ckpt-1", "--model", "ckpt-2",
                        "--behaviour", "judge_prefers_longer=0.15"]) as server:
        raw["endpoints"] = _endpoints(tmp_path, server, "ckpt-1")
        first = run_audit(parse_audit_config(raw, "audit.yaml"), "2024-05-01", progress=False, say=lambda line: None)
        assert first.exit_code == 0
        # The next night's checkpoint rewards length, as the humans do not.
        server.configure(behaviour={"judge_prefers_longer": 0.9})
        raw["endpoints"] = _endpoints(tmp_path, server, "ckpt-2")
        second = run_audit(parse_audit_config(raw, "audit.yaml"), "2024-05-02", progress=False, say=lambda line: None)
        assert second.exit_code == EXIT_ALIGNMENT_DROP and second.summary["status"] == "alignment_drop"
        alerts = second.summary["alerts"]
        assert alerts and all(a["significant"] for a in alerts)
        assert "model/evaluation" in {source for a in alerts for source in (a["source_x"], a["source_y"])}
        date_dir = tmp_path / "out" / "audits" / "date=2024-05-02"
        written = {p: p.stat().st_mtime_ns for p in date_dir.rglob("*") if p.is_file()}
        requests = server.stats()["requests"]
        again = run_audit(parse_audit_config(raw, "audit.yaml"), "2024-05-02", progress=False, say=lambda line: None)
        assert again.reused and again.exit_code == EXIT_ALIGNMENT_DROP and again.summary == second.summary
        assert server.stats()["requests"] == requests
        assert {p: p.stat().st_mtime_ns for p in date_dir.rglob("*") if p.is_file()} == written
