"""The generate stage: joint and separate calls, C(K,2) pairs per prompt, dry run with the check's projection."""

from __future__ import annotations

import polars as pl
import pytest

from profile_dist.stages.generate import generate
from profile_dist.stages.ingest import ingest

from settings_helpers import MODEL, endpoints_file, planted_server, write_human_corpus

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")


def test_joint_and_separate_modes_write_the_same_generations_and_pairs(tmp_path):
    human = str(tmp_path / "human")
    ingest("pairs", [write_human_corpus(tmp_path / "h.jsonl", 12, 6)], human, progress=False)
    with planted_server() as server:
        endpoints = endpoints_file(tmp_path, server)
        dry = generate(human, "model", str(tmp_path / "dry"), levels=4, check_llm="rater", endpoints=endpoints,
                       dry_run=True, progress=False, say=lambda line: None)
        assert [r["to_send"] for r in dry.dry_run] == [6, 6 * 4] and server.stats()["requests"] == 0
        joint = generate(human, "model", str(tmp_path / "joint"), levels=4, endpoints=endpoints, progress=False)
        assert server.stats()["requests"] == 6 == joint.llm[0]["sent"]
        separate = generate(human, "model", str(tmp_path / "sep"), levels=4, mode="separate", endpoints=endpoints,
                            progress=False)
        assert server.stats()["requests"] == 6 + 6 * 4 == 6 + separate.llm[0]["sent"]
    frames = {}
    for name in ("joint", "sep"):
        pairs = pl.read_parquet(tmp_path / name / "pairs" / "*.parquet")
        gens = pl.read_parquet(tmp_path / name / "generations.parquet")
        assert pairs.height == 6 * 6 and set(pairs["label"]) == {"a"} and set(pairs["setting"]) == {"generation"}
        assert set(pairs["labeler"]) == {MODEL} and set(pairs["task"]) == {"helpful"}
        # a = the higher level: every pair's A has the higher target level
        level = dict(zip(gens["response_id"], gens["level"]))
        assert all(level[a] > level[b] for a, b in zip(pairs["response_a_id"], pairs["response_b_id"]))
        frames[name] = sorted(pairs["pair_id"])
    assert frames["joint"] == frames["sep"]


def test_failed_generations_are_recorded_and_give_no_pairs(tmp_path):
    human = str(tmp_path / "human")
    ingest("pairs", [write_human_corpus(tmp_path / "h.jsonl", 6, 3)], human, progress=False)
    with planted_server() as server:
        server.configure(malformed_rate=1.0)  # every reply and re-ask fails validation
        summary = generate(human, "model", str(tmp_path / "out"), levels=3, check_llm="rater",
                           endpoints=endpoints_file(tmp_path, server), progress=False)
    assert summary.n_failed == 3 * 3 and summary.n_pairs == 0 and summary.check[0]["n_rated"] == 0
    gens = pl.read_parquet(tmp_path / "out" / "generations.parquet")
    assert gens.height == 9 and gens["response_id"].null_count() == 9
    assert all(e.startswith("invalid_reply") for e in gens["error"])
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "*.parquet")
    assert rejected.height == 9 and set(rejected["kind"]) == {"skipped"}
    assert pl.read_parquet(tmp_path / "out" / "pairs" / "*.parquet").height == 0
