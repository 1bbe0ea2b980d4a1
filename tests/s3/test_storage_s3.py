"""storage.py against a real S3-compatible HTTP server on loopback: listing, atomic and exclusive writes, errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from profile_dist import storage
from profile_dist.errors import BadInputError
from profile_dist.testing.s3_server import endpoint_of, reserve_socket


def _closed_endpoint() -> str:
    sock = reserve_socket()
    endpoint = endpoint_of(sock)
    sock.close()  # nothing listens there any more: connections are refused
    return endpoint


def test_bytes_json_and_parquet_round_trip(bucket):
    storage.write_bytes_atomic(b"hello", f"{bucket}/a/b.txt")
    storage.write_json_atomic({"x": [1, 2]}, f"{bucket}/a/c.json")
    table = pa.table({"x": [1, 2, 3], "y": ["a", "b", None]})
    storage.write_parquet_atomic(table, f"{bucket}/t/part-00000.parquet")

    assert storage.read_bytes(f"{bucket}/a/b.txt") == b"hello"
    assert storage.read_json(f"{bucket}/a/c.json") == {"x": [1, 2]}
    assert storage.read_parquet(f"{bucket}/t/part-00000.parquet").equals(table)
    fs, path = storage.filesystem(f"{bucket}/t/part-00000.parquet")  # what Arrow datasets use
    import pyarrow.parquet as pq

    assert pq.read_table(path, filesystem=fs).equals(table)
    assert storage.size(f"{bucket}/a/b.txt") == 5


def test_exists_for_objects_prefixes_and_missing_keys(bucket):
    storage.write_bytes_atomic(b"x", f"{bucket}/dir/sub/file.txt")
    assert storage.exists(f"{bucket}/dir/sub/file.txt")
    assert storage.exists(f"{bucket}/dir")  # a prefix with objects under it
    assert storage.exists(f"{bucket}/dir/sub/")
    assert not storage.exists(f"{bucket}/dir/su")  # not a path segment
    assert not storage.exists(f"{bucket}/missing.txt")
    assert storage.list_files(f"{bucket}/no/such/prefix") == []
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        storage.read_bytes(f"{bucket}/missing.txt")


def test_a_content_change_changes_the_version(bucket):
    uri = f"{bucket}/v.txt"
    storage.write_bytes_atomic(b"one", uri)
    first = storage.info(uri)
    storage.write_bytes_atomic(b"two", uri)
    second = storage.info(uri)
    assert first.version != second.version and first.size == second.size == 3


def test_listing_follows_pagination_over_thousands_of_objects(s3, bucket):
    n = 2345  # three pages of ListObjectsV2 (1,000 keys each)
    keys = [f"many/part-{i:05d}.parquet" for i in range(n)]
    extra = ["many/_manifest.json", "many/.tmp-123-part-99999.parquet", "many/sub/part-00000.parquet", "many/notes.txt"]
    assert s3.seed(bucket[len("s3://"):], keys + extra) == len(keys + extra)

    listed = storage.list_files(f"{bucket}/many")
    assert listed == [f"{bucket}/{k}" for k in keys]  # sorted, hidden and temporary files skipped, not recursive
    lists = [r for r in s3.requests() if r["method"] == "GET" and "list-type=2" in r["query"]]
    assert len(lists) == 3 and sum("continuation-token" in r["query"] for r in lists) == 2

    storage.remove_tree(f"{bucket}/many")
    assert storage.list_tree(f"{bucket}/many") == []
    deletes = [r for r in s3.requests() if r["method"] == "POST" and "delete" in r["query"]]
    assert len(deletes) == 3  # DeleteObjects takes 1,000 keys at a time


def test_recursive_listing_and_suffix_filter(bucket):
    for key in ("c/a.jsonl", "c/_hidden.jsonl", "c/sub/b.jsonl", "c/sub/.tmp-1-x.jsonl", "c/_manifests/m.jsonl", "c/sub/notes.txt"):
        storage.write_bytes_atomic(b"1", f"{bucket}/{key}")
    assert storage.list_files(f"{bucket}/c", suffix=".jsonl", recursive=True) == [f"{bucket}/c/a.jsonl", f"{bucket}/c/sub/b.jsonl"]
    assert storage.list_files(f"{bucket}/c/", suffix=".txt", recursive=True) == [f"{bucket}/c/sub/notes.txt"]
    assert [i.size for i in storage.list_infos(f"{bucket}/c", suffix=".jsonl", recursive=True)] == [1, 1]
    assert len(storage.list_tree(f"{bucket}/c")) == 6  # bookkeeping included, for copies and deletes


def test_list_dirs_names_common_prefixes(bucket):
    for key in ("audits/date=2024-05-01/x", "audits/date=2024-05-02/y", "audits/top.txt"):
        storage.write_bytes_atomic(b"1", f"{bucket}/{key}")
    assert storage.list_dirs(f"{bucket}/audits") == ["date=2024-05-01", "date=2024-05-02"]


def test_a_failed_write_leaves_no_partial_object_and_keeps_the_previous_one(s3, bucket):
    existing, fresh = f"{bucket}/out/existing.parquet", f"{bucket}/out/fresh.parquet"
    storage.write_bytes_atomic(b"version one", existing)
    s3.set_faults({"method": "PUT", "path": "/out/"})
    big = os.urandom(3 * 1024 * 1024)
    with pytest.raises(storage.StorageError, match=r"^s3://.*/out/existing\.parquet: the store is unavailable \(HTTP 503\)"):
        storage.write_bytes_atomic(big, existing)
    with pytest.raises(storage.StorageError, match="fresh.parquet"):
        storage.write_bytes_atomic(big, fresh)
    s3.clear_faults()
    assert storage.read_bytes(existing) == b"version one"
    assert not storage.exists(fresh)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_exclusive_create_has_exactly_one_winner(where, bucket, tmp_path):
    uri = f"{bucket}/claims/_CLAIM.json" if where == "s3" else str(tmp_path / "claims" / "_CLAIM.json")
    start = threading.Barrier(8)

    def attempt(i: int) -> bool:
        start.wait()
        return storage.write_bytes_exclusive(f"run {i}".encode(), uri)

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(attempt, range(8)))
    assert won.count(True) == 1
    assert storage.read_bytes(uri) == f"run {won.index(True)}".encode()
    assert storage.write_bytes_exclusive(b"late", uri) is False
    assert storage.read_bytes(uri) == f"run {won.index(True)}".encode()


def test_replace_dir_moves_a_staged_tree_and_drops_stale_files(bucket):
    final, staged = f"{bucket}/ds/pairs", f"{bucket}/ds/.staging-1/pairs"
    storage.write_bytes_atomic(b"old", f"{final}/part-00000.parquet")
    storage.write_bytes_atomic(b"stale", f"{final}/part-00001.parquet")
    storage.write_bytes_atomic(b"new", f"{staged}/part-00000.parquet")
    storage.replace_dir(staged, final)
    assert storage.list_tree(final) == [f"{final}/part-00000.parquet"]
    assert storage.read_bytes(f"{final}/part-00000.parquet") == b"new"
    assert storage.list_tree(staged) == []


def test_wrong_credentials_fail_with_the_uri_and_what_to_check(bucket, monkeypatch):
    uri = f"{bucket}/data/file.jsonl"
    storage.write_bytes_atomic(b"{}", uri)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG")
    for operation in (storage.exists, storage.read_bytes, storage.info, lambda u: storage.list_files(u.rsplit("/", 1)[0])):
        with pytest.raises(storage.StorageError, match=r"credentials were rejected") as error:
            operation(uri)
        assert str(error.value).startswith(bucket)
    with pytest.raises(storage.StorageError, match=r"^s3://.*/data/new\.json: the credentials were rejected"):
        storage.write_json_atomic({}, f"{bucket}/data/new.json")


def test_a_missing_bucket_is_an_error_not_an_empty_listing(s3):
    for operation in (storage.exists, storage.read_bytes, storage.list_files, storage.info):
        with pytest.raises(storage.StorageError, match=r"^s3://no-such-bucket-xyz/some/key: bucket 'no-such-bucket-xyz' does not exist at http://127\.0\.0\.1:"):
            operation("s3://no-such-bucket-xyz/some/key")
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.write_bytes_atomic(b"x", "s3://no-such-bucket-xyz/some/key")


def test_an_unreachable_endpoint_is_named(monkeypatch):
    endpoint = _closed_endpoint()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    with pytest.raises(storage.StorageError, match=rf"^s3://bkt/x\.jsonl: cannot reach the S3 endpoint at {endpoint}"):
        storage.exists("s3://bkt/x.jsonl")


def test_cli_errors_name_the_uri_and_the_endpoint_flag_is_used(tmp_path):
    """A fresh process with only --s3-endpoint-url (no endpoint in the environment): clear errors, exit 2, no Ray."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "RAY_ADDRESS")}
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    missing = subprocess.run(
        [sys.executable, "-m", "profile_dist.cli", "ingest", "--s3-endpoint-url", endpoint, "--format", "pairs",
         "--input", "s3://no-such-bucket-cli/corpus.jsonl", "--output", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert missing.returncode == 2
    assert f"s3://no-such-bucket-cli/corpus.jsonl: bucket 'no-such-bucket-cli' does not exist at {endpoint}" in missing.stderr


def test_cli_names_an_unreachable_endpoint_given_by_flag(monkeypatch, capsys):
    from profile_dist.cli import main

    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):  # main() sets them: restored after the test
        monkeypatch.setenv(name, os.environ.get("AWS_ENDPOINT_URL_S3", ""))
    closed = _closed_endpoint()
    code = main(["annotate", "--s3-endpoint-url", closed, "--pairs", "s3://bkt/ingest", "--output", "s3://bkt/annotations"])
    assert code == 2
    # The first object annotate reads is the ingest output's manifest (it lists the responses shards).
    assert f"s3://bkt/ingest/_manifest.json: cannot reach the S3 endpoint at {closed}" in capsys.readouterr().err


def test_an_s3_prefix_or_pattern_as_input_gives_its_data_files(bucket):
    for key in ("c/2024/a.parquet", "c/2025/b.jsonl", "c/2025/_SUCCESS", "c/README.md", "cx/other.parquet"):
        storage.write_bytes_atomic(b"x", f"{bucket}/{key}")
    assert storage.expand_inputs([f"{bucket}/c"]) == [f"{bucket}/c/2024/a.parquet", f"{bucket}/c/2025/b.jsonl"]
    assert storage.expand_inputs([f"{bucket}/c/*/*.parquet"]) == [f"{bucket}/c/2024/a.parquet"]
    assert storage.expand_inputs([f"{bucket}/c/2024/a.parquet"]) == [f"{bucket}/c/2024/a.parquet"]
    with pytest.raises(BadInputError, match="no file matches"):
        storage.expand_inputs([f"{bucket}/c/*.csv"])
