"""Paths, shard listing and atomic writes, for local paths and s3:// URIs behind one interface.

The one facade the rest of the package uses (``from profile_dist import storage; storage.join(...)``):

- ``uri``: parsing and joining local paths and s3:// URIs;
- ``s3``: the S3 connection settings, cached clients, and store failures mapped to :class:`StorageError`;
- ``backends``: the local and object-store backends (atomic and create-only writes, listing, moves);
- ``files``: what stages call: exists/list/read/write bytes, Parquet, JSON and YAML, trees.
"""

from profile_dist.storage.backends import Backend, FileInfo, LocalBackend, S3Backend, backend, filesystem
from profile_dist.storage.files import (
    DATA_SUFFIXES, SHARD_PATTERN, copy_file, exists, expand_inputs, info, json_bytes, list_dirs, list_files, list_infos, list_tree,
    read_bytes, read_json, read_parquet, read_table_dir, read_yaml, remove_file, remove_tree, replace_dir, size,
    write_bytes_atomic, write_bytes_exclusive, write_json_atomic, write_parquet_atomic, write_shards,
)
from profile_dist.storage.s3 import (
    CONNECT_TIMEOUT_S, READ_TIMEOUT_S, WORKER_ENV_VARS, CorruptObjectError, StorageError, arrow_errors, s3_client,
    s3_endpoint, set_s3_endpoint, worker_env,
)
from profile_dist.storage.uri import absolute, basename, is_remote, join, scheme, split_s3

__all__ = [
    "Backend", "FileInfo", "LocalBackend", "S3Backend", "backend", "filesystem",
    "DATA_SUFFIXES", "SHARD_PATTERN", "copy_file", "exists", "expand_inputs", "info", "json_bytes", "list_dirs", "list_files", "list_infos",
    "list_tree", "read_bytes", "read_json", "read_parquet", "read_table_dir", "read_yaml", "remove_file", "remove_tree",
    "replace_dir", "size", "write_bytes_atomic", "write_bytes_exclusive", "write_json_atomic",
    "write_parquet_atomic", "write_shards",
    "CONNECT_TIMEOUT_S", "READ_TIMEOUT_S", "WORKER_ENV_VARS", "CorruptObjectError", "StorageError", "arrow_errors",
    "s3_client", "s3_endpoint", "set_s3_endpoint", "worker_env",
    "absolute", "basename", "is_remote", "join", "scheme", "split_s3",
]
