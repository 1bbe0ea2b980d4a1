"""The reply cache: durable per reply, readable after a SIGKILL in the middle of a write."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from profile_dist.llm.cache import ObjectStoreReplyCache, ReplyCache, open_reply_cache


def key(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def test_put_is_visible_to_a_new_reader_before_close(tmp_path):
    cache = ReplyCache(tmp_path)
    cache.put(key(1), {"value": {"score": 3}, "raw": "ünïcode"})
    reader = ReplyCache(tmp_path)  # another process would see the same: the line is already written
    assert reader.get(key(1)) == {"value": {"score": 3}, "raw": "ünïcode"}
    assert key(2) not in reader and reader.get(key(2)) is None
    cache.close()


def test_segments_accumulate_and_a_torn_tail_is_skipped(tmp_path):
    with ReplyCache(tmp_path) as a:
        a.put(key(1), {"v": 1})
    with ReplyCache(tmp_path) as b:
        b.put(key(2), {"v": 2})
    segments = sorted(tmp_path.glob("seg-*.jsonl"))
    assert len(segments) == 2
    with open(segments[0], "ab") as f:  # what a kill during os.write can leave behind
        f.write(b'{"k":"' + key(3).encode() + b'","r":{"v":')
    cache = ReplyCache(tmp_path)
    assert cache.get(key(1)) == {"v": 1} and cache.get(key(2)) == {"v": 2}
    assert key(3) not in cache and cache.torn_lines == 1
    assert len(cache) == 2


WRITER = """
import sys
from profile_dist.llm.cache import ObjectStoreReplyCache, ReplyCache, open_reply_cache
import hashlib
cache = ReplyCache(sys.argv[1], fsync_every_s=3600)
blob = "x" * 20000
i = 0
while True:
    cache.put(hashlib.sha256(str(i).encode()).hexdigest(), {"i": i, "blob": blob})
    i += 1
"""


def test_sigkill_mid_write_loses_nothing_that_was_written(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until it has written a good amount, then kill it mid-stream
            size = sum(p.stat().st_size for p in tmp_path.glob("seg-*.jsonl"))
            if size > 8_000_000:
                break
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    cache = ReplyCache(tmp_path)
    n = len(cache)
    assert n >= 8_000_000 // 20_100
    for i in range(n):  # complete, in order, intact: every record written before the kill is there
        record = cache.get(key(i))
        assert record == {"i": i, "blob": "x" * 20000}
    assert key(n) not in cache
    cache.put(key(n), {"i": n})  # and the directory stays usable
    assert ReplyCache(tmp_path).get(key(n)) == {"i": n}


def test_keys_must_be_digests(tmp_path):
    cache = ReplyCache(Path(tmp_path))
    try:
        cache.put("short", {})
    except ValueError:
        pass
    else:
        raise AssertionError("a non-digest key was accepted")


def test_object_store_urls_are_never_mistaken_for_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        ReplyCache("s3://bucket/out/_llm_cache")
    except ValueError as exc:
        assert "local directory" in str(exc) and "open_reply_cache" in str(exc)
    else:
        raise AssertionError("an s3:// location was taken for a directory")
    assert isinstance(open_reply_cache("s3://bucket/out/_llm_cache", load=False), ObjectStoreReplyCache)
    try:
        open_reply_cache("gs://bucket/cache")
    except ValueError as exc:
        assert "gs://bucket/cache" in str(exc)
    else:
        raise AssertionError("an unsupported scheme was accepted")
    assert not any(tmp_path.iterdir())  # no directory named "s3:" or "gs:" was created
