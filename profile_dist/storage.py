"""Paths, shard listing and atomic writes, for local paths and s3:// URIs behind one interface.

Every final path is written atomically: a reader never sees a half-written file there. Locally we
write a temporary sibling and rename it (rename is atomic on POSIX); on S3 we send one PutObject,
which is atomic (no multipart upload whose completion could publish a partial object).
``write_bytes_exclusive`` creates a path only if nothing is there yet (O_EXCL link locally,
``If-None-Match: *`` on S3), so concurrent runs cannot overwrite each other's outputs.

S3 uses the standard AWS credential chain (environment, ~/.aws, instance profile) and honours
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores (``--s3-endpoint-url``).
Failures become a :class:`StorageError` that names the URI and says what to check, after at most
``AWS_MAX_ATTEMPTS`` (default 3) tries with short timeouts, so a wrong endpoint fails in seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from profile_dist.errors import ConfigError, ProfileDistError

SHARD_PATTERN = "part-{index:05d}.parquet"

#: Environment a Ray worker needs to reach the same store as the driver. Credentials are left out on
#: purpose (they would be visible in the Ray dashboard): workers use their own chain, e.g. the
#: cluster's instance profile, or inherit the environment of a local Ray started by the driver.
WORKER_ENV_VARS = (
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
    "AWS_MAX_ATTEMPTS", "AWS_EC2_METADATA_DISABLED",
)
_CREDENTIAL_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE")
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0


class StorageError(ProfileDistError):
    """A store operation failed; the message names the URI and what to check."""

    def __init__(self, uri: str, reason: str):
        self.uri = uri
        self.reason = reason
        super().__init__(f"{uri}: {reason}")

    def __reduce__(self):  # crosses Ray task boundaries intact
        return (type(self), (self.uri, self.reason))


# --- URIs ------------------------------------------------------------------------------------------


def scheme(uri: str) -> str:
    """'s3' for s3://..., 'file' for local paths and file://... ."""
    return uri.split("://", 1)[0] if "://" in uri else "file"


def is_remote(uri: str) -> bool:
    return scheme(uri) != "file"


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URI; the key has no leading slash and may be empty."""
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"{uri}: an s3:// URI needs a bucket name (s3://BUCKET/KEY)")
    return bucket, key


def _local(uri: str) -> str:
    return os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _visible(name: str) -> bool:
    """Temporary, staging and bookkeeping entries start with '.' or '_' and are never data."""
    return not name.startswith((".", "_"))


# --- S3 connection settings -----------------------------------------------------------------------


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def set_s3_endpoint(url: str) -> None:
    """Point this process (and, through :func:`worker_env`, its Ray workers) at an S3-compatible store.

    Sets ``AWS_ENDPOINT_URL_S3`` (the S3-specific variable, so STS and other AWS services keep their
    own endpoints) and ``AWS_ENDPOINT_URL`` for tools that only read the generic one.
    """
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(f"--s3-endpoint-url {url!r}: expected http(s)://HOST[:PORT]")
    os.environ["AWS_ENDPOINT_URL_S3"] = url
    os.environ["AWS_ENDPOINT_URL"] = url


def worker_env() -> dict[str, str]:
    """The S3 settings (never credentials) a Ray worker must share with the driver."""
    return {name: os.environ[name] for name in WORKER_ENV_VARS if os.environ.get(name)}


def _settings_key() -> tuple:
    # Clients are cached per process; changing any setting or credential yields a fresh client.
    return tuple(os.environ.get(name) for name in (*WORKER_ENV_VARS, *_CREDENTIAL_ENV_VARS))


def _region() -> str | None:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    return "us-east-1" if s3_endpoint() else None  # S3-compatible stores rarely care; AWS resolves it


def _max_attempts() -> int:
    try:
        return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS", "3")))
    except ValueError:
        raise ConfigError(f"AWS_MAX_ATTEMPTS={os.environ['AWS_MAX_ATTEMPTS']!r}: expected an integer") from None


_lock = threading.Lock()
_clients: dict[tuple, Any] = {}
_arrow_fs: dict[tuple, pafs.S3FileSystem] = {}
_known_buckets: set[tuple[tuple, str]] = set()


def s3_client():
    """A boto3 S3 client for the current settings (standard credential chain, short timeouts)."""
    key = _settings_key()
    with _lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            import botocore.config

            config = botocore.config.Config(
                connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                retries={"mode": "standard", "max_attempts": _max_attempts()},
            )
            client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint(), region_name=_region(), config=config)
            _clients[key] = client
        return client


def _s3_filesystem() -> pafs.S3FileSystem:
    key = _settings_key()
    with _lock:
        fs = _arrow_fs.get(key)
        if fs is None:
            options: dict[str, Any] = {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=_max_attempts()),
            }
            region = _region()
            if region:
                options["region"] = region
            endpoint = s3_endpoint()
            if endpoint:
                options["endpoint_override"] = endpoint
            fs = pafs.S3FileSystem(**options)
            _arrow_fs[key] = fs
        return fs


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for a local path or URI (for Arrow datasets)."""
    if scheme(uri) == "s3":
        bucket, key = split_s3(uri)
        return _s3_filesystem(), f"{bucket}/{key}".rstrip("/")
    return pafs.LocalFileSystem(), _local(uri)


# --- turning store failures into errors a user can act on --------------------------------------------

_CREDENTIALS = "the credentials were rejected: check AWS_PROFILE / AWS_ACCESS_KEY_ID or the instance profile"
_ERROR_REASONS = {
    # error code (lower case, no separators) -> what to tell the user
    "invalidaccesskeyid": _CREDENTIALS + " (unknown access key id)",
    "signaturedoesnotmatch": _CREDENTIALS + " (wrong secret key)",
    "expiredtoken": _CREDENTIALS + " (the session token has expired)",
    "invalidtoken": _CREDENTIALS + " (invalid session token)",
    "accessdenied": "access denied: the credentials lack permission for this bucket or prefix",
    "403": "access denied (HTTP 403): the credentials were rejected or lack permission for this bucket or prefix",
    "nosuchbucket": "bucket {bucket!r} does not exist{where}",
    "slowdown": "the store is throttling requests (SlowDown) after {attempts} attempt(s); rerun later: finished shards are kept",
    "serviceunavailable": "the store is unavailable (HTTP 503) after {attempts} attempt(s); rerun later: finished shards are kept",
    "internalerror": "the store failed (HTTP 500) after {attempts} attempt(s); rerun later: finished shards are kept",
    "networkconnection": "cannot reach the S3 endpoint{where}; check --s3-endpoint-url / AWS_ENDPOINT_URL and the network",
}


def _where() -> str:
    endpoint = s3_endpoint()
    return f" at {endpoint}" if endpoint else ""


def _reason(code: str, uri: str, detail: str = "") -> str:
    normalized = re.sub(r"[^a-z0-9]", "", code.lower())
    bucket = split_s3(uri)[0] if uri.startswith("s3://") else ""
    template = _ERROR_REASONS.get(normalized)
    if template is None:
        if normalized.startswith("5"):
            template = _ERROR_REASONS["internalerror"]
        else:
            return f"S3 error {code}{_where()}: {detail or 'no detail'}"
    return template.format(bucket=bucket, where=_where(), attempts=_max_attempts())


def _from_boto(exc: Exception, uri: str) -> StorageError:
    import botocore.exceptions as bex

    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        return StorageError(uri, _reason(str(error.get("Code", "unknown")), uri, str(error.get("Message", ""))))
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return StorageError(uri, "no AWS credentials found (environment, ~/.aws or instance profile): " + str(exc))
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ConnectionClosedError)):
        return StorageError(uri, _reason("networkconnection", uri))
    if isinstance(exc, bex.ReadTimeoutError):
        return StorageError(uri, f"the S3 endpoint{_where()} did not answer within {READ_TIMEOUT_S:.0f} s")
    if isinstance(exc, bex.BotoCoreError):
        return StorageError(uri, f"S3 request failed{_where()}: {exc}")
    raise exc


@contextlib.contextmanager
def arrow_errors(uri: str) -> Iterator[None]:
    """Around pyarrow reads that go to the store directly (datasets): its OSErrors on s3:// become
    StorageErrors naming ``uri`` (the store unreachable, a failing request), a corrupt file a BadInputError
    (pyarrow's message names the file), not tracebacks."""
    try:
        yield
    except pa.ArrowInvalid as exc:  # a corrupt file among the dataset's: pyarrow's message names it
        from profile_dist.errors import BadInputError

        raise BadInputError(uri, None, None, f"not a readable Parquet file ({exc})") from None
    except OSError as exc:
        if not is_remote(uri) or isinstance(exc, StorageError):
            raise
        text = str(exc)
        if "NETWORK_CONNECTION" in text or "Could not connect" in text or "Connection refused" in text:
            raise StorageError(uri, _reason("networkconnection", uri)) from None
        raise StorageError(uri, f"S3 read failed{_where()}: {text[:500]}") from None


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# --- backends --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    uri: str
    size: int
    version: str  # changes when the content changes: ETag on S3, mtime_ns locally


class Backend(Protocol):
    def exists(self, uri: str) -> bool: ...
    def info(self, uri: str) -> FileInfo | None: ...
    def read(self, uri: str) -> bytes: ...
    def put(self, data: bytes, uri: str, *, exclusive: bool) -> bool: ...
    def list(self, directory: str, *, recursive: bool) -> Iterator[FileInfo]: ...
    def list_dirs(self, directory: str) -> list[str]: ...
    def copy(self, source: str, target: str) -> None: ...
    def remove_tree(self, directory: str) -> None: ...


class LocalBackend:
    def exists(self, uri: str) -> bool:
        return os.path.exists(_local(uri))

    def info(self, uri: str) -> FileInfo | None:
        try:
            st = os.stat(_local(uri))
        except FileNotFoundError:
            return None
        return FileInfo(uri, st.st_size, str(st.st_mtime_ns))

    def read(self, uri: str) -> bytes:
        path = _local(uri)
        if os.path.isdir(path):
            raise IsADirectoryError(uri)
        if not os.path.exists(path):
            raise FileNotFoundError(uri)
        with open(path, "rb") as handle:
            return handle.read()

    def put(self, data: bytes, uri: str, *, exclusive: bool) -> bool:
        path = _local(uri)
        parent = os.path.dirname(path)
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic and fails if the path exists: create-only with full content
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
        return True

    def list(self, directory: str, *, recursive: bool) -> Iterator[FileInfo]:
        root = _local(directory)
        if not os.path.isdir(root):
            return
        for current, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if _visible(d)) if recursive else []
            for name in sorted(files):
                if _visible(name):
                    st = os.stat(os.path.join(current, name))
                    rel = os.path.relpath(os.path.join(current, name), root)
                    yield FileInfo(join(directory, *rel.split(os.sep)), st.st_size, str(st.st_mtime_ns))

    def list_dirs(self, directory: str) -> list[str]:
        root = _local(directory)
        if not os.path.isdir(root):
            return []
        return sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))

    def copy(self, source: str, target: str) -> None:
        self.put(self.read(source), target, exclusive=False)

    def remove_tree(self, directory: str) -> None:
        fs = pafs.LocalFileSystem()
        path = _local(directory)
        if fs.get_file_info(path).type != pafs.FileType.NotFound:
            fs.delete_dir(path)


class S3Backend:
    """boto3 for metadata, listing and writes (explicit pagination, conditional PUT, clear errors)."""

    def _check_bucket(self, uri: str) -> None:
        """Raise a clear error if the URI's bucket is missing or unreadable (cached once it is known)."""
        bucket, _ = split_s3(uri)
        key = (_settings_key(), bucket)
        if key in _known_buckets:
            return
        try:
            s3_client().head_bucket(Bucket=bucket)
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchBucket"):
                raise StorageError(uri, _reason("nosuchbucket", uri)) from None
            raise _from_boto(exc, uri) from None
        _known_buckets.add(key)

    def info(self, uri: str) -> FileInfo | None:
        bucket, key = split_s3(uri)
        try:
            head = s3_client().head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                self._check_bucket(uri)
                return None
            if _code(exc) == "403":  # HEAD replies carry no error code: ask with a GET to say why
                self.read_range(uri)
            raise _from_boto(exc, uri) from None
        return FileInfo(uri, int(head["ContentLength"]), str(head.get("ETag", "")).strip('"'))

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3(uri)
        if key and self.info(uri) is not None:
            return True
        # Not an object: a "directory" exists when some object lives under it.
        try:
            page = s3_client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/" if key else "", MaxKeys=1)
        except Exception as exc:
            if _code(exc) == "NoSuchBucket":
                raise StorageError(uri, _reason("nosuchbucket", uri)) from None
            raise _from_boto(exc, uri) from None
        return bool(page.get("KeyCount") or page.get("Contents"))

    def read(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey"):
                self._check_bucket(uri)
                raise FileNotFoundError(uri) from None
            if _code(exc) == "NoSuchBucket":
                raise StorageError(uri, _reason("nosuchbucket", uri)) from None
            raise _from_boto(exc, uri) from None

    def read_range(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].read()
        except Exception as exc:
            raise _from_boto(exc, uri) from None

    def put(self, data: bytes, uri: str, *, exclusive: bool) -> bool:
        bucket, key = split_s3(uri)
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except Exception as exc:
            # 412: the key exists; 409: a concurrent conditional write to it is in flight and wins.
            if exclusive and _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise _from_boto(exc, uri) from None
        return True

    def list(self, directory: str, *, recursive: bool) -> Iterator[FileInfo]:
        bucket, key = split_s3(directory)
        prefix = key.rstrip("/") + "/" if key else ""
        options = {"Bucket": bucket, "Prefix": prefix}
        if not recursive:
            options["Delimiter"] = "/"
        try:
            # The paginator follows continuation tokens: 1,000 keys per page, any number of pages.
            for page in s3_client().get_paginator("list_objects_v2").paginate(**options):
                for entry in page.get("Contents", []):
                    relative = entry["Key"][len(prefix):]
                    if relative and all(_visible(part) for part in relative.split("/")):
                        yield FileInfo(f"s3://{bucket}/{entry['Key']}", int(entry["Size"]), str(entry.get("ETag", "")).strip('"'))
        except Exception as exc:  # an empty prefix lists as empty; a missing bucket is an error
            if _code(exc) == "NoSuchBucket":
                raise StorageError(directory, _reason("nosuchbucket", directory)) from None
            raise _from_boto(exc, directory) from None

    def list_dirs(self, directory: str) -> list[str]:
        bucket, key = split_s3(directory)
        prefix = key.rstrip("/") + "/" if key else ""
        names = []
        try:
            for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        except Exception as exc:
            if _code(exc) == "NoSuchBucket":
                raise StorageError(directory, _reason("nosuchbucket", directory)) from None
            raise _from_boto(exc, directory) from None
        return sorted(names)

    def copy(self, source: str, target: str) -> None:
        src_bucket, src_key = split_s3(source)
        bucket, key = split_s3(target)
        try:
            s3_client().copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": src_bucket, "Key": src_key})
        except Exception as exc:
            raise _from_boto(exc, target) from None

    def remove_tree(self, directory: str) -> None:
        bucket, _ = split_s3(directory)
        keys = [split_s3(info.uri)[1] for info in self._all(directory)]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            try:
                s3_client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise _from_boto(exc, directory) from None

    def _all(self, directory: str) -> Iterator[FileInfo]:
        """Every object under the prefix, hidden ones included (for deletes and moves)."""
        bucket, key = split_s3(directory)
        prefix = key.rstrip("/") + "/" if key else ""
        try:
            for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield FileInfo(f"s3://{bucket}/{entry['Key']}", int(entry["Size"]), str(entry.get("ETag", "")).strip('"'))
        except Exception as exc:
            raise _from_boto(exc, directory) from None


_BACKENDS: dict[str, Backend] = {"file": LocalBackend(), "s3": S3Backend()}


def backend(uri: str) -> Backend:
    name = scheme(uri)
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(f"{uri}: unsupported scheme {name}://; use a local path or s3://") from None


# --- the interface every stage uses ------------------------------------------------------------------


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


def list_infos(directory: str, suffix: str = "", *, recursive: bool = False) -> list[FileInfo]:
    """Like :func:`list_files`, with each file's size and content version."""
    found = [f for f in backend(directory).list(directory, recursive=recursive) if basename(f.uri).endswith(suffix)]
    return sorted(found, key=lambda f: f.uri)


def list_tree(directory: str) -> list[str]:
    """Every file under ``directory``, bookkeeping files ('_', '.') included, sorted (for copying trees)."""
    if scheme(directory) == "s3":
        store = backend(directory)
        assert isinstance(store, S3Backend)
        return sorted(f.uri for f in store._all(directory))
    root = _local(directory)
    found = []
    for current, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(current, name), root)
            found.append(join(directory, *rel.split(os.sep)))
    return sorted(found)


def list_dirs(directory: str) -> list[str]:
    """Names of the immediate subdirectories (S3: common prefixes) of ``directory``, sorted."""
    return backend(directory).list_dirs(directory)


def write_bytes_atomic(data: bytes, uri: str) -> None:
    backend(uri).put(data, uri, exclusive=False)


def write_bytes_exclusive(data: bytes, uri: str) -> bool:
    """Create ``uri`` with ``data`` only if nothing is there; False (and nothing written) otherwise."""
    return backend(uri).put(data, uri, exclusive=True)


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
    import yaml

    from profile_dist.errors import ConfigError

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
            table = pq.read_table(_local(uri))
    except pa.ArrowInvalid as exc:  # truncated or corrupt: name the file instead of a pyarrow traceback
        from profile_dist.errors import BadInputError

        raise BadInputError(uri, None, None, f"not a readable Parquet file ({exc})") from None
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
    if scheme(uri) == "s3":
        bucket, key = split_s3(uri)
        try:
            s3_client().delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise _from_boto(exc, uri) from None
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(_local(uri))


def replace_dir(staged: str, final: str) -> None:
    """Move a fully written staging directory to its final place, replacing what was there.

    Locally one rename. S3 has no rename: every staged object is copied server-side (each copy is
    atomic), then objects of the old version that the new one lacks are deleted, then the staging
    prefix. A reader may see old and new files side by side meanwhile, so stages certify a directory
    with a manifest written after this returns.
    """
    if not is_remote(final):
        fs = pafs.LocalFileSystem()
        staged_path, final_path = _local(staged), _local(final)
        if fs.get_file_info(final_path).type != pafs.FileType.NotFound:
            fs.delete_dir(final_path)
        fs.move(staged_path, final_path)
        return
    store = backend(final)
    assert isinstance(store, S3Backend)
    staged_root = staged.rstrip("/") + "/"
    new = {f.uri[len(staged_root):]: f.uri for f in store._all(staged)}
    for relative, source in sorted(new.items()):
        store.copy(source, join(final, relative))
    final_root = final.rstrip("/") + "/"
    stale = [f.uri for f in store._all(final) if f.uri[len(final_root):] not in new]
    if stale:
        bucket, _ = split_s3(final)
        for start in range(0, len(stale), 1000):
            batch = [{"Key": split_s3(u)[1]} for u in stale[start:start + 1000]]
            try:
                s3_client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise _from_boto(exc, final) from None
    store.remove_tree(staged)
