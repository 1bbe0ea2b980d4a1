"""Bad-input matrix, one test per case, through the real CLI (`profile_dist.cli.main`, in process, on the
session's Ray). Each case ends in a clear error naming file, row and field (exit code 2, no traceback),
or in a rejected row carrying its reason.

Policy for a response longer than the model's context: the row fails with the provider's reason recorded
in the annotation's ``error`` (value null); the text is never truncated silently, since a factor scored on
part of a response is a different measurement. Other rows are unaffected and the failure is cached, so a
rerun does not pay for it again.
"""

from __future__ import annotations

import json
import shutil

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from faults_helpers import KEY, KEY_ENV, endpoints_file

from profile_dist.cli import main
from profile_dist.testing.llm_server import ServerProcess

pytestmark = pytest.mark.usefixtures("ray_session")


def rows(n: int = 12) -> list[dict]:
    return [{"prompt": f"Question {i}?", "response_a": f"A full answer number {i}.", "response_b": f"short {i}",
             "label": "a" if i % 3 else "b"} for i in range(n)]


def write_parquet(path, records: list[dict]) -> str:
    pq.write_table(pa.Table.from_pylist(records), path)
    return str(path)


def cli_error(capsys, *args: str) -> str:
    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if "error:" in line][-1]


def ingest_args(path, out) -> list[str]:
    return ["ingest", "--format", "pairs", "--input", str(path), "--output", str(out)]


@pytest.fixture
def good(tmp_path, capsys):
    """A good corpus, ingested in 3 pairs shards and annotated with rule factors."""
    corpus = write_parquet(tmp_path / "good.parquet", rows(12))
    assert main(ingest_args(corpus, tmp_path / "pairs") + ["--rows-per-shard", "4"]) == 0
    assert main(["annotate", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "ann"),
                 "--factors", "length", "bold"]) == 0
    capsys.readouterr()
    return tmp_path / "pairs", tmp_path / "ann"


def reduce_args(pairs: list, ann, out) -> list[str]:
    return ["reduce", "--pairs", *map(str, pairs), "--annotations", str(ann), "--output", str(out), "--bootstrap", "5"]


# -- corpora ------------------------------------------------------------------------------------------

def test_truncated_parquet_corpus(tmp_path, capsys):
    data = (tmp_path / "x.parquet")
    write_parquet(data, rows())
    blob = data.read_bytes()
    data.write_bytes(blob[: len(blob) // 2])
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"))
    assert str(data) in error and "not a readable Parquet file" in error


def test_corrupt_parquet_corpus_garbage_bytes(tmp_path, capsys):
    data = tmp_path / "x.parquet"
    data.write_bytes(b"PAR1" + bytes(range(256)) * 4 + b"PAR1")
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"))
    assert str(data) in error and "Parquet" in error


def test_wrong_column_type(tmp_path, capsys):
    data = write_parquet(tmp_path / "x.parquet", [{**r, "response_b": i} for i, r in enumerate(rows())])
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"))
    assert data in error and "row 0" in error and "'response_b'" in error and "expected a string" in error


def test_missing_column(tmp_path, capsys):
    data = write_parquet(tmp_path / "x.parquet", [{k: v for k, v in r.items() if k != "response_b"} for r in rows()])
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"))
    assert data in error and "'response_b'" in error and "missing column" in error


def test_non_utf8_bytes(tmp_path, capsys):
    data = tmp_path / "x.jsonl"
    lines = [json.dumps(r).encode() for r in rows(5)]
    lines.insert(3, b'{"prompt": "caf\xe9 \xff", "response_a": "a", "response_b": "b", "label": "a"}')
    data.write_bytes(b"\n".join(lines) + b"\n")
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"))
    assert str(data) in error and "row 3" in error and "UTF-8" in error
    # With --skip-bad-rows the line is rejected with its reason and the others go on.
    assert main(ingest_args(data, tmp_path / "out") + ["--skip-bad-rows"]) == 0
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "*.parquet")
    assert rejected.height == 1 and rejected["source_row"][0] == 3 and "UTF-8" in rejected["reason"][0]
    assert pl.read_parquet(tmp_path / "out" / "pairs" / "*.parquet").height == 5


def test_labels_outside_a_b_tie(tmp_path, capsys):
    records = rows()
    records[5]["label"] = "maybe"
    data = write_parquet(tmp_path / "x.parquet", records)
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"))
    assert data in error and "row 5" in error and "'label'" in error and "'maybe'" in error
    assert main(ingest_args(data, tmp_path / "out") + ["--skip-bad-rows"]) == 0
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "*.parquet")
    assert rejected.select("source_row", "field").rows() == [(5, "label")]
    assert "maybe" in rejected["reason"][0]


def test_zero_usable_rows(tmp_path, capsys):
    data = write_parquet(tmp_path / "x.parquet", [{**r, "label": "?"} for r in rows()])
    error = cli_error(capsys, *ingest_args(data, tmp_path / "out"), "--skip-bad-rows")
    assert data in error and "no usable pairs" in error and "12 row(s) rejected" in error
    assert not (tmp_path / "out" / "pairs").exists()


def test_empty_responses_are_data_scored_like_any_text(tmp_path, capsys):
    """Policy: an empty response is a real (bad) answer, not an input error: kept, length 0."""
    data = write_parquet(tmp_path / "x.parquet", [{**r, "response_b": ""} for r in rows()])
    assert main(ingest_args(data, tmp_path / "pairs")) == 0
    assert main(["annotate", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "ann"),
                 "--factors", "length"]) == 0
    responses = pl.read_parquet(tmp_path / "pairs" / "responses" / "*.parquet")
    values = pl.read_parquet(tmp_path / "ann" / "part-*.parquet").join(responses, on="response_id")
    empty = values.filter(pl.col("text") == "")
    assert empty.height == 12 and set(empty["value"]) == {0.0} and empty["error"].null_count() == 12


def test_response_longer_than_the_models_context_fails_its_row_with_the_reason(tmp_path, capsys, monkeypatch):
    records = rows(6)
    records[2]["response_a"] = "A very long answer. " + "word " * 3000
    data = write_parquet(tmp_path / "x.parquet", records)
    assert main(ingest_args(data, tmp_path / "pairs")) == 0
    monkeypatch.setenv(KEY_ENV, KEY)
    with ServerProcess(["--api-key", KEY, "--max-context-tokens", "1000"]) as server:
        endpoints = endpoints_file(tmp_path / "endpoints.yaml", server.base_url)
        args = ["annotate", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "ann"),
                "--factors", "fluency", "--llm", "judge", "--endpoints", endpoints]
        assert main(args) == 0
        values = pl.read_parquet(tmp_path / "ann" / "part-*.llm-judge.parquet").join(
            pl.read_parquet(tmp_path / "pairs" / "responses" / "*.parquet"), on="response_id")
        long = values.filter(pl.col("text").str.len_chars() > 10_000)
        assert long.height == 1 and long["value"][0] is None
        assert "context" in long["error"][0] and "1000" in long["error"][0]
        assert values.filter(pl.col("text").str.len_chars() < 10_000)["error"].null_count() == values.height - 1
        # The failure is recorded in the cache: a rerun of a lost shard does not pay for it again.
        sent = server.stats()["requests"]
        shutil.rmtree(tmp_path / "ann" / "_manifests")
        assert main(args) == 0
        assert server.stats()["requests"] == sent


# -- stage tables -------------------------------------------------------------------------------------

def test_corrupt_pairs_shard_given_to_reduce(good, tmp_path, capsys):
    pairs, ann = good
    shard = sorted((pairs / "pairs").glob("*.parquet"))[1]
    blob = shard.read_bytes()
    shard.write_bytes(blob[: len(blob) - 20])
    error = cli_error(capsys, *reduce_args([pairs], ann, tmp_path / "res"))
    assert str(shard) in error and "not a readable Parquet file" in error


def test_pairs_shard_with_a_wrong_column_type_given_to_reduce(good, tmp_path, capsys):
    pairs, ann = good
    shard = sorted((pairs / "pairs").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    table = table.set_column(table.schema.get_field_index("source_row"), "source_row",
                             pa.array([f"r{i}" for i in range(table.num_rows)]))
    pq.write_table(table, shard)
    error = cli_error(capsys, *reduce_args([pairs], ann, tmp_path / "res"))
    assert str(shard) in error and "source_row" in error


def test_pairs_shard_with_a_label_outside_a_b_tie_given_to_reduce(good, tmp_path, capsys):
    pairs, ann = good
    shard = sorted((pairs / "pairs").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    labels = table.column("label").to_pylist()
    labels[1] = "both"
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels)), shard)
    error = cli_error(capsys, *reduce_args([pairs], ann, tmp_path / "res"))
    assert str(shard) in error and "'label'" in error and "'both'" in error and "row" in error


def _copy_listed_shard(pairs) -> int:
    """Copy the first non-empty pairs shard to part-00009 and list the copy in the manifest; its rows."""
    manifest = json.loads((pairs / "_manifest.json").read_text())
    entry = next(e for e in manifest["files"]["pairs"] if e["rows"])
    shutil.copy(pairs / "pairs" / entry["name"], pairs / "pairs" / "part-00009.parquet")
    manifest["files"]["pairs"].append({**entry, "name": "part-00009.parquet"})
    (pairs / "_manifest.json").write_text(json.dumps(manifest))
    return entry["rows"]


def test_duplicate_pair_ids_within_a_pairs_dir(good, tmp_path, capsys):
    pairs, ann = good
    copied = _copy_listed_shard(pairs)
    error = cli_error(capsys, *reduce_args([pairs], ann, tmp_path / "res"))
    assert "part-00009.parquet" in error and "'pair_id'" in error and "duplicate pair id" in error
    assert f"{copied} pair(s) would be counted twice" in error


def test_a_shard_the_manifest_does_not_list_is_not_read(good, tmp_path, capsys):
    """Readers trust the manifest only: a stray copy in the directory is ignored, not counted twice."""
    pairs, ann = good
    shutil.copy(pairs / "pairs" / "part-00000.parquet", pairs / "pairs" / "part-00009.parquet")
    assert main(reduce_args([pairs], ann, tmp_path / "res")) == 0
    (pairs / "pairs" / "part-00009.parquet").unlink()
    assert main(reduce_args([pairs], ann, tmp_path / "clean")) == 0
    assert pq.read_table(tmp_path / "res" / "influence.parquet").equals(pq.read_table(tmp_path / "clean" / "influence.parquet"))


def test_duplicate_pair_ids_across_two_pairs_dirs(good, tmp_path, capsys):
    pairs, ann = good
    shutil.copytree(pairs, tmp_path / "again")
    error = cli_error(capsys, *reduce_args([pairs, tmp_path / "again"], ann, tmp_path / "res"))
    assert "again" in error and "duplicate pair id" in error and "12 pair(s) would be counted twice" in error
    error = cli_error(capsys, *reduce_args([pairs, pairs], ann, tmp_path / "res"))
    assert "given twice" in error
    assert not (tmp_path / "res" / "influence.parquet").exists()


def test_corrupt_annotations_shard_given_to_reduce(good, tmp_path, capsys):
    pairs, ann = good
    shard = sorted(ann.glob("part-*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[:-30])
    error = cli_error(capsys, *reduce_args([pairs], ann, tmp_path / "res"))
    assert str(shard) in error and "not a readable Parquet file" in error
