"""Paths, shard listing and atomic writes, for local paths and s3:// URIs behind one interface.

Every final path is written atomically: a reader never sees a half-written file there. Locally we
write a temporary sibling and rename it (rename is atomic on POSIX); on S3 a single PUT is atomic.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SHARD_PATTERN = "part-{index:05d}.parquet"


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and in-filesystem path for a local path or URI."""
    if uri.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        fs = pafs.S3FileSystem(endpoint_override=endpoint, region=region) if endpoint else pafs.S3FileSystem(region=region)
        return fs, uri[len("s3://"):]
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def size(uri: str) -> int:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).size


def read_bytes(uri: str, *, decompress: bool = False) -> bytes:
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(uri)
    if info.type == pafs.FileType.Directory:
        raise IsADirectoryError(uri)
    with fs.open_input_stream(path, compression=None) as stream:  # we decompress: clearer errors
        data = stream.read()
    if decompress and uri.endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise OSError(f"not a valid gzip file ({exc})") from None
    return data


def list_files(directory: str, suffix: str = ".parquet") -> list[str]:
    """Files directly under ``directory`` ending in ``suffix``, sorted by name; hidden/temp files skipped."""
    fs, path = filesystem(directory)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return []
    selector = pafs.FileSelector(path, recursive=False)
    names = sorted(
        entry.base_name for entry in fs.get_file_info(selector)
        if entry.type == pafs.FileType.File and entry.base_name.endswith(suffix) and not entry.base_name.startswith((".", "_"))
    )
    return [join(directory, name) for name in names]


def write_bytes_atomic(data: bytes, uri: str) -> None:
    fs, path = filesystem(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}-{path.rsplit('/', 1)[-1]}"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    else:
        with fs.open_output_stream(path) as stream:  # one PUT: atomic on object stores
            stream.write(data)


def write_parquet_atomic(table: pa.Table, uri: str) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    write_bytes_atomic(buffer.getvalue(), uri)


def write_json_atomic(obj: Any, uri: str) -> None:
    write_bytes_atomic(json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), uri)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def read_parquet(uri: str, schema: pa.Schema | None = None) -> pa.Table:
    fs, path = filesystem(uri)
    table = pq.read_table(path, filesystem=fs)
    if schema is not None:
        from profile_dist.schema import conform

        table = conform(table, schema, where=uri)
    return table


def read_table_dir(directory: str, schema: pa.Schema) -> pa.Table:
    """All shards of one table directory concatenated (for small tables such as prompts of a shard)."""
    from profile_dist.schema import conform

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


def remove_tree(uri: str) -> None:
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def replace_dir(staged: str, final: str) -> None:
    """Move a fully written staging directory to its final place, replacing what was there."""
    fs, staged_path = filesystem(staged)
    _, final_path = filesystem(final)
    if fs.get_file_info(final_path).type != pafs.FileType.NotFound:
        fs.delete_dir(final_path)
    fs.move(staged_path, final_path)
