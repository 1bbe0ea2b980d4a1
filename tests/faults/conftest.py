"""Fault-injection suite: real failures (SIGKILL, dead actors, a flaky server, a store that goes away).

Cases marked ``slow`` run only with ``pytest -m slow tests/faults``; at least one case of every kind
runs by default (CI).
"""

from __future__ import annotations

import os

import pytest

from profile_dist.testing.s3_server import ACCESS_KEY, SECRET_KEY

# The S3 test server's (fake) credentials, in the environment before the session's Ray starts, so its
# workers have them too (as tests/s3 does, same values); the endpoint reaches them per job via the CLI's
# --s3-endpoint-url (runtime_env), so each test can have its own server.
os.environ.setdefault("AWS_ACCESS_KEY_ID", ACCESS_KEY)
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
