"""An S3-compatible server on loopback for tests: moto in server mode behind a small fault-injecting proxy.

It runs as its own process and speaks real HTTP, so the code under test (boto3, pyarrow's AWS SDK,
Ray workers in other processes) talks to it exactly as to S3 through ``AWS_ENDPOINT_URL``; nothing
is patched in-process. The proxy in front of moto adds what moto lacks:

- credential checking: a request signed with an access key id other than the server's gets
  ``403 InvalidAccessKeyId`` (moto alone accepts any key);
- fault injection: ``POST /_proxy/faults`` with rules such as
  ``{"method": "PUT", "path": "/annotations/", "after": 3, "status": 503}`` makes matching requests
  fail once ``after`` of them went through (a store going down mid-run); ``DELETE`` clears them;
- a request log: ``GET /_proxy/requests`` (method, path, status of every request), ``DELETE`` resets it;
- bulk setup: ``POST /_proxy/seed`` creates many objects directly in moto's store (thousands of PUTs
  over HTTP would take tens of seconds; the code under test still reads them over HTTP).

Bucket names cannot start with ``_``, so the ``/_proxy/`` paths never collide with S3 requests.

Run: ``python -m profile_dist.testing.s3_server --port 9000``; it prints
``listening on http://127.0.0.1:PORT`` once ready. In tests: ``with S3TestServer() as s3: ...``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CONTROL_PREFIX = "/_proxy/"
ACCESS_KEY = "profile-dist-test-key"
SECRET_KEY = "profile-dist-test-secret"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization", "proxy-connection"}
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


@dataclass
class Fault:
    """Fail requests whose method and path match, once ``after`` matching requests went through."""

    method: str | None = None  # None: any method
    path: str = ""  # a regular expression searched in the request path (``/bucket/key``)
    after: int = 0
    times: int | None = None  # how many requests to fail (None: every later one)
    status: int = 503
    code: str = "ServiceUnavailable"
    seen: int = 0
    failed: int = 0

    def decide(self, method: str, path: str) -> bool:
        if (self.method and self.method != method) or not re.search(self.path, path):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.failed >= self.times):
            return False
        self.failed += 1
        return True


class ProxyState:
    def __init__(self, backend: tuple[str, int], access_keys: set[str]):
        self.backend = backend
        self.access_keys = access_keys
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.local = threading.local()

    def connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self.backend, timeout=60)
            self.local.conn = conn
        return conn


def _error_xml(code: str, message: str, resource: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<Resource>{resource}</Resource><RequestId>proxy</RequestId></Error>"
    ).encode()


def _seed(request: dict[str, Any]) -> int:
    """Create many small objects at once, straight in moto's store (test setup only: thousands of PUTs
    over HTTP take tens of seconds, and the code under test only ever reads them over HTTP)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    body = request.get("body", "").encode()
    for key in request["keys"]:
        store.put_object(request["bucket"], key, body)
    return len(request["keys"])


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: ProxyState  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the request log is queryable
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None, *, head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers or [("Content-Type", "application/xml")]:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in headers or []):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _control(self, method: str, path: str, body: bytes) -> None:
        state = self.state
        with state.lock:
            if path == CONTROL_PREFIX + "faults" and method == "POST":
                state.faults = [Fault(**rule) for rule in json.loads(body or b"[]")]
                result: Any = [asdict(f) for f in state.faults]
            elif path == CONTROL_PREFIX + "faults" and method == "GET":
                result = [asdict(f) for f in state.faults]
            elif path == CONTROL_PREFIX + "faults" and method == "DELETE":
                state.faults, result = [], []
            elif path == CONTROL_PREFIX + "requests" and method == "GET":
                result = list(state.requests)
            elif path == CONTROL_PREFIX + "requests" and method == "DELETE":
                state.requests, result = [], []
            elif path == CONTROL_PREFIX + "seed" and method == "POST":
                result = {"seeded": _seed(json.loads(body))}
            elif path == CONTROL_PREFIX + "health":
                result = {"ok": True}
            else:
                self._reply(404, b'{"error": "unknown control path"}', [("Content-Type", "application/json")])
                return
        self._reply(200, json.dumps(result).encode(), [("Content-Type", "application/json")])

    def _handle(self) -> None:
        method = self.command
        path = urlsplit(self.path).path
        body = self._body()
        if path.startswith(CONTROL_PREFIX):
            self._control(method, path, body)
            return
        head = method == "HEAD"
        state = self.state
        match = _CREDENTIAL.search(self.headers.get("Authorization", "")) or _CREDENTIAL.search(self.path.replace("%2F", "/"))
        key_id = match.group(1) if match else None
        with state.lock:
            fault = next((f for f in state.faults if f.decide(method, path)), None)
        if key_id not in state.access_keys:
            status, code = 403, "InvalidAccessKeyId" if key_id else "AccessDenied"
            self._reply(status, _error_xml(code, "The AWS Access Key Id you provided does not exist in our records.", path), head=head)
        elif fault is not None:
            status = fault.status
            self._reply(status, _error_xml(fault.code, "injected fault", path), head=head)
        else:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            conn = state.connection()
            try:
                conn.request(method, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.state.local.conn = None
                raise
            status = response.status
            out = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP and (head or k.lower() != "content-length")]
            self._reply(status, data, out, head=head)
        with state.lock:
            state.requests.append({"method": method, "path": path, "query": urlsplit(self.path).query, "status": status})

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve(host: str, port: int, access_keys: set[str], fd: int | None = None) -> ThreadingHTTPServer:
    """Start moto on a private port and the proxy on ``port`` (0: any free port), or on the already
    bound and listening socket ``fd`` handed over by the parent; returns the proxy."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    backend_port = _free_port(host)
    moto = ThreadedMotoServer(ip_address=host, port=backend_port, verbose=False)
    moto.start()
    handler = type("Handler", (ProxyHandler,), {"state": ProxyState((host, backend_port), access_keys)})
    if fd is None:
        server = ThreadingHTTPServer((host, port), handler)
    else:
        server = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=fd)
        server.server_address = server.socket.getsockname()
    server.daemon_threads = True
    return server


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="S3-compatible test server (moto) with fault injection, loopback only")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--access-key", action="append", default=None, help=f"accepted access key id(s) (default {ACCESS_KEY})")
    parser.add_argument("--fd", type=int, default=None, help="serve on this inherited, bound and listening socket")
    args = parser.parse_args(argv)
    server = serve(args.host, args.port, set(args.access_key or [ACCESS_KEY]), args.fd)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def reserve_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening loopback socket whose port is ours until an :class:`S3TestServer` serves on it."""
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def endpoint_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class S3TestServer:
    """The server as a child process, with helpers for tests: credentials, buckets, faults, request log."""

    def __init__(self, *, startup_timeout: float = 30.0, listen: socket.socket | None = None):
        """``listen``: a bound, listening socket to serve on (see :func:`reserve_socket`), so the
        endpoint can be known, and exported to other processes, before the server starts."""
        self.startup_timeout = startup_timeout
        self.listen = listen
        self.process: subprocess.Popen | None = None
        self.endpoint = ""
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY

    def start(self) -> "S3TestServer":
        command = [sys.executable, "-m", "profile_dist.testing.s3_server", "--access-key", self.access_key]
        pass_fds: tuple[int, ...] = ()
        if self.listen is not None:
            command += ["--fd", str(self.listen.fileno())]
            pass_fds = (self.listen.fileno(),)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, pass_fds=pass_fds)
        deadline = time.monotonic() + self.startup_timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.startswith("listening on "):
                    self.endpoint = line.split()[-1]
                    return self
            if self.process.poll() is not None:
                break
        error = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
        self.stop()
        raise RuntimeError(f"S3 test server did not start: {error[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "S3TestServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """What a process needs in its environment to use this server as its S3."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def _control(self, method: str, name: str, payload: Any = None) -> Any:
        parts = urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(method, CONTROL_PREFIX + name, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"{method} {CONTROL_PREFIX}{name}: HTTP {response.status} {data[:200]!r}")
        return json.loads(data)

    def seed(self, bucket: str, keys: list[str], body: str = "x") -> int:
        """Create ``keys`` in ``bucket`` (a bucket name) directly in the server's store: fast test setup."""
        return self._control("POST", "seed", {"bucket": bucket, "keys": keys, "body": body})["seeded"]

    def set_faults(self, *faults: dict[str, Any]) -> list[dict[str, Any]]:
        return self._control("POST", "faults", list(faults))

    def faults(self) -> list[dict[str, Any]]:
        return self._control("GET", "faults")

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def requests(self) -> list[dict[str, Any]]:
        return self._control("GET", "requests")

    def reset_requests(self) -> None:
        self._control("DELETE", "requests")


if __name__ == "__main__":
    sys.exit(main())
