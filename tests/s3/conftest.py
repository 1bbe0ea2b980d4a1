"""An S3-compatible server on loopback (moto in server mode behind a fault-injecting proxy), one per session.

Ray workers inherit the environment of the raylet, which the session-wide ``ray_session`` fixture starts
once. So the store's endpoint and (fake) credentials go into the environment now, at collection, before
any test runs: the listening socket is reserved here and handed to the server process when it starts.
Nothing in-process is patched: boto3 and pyarrow in this process and in Ray workers talk HTTP to it.
"""

from __future__ import annotations

import os
import uuid

import pytest

from profile_dist.testing.s3_server import ACCESS_KEY, SECRET_KEY, S3TestServer, endpoint_of, reserve_socket

_LISTEN = reserve_socket()
S3_ENV = {
    "AWS_ENDPOINT_URL_S3": endpoint_of(_LISTEN),
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_MAX_ATTEMPTS": "2",  # injected faults fail fast
}
os.environ.update(S3_ENV)


@pytest.fixture(scope="session")
def s3_server():
    server = S3TestServer(listen=_LISTEN).start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    """The server with a clean slate for one test: no faults, an empty request log, the session env."""
    s3_server.clear_faults()
    s3_server.reset_requests()
    yield s3_server
    s3_server.clear_faults()


@pytest.fixture
def bucket(s3) -> str:
    """A fresh bucket for one test, as an s3:// URI."""
    return s3.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
