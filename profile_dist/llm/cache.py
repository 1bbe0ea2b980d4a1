"""Content-addressed, append-only reply caches: a local directory that survives a SIGKILL at any moment,
and an object-store prefix (s3://) that every node of a cluster reads and writes.

:func:`open_reply_cache` picks the kind from the location's scheme. Both hold the same segments of JSON
lines, ``{"k": <request key>, "r": <record>}``, and index them by key; only successes and failures that
are final by nature are ever written (:data:`profile_dist.llm.request.FINAL_FAILURES`).

Local (:class:`ReplyCache`). Layout: ``<cache_dir>/seg-<utc time>-<pid>-<random>.jsonl``. Each process appends to a segment of its own
(so writers never interleave), one JSON line per reply: ``{"k": <request key>, "r": <record>}``. A line is
written with a single ``os.write`` on an ``O_APPEND`` descriptor as soon as the reply arrives: once the
call returns the bytes belong to the kernel, so killing the process loses nothing written; a kill during
the call can at worst leave one torn last line, which readers skip (no newline, or not JSON). ``fsync`` runs
every ``fsync_every_s`` seconds and on close, which bounds what an OS crash (not a process kill) can lose.
A key appearing twice (two runs that raced) is harmless: the records are equivalent; the last one wins.

Records are kept as their raw line in memory and parsed on lookup (about 200 bytes per entry).

Object store (:class:`ObjectStoreReplyCache`). Objects cannot be appended to, and one object per reply
would cost a PUT per request and a GET per reply on every later load. So a writer keeps its new lines in
memory and writes them as one new segment object (``seg-...jsonl``, one PUT, atomic, a unique name, so
writers never collide) at each ``sync``: the engine syncs at the end of every run, which the annotate
stage makes once per shard, and besides every ``flush_every_s`` seconds or ``flush_records`` replies. A
driver killed mid-shard therefore pays again for at most what it received since its last segment. A load
lists the prefix and reads the segments it has not read yet, in parallel.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from profile_dist import storage

_PREFIX = "seg-"
_SUFFIX = ".jsonl"
_READERS = 8  # segment objects fetched at once


def _segment_name() -> str:
    return f"{_PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"


def _line(key: str, record: dict[str, Any]) -> bytes:
    if len(key) != 64:
        raise ValueError("cache keys are sha256 hex digests")
    return json.dumps({"k": key, "r": record}, ensure_ascii=False, separators=(",", ":")).encode()


def _read_segment(path: Path) -> Iterator[tuple[str, bytes] | None]:
    """(key, line) per complete line of a local segment; None per skipped (torn) piece."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    yield from _parse_segment(data)


def _parse_segment(data: bytes) -> Iterator[tuple[str, bytes] | None]:
    lines = data.split(b"\n")
    if lines[-1]:
        yield None  # bytes after the last newline: a write cut short by a kill
    for line in lines[:-1]:
        # Framing check only (keys are 64 hex characters); the body is parsed on lookup.
        if line.startswith(b'{"k":"') and line[70:76] == b'","r":' and line.endswith(b"}"):
            yield line[6:70].decode("ascii", "replace"), line
        elif line:
            yield None


class _Index:
    """Key -> raw line of every record read or written; what both cache kinds share."""

    #: Where a worker process on the driver's node may append replies itself (None: only the driver writes).
    local_dir: str | None = None
    #: Writes reach the store in batches (``sync``), not one by one.
    batched = False

    def __init__(self) -> None:
        self._lines: dict[str, bytes] = {}
        self.torn_lines = 0

    def _index(self, items: Iterable[tuple[str, bytes] | None]) -> None:
        for item in items:
            if item is None:
                self.torn_lines += 1
            else:
                self._lines[item[0]] = item[1]

    def __len__(self) -> int:
        return len(self._lines)

    def __contains__(self, key: str) -> bool:
        return key in self._lines

    def get(self, key: str) -> dict[str, Any] | None:
        line = self._lines.get(key)
        if line is None:
            return None
        try:
            return json.loads(line)["r"]
        except (ValueError, KeyError):
            # Valid framing, broken body: treat as absent (the request is simply paid again).
            del self._lines[key]
            self.torn_lines += 1
            return None

    def remember(self, key: str, record: dict[str, Any]) -> None:
        """Index a record that another process of this run already wrote (no write here)."""
        self._lines[key] = _line(key, record)

    def keys(self) -> Iterable[str]:
        return self._lines.keys()

    def __enter__(self) -> "_Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]


class ReplyCache(_Index):
    """A local (or shared-filesystem) directory of append-only segments, one per writing process."""

    def __init__(self, cache_dir: str | os.PathLike[str], fsync_every_s: float = 2.0, load: bool = True) -> None:
        super().__init__()
        if "://" in os.fspath(cache_dir) and not os.fspath(cache_dir).startswith("file://"):
            raise ValueError(f"a ReplyCache is a local directory, got {cache_dir!r}; use open_reply_cache")
        self.dir = Path(os.fspath(cache_dir).removeprefix("file://"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.local_dir = os.path.abspath(self.dir)
        self.fsync_every_s = fsync_every_s
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._dirty = False
        if load:  # a writer that only appends (a worker) skips reading what is there
            self.reload()

    def reload(self) -> None:
        """Read every segment (also those other processes wrote since)."""
        self.torn_lines = 0
        for path in sorted(self.dir.glob(f"{_PREFIX}*{_SUFFIX}")):
            self._index(_read_segment(path))

    def put(self, key: str, record: dict[str, Any]) -> None:
        line = _line(key, record) + b"\n"
        if self._fd is None:
            self._fd = os.open(self.dir / _segment_name(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        view = memoryview(line)
        while view:  # os.write may be partial for very large lines
            n = os.write(self._fd, view)
            view = view[n:]
        self._lines[key] = line[:-1]
        self._dirty = True
        if time.monotonic() - self._last_sync > self.fsync_every_s:
            self.sync()

    def sync(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = time.monotonic()

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None


class ObjectStoreReplyCache(_Index):
    """An object-store prefix (``s3://bucket/path``) of segment objects, written in batches."""

    batched = True

    def __init__(self, uri: str, flush_every_s: float = 30.0, flush_records: int = 5000, load: bool = True) -> None:
        super().__init__()
        self.dir = uri.rstrip("/")
        self.flush_every_s = flush_every_s
        self.flush_records = flush_records
        self._pending: list[bytes] = []
        self._last_sync = time.monotonic()
        self._read: set[str] = set()  # segment objects already indexed
        self.segments_written = 0
        if load:
            self.reload()

    def reload(self) -> None:
        """Read the segments not read yet (also those other processes wrote since)."""
        new = [f.uri for f in storage.list_infos(self.dir, _SUFFIX) if f.uri not in self._read
               and storage.basename(f.uri).startswith(_PREFIX)]
        if not new:
            return
        with concurrent.futures.ThreadPoolExecutor(min(_READERS, len(new))) as pool:
            for uri, data in zip(new, pool.map(storage.read_bytes, new)):
                self._index(_parse_segment(data))
                self._read.add(uri)

    def put(self, key: str, record: dict[str, Any]) -> None:
        line = _line(key, record)
        self._lines[key] = line
        self._pending.append(line)
        if len(self._pending) >= self.flush_records or time.monotonic() - self._last_sync > self.flush_every_s:
            self.sync()

    def sync(self) -> None:
        """Write what was put since the last sync as one new segment object."""
        if self._pending:
            uri = storage.join(self.dir, _segment_name())
            storage.write_bytes_atomic(b"\n".join(self._pending) + b"\n", uri)
            self._read.add(uri)  # ours: already indexed
            self._pending = []
            self.segments_written += 1
        self._last_sync = time.monotonic()

    def close(self) -> None:
        self.sync()


#: The cache kind of each storage scheme.
CACHE_KINDS: dict[str, type[_Index]] = {"file": ReplyCache, "s3": ObjectStoreReplyCache}


def open_reply_cache(location: str | os.PathLike[str], **options: Any) -> ReplyCache | ObjectStoreReplyCache:
    """The reply cache at ``location``: a local directory, or an ``s3://`` prefix."""
    location = os.fspath(location)
    kind = CACHE_KINDS.get(storage.scheme(location))
    if kind is None:
        raise ValueError(f"no LLM reply cache for {location!r}: use a local directory or s3://")
    return kind(location, **options)  # type: ignore[return-value]


def default_cache_location(output: str, cache_dir: str | None = None) -> str:
    """``cache_dir``, else ``_llm_cache`` beside the output (on the output's own store, s3:// included)."""
    return cache_dir or storage.join(output, "_llm_cache")
