"""`profile-dist export dpo` on the planted audit: documented fields, no identical texts, factor filters,
and a manifest from which the same command reproduces the file byte for byte."""

from __future__ import annotations

import json

import polars as pl
import pytest

from profile_dist.cli import main
from profile_dist.errors import ConfigError
from profile_dist.export.dpo import export_dpo, manifest_path, reproduce
from profile_dist.export.rules import DropRule

FIELDS = ["prompt", "chosen", "rejected", "selection"]


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _texts(pairs_dir: str) -> dict[str, str]:
    frame = pl.read_parquet(f"{pairs_dir}/responses/*.parquet")
    return dict(zip(frame["response_id"], frame["text"]))


def test_judge_export_fields_orientation_and_reproduction(tmp_path, audit):
    out = tmp_path / "judge.jsonl"
    assert main(["export", "dpo", "--results", audit["results"], "--output", str(out), "--source", "judge"]) == 0
    rows = _lines(out)
    manifest = json.loads(open(manifest_path(str(out))).read())
    judged = pl.read_parquet(f"{audit['judge']}/pairs/*.parquet")
    assert len(rows) == manifest["counts"]["written"] == manifest["output"]["lines"] > 0
    assert manifest["counts"]["candidates"] == judged.height
    assert sum(v for k, v in manifest["counts"].items() if k.startswith("dropped_")) + len(rows) == judged.height
    texts = _texts(audit["human"])
    labels = {r["pair_id"]: r for r in judged.iter_rows(named=True)}
    for row in rows:
        assert list(row) == FIELDS and all(isinstance(row[k], str) for k in FIELDS[:3])
        assert row["chosen"] != row["rejected"]
        sel = row["selection"]
        pair = labels[sel["pair_id"]]
        assert sel["setting"] == "evaluation" and sel["labeler"] == "sim-model"
        winner, loser = (pair["response_a_id"], pair["response_b_id"]) if pair["label"] == "a" else (pair["response_b_id"], pair["response_a_id"])
        assert (sel["chosen_id"], sel["rejected_id"]) == (winner, loser)
        assert (row["chosen"], row["rejected"]) == (texts[winner], texts[loser])
        diff = sel["factor_differences"]["length"]
        assert diff == len(row["chosen"].split()) - len(row["rejected"].split())  # rule length: words
    assert [r["selection"]["pair_id"] for r in rows] == sorted(r["selection"]["pair_id"] for r in rows)

    # The manifest reproduces the file byte for byte, through the CLI.
    again = tmp_path / "again.jsonl"
    assert main(["export", "dpo", "--reproduce", manifest_path(str(out)), "--output", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_generation_export_with_the_only_longer_filter(tmp_path, audit):
    # The planted generator's better levels are only longer: its own ranking's pairs differ mostly by length.
    everything = export_dpo(audit["results"], str(tmp_path / "all.jsonl"), source="generation")
    filtered = export_dpo(audit["results"], str(tmp_path / "f.jsonl"), source="generation",
                          drop=["only:length", "more:length=60"])
    rows = _lines(tmp_path / "f.jsonl")
    c = filtered.counts
    assert everything.counts["written"] == c["candidates"] == 800
    assert c["dropped_rule only:length"] > 0 and c["dropped_rule more:length=60"] > 0
    assert c["written"] + c["dropped_rule only:length"] + c["dropped_rule more:length=60"] + c["dropped_identical_texts"] == 800
    for row in rows:
        d = row["selection"]["factor_differences"]
        assert row["selection"]["setting"] == "generation"
        assert not (d["length"] > 0 and d["list_items"] == 0 and d["bold"] == 0)  # no pair won only by length
        assert d["length"] <= 60
    # Every kept pair passes the rules, and every pair of the unfiltered file that passes them is kept.
    kept = {r["selection"]["pair_id"] for r in rows}
    rules = [DropRule.parse("only:length"), DropRule.parse("more:length=60")]
    expect = {r["selection"]["pair_id"] for r in _lines(tmp_path / "all.jsonl")
              if not any(rule.matches(r["selection"]["factor_differences"]) for rule in rules)}
    assert kept == expect
    # Reproduction refuses when an input changed.
    reproduce(manifest_path(str(tmp_path / "f.jsonl")), str(tmp_path / "f2.jsonl"))
    assert (tmp_path / "f2.jsonl").read_bytes() == (tmp_path / "f.jsonl").read_bytes()


def test_identical_texts_ties_and_bad_rules(tmp_path, audit):
    with pytest.raises(ConfigError, match="KIND:FACTOR"):
        DropRule.parse("longer")
    with pytest.raises(ConfigError, match="needs =VALUE"):
        DropRule.parse("more:length")
    with pytest.raises(ConfigError, match="not in the reduce's factors"):
        export_dpo(audit["results"], str(tmp_path / "x.jsonl"), drop=["only:novel_words"])
    # A copy of the audit whose human pairs include identical texts and a tie: both dropped, and counted.
    import shutil

    from profile_dist.stages.reduce import reduce

    human = tmp_path / "human"
    shutil.copytree(audit["human"], human)
    pairs = pl.read_parquet(f"{human}/pairs/*.parquet")
    same = pairs.head(1).with_columns(pl.col("response_a_id").alias("response_b_id"), pl.lit("x-same").alias("pair_id"))
    tie = pairs.slice(1, 1).with_columns(pl.lit("tie").alias("label"), pl.lit("x-tie").alias("pair_id"))
    pl.concat([same, tie]).write_parquet(human / "pairs" / "part-extra.parquet")
    ann = json.loads(open(f"{audit['results']}/_manifest.json").read())["annotations"]
    reduce([str(human)], ann, str(tmp_path / "results"), n_bootstrap=0, progress=False)
    summary = export_dpo(str(tmp_path / "results"), str(tmp_path / "h.jsonl"), source="human")
    assert summary.counts["dropped_identical_texts"] == 1 and summary.counts["dropped_tie"] == 1
    assert summary.counts["written"] == pairs.height
