"""A multi-node Ray cluster on loopback, in a process of its own (tests only).

``ray.cluster_utils.Cluster`` starts a head and worker nodes (each its own raylet, object store and
resources) on this machine. It runs in a child process so that the test process never connects to it,
and another Ray runtime in the test process (the suite's ``ray_session``) is left alone. The child prints
one JSON line (GCS address, dashboard URL, node ids by name) and holds the cluster until its stdin closes
(``stop()``, or the test process dying) or SIGTERM, then kills its nodes at once (no drain: nothing of a test
cluster needs saving).
Everything it starts lives under its own ``temp_dir``; ``stop()`` kills by that marker and by pid, never
by name (``ray stop`` would kill every Ray on the machine).

Run: ``python -m profile_dist.testing.loopback_cluster '{"head": {"num_cpus": 1}, "node_a": {...}}'``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from typing import Any

DASHBOARD = "dashboard"  # node spec key of the head: start the dashboard (what ray.util.state queries)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pids_using(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


class LoopbackCluster:
    """``with LoopbackCluster({"head": {"num_cpus": 1}, "node_a": {"num_cpus": 1, "resources": {"node_a": 1}}}) as c:``
    the first entry is the head; ``c.address`` is the GCS address drivers pass as ``--address``."""

    def __init__(self, nodes: dict[str, dict[str, Any]], env: dict[str, str] | None = None,
                 dashboard: bool = False, timeout: float = 180.0) -> None:
        self.nodes_spec = nodes
        self.temp_dir = tempfile.mkdtemp(prefix="raymn-", dir="/tmp")  # short: socket paths must fit 107 bytes
        self.env = dict(os.environ if env is None else env)
        self.env.pop("RAY_ADDRESS", None)
        self.dashboard = dashboard
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    @property
    def address(self) -> str:
        return self.info["address"]

    @property
    def dashboard_url(self) -> str:
        return self.info["dashboard"]

    @property
    def node_ids(self) -> dict[str, str]:
        return self.info["nodes"]

    def start(self) -> "LoopbackCluster":
        spec = {"temp_dir": self.temp_dir, "dashboard": self.dashboard, "nodes": self.nodes_spec}
        self.process = subprocess.Popen([sys.executable, "-m", "profile_dist.testing.loopback_cluster", json.dumps(spec)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(os.path.join(self.temp_dir, "holder.log"), "wb"),
                                        env=self.env, text=True, start_new_session=True)
        assert self.process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.timeout)
        if not line or not line[0].startswith("{"):
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"loopback cluster did not start within {self.timeout:.0f} s: {tail}")
        self.info = json.loads(line[0])
        return self

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.temp_dir, "holder.log"), "rb") as handle:
                return handle.read()[-3000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the holder shuts its cluster down when its stdin closes
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # our process group only
            except ProcessLookupError:
                pass
            if self.process.stdout is not None:
                self.process.stdout.close()
        for pid in _pids_using(self.temp_dir):  # anything of this cluster that left the group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)  # its logs and sockets (a few MB per cluster)

    def leftovers(self) -> list[int]:
        return _pids_using(self.temp_dir)

    def __enter__(self) -> "LoopbackCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    from ray.cluster_utils import Cluster

    spec = json.loads((argv or sys.argv[1:])[0])
    names = list(spec["nodes"])
    common = {"temp_dir": spec["temp_dir"], "object_store_memory": 80 * 1024 * 1024}
    head_args = {**common, **spec["nodes"][names[0]], "include_dashboard": bool(spec["dashboard"]),
                 "dashboard_port": _free_port(), "ray_client_server_port": _free_port(), "gcs_server_port": _free_port()}
    stop = threading.Event()
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        nodes = {names[0]: cluster.head_node}
        for name in names[1:]:
            nodes[name] = cluster.add_node(**{**common, **spec["nodes"][name]})
        cluster.wait_for_nodes()
        dashboard = cluster.webui_url
        info = {"address": cluster.address, "dashboard": f"http://{dashboard}" if dashboard else None,
                "nodes": {name: node.node_id for name, node in nodes.items()}}
        # Set here, after the nodes: starting a node installs Ray's own SIGTERM handler, which drains for up to 30 s.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        print(json.dumps(info), flush=True)
        stop.wait()
    finally:
        # Not cluster.shutdown(): it drains each node gracefully. Workers first, then the head, killed at once.
        for node in list(cluster.worker_nodes):
            cluster.remove_node(node, allow_graceful=False)
        if cluster.head_node is not None:
            cluster.remove_node(cluster.head_node, allow_graceful=False)


if __name__ == "__main__":
    main()
