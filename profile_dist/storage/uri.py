"""Local paths and s3:// URIs as plain strings: scheme, bucket/key, joining, base names."""

from __future__ import annotations

import os

from profile_dist.errors import ConfigError


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


def local_path(uri: str) -> str:
    """The absolute local path of a local path or file:// URI."""
    return os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)


def absolute(uri: str) -> str:
    """A local path made absolute against this process's working directory; an s3:// URI unchanged.

    Stages resolve their paths with it before handing them to Ray tasks: a worker resolves a relative path
    against its own working directory (where the cluster was started), not the driver's, so it would read
    the wrong files and write outputs and ``.staging-*`` areas there."""
    return uri if is_remote(uri) else local_path(uri)


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def is_visible(name: str) -> bool:
    """Temporary, staging and bookkeeping entries start with '.' or '_' and are never data."""
    return not name.startswith((".", "_"))
