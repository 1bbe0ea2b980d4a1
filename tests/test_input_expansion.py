"""`--input` takes files, directories and glob patterns: a sharded dataset is named by its root, as on S3."""

from __future__ import annotations

import pyarrow as pa
import pytest

from profile_dist import storage
from profile_dist.errors import BadInputError
from profile_dist.layout import published
from profile_dist.stages.ingest import ingest
from profile_dist.workflows.demo import write_demo_corpus


def _touch(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_a_directory_gives_its_data_files_recursively_sorted_and_skips_everything_else(tmp_path):
    root = tmp_path / "corpus"
    b = _touch(root / "year=2025" / "part-1.parquet")
    a = _touch(root / "year=2024" / "part-9.jsonl.gz")
    c = _touch(root / "top.csv")
    _touch(root / "README.md")
    _touch(root / "_SUCCESS")
    _touch(root / ".hidden" / "x.parquet")
    _touch(root / "_tmp" / "y.parquet")
    assert storage.expand_inputs([str(root)]) == sorted([a, b, c])
    single = _touch(tmp_path / "one.jsonl")
    assert storage.expand_inputs([single, str(root / "year=2024")]) == [single, a]


def test_a_pattern_matches_segment_by_segment(tmp_path):
    root = tmp_path / "c"
    one = _touch(root / "a" / "x-1.parquet")
    two = _touch(root / "b" / "x-2.parquet")
    _touch(root / "a" / "deeper" / "x-3.parquet")
    _touch(root / "a" / "y-1.parquet")
    assert storage.expand_inputs([f"{root}/*/x-*.parquet"]) == [one, two]
    assert storage.expand_inputs([f"{root}/a/x-[0-9].parquet"]) == [one]


def test_a_pattern_or_directory_without_files_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty" / "notes.txt")
    with pytest.raises(BadInputError, match="empty: a directory with no data files"):
        storage.expand_inputs([str(tmp_path / "empty")])
    with pytest.raises(BadInputError, match=r"\*.parquet: no file matches this pattern"):
        storage.expand_inputs([f"{tmp_path}/*.parquet"])


def test_ingest_of_a_directory_equals_ingest_of_its_files(ray_session, tmp_path):
    files = [write_demo_corpus(str(tmp_path / "corpus" / "shard=0" / "demo-0.jsonl"))]
    whole = storage.read_bytes(files[0]).splitlines(keepends=True)
    half = len(whole) // 2  # the demo corpus cut in two files under another partition directory
    storage.write_bytes_atomic(b"".join(whole[:half]), files[0])
    files.append(str(tmp_path / "corpus" / "shard=1" / "demo-1.jsonl"))
    storage.write_bytes_atomic(b"".join(whole[half:]), files[1])
    by_dir = ingest("pairs", [str(tmp_path / "corpus")], str(tmp_path / "by_dir"), rows_per_shard=60, progress=False)
    by_file = ingest("pairs", files, str(tmp_path / "by_file"), rows_per_shard=60, progress=False)
    assert by_dir.n_pairs == by_file.n_pairs == len(whole)
    for name in ("pairs", "responses"):
        tables = [pa.concat_tables([storage.read_parquet(f) for f in published.table_files(str(tmp_path / out), name)])
                  for out in ("by_dir", "by_file")]
        assert tables[0].equals(tables[1]), name
