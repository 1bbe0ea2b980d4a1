"""The stages end to end on a real local Ray: the issue's acceptance figures and guarantees."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from profile_dist import schema
from profile_dist.workflows.demo import write_demo_corpus
from profile_dist.errors import BadInputError
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce

pytestmark = pytest.mark.usefixtures("ray_session")


def run_pipeline(tmp: Path, format_name: str, inputs: list[str], rows_per_shard: int = 100_000, bootstrap: int = 50,
                 alignment_factors: str | None = None, **ingest_args) -> Path:
    ingest(format_name, inputs, str(tmp / "pairs"), rows_per_shard=rows_per_shard, **ingest_args)
    annotate(str(tmp / "pairs"), str(tmp / "annotations"))
    reduce([str(tmp / "pairs")], [str(tmp / "annotations")], str(tmp / "results"), n_bootstrap=bootstrap,
           alignment_factors=alignment_factors)
    return tmp / "results"


def influence_row(results: Path, labeler: str, factor: str) -> dict:
    table = pl.read_parquet(results / "influence.parquet")
    rows = table.filter((pl.col("labeler") == labeler) & (pl.col("factor") == factor)).to_dicts()
    assert len(rows) == 1
    return rows[0]


def test_alpaca_eval_length_influence(tmp_path, shared_data):
    results = run_pipeline(tmp_path, "alpaca_eval", [str(shared_data / "alpaca_eval" / "alpaca-7b.alpaca_eval_gpt4.annotations.json.gz")])
    row = influence_row(results, "alpaca_eval_gpt4", "length")
    assert round(row["tau"], 3) == 0.346
    assert row["n_concordant"] + row["n_discordant"] == 758
    assert row["ci_low"] < row["tau"] < row["ci_high"]
    assert row["p_preferred_more"] == pytest.approx((1 + row["tau"]) / 2)
    skipped = pl.read_parquet(results / "skipped.parquet").to_dicts()
    assert {"stage": "reduce", "reason": "tie label (no preference)", "count": 16}.items() <= next(
        s for s in skipped if s["reason"].startswith("tie label")).items()


def test_hh_rlhf_length_influence(tmp_path, shared_data):
    results = run_pipeline(tmp_path, "hh_rlhf", [str(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")])
    row = influence_row(results, "human", "length")
    assert round(row["tau"], 3) == -0.124
    assert row["n_concordant"] + row["n_discordant"] == 2267


def test_result_is_bit_identical_for_one_or_fifty_shards(tmp_path):
    corpus = write_demo_corpus(str(tmp_path / "demo.jsonl"))
    # Rule factors only: helpful's own factor set holds just length of them, so alignment compares all of them.
    one = run_pipeline(tmp_path / "one", "pairs", [corpus], rows_per_shard=100_000, alignment_factors="all")
    many = run_pipeline(tmp_path / "many", "pairs", [corpus], rows_per_shard=7, alignment_factors="all")
    assert len(list((tmp_path / "many" / "pairs" / "pairs").glob("part-*.parquet"))) >= 50
    for name in ("influence", "alignment", "replicates"):
        assert pq.read_table(one / f"{name}.parquet").equals(pq.read_table(many / f"{name}.parquet")), name
    influence = pl.read_parquet(one / "influence.parquet")
    assert set(influence["labeler"]) == {"human", "demo-judge"}
    assert pl.read_parquet(one / "alignment.parquet").height == len(schema.ALIGNMENT_METRICS)


def test_ingesting_twice_gives_identical_tables(tmp_path, shared_data):
    source = str(shared_data / "alpaca_eval" / "alpaca-7b.alpaca_eval_gpt4.annotations.json.gz")
    for out in ("first", "second"):
        ingest("alpaca_eval", [source], str(tmp_path / out), rows_per_shard=300)
    for table in ("pairs", "responses", "prompts", "rejected"):
        first = sorted((tmp_path / "first" / table).glob("*.parquet"))
        second = sorted((tmp_path / "second" / table).glob("*.parquet"))
        assert [p.name for p in first] == [p.name for p in second] and first
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second)), table


BAD_CORPUS = (
    '{"prompt": "p1", "response_a": "short", "response_b": "a longer answer", "label": "b"}\n'
    '{"prompt": "p2", "response_a": "x", "response_b": "y", "label": "sideways"}\n'
    '{"prompt": "p3", "response_a": "", "response_b": "three words here", "label": "a"}\n'
)


def test_bad_row_stops_the_run_before_anything_is_written(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(BAD_CORPUS)
    with pytest.raises(BadInputError) as info:
        ingest("pairs", [str(corpus)], str(tmp_path / "out"))
    assert (info.value.source_file, info.value.source_row, info.value.field) == (str(corpus), 1, "label")
    assert "sideways" in str(info.value) and "corpus.jsonl, row 1, field 'label'" in str(info.value)
    assert not (tmp_path / "out" / "pairs").exists()


def test_skip_bad_rows_writes_rejected_table_and_keeps_empty_responses(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(BAD_CORPUS)
    summary = ingest("pairs", [str(corpus)], str(tmp_path / "pairs"), skip_bad_rows=True)
    assert summary.n_pairs == 2 and sum(summary.rejected.values()) == 1
    rejected = pl.read_parquet(tmp_path / "pairs" / "rejected").to_dicts()
    assert rejected == [{"source_file": str(corpus), "source_row": 1, "field": "label",
                         "reason": "unknown label 'sideways'; expected one of a, b, tie", "kind": "invalid"}]
    annotate(str(tmp_path / "pairs"), str(tmp_path / "annotations"), factors=["length"])
    responses = pl.read_parquet(tmp_path / "pairs" / "responses")
    values = pl.read_parquet(tmp_path / "annotations" / "part-*.parquet").join(responses, on="response_id")
    assert values.filter(pl.col("text") == "")["value"].to_list() == [0.0]
    reduce([str(tmp_path / "pairs")], [str(tmp_path / "annotations")], str(tmp_path / "results"), n_bootstrap=10)
    row = influence_row(tmp_path / "results", "human", "length")
    assert (row["n_concordant"], row["n_discordant"]) == (1, 1)
    skipped = pl.read_parquet(tmp_path / "results" / "skipped.parquet")
    assert skipped.filter(pl.col("stage") == "ingest")["count"].to_list() == [1]


def test_annotate_resumes_finished_shards_and_redoes_changed_ones(tmp_path):
    corpus = write_demo_corpus(str(tmp_path / "demo.jsonl"))
    ingest("pairs", [corpus], str(tmp_path / "pairs"), rows_per_shard=40)
    first = annotate(str(tmp_path / "pairs"), str(tmp_path / "ann"), factors=["length"])
    assert first.shards_done > 1 and first.shards_skipped == 0
    victim = sorted((tmp_path / "ann").glob("part-*.parquet"))[1]
    victim.unlink()  # as if the run had died before this shard finished
    again = annotate(str(tmp_path / "pairs"), str(tmp_path / "ann"), factors=["length"])
    assert (again.shards_done, again.shards_skipped) == (1, first.shards_done - 1)
    assert victim.exists()
    changed = annotate(str(tmp_path / "pairs"), str(tmp_path / "ann"), factors=["length", "bold"])
    assert changed.shards_done == first.shards_done


def test_reduce_rejects_unknown_factor(tmp_path):
    corpus = write_demo_corpus(str(tmp_path / "demo.jsonl"))
    ingest("pairs", [corpus], str(tmp_path / "pairs"))
    annotate(str(tmp_path / "pairs"), str(tmp_path / "ann"), factors=["length"])
    from profile_dist.errors import ConfigError

    with pytest.raises(ConfigError, match="fluency.*not found"):
        reduce([str(tmp_path / "pairs")], [str(tmp_path / "ann")], str(tmp_path / "res"), factors=["fluency"])


def test_ingest_notes_are_reported(tmp_path, shared_data):
    summary = ingest("hh_rlhf", [str(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")], str(tmp_path / "pairs"))
    assert list(summary.notes.values()) == [5]
    assert json.loads((tmp_path / "pairs" / "_manifest.json").read_text())["counts"]["pairs"] == 2312
