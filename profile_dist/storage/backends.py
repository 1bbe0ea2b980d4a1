"""The two stores behind one :class:`Backend` protocol: local files and S3 objects, chosen by URI scheme.

Every ``put`` is atomic: a reader never sees a half-written file at a final path. Locally we write a
temporary sibling and rename it (rename is atomic on POSIX); on S3 we send one PutObject, which is
atomic (no multipart upload whose completion could publish a partial object). ``exclusive=True``
creates a path only if nothing is there yet (O_EXCL link locally, ``If-None-Match: *`` on S3), so
concurrent runs cannot overwrite each other's outputs.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import pyarrow.fs as pafs

from profile_dist.errors import ConfigError
from profile_dist.storage.s3 import (
    StorageError, error_code, from_boto, no_such_bucket, s3_client, s3_filesystem, settings_key,
)
from profile_dist.storage.uri import is_visible, join, local_path, scheme, split_s3


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
    def list_all(self, directory: str) -> Iterator[FileInfo]: ...
    def list_dirs(self, directory: str) -> list[str]: ...
    def copy(self, source: str, target: str) -> None: ...
    def remove_tree(self, directory: str) -> None: ...
    def remove_file(self, uri: str) -> None: ...
    def replace_dir(self, staged: str, final: str) -> None: ...


class LocalBackend:
    def exists(self, uri: str) -> bool:
        return os.path.exists(local_path(uri))

    def info(self, uri: str) -> FileInfo | None:
        try:
            st = os.stat(local_path(uri))
        except FileNotFoundError:
            return None
        return FileInfo(uri, st.st_size, str(st.st_mtime_ns))

    def read(self, uri: str) -> bytes:
        path = local_path(uri)
        if os.path.isdir(path):
            raise IsADirectoryError(uri)
        if not os.path.exists(path):
            raise FileNotFoundError(uri)
        with open(path, "rb") as handle:
            return handle.read()

    def put(self, data: bytes, uri: str, *, exclusive: bool) -> bool:
        path = local_path(uri)
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
        root = local_path(directory)
        if not os.path.isdir(root):
            return
        for current, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if is_visible(d)) if recursive else []
            for name in sorted(files):
                if is_visible(name):
                    yield self._entry(directory, root, os.path.join(current, name))

    def list_all(self, directory: str) -> Iterator[FileInfo]:
        """Every file under ``directory``, hidden ones included (for copying trees)."""
        root = local_path(directory)
        for current, _, files in os.walk(root):
            for name in files:
                yield self._entry(directory, root, os.path.join(current, name))

    @staticmethod
    def _entry(directory: str, root: str, path: str) -> FileInfo:
        st = os.stat(path)
        rel = os.path.relpath(path, root)
        return FileInfo(join(directory, *rel.split(os.sep)), st.st_size, str(st.st_mtime_ns))

    def list_dirs(self, directory: str) -> list[str]:
        root = local_path(directory)
        if not os.path.isdir(root):
            return []
        return sorted(name for name in os.listdir(root) if os.path.isdir(os.path.join(root, name)))

    def copy(self, source: str, target: str) -> None:
        self.put(self.read(source), target, exclusive=False)

    def remove_tree(self, directory: str) -> None:
        path = local_path(directory)

        def vanished_is_fine(function: Any, name: str, exc_info: Any) -> None:
            if not isinstance(exc_info[1], FileNotFoundError):
                raise exc_info[1]

        # A task a failed run cancelled may still be finishing a write in there (a temporary file appears, or
        # is renamed away, while the tree is walked): what vanishes is fine, what appears is removed next round.
        for attempt in range(5):
            try:
                shutil.rmtree(path, onerror=vanished_is_fine)
                return
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY or attempt == 4:
                    raise

    def remove_file(self, uri: str) -> None:
        try:
            os.unlink(local_path(uri))
        except FileNotFoundError:
            pass

    def replace_dir(self, staged: str, final: str) -> None:
        self.remove_tree(final)
        pafs.LocalFileSystem().move(local_path(staged), local_path(final))  # one rename


class S3Backend:
    """boto3 for metadata, listing and writes (explicit pagination, conditional PUT, clear errors)."""

    def __init__(self) -> None:
        self._known_buckets: set[tuple[tuple, str]] = set()

    def _check_bucket(self, uri: str) -> None:
        """Raise a clear error if the URI's bucket is missing or unreadable (cached once it is known)."""
        bucket, _ = split_s3(uri)
        key = (settings_key(), bucket)
        if key in self._known_buckets:
            return
        try:
            s3_client().head_bucket(Bucket=bucket)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchBucket"):
                raise no_such_bucket(uri) from None
            raise from_boto(exc, uri) from None
        self._known_buckets.add(key)

    def info(self, uri: str) -> FileInfo | None:
        bucket, key = split_s3(uri)
        try:
            head = s3_client().head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                self._check_bucket(uri)
                return None
            if error_code(exc) == "403":  # HEAD replies carry no error code: ask with a GET to say why
                self.read_range(uri)
            raise from_boto(exc, uri) from None
        return FileInfo(uri, int(head["ContentLength"]), str(head.get("ETag", "")).strip('"'))

    def exists(self, uri: str) -> bool:
        bucket, key = split_s3(uri)
        if key and self.info(uri) is not None:
            return True
        # Not an object: a "directory" exists when some object lives under it.
        try:
            page = s3_client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/" if key else "", MaxKeys=1)
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                raise no_such_bucket(uri) from None
            raise from_boto(exc, uri) from None
        return bool(page.get("KeyCount") or page.get("Contents"))

    def read(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey"):
                self._check_bucket(uri)
                raise FileNotFoundError(uri) from None
            if error_code(exc) == "NoSuchBucket":
                raise no_such_bucket(uri) from None
            raise from_boto(exc, uri) from None

    def read_range(self, uri: str) -> bytes:
        bucket, key = split_s3(uri)
        try:
            return s3_client().get_object(Bucket=bucket, Key=key, Range="bytes=0-0")["Body"].read()
        except Exception as exc:
            raise from_boto(exc, uri) from None

    def put(self, data: bytes, uri: str, *, exclusive: bool) -> bool:
        bucket, key = split_s3(uri)
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        try:
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, **extra)
        except Exception as exc:
            # 412: the key exists; 409: a concurrent conditional write to it is in flight and wins.
            if exclusive and error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                return False
            raise from_boto(exc, uri) from None
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
                    if relative and all(is_visible(part) for part in relative.split("/")):
                        yield FileInfo(f"s3://{bucket}/{entry['Key']}", int(entry["Size"]), str(entry.get("ETag", "")).strip('"'))
        except Exception as exc:  # an empty prefix lists as empty; a missing bucket is an error
            if error_code(exc) == "NoSuchBucket":
                raise no_such_bucket(directory) from None
            raise from_boto(exc, directory) from None

    def list_all(self, directory: str) -> Iterator[FileInfo]:
        """Every object under the prefix, hidden ones included (for copies, deletes and moves)."""
        bucket, key = split_s3(directory)
        prefix = key.rstrip("/") + "/" if key else ""
        try:
            for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield FileInfo(f"s3://{bucket}/{entry['Key']}", int(entry["Size"]), str(entry.get("ETag", "")).strip('"'))
        except Exception as exc:
            raise from_boto(exc, directory) from None

    def list_dirs(self, directory: str) -> list[str]:
        bucket, key = split_s3(directory)
        prefix = key.rstrip("/") + "/" if key else ""
        names = []
        try:
            for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        except Exception as exc:
            if error_code(exc) == "NoSuchBucket":
                raise no_such_bucket(directory) from None
            raise from_boto(exc, directory) from None
        return sorted(names)

    def copy(self, source: str, target: str) -> None:
        src_bucket, src_key = split_s3(source)
        bucket, key = split_s3(target)
        try:
            s3_client().copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": src_bucket, "Key": src_key})
        except Exception as exc:
            raise from_boto(exc, target) from None

    def remove_tree(self, directory: str) -> None:
        self._delete([info.uri for info in self.list_all(directory)], directory)

    def remove_file(self, uri: str) -> None:
        self._delete([uri], uri)  # deleting an absent key is not an error on S3

    def replace_dir(self, staged: str, final: str) -> None:
        """S3 has no rename: every staged object is copied server-side (each copy is atomic), then
        objects of the old version that the new one lacks are deleted, then the staging prefix."""
        staged_root = staged.rstrip("/") + "/"
        new = {f.uri[len(staged_root):]: f.uri for f in self.list_all(staged)}
        for relative, source in sorted(new.items()):
            self.copy(source, join(final, relative))
        final_root = final.rstrip("/") + "/"
        stale = [f.uri for f in self.list_all(final) if f.uri[len(final_root):] not in new]
        self._delete(stale, final)
        self.remove_tree(staged)

    def _delete(self, uris: list[str], directory: str) -> None:
        """Delete objects of one bucket; failures name ``directory``."""
        if not uris:
            return
        bucket, _ = split_s3(directory)
        for start in range(0, len(uris), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": split_s3(u)[1]} for u in uris[start:start + 1000]]
            try:
                s3_client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception as exc:
                raise from_boto(exc, directory) from None


_BACKENDS: dict[str, Backend] = {"file": LocalBackend(), "s3": S3Backend()}


def backend(uri: str) -> Backend:
    name = scheme(uri)
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(f"{uri}: unsupported scheme {name}://; use a local path or s3://") from None


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path for a local path or URI (for Arrow datasets)."""
    if scheme(uri) == "s3":
        bucket, key = split_s3(uri)
        return s3_filesystem(), f"{bucket}/{key}".rstrip("/")
    return pafs.LocalFileSystem(), local_path(uri)
