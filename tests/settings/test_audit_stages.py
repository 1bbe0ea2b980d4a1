"""The judge and generate stages plugged into the nightly audit (registered for this test only)."""

from __future__ import annotations

import pytest

from profile_dist import schema, storage
from profile_dist.audit import model_stages
from profile_dist.audit.config import parse_audit_config
from profile_dist.audit.example import example_config, write_human_corpus
from profile_dist.audit.run import run_audit
from profile_dist.settings import audit as settings_audit

from settings_helpers import MODEL, endpoints_file, planted_server

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")


def test_an_audit_with_a_model_judges_and_generates_and_reduces_both_settings(tmp_path, monkeypatch):
    root = str(tmp_path / "data")
    write_human_corpus(root, pairs_per_prompt=2)
    monkeypatch.setattr(model_stages, "_STAGES", {})
    settings_audit.register()
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
    assert sources == {("human", "human"), (MODEL, "evaluation"), (MODEL, "generation")}
