"""Content-addressed, append-only reply cache that survives a SIGKILL at any moment.

Layout: ``<cache_dir>/seg-<utc time>-<pid>-<random>.jsonl``. Each process appends to a segment of its own
(so writers never interleave), one JSON line per reply: ``{"k": <request key>, "r": <record>}``. A line is
written with a single ``os.write`` on an ``O_APPEND`` descriptor as soon as the reply arrives: once the
call returns the bytes belong to the kernel, so killing the process loses nothing written; a kill during
the call can at worst leave one torn last line, which readers skip (no newline, or not JSON). ``fsync`` runs
every ``fsync_every_s`` seconds and on close, which bounds what an OS crash (not a process kill) can lose.
A key appearing twice (two runs that raced) is harmless: the records are equivalent; the last one wins.

Records are kept as their raw line in memory and parsed on lookup (about 200 bytes per entry).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

_PREFIX = "seg-"
_SUFFIX = ".jsonl"


def _read_segment(path: Path) -> Iterator[tuple[str, bytes] | None]:
    """(key, line) per complete line; None per skipped (torn) piece."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    if lines[-1]:
        yield None  # bytes after the last newline: a write cut short by a kill
    for line in lines[:-1]:
        # Framing check only (keys are 64 hex characters); the body is parsed on lookup.
        if line.startswith(b'{"k":"') and line[70:76] == b'","r":' and line.endswith(b"}"):
            yield line[6:70].decode("ascii", "replace"), line
        elif line:
            yield None


class ReplyCache:
    def __init__(self, cache_dir: str | os.PathLike[str], fsync_every_s: float = 2.0, load: bool = True) -> None:
        if "://" in os.fspath(cache_dir):
            # Appends and fsync need a filesystem; an object-store cache is not implemented yet.
            raise ValueError(f"the LLM reply cache needs a local or shared-filesystem directory, got {cache_dir!r}")
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync_every_s = fsync_every_s
        self._lines: dict[str, bytes] = {}
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._dirty = False
        self.torn_lines = 0
        if load:  # a writer that only appends (a worker) skips reading what is there
            self.reload()

    def reload(self) -> None:
        """Read every segment (also those other processes wrote since)."""
        self.torn_lines = 0
        for path in sorted(self.dir.glob(f"{_PREFIX}*{_SUFFIX}")):
            for item in _read_segment(path):
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
        self._lines[key] = json.dumps({"k": key, "r": record}, ensure_ascii=False, separators=(",", ":")).encode()

    def keys(self) -> Iterable[str]:
        return self._lines.keys()

    def put(self, key: str, record: dict[str, Any]) -> None:
        if len(key) != 64:
            raise ValueError("cache keys are sha256 hex digests")
        line = json.dumps({"k": key, "r": record}, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        if self._fd is None:
            name = f"{_PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(4)}"
            self._fd = os.open(self.dir / f"{name}{_SUFFIX}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
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

    def __enter__(self) -> "ReplyCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
