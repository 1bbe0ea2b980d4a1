"""What stages call: existence, listing, atomic writes, trees, and Parquet/JSON/YAML reading and
writing, for a local path or an s3:// URI alike (the backend is chosen by the URI's scheme)."""

from __future__ import annotations

import fnmatch
import gzip
import io
import json
import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from profile_dist.errors import BadInputError, ConfigError
from profile_dist.schema import conform
from profile_dist.storage.backends import FileInfo, backend
from profile_dist.storage.uri import basename, is_remote, join, local_path, scheme, split_s3

SHARD_PATTERN = "part-{index:05d}.parquet"


# --- bytes and listings --------------------------------------------------------------------------------


def exists(uri: str) -> bool:
    return backend(uri).exists(uri)


def info(uri: str) -> FileInfo | None:
    """Size and content version of a file, or None when it does not exist."""
    return backend(uri).info(uri)


def size(uri: str) -> int:
    found = info(uri)
    if found is None:
        raise FileNotFoundError(uri)
    return found.size


def read_bytes(uri: str, *, decompress: bool = False) -> bytes:
    data = backend(uri).read(uri)
    if decompress and uri.endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise OSError(f"not a valid gzip file ({exc})") from None
    return data


def list_files(directory: str, suffix: str = ".parquet", *, recursive: bool = False) -> list[str]:
    """Files under ``directory`` ending in ``suffix``, sorted; hidden/temp ('.', '_') entries skipped.

    A missing directory (or empty prefix) lists as empty; a missing bucket is an error.
    """
    return sorted(f.uri for f in backend(directory).list(directory, recursive=recursive) if basename(f.uri).endswith(suffix))


#: What a directory or pattern given as an input expands to: data files, not READMEs or _SUCCESS markers.
DATA_SUFFIXES = tuple(s + gz for s in (".parquet", ".jsonl", ".json", ".csv") for gz in ("", ".gz"))
_GLOB_CHARS = "*?["


def expand_inputs(inputs: list[str]) -> list[str]:
    """Input files from files, directories and glob patterns, local or s3://, in the order given.

    A directory (or an S3 prefix that is not itself an object) gives every visible file under it with a
    data suffix (DATA_SUFFIXES), recursively and sorted, so a Hive-style sharded dataset can be named by
    its root. A pattern matches path segment by segment (``*`` never crosses a ``/``). One that gives no
    file is an error naming it; a missing file is left for the caller's own check.
    """
    expanded: list[str] = []
    for given in inputs:
        if any(c in given for c in _GLOB_CHARS):
            found = _glob(given)
            if not found:
                raise BadInputError(given, None, None, "no file matches this pattern")
        elif _is_directory(given):
            found = [f.uri for f in backend(given).list(given, recursive=True) if basename(f.uri).endswith(DATA_SUFFIXES)]
            if not found:
                raise BadInputError(given, None, None, f"a directory with no data files ({', '.join(DATA_SUFFIXES)})")
            found.sort()
        else:
            found = [given]
        expanded.extend(found)
    return expanded


def _is_directory(uri: str) -> bool:
    if not is_remote(uri):
        return os.path.isdir(local_path(uri))
    if split_s3(uri)[1] and backend(uri).info(uri) is not None:  # an object, not a prefix
        return False
    return next(iter(backend(uri).list(uri, recursive=True)), None) is not None


def _glob(pattern: str) -> list[str]:
    segments = pattern.split("/")
    fixed = next(i for i, part in enumerate(segments) if any(c in part for c in _GLOB_CHARS))
    root = "/".join(segments[:fixed]) or "."
    wanted = segments[fixed:]
    found = []
    for entry in backend(root).list(root, recursive=len(wanted) > 1):
        relative = entry.uri[len(root.rstrip("/")) + 1:].split("/")
        if len(relative) == len(wanted) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(relative, wanted)):
            found.append(entry.uri)
    return sorted(found)


def list_infos(directory: str, suffix: str = "", *, recursive: bool = False) -> list[FileInfo]:
    """Like :func:`list_files`, with each file's size and content version."""
    found = [f for f in backend(directory).list(directory, recursive=recursive) if basename(f.uri).endswith(suffix)]
    return sorted(found, key=lambda f: f.uri)


def list_tree(directory: str) -> list[str]:
    """Every file under ``directory``, bookkeeping files ('_', '.') included, sorted (for copying trees)."""
    return sorted(f.uri for f in backend(directory).list_all(directory))


def list_dirs(directory: str) -> list[str]:
    """Names of the immediate subdirectories (S3: common prefixes) of ``directory``, sorted."""
    return backend(directory).list_dirs(directory)


def write_bytes_atomic(data: bytes, uri: str) -> None:
    backend(uri).put(data, uri, exclusive=False)


def write_bytes_exclusive(data: bytes, uri: str) -> bool:
    """Create ``uri`` with ``data`` only if nothing is there; False (and nothing written) otherwise."""
    return backend(uri).put(data, uri, exclusive=True)


def copy_file(source: str, target: str) -> None:
    """Copy one file (server-side within one S3 store); the target appears atomically."""
    if scheme(source) == scheme(target):
        backend(source).copy(source, target)
    else:
        write_bytes_atomic(read_bytes(source), target)


def remove_tree(uri: str) -> None:
    backend(uri).remove_tree(uri)


def remove_file(uri: str) -> None:
    """Delete one file; nothing happens when it is not there."""
    backend(uri).remove_file(uri)


def replace_dir(staged: str, final: str) -> None:
    """Move a fully written staging directory to its final place, replacing what was there.

    Locally one rename. On S3 objects are copied one by one, so a reader may see old and new files
    side by side meanwhile: stages certify a directory with a manifest written after this returns.
    """
    backend(final).replace_dir(staged, final)


# --- formats -------------------------------------------------------------------------------------------


def write_parquet_atomic(table: pa.Table, uri: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_bytes_atomic(buffer.getvalue(), uri)


def write_json_atomic(obj: Any, uri: str) -> None:
    write_bytes_atomic(json_bytes(obj), uri)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def read_yaml(uri: str, what: str) -> Any:
    """A YAML document (a job, audit or endpoints file); a missing or invalid file is a ConfigError naming it."""
    try:
        return yaml.safe_load(read_bytes(uri))
    except FileNotFoundError:
        raise ConfigError(f"{uri}: {what} not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{uri}: not valid YAML: {exc}") from None


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def read_parquet(uri: str, schema: pa.Schema | None = None) -> pa.Table:
    try:
        if is_remote(uri):
            table = pq.read_table(pa.BufferReader(read_bytes(uri)))
        else:
            table = pq.read_table(local_path(uri))
    except pa.ArrowInvalid as exc:  # truncated or corrupt: name the file instead of a pyarrow traceback
        raise BadInputError(uri, None, None, f"not a readable Parquet file ({exc})") from None
    if schema is not None:
        table = conform(table, schema, where=uri)
    return table


def read_table_dir(directory: str, schema: pa.Schema) -> pa.Table:
    """All shards of one table directory concatenated (for small tables such as prompts of a shard)."""
    files = list_files(directory)
    if not files:
        return schema.empty_table()
    return pa.concat_tables([conform(read_parquet(f), schema, where=f) for f in files])


def write_shards(table: pa.Table, directory: str, rows_per_shard: int) -> list[str]:
    """Split ``table`` into ``part-NNNNN.parquet`` shards of at most ``rows_per_shard`` rows."""
    if rows_per_shard <= 0:
        raise ValueError("rows_per_shard must be positive")
    paths = []
    n_shards = max(1, -(-table.num_rows // rows_per_shard))
    for index in range(n_shards):
        shard = table.slice(index * rows_per_shard, rows_per_shard)
        path = join(directory, SHARD_PATTERN.format(index=index))
        write_parquet_atomic(shard, path)
        paths.append(path)
    return paths
