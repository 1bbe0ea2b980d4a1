"""How fast a bad S3 setup fails, with a clear error naming the URI (figures for docs/cluster.md).

Starts the loopback S3 test server, then times storage.exists() under: wrong credentials, a missing
bucket, an unreachable endpoint (a closed loopback port), and a store answering 503 (retried
AWS_MAX_ATTEMPTS times). Also times listing a prefix of 10,000 objects.
Last line: key=value figures in seconds.

    python bench/s3_fail_fast.py
"""

from __future__ import annotations

import os
import time

from profile_dist import storage
from profile_dist.testing.s3_server import S3TestServer, endpoint_of, reserve_socket


def timed(operation, uri: str) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        operation(uri)
        message = "no error"
    except storage.StorageError as exc:
        message = str(exc)
    return time.perf_counter() - start, message


def main() -> None:
    figures = {}
    with S3TestServer() as s3:
        os.environ.update(s3.env())
        os.environ.pop("AWS_MAX_ATTEMPTS", None)  # the default: 3 attempts
        bucket = s3.create_bucket("bench")
        storage.write_bytes_atomic(b"x", f"{bucket}/x.jsonl")

        os.environ["AWS_ACCESS_KEY_ID"] = "AKIAWRONG"
        figures["wrong_credentials_s"], message = timed(storage.exists, f"{bucket}/x.jsonl")
        print(message)
        os.environ["AWS_ACCESS_KEY_ID"] = s3.access_key

        figures["missing_bucket_s"], message = timed(storage.exists, "s3://no-such-bucket/x.jsonl")
        print(message)

        s3.set_faults({"path": "/bench/"})
        figures["store_503_s"], message = timed(storage.read_bytes, f"{bucket}/x.jsonl")
        print(message)
        s3.clear_faults()

        keys = [f"many/part-{i:05d}.parquet" for i in range(10_000)]
        s3.seed("bench", keys)
        start = time.perf_counter()
        assert len(storage.list_files(f"{bucket}/many")) == len(keys)
        figures["list_10000_objects_s"] = time.perf_counter() - start

        sock = reserve_socket()
        closed = endpoint_of(sock)
        sock.close()
        os.environ["AWS_ENDPOINT_URL_S3"] = closed
        figures["unreachable_endpoint_s"], message = timed(storage.exists, "s3://bench/x.jsonl")
        print(message)
    print(" ".join(f"{k}={v:.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
