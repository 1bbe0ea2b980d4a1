"""Ingest as map + shuffle: column-wise parsing equals the row-by-row reference, batch ids equal ids.py,
the output does not depend on buckets or splits, and outputs are claimed and certified by their manifest."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profile_dist import ids, schema
from profile_dist.layout import published
from profile_dist.errors import BadInputError
from profile_dist.sources import RawPair, RowProblem, get_source
from profile_dist.sources.batches import plan_lines
from profile_dist.stages import shuffle
from profile_dist.stages.ingest import TABLES, ingest

# --- pure parts --------------------------------------------------------------------------------------------

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)  # Arrow strings are valid UTF-8


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(text, st.one_of(st.none(), text), text, st.integers(0, 10**12)), max_size=30))
def test_batch_ids_are_the_row_by_row_ids(rows):
    prompts = pa.array([r[0] for r in rows], pa.string())
    sources = pa.array([r[1] for r in rows], pa.string())
    responses = pa.array([r[2] for r in rows], pa.large_string())
    pids = ids.prompt_ids(prompts, sources)
    assert pids.to_pylist() == [ids.prompt_id(p, s) for p, s, _, _ in rows]
    rids = ids.response_ids(pids, responses)
    assert rids.to_pylist() == [ids.response_id(ids.prompt_id(p, s), r) for p, s, r, _ in rows]
    rows_col = pa.array([r[3] for r in rows], pa.int64())
    got = ids.pair_ids("ds", prompts, prompts, prompts, "f.jsonl", rows_col, rids, rids).to_pylist()
    assert got == [ids.pair_id("ds", p, p, p, "f.jsonl", n, rid, rid) for (p, _, _, n), rid in zip(rows, rids.to_pylist())]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50), st.integers(1, 2**31 - 1))
def test_bucket_of_is_floor_of_hash_times_buckets_over_2_64(hashes, n_buckets):
    got = shuffle.bucket_of(np.array(hashes, dtype=np.uint64), n_buckets)
    assert got.tolist() == [h * n_buckets >> 64 for h in hashes]  # Python integers: exact


def test_buckets_of_p_and_2p_nest():
    hashes = np.random.default_rng(0).integers(0, 2**64 - 1, 10_000, dtype=np.uint64)
    assert (shuffle.bucket_of(hashes, 14) == shuffle.bucket_of(hashes, 7) * 2 + (shuffle.bucket_of(hashes, 14) % 2)).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.one_of(st.none(), text), st.integers(0, 4)), max_size=25), min_size=1, max_size=4),
       st.integers(1, 5))
def test_shuffle_files_give_each_bucket_its_rows_in_the_order_added(tmp_path_factory, map_tasks, n_buckets):
    """Map files written piece by piece (one zstd frame per bucket) read back as exactly each bucket's rows."""
    table_schema = pa.schema([("text", pa.large_string()), ("n", pa.int64())])
    directory = tmp_path_factory.mktemp("shuffle")
    files, offsets, expected = [], [], {b: [] for b in range(n_buckets)}
    for index, rows in enumerate(map_tasks):
        output = shuffle.MapOutput(table_schema, n_buckets)
        for start in range(0, len(rows), 7):  # several adds per task, as a parse task adds batch by batch
            batch = rows[start:start + 7]
            buckets = np.array([n % n_buckets for _, n in batch], dtype=np.int64)
            output.add(pa.table({"text": [t for t, _ in batch], "n": [n for _, n in batch]}, schema=table_schema), buckets)
        for text_value, n in rows:
            expected[n % n_buckets].append((text_value, n))
        files.append(str(directory / f"map-{index}.arrows"))
        offsets.append(output.finish(files[-1]))
        assert (offsets[-1][1:] >= offsets[-1][:-1]).all() and os.path.exists(files[-1]) == bool(rows)
    for bucket in range(n_buckets):
        got = shuffle.read_pieces(shuffle.pieces_of_bucket(files, offsets, bucket), table_schema)
        assert got.schema == table_schema
        assert list(zip(got.column("text").to_pylist(), got.column("n").to_pylist())) == expected[bucket]


# --- column-wise parsing equals the reference (Source.records) ----------------------------------------------

CLEAN = {"prompt": "p", "response_a": "x", "response_b": "y", "label": "a"}
ODD_ROWS = [
    {**CLEAN, "label": " TIE "}, {**CLEAN, "label": "Response_B"}, {**CLEAN, "label": "a\x1f"},  # \x1f: Python strips it
    {**CLEAN, "label": "b\u00a0"}, {**CLEAN, "label": "maybe"}, {**CLEAN, "label": None},
    {**CLEAN, "response_a": None}, {**CLEAN, "prompt": ""}, {**CLEAN, "labeler": "", "task": "summarization"},
    {**CLEAN, "setting": "evaluation", "labeler": "judge-1"}, {**CLEAN, "setting": "sideways"},
    {**CLEAN, "source": "the document"}, {**CLEAN, "source": ""}, {**CLEAN, "response_b": "café ☕ \u2028 line"},
]


def corpus_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        row = dict(ODD_ROWS[i % len(ODD_ROWS)]) if i % 3 == 0 else dict(CLEAN)
        row["prompt"] = f"{row['prompt']} {i % 17}" if row.get("prompt") is not None else None
        row["response_a"] = f"{row['response_a']} {i % 5}" if row.get("response_a") is not None else None
        rows.append(row)
    return rows


def reference(format_name: str, path: str) -> tuple[list[tuple], list[tuple]]:
    pairs, problems = [], []
    for r in get_source(format_name).records(path):
        if isinstance(r, RowProblem):
            problems.append((r.source_row, r.field, r.reason, r.kind))
        else:
            assert isinstance(r, RawPair)
            pairs.append((r.source_row, r.prompt, r.response_a, r.response_b, r.label, r.labeler, r.task or None, r.source,
                          r.source_a, r.source_b, r.setting))
    return sorted(pairs), sorted(problems)


def columnar(format_name: str, path: str, split_bytes: int) -> tuple[list[tuple], list[tuple], int]:
    source = get_source(format_name)
    pairs, problems = [], []
    splits = source.plan(path, split_bytes)
    for split in splits:
        for batch in source.batches(split):
            assert batch.pairs.schema.equals(schema.RAW_PAIRS)
            pairs += [tuple(row.values()) for row in batch.pairs.to_pylist()]
            problems += [(p.source_row, p.field, p.reason, p.kind) for p in batch.problems]
    return sorted(pairs), sorted(problems), len(splits)


def write_jsonl(path: Path, rows: list[dict], extra_lines: dict[int, bytes] | None = None) -> str:
    lines = [json.dumps({k: v for k, v in r.items()}).encode() for r in rows]
    for at, line in sorted((extra_lines or {}).items()):
        lines.insert(at, line)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


def test_parquet_row_groups_column_wise_equal_the_reference(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(corpus_rows(300)), path, row_group_size=40)
    want = reference("pairs", str(path))
    pairs, problems, n_splits = columnar("pairs", str(path), split_bytes=1)
    assert n_splits == 8  # one split per row group: one file uses every core
    assert (pairs, problems) == want and problems and len(pairs) > 200


def test_parquet_column_of_another_type_goes_to_the_reference(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"prompt": ["p", "q"], "response_a": [1, 2], "response_b": ["y", "z"], "label": [1, 2],
                             "labeler": [None, None]}), path)
    pairs, problems, _ = columnar("pairs", str(path), 1)
    assert (pairs, problems) == reference("pairs", str(path)) and len(problems) == 2


def test_jsonl_line_ranges_column_wise_equal_the_reference(tmp_path):
    odd = {5: b"", 9: b"   ", 20: b"{not json", 33: b"[1, 2]", 40: b'{"prompt": "p", "response_a": 3, "response_b": "y", "label": "a"}',
           51: b'{"prompt": "caf\xe9", "response_a": "x", "response_b": "y", "label": "a"}',
           60: b'{"prompt": "p", "prompt": "twice", "response_a": "x", "response_b": "y", "label": "b"}\r'}
    path = write_jsonl(tmp_path / "c.jsonl", corpus_rows(400), odd)
    want = reference("pairs", path)
    for split_bytes in (1, 997, 10**9):
        pairs, problems, n_splits = columnar("pairs", path, split_bytes)
        assert (pairs, problems) == want, split_bytes
    assert columnar("pairs", path, 997)[2] > 10


def test_feedback_forensics_layout_column_wise(tmp_path):
    rows = [{"text_a": f"x{i}", "text_b": "y", "preferred_text": ["text_a", "text_b", "tie"][i % 3]} for i in range(30)]
    rows[4]["prompt"] = "q"
    rows[7]["prompt"] = None
    path = write_jsonl(tmp_path / "ff.jsonl", rows)
    assert columnar("pairs", path, 50)[:2] == reference("pairs", path)
    parquet = tmp_path / "ff.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet, row_group_size=7)
    assert columnar("pairs", str(parquet), 1)[:2] == reference("pairs", str(parquet))
    no_prompt = [{k: v for k, v in r.items() if k != "prompt"} for r in rows]
    path = write_jsonl(tmp_path / "ff2.jsonl", no_prompt, {9: b'{"text_a": "x", "text_b": "y", "preferred_text": "tie", "\\u0070rompt": null}'})
    assert columnar("pairs", path, 50)[:2] == reference("pairs", path)


def test_clean_rows_never_take_the_row_by_row_path(tmp_path, monkeypatch):
    from profile_dist.sources.pairs import Pairs

    calls = []
    original = Pairs._record
    monkeypatch.setattr(Pairs, "_record", lambda self, row, obj, layout: calls.append(row) or original(self, row, obj, layout))
    rows = [dict(CLEAN, prompt=f"p{i}", labeler="m", task="summarization") for i in range(100)]
    rows[40]["label"] = "maybe"
    jsonl = write_jsonl(tmp_path / "c.jsonl", rows)
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet, row_group_size=30)
    for path in (jsonl, str(parquet)):
        calls.clear()
        pairs, problems, _ = columnar("pairs", path, 200)
        assert len(pairs) == 99 and [p[:2] for p in problems] == [(40, "label")]
        assert calls == [40]  # only the bad row went through the reference
    no_prompt = [{"text_a": f"x{i}", "text_b": "y", "preferred_text": "text_b"} for i in range(50)]
    calls.clear()
    assert len(columnar("pairs", write_jsonl(tmp_path / "ff.jsonl", no_prompt), 10**6)[0]) == 50 and calls == []


@pytest.mark.parametrize("format_name, name", [("hh_rlhf", "hh-rlhf/harmless-base-test.jsonl.gz"),
                                               ("alpaca_eval", "alpaca_eval/alpaca-7b.alpaca_eval_gpt4.annotations.json.gz")])
def test_row_by_row_formats_through_batches_equal_the_reference(shared_data, format_name, name):
    path = str(shared_data / name)
    assert columnar(format_name, path, 1)[:2] == reference(format_name, path)


def test_plain_jsonl_of_a_row_format_is_cut_into_line_ranges(tmp_path, shared_data):
    import gzip

    plain = tmp_path / "hh.jsonl"
    plain.write_bytes(gzip.decompress((shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz").read_bytes()))
    pairs, problems, n_splits = columnar("hh_rlhf", str(plain), 100_000)
    assert n_splits > 5 and (pairs, problems) == reference("hh_rlhf", str(plain))


def test_line_splits_cover_the_file_at_line_starts(tmp_path):
    data = b"".join(f'{{"n": {i}}}\n'.encode() * (i % 3) + b"\n" for i in range(500)) + b'{"last": 1}'
    path = tmp_path / "x.jsonl"
    path.write_bytes(data)
    splits = plan_lines(str(path), 100)
    assert splits[0].start == 0 and splits[-1].stop == len(data)
    assert all(a.stop == b.start and data[b.start - 1:b.start] == b"\n" for a, b in zip(splits, splits[1:]))
    assert all(s.first_row == data[:s.start].count(b"\n") for s in splits)
    assert sum(s.rows for s in splits) == data.count(b"\n") + 1


# --- the stage: independent of buckets and splits, equal to the reference ---------------------------------

def write_corpus(tmp_path: Path) -> list[str]:
    rows = corpus_rows(600)
    parquet = tmp_path / "big.parquet"
    pq.write_table(pa.Table.from_pylist([r for r in rows[:400] if r.get("label") not in ("maybe", None)]), parquet, row_group_size=50)
    jsonl = write_jsonl(tmp_path / "more.jsonl", rows[400:], {3: b"{broken"})
    return [str(parquet), jsonl]


def read_tables(out: Path) -> dict[str, pa.Table]:
    manifest = json.loads((out / "_manifest.json").read_text())
    tables = {}
    for name in TABLES:
        files = published.table_files(str(out), name)
        assert [Path(f).name for f in files] == sorted(Path(f).name for f in (out / name).glob("*.parquet"))
        assert [e["name"] for e in manifest["files"][name]] == [Path(f).name for f in files]
        tables[name] = pa.concat_tables([pq.read_table(f) for f in files])
    return tables


def sorted_rows(table: pa.Table) -> list[tuple]:
    return sorted(tuple(r.values()) for r in table.to_pylist())


def reference_tables(inputs: list[str]) -> dict[str, list[tuple]]:
    """The tables as the row-by-row ingest built them: records() and ids.py per row, de-duplicated by id."""
    prompts, responses, pairs, rejected = {}, {}, [], []
    for path in inputs:
        for r in get_source("pairs").records(path):
            if isinstance(r, RowProblem):
                rejected.append((path, r.source_row, r.field, r.reason, r.kind))
                continue
            pid = ids.prompt_id(r.prompt, r.source)
            prompts[pid] = (pid, r.prompt, r.source)
            a, b = ids.response_id(pid, r.response_a, r.source_a), ids.response_id(pid, r.response_b, r.source_b)
            responses[a], responses[b] = (a, pid, r.response_a, r.source_a), (b, pid, r.response_b, r.source_b)
            task = r.task or "helpful"
            pairs.append((ids.pair_id("pairs", r.labeler, r.setting, task, Path(path).name, r.source_row, a, b), task, pid, a, b,
                          r.label, r.labeler, r.setting, "pairs", path, r.source_row))
    return {"prompts": sorted(prompts.values()), "responses": sorted(responses.values()), "pairs": sorted(pairs),
            "rejected": sorted(rejected)}


@pytest.mark.usefixtures("ray_session")
def test_output_is_the_same_for_any_buckets_or_splits_and_equals_the_reference(tmp_path):
    inputs = write_corpus(tmp_path)
    want = reference_tables(inputs)
    runs = {"one": dict(buckets=1), "three_big_splits": dict(buckets=3), "three_small_splits": dict(buckets=3, split_bytes=1),
            "seven": dict(buckets=7, split_bytes=1)}
    got = {}
    for name, options in runs.items():
        summary = ingest("pairs", inputs, str(tmp_path / name), skip_bad_rows=True, progress=False, **options)
        assert summary.shards == options["buckets"]
        got[name] = read_tables(tmp_path / name)
        if name == "seven":
            assert summary.tasks >= 10  # the Parquet file's row groups and the JSONL's lines, in separate tasks
    for name, tables in got.items():
        for table in TABLES:
            assert sorted_rows(tables[table]) == want[table], (name, table)
    # The same buckets: byte-identical files whatever the splits.
    for table in TABLES:
        big = sorted((tmp_path / "three_big_splits" / table).glob("*.parquet"))
        small = sorted((tmp_path / "three_small_splits" / table).glob("*.parquet"))
        assert [p.name for p in big] == [p.name for p in small]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(big, small)), table
    # Each bucket holds exactly the ids that hash into it.
    from profile_dist.analysis import stats

    for shard in sorted((tmp_path / "seven" / "responses").glob("part-*.parquet")):
        buckets = shuffle.bucket_of(stats.id_hashes(pq.read_table(shard).column("response_id")), 7)
        assert set(buckets.tolist()) <= {int(shard.stem.split("-")[1])}


@pytest.mark.usefixtures("ray_session")
def test_a_bad_row_in_a_later_split_stops_the_run_with_file_row_field(tmp_path):
    rows = [dict(CLEAN, prompt=f"p{i}") for i in range(200)]
    rows[170]["label"] = "sideways"
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    with pytest.raises(BadInputError) as info:
        ingest("pairs", [path], str(tmp_path / "out"), split_bytes=500, progress=False)
    assert (info.value.source_file, info.value.source_row, info.value.field) == (path, 170, "label")
    assert not (tmp_path / "out" / "pairs").exists() and not (tmp_path / "out" / published.CLAIM).exists()
    # A task cancelled mid-write may still leave a file in the failed run's staging area: the next run removes it.
    (tmp_path / "out" / ".staging-0ld" / "shuffle").mkdir(parents=True)
    rows[170]["label"] = "b"
    assert ingest("pairs", [write_jsonl(tmp_path / "c.jsonl", rows)], str(tmp_path / "out"), progress=False).n_pairs == 200
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([published.MANIFEST, *TABLES])


# --- claims and manifests ------------------------------------------------------------------------------------


def claim_file(out: Path, host: str, pid: int, run: str = "other") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / published.CLAIM
    path.write_text(json.dumps({"output": str(out), "stage": "ingest", "run": run, "host": host, "pid": pid,
                                "since": "2024-01-01T00:00:00+00:00"}))
    return path


def small_corpus(tmp_path: Path) -> str:
    return write_jsonl(tmp_path / "c.jsonl", [dict(CLEAN, prompt=f"p{i}") for i in range(20)])


@pytest.mark.usefixtures("ray_session")
def test_a_second_job_on_a_claimed_output_is_refused(tmp_path):
    corpus = small_corpus(tmp_path)
    out = tmp_path / "out"
    ingest("pairs", [corpus], str(out), progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for host, pid in ((socket.gethostname(), os.getpid()), ("another-node", 12345)):  # alive here; elsewhere: unknowable
        claim = claim_file(out, host, pid)
        with pytest.raises(published.OutputClaimedError, match=rf"being written by another job \(ingest run other, pid {pid} on {host}") as info:
            ingest("pairs", [corpus], str(out), progress=False)
        assert f"delete {claim}" in str(info.value)
        claim.unlink()
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing touched


@pytest.mark.usefixtures("ray_session")
def test_a_claim_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    claim_file(out, socket.gethostname(), dead.pid, run="deadbeef")
    (out / ".staging-deadbeef" / "pairs").mkdir(parents=True)
    summary = ingest("pairs", [small_corpus(tmp_path)], str(out), progress=False)
    assert summary.n_pairs == 20
    assert not (out / published.CLAIM).exists() and not (out / ".staging-deadbeef").exists()


def test_claims_exclude_each_other_and_are_released(tmp_path):
    out = str(tmp_path / "out")
    with published.claimed(out, "ingest") as first:
        with pytest.raises(published.OutputClaimedError, match=first.run):
            with published.claimed(out, "ingest"):
                pass
        assert (tmp_path / "out" / published.CLAIM).exists()
    assert not (tmp_path / "out" / published.CLAIM).exists()
    with pytest.raises(RuntimeError):
        with published.claimed(out, "ingest"):
            raise RuntimeError("the job failed")
    assert not (tmp_path / "out" / published.CLAIM).exists()


def test_readers_refuse_an_output_being_rewritten(tmp_path):
    out = str(tmp_path / "out")
    with published.claimed(out, "ingest") as claim:
        published.withdraw(out, claim)
        with pytest.raises(published.IncompleteOutputError, match=f"pid {os.getpid()}"):
            published.table_files(out, "pairs")
    published.certify(out, {"files": {"pairs": [{"name": "part-00000.parquet", "bytes": 1, "rows": 1}]}})
    assert published.table_files(out, "pairs") == [str(tmp_path / "out" / "pairs" / "part-00000.parquet")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["", "a", "b\x1fc", "é" * 40, "same text", "x" * 2000]), min_size=0, max_size=30),
       st.lists(st.integers(0, 3), min_size=30, max_size=30))
def test_batch_ids_equal_row_ids_with_repeats(texts, rows):
    """content_ids hashes each distinct joined value once and maps it back: the same ids as one call per row."""
    prompt = pa.array([f"p{r}" for r in rows[:len(texts)]], pa.string())
    batch = ids.content_ids("response", prompt, pa.array(texts, pa.string()), pa.array(rows[:len(texts)], pa.int64()))
    assert batch.to_pylist() == [ids.content_id("response", p, t, r) for p, t, r in zip(prompt.to_pylist(), texts, rows)]


def test_batch_ids_past_the_row_key_range_fall_back_to_distinct_joined_values(monkeypatch):
    """Columns with too many code combinations for an int64 row key hash each distinct joined value instead."""
    texts = ["a", "b\x1fc", "a", "same", "b\x1fc", "é" * 40]
    rows = [0, 1, 0, 2, 1, 3]
    monkeypatch.setattr(ids, "_MAX_KEY", 4)
    prompt = pa.array([f"p{r}" for r in rows], pa.string())
    batch = ids.content_ids("response", prompt, pa.array(texts, pa.string()), pa.array(rows, pa.int64()))
    assert batch.to_pylist() == [ids.content_id("response", p, t, r) for p, t, r in zip(prompt.to_pylist(), texts, rows)]


def test_table_rows_counts_from_the_manifest_or_says_it_does_not_know(tmp_path):
    out = str(tmp_path / "out")
    assert published.table_rows(out, "pairs") is None  # no manifest
    published.certify(out, {"files": {"pairs": [{"name": "part-00000.parquet", "bytes": 1, "rows": 7},
                                                {"name": "part-00001.parquet", "bytes": 1, "rows": 5}]}})
    assert published.table_rows(out, "pairs") == 12
    assert published.table_rows(out, "responses") is None  # not listed


def _parsed(splits) -> tuple[list[tuple], list[tuple]]:
    source = get_source("pairs")
    pairs, problems = [], []
    for split in splits:
        for batch in source.batches(split):
            pairs += [tuple(row.values()) for row in batch.pairs.to_pylist()]
            problems += [(p.source_row, p.field, p.reason, p.kind) for p in batch.problems]
    return sorted(pairs), sorted(problems)


def test_coalesced_splits_parse_the_same_rows_with_the_same_numbers(tmp_path):
    from profile_dist.stages.ingest import coalesce_splits

    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(corpus_rows(300)), parquet, row_group_size=40)
    jsonl = write_jsonl(tmp_path / "c.jsonl", corpus_rows(400), {5: b"", 20: b"{not json"})
    source = get_source("pairs")
    splits = source.plan(str(parquet), 1) + source.plan(jsonl, 997)
    assert len(splits) > 16
    coalesced = coalesce_splits(splits, 3)
    assert len(coalesced) < len(splits)
    pairs, problems = _parsed(coalesced)
    assert (pairs, problems) == _parsed(splits) and len(pairs) > 600 and problems
    # runs never cross files, and the caps hold
    assert sum(1 for s in coalesced if s.path == str(parquet)) == 3  # 8 row groups, 3 per task
    assert sum(1 for s in coalesce_splits(splits, 3, max_rows=40) if s.path == str(parquet)) == 8  # 40 rows each
    assert len(coalesce_splits(splits, 100, max_bytes=997 * 2)) > len(coalesce_splits(splits, 100))


def test_many_splits_are_parsed_by_fewer_tasks_with_byte_identical_output(tmp_path, monkeypatch):
    """Past PIECES_PER_TABLE (splits x buckets) adjacent splits are coalesced; the files written do not change."""
    import profile_dist.stages.ingest as ingest_module

    inputs = write_corpus(tmp_path)
    plain = ingest("pairs", inputs, str(tmp_path / "plain"), skip_bad_rows=True, progress=False, buckets=7, split_bytes=1)
    monkeypatch.setattr(ingest_module, "PIECES_PER_TABLE", 0)
    fewer = ingest("pairs", inputs, str(tmp_path / "fewer"), skip_bad_rows=True, progress=False, buckets=7, split_bytes=1)
    assert fewer.tasks < plain.tasks
    for table in TABLES:
        a = sorted((tmp_path / "plain" / table).glob("*.parquet"))
        b = sorted((tmp_path / "fewer" / table).glob("*.parquet"))
        assert [p.name for p in a] == [p.name for p in b] and all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b)), table
