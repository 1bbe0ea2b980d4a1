"""The S3 connection (settings, cached boto3 and Arrow clients) and the mapping of its failures to
:class:`StorageError`s that name the URI and say what to check.

S3 uses the standard AWS credential chain (environment, ~/.aws, instance profile) and honours
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores (``--s3-endpoint-url``).
A failing request is tried at most ``AWS_MAX_ATTEMPTS`` (default 3) times with short timeouts, so a
wrong endpoint fails in seconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.fs as pafs

from profile_dist.errors import BadInputError, ConfigError, ProfileDistError
from profile_dist.storage.uri import is_remote, split_s3

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


class CorruptObjectError(StorageError):
    """An object's bytes do not match the checksum stored with it: its content cannot be trusted.

    S3 refuses a PUT whose body does not match its checksum, but S3-compatible stores may not (moto keeps
    the object of a PUT cut off mid-body, with no bytes). A reader that can redo what the object certified
    (a shard's manifest) treats it as absent; any other reader reports it."""

    def __init__(self, uri: str, reason: str = "its bytes do not match the checksum stored with it (a write "
                                               "cut short on a store that did not check it?): delete or rewrite it"):
        super().__init__(uri, reason)


# --- connection settings -----------------------------------------------------------------------------


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


def settings_key() -> tuple:
    """Clients are cached per process under this key: changing any setting or credential yields a fresh client."""
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


# --- clients ---------------------------------------------------------------------------------------

_lock = threading.Lock()
_clients: dict[tuple, Any] = {}
_arrow_fs: dict[tuple, pafs.S3FileSystem] = {}


def s3_client():
    """A boto3 S3 client for the current settings (standard credential chain, short timeouts)."""
    key = settings_key()
    with _lock:
        client = _clients.get(key)
        if client is None:
            # boto3 takes ~0.1 s to import: only commands that touch s3:// pay for it.
            import boto3
            import botocore.config

            config = botocore.config.Config(
                connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                retries={"mode": "standard", "max_attempts": _max_attempts()},
            )
            client = boto3.session.Session().client("s3", endpoint_url=s3_endpoint(), region_name=_region(), config=config)
            _clients[key] = client
        return client


def s3_filesystem() -> pafs.S3FileSystem:
    """A pyarrow S3 filesystem for the current settings (for Arrow datasets)."""
    key = settings_key()
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


def reason(code: str, uri: str, detail: str = "") -> str:
    """What to tell the user about an S3 error ``code`` on ``uri``."""
    normalized = re.sub(r"[^a-z0-9]", "", code.lower())
    bucket = split_s3(uri)[0] if uri.startswith("s3://") else ""
    template = _ERROR_REASONS.get(normalized)
    if template is None:
        if normalized.startswith("5"):
            template = _ERROR_REASONS["internalerror"]
        else:
            return f"S3 error {code}{_where()}: {detail or 'no detail'}"
    return template.format(bucket=bucket, where=_where(), attempts=_max_attempts())


def no_such_bucket(uri: str) -> StorageError:
    return StorageError(uri, reason("nosuchbucket", uri))


def error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError ('' for other exceptions)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def from_boto(exc: Exception, uri: str) -> StorageError:
    """The StorageError for a boto3/botocore failure on ``uri``; any other exception is re-raised."""
    import botocore.exceptions as bex  # loaded already: only a boto3 call can have failed

    if isinstance(exc, bex.ClientError):
        error = exc.response.get("Error", {})
        return StorageError(uri, reason(str(error.get("Code", "unknown")), uri, str(error.get("Message", ""))))
    if isinstance(exc, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return StorageError(uri, "no AWS credentials found (environment, ~/.aws or instance profile): " + str(exc))
    # A connection cut mid-body (ResponseStreamingError) is the store going away, like a refused one.
    if isinstance(exc, (bex.EndpointConnectionError, bex.ConnectTimeoutError, bex.ConnectionClosedError,
                        bex.ResponseStreamingError)):
        return StorageError(uri, reason("networkconnection", uri))
    if isinstance(exc, bex.FlexibleChecksumError):
        return CorruptObjectError(uri)
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
        raise BadInputError(uri, None, None, f"not a readable Parquet file ({exc})") from None
    except OSError as exc:
        if not is_remote(uri) or isinstance(exc, StorageError):
            raise
        text = str(exc)
        if "NETWORK_CONNECTION" in text or "Could not connect" in text or "Connection refused" in text:
            raise StorageError(uri, reason("networkconnection", uri)) from None
        raise StorageError(uri, f"S3 read failed{_where()}: {text[:500]}") from None
