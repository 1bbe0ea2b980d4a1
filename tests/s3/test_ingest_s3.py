"""Ingest on the loopback S3 server: split inputs read by ranged GETs, a manifest that lists every object, claims."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from profile_dist import storage
from profile_dist.layout import published
from profile_dist.workflows.demo import write_demo_corpus
from profile_dist.stages.ingest import TABLES, ingest

pytestmark = pytest.mark.usefixtures("ray_session")


def test_ingest_to_s3_is_certified_by_its_manifest_and_claimed_while_written(bucket, s3, tmp_path):
    corpus = write_demo_corpus(f"{bucket}/corpus/demo.jsonl")
    out = f"{bucket}/ingest/demo"
    summary = ingest("pairs", [corpus], out, rows_per_shard=60, split_bytes=20_000, progress=False)
    assert summary.tasks > 1 and summary.shards > 1
    manifest = storage.read_json(storage.join(out, published.MANIFEST))
    assert manifest["state"] == published.COMPLETE
    for name in TABLES:
        listed = {storage.join(out, name, e["name"]): e for e in manifest["files"][name]}
        assert sorted(listed) == storage.list_files(storage.join(out, name)) == published.table_files(out, name)
        assert all(storage.size(uri) == e["bytes"] for uri, e in listed.items())
    local = tmp_path / "local"
    ingest("pairs", [write_demo_corpus(str(tmp_path / "demo.jsonl"))], str(local), rows_per_shard=60, progress=False)
    for name in TABLES:  # the same rows as a local ingest of the same corpus (source_file differs: sort it out)
        remote = pa.concat_tables([storage.read_parquet(f, TABLES[name]) for f in published.table_files(out, name)])
        here = pa.concat_tables([storage.read_parquet(f, TABLES[name]) for f in published.table_files(str(local), name)])
        assert remote.num_rows == here.num_rows, name
        if name in ("prompts", "responses"):
            assert remote.equals(here), name
    assert not storage.exists(storage.join(out, published.CLAIM))
    assert [u for u in storage.list_tree(out) if "/.staging-" in u or "/.tmp-" in u] == []

    other = {"output": out, "stage": "ingest", "run": "r1", "host": "node-7", "pid": 99, "since": "2024-01-01T00:00:00+00:00"}
    assert storage.write_bytes_exclusive(json.dumps(other).encode(), storage.join(out, published.CLAIM))
    with pytest.raises(published.OutputClaimedError, match="pid 99 on node-7"):
        ingest("pairs", [corpus], out, rows_per_shard=60, progress=False)
    assert storage.read_json(storage.join(out, published.MANIFEST)) == manifest  # the first output is untouched
    storage.remove_file(storage.join(out, published.CLAIM))
