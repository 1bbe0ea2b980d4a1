"""ingest -> annotate (rule factors + the LLM factor fluency) -> reduce on a three-node Ray cluster on loopback.

Issue 14 point 7 and issue 16 point 6. The cluster (ray.cluster_utils.Cluster: a head and two worker nodes
with their own raylets, object stores and resources node_a / node_b) runs in a child process
(profile_dist/testing/loopback_cluster.py); every stage is a separate ``profile-dist`` CLI driver given
``--address`` and ``--s3-endpoint-url``. The test process never connects to Ray, so the suite's
``ray_session`` is untouched. Every data path is on the loopback S3 server; the LLM is the project's test
server as a process, enforcing its own per-minute and per-second limits.

The cluster's processes get the store's credentials (as an instance profile would) but NOT its endpoint:
workers on every node reach the loopback store only because the driver forwards --s3-endpoint-url to them.

The one-node reference runs the same commands at the same time on a one-node cluster of its own, against a
second LLM server (the same deterministic answers), so the first server's log holds the three-node run's
requests alone. Then, on that one-node cluster (new node id, own temp dir: none of the first run's nodes),
another driver annotates the first run's pairs into a new output from the first run's s3:// reply cache and
pays nothing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pytest

from profile_dist import storage
from profile_dist.testing.llm_server import ServerProcess
from profile_dist.testing.loopback_cluster import LoopbackCluster
from profile_dist.testing.s3_server import S3TestServer
from profile_dist.workflows.demo import TOPICS, demo_rows

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster
KEY_ENV, KEY = "PROFILE_TEST_MULTINODE_KEY", "sk-multinode-0123456789"
# 63 pairs (8 of the demo's 24 topics) by 2 labelers: 126 rows, 119 distinct responses, so 119 fluency
# requests per paid run.
N_TOPICS = 8
# 3 ingest buckets (ceil(126 rows / 42)): 3 tasks per stage for 3 one-CPU nodes, and about 40 requests per
# annotation shard (the engine runs once per shard), more than the 30 the server accepts in 1 s: without one
# limiter for the whole cluster the server would refuse some.
ROWS_PER_SHARD = 42
RPM = 1800  # the server also enforces ceil(RPM/60) = 30 per any 1 s window
# The limiter paces at (1 - headroom) x RPM. The server stamps a request when its loop reads it, so on a
# busy 2-core machine a stalled server (or client) loop bunches requests sent in order into one 1 s window:
# at a 1% headroom (tolerating ~10 ms of such jitter; the default is now 0.5%) a few requests of ~350 drew
# 429s now and then.
# 40% tolerates ~0.6 s; two workers each pacing at that rate on their own would still send 1.2x the limit.
HEADROOM = 0.4
THREE_NODES = {"head": {"num_cpus": 1},
               "node_a": {"num_cpus": 1, "resources": {"node_a": 1}},
               "node_b": {"num_cpus": 1, "resources": {"node_b": 1}}}
ONE_NODE = {"head": {"num_cpus": 2}}


class Pipeline:
    """The three commands, each its own driver process, against one cluster and one store."""

    def __init__(self, address: str, endpoint: str, env: dict[str, str], endpoints_file: str):
        self.address, self.endpoint, self.env, self.endpoints_file = address, endpoint, env, endpoints_file

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "profile_dist.cli", args[0], "--address", self.address,
                               "--s3-endpoint-url", self.endpoint, *args[1:]],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    def run(self, root: str, corpus: str) -> None:
        self.cli("ingest", "--format", "pairs", "--input", corpus, "--output", f"{root}/pairs", "--rows-per-shard",
                 str(ROWS_PER_SHARD))
        self.annotate(f"{root}/pairs", f"{root}/annotations")
        self.cli("reduce", "--pairs", f"{root}/pairs", "--annotations", f"{root}/annotations", "--output",
                 f"{root}/results", "--bootstrap", "50")

    def annotate(self, pairs: str, output: str, *extra: str) -> str:
        return self.cli("annotate", "--pairs", pairs, "--output", output, "--factors", "length", "list_items",
                        "fluency", "--llm", "judge", "--endpoints", self.endpoints_file, *extra)


def tables(root: str) -> dict[str, pa.Table]:
    """Every Parquet table under ``root`` by relative path, rows in a canonical order."""
    found = {}
    for path in storage.list_files(root, suffix=".parquet", recursive=True):
        table = storage.read_parquet(path)
        found[path[len(root):]] = table.sort_by([(name, "ascending") for name in table.column_names
                                                 if not pa.types.is_nested(table.schema.field(name).type)])
    return found


def nodes_of(dashboard: str) -> tuple[set[str], set[str]]:
    """Node ids of the finished Ray tasks and of the LLM worker actors, from Ray's state API."""
    from ray.util.state import list_actors, list_tasks

    tasks = list_tasks(address=dashboard, filters=[("state", "=", "FINISHED"), ("type", "=", "NORMAL_TASK")],
                       limit=10_000, raise_on_missing_output=False)
    actors = list_actors(address=dashboard, filters=[("class_name", "=", "LLMWorker")], limit=1000,
                         raise_on_missing_output=False)
    return {t.node_id for t in tasks if t.node_id}, {a.node_id for a in actors if a.node_id}


def staging_dirs(*roots: Path) -> set[Path]:
    """Every ``.staging-*`` directory under ``roots`` (ingest's private areas; none may outlive a run)."""
    found = set()
    for root in roots:
        for current, dirs, _ in os.walk(root):
            found.update(Path(current, d) for d in dirs if d.startswith(".staging-"))
            dirs[:] = [d for d in dirs if d not in (".git", ".venv", "node_modules")]
    return found


def write_corpus(uri: str) -> str:
    rows = [row for row in demo_rows() if any(topic in row["prompt"] for topic in TOPICS[:N_TOPICS])]
    storage.write_bytes_atomic("".join(json.dumps(row) + "\n" for row in rows).encode(), uri)
    return uri


def endpoints_file(path: Path, server: ServerProcess) -> str:
    path.write_text("endpoints:\n  judge:\n"
                    f"    base_url: {server.base_url}\n    model: test-judge\n    api_key_env: {KEY_ENV}\n"
                    f"    rpm: {RPM}\n    headroom: {HEADROOM}\n    max_concurrency: 16\n    workers: 2\n")
    return str(path)  # a config file, local to the drivers (no data)


def test_the_pipeline_on_three_nodes_matches_one_node_holds_the_rate_limit_and_shares_the_cache(tmp_path, monkeypatch):
    strays_before = staging_dirs(REPO, Path.cwd())
    server_args = ["--api-key", KEY, "--rpm", str(RPM), "--latency-ms", "20", "60"]
    with S3TestServer() as s3, ServerProcess(server_args) as llm, ServerProcess(server_args) as llm_ref, \
            ExitStack() as clusters, ThreadPoolExecutor(2) as pool:
        for name, value in s3.env().items():  # this process reads the results from the store
            monkeypatch.setenv(name, value)
        bucket = s3.create_bucket("multinode")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
        credentials = {k: v for k, v in s3.env().items() if not k.startswith("AWS_ENDPOINT_URL")}
        cluster_env = {**base, **credentials}  # the nodes' processes: credentials, no endpoint
        driver_env = {**cluster_env, KEY_ENV: KEY, "PROFILE_DIST_PROGRESS": "0",
                      "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
        corpus = write_corpus(f"{bucket}/corpus/demo_pairs.jsonl")
        endpoints = endpoints_file(tmp_path / "endpoints.yaml", llm)
        three = LoopbackCluster(THREE_NODES, env=cluster_env, dashboard=True)
        one = LoopbackCluster(ONE_NODE, env=cluster_env)
        for cluster in (three, one):
            clusters.callback(cluster.stop)
        list(pool.map(LoopbackCluster.start, (three, one)))  # the two start in parallel
        three_nodes, one_nodes = set(three.node_ids.values()), set(one.node_ids.values())

        # The three-node run and, at the same time, the one-node reference (its own LLM server and cache).
        reference = pool.submit(Pipeline(one.address, s3.endpoint, driver_env,
                                         endpoints_file(tmp_path / "endpoints-ref.yaml", llm_ref)).run,
                                f"{bucket}/one", corpus)
        Pipeline(three.address, s3.endpoint, driver_env, endpoints).run(f"{bucket}/three", corpus)
        reference.result()
        sent = llm.stats()
        task_nodes, worker_nodes = nodes_of(three.dashboard_url)
        three.stop()
        assert three.leftovers() == []

        # Issue 16.6: another node (the one-node cluster's: none of the first run's), another driver, a new
        # output, the first run's s3:// reply cache: nothing is paid.
        llm.reset()
        Pipeline(one.address, s3.endpoint, driver_env, endpoints).annotate(
            f"{bucket}/three/pairs", f"{bucket}/again/annotations", "--cache-dir", f"{bucket}/three/annotations/_llm_cache")
        again = llm.stats()
        one.stop()
        assert one.leftovers() == []

        # Tasks (ingest, annotate, reduce shards) ran on at least two nodes, and the two LLM workers on two.
        assert len(task_nodes & three_nodes) >= 2, (task_nodes, three.node_ids)
        assert len(worker_nodes) == 2 and worker_nodes <= three_nodes, (worker_nodes, three.node_ids)
        # The limit held across nodes: every request answered, none refused, within both windows.
        assert sent["ok"] > 0 and sent["requests"] == sent["ok"] and sent["rate_limited"] == 0, sent["by_status"]
        assert sent["max_in_any_1s"] <= math.ceil(RPM / 60) and sent["max_in_any_60s"] <= RPM
        # The rerun on another node paid nothing.
        assert len(one_nodes) == 1 and one_nodes.isdisjoint(three_nodes), (one_nodes, three_nodes)
        assert again["requests"] == 0, again["by_status"]

        # The same tables, row for row and bit for bit (table contents: file bytes carry writer metadata).
        results = tables(f"{bucket}/one/results/")
        assert results and "influence.parquet" in results, sorted(results)
        assert tables(f"{bucket}/three/results/") == results
        annotations = tables(f"{bucket}/one/annotations/")
        assert annotations and tables(f"{bucket}/three/annotations/") == annotations
        assert tables(f"{bucket}/again/annotations/") == annotations
    # Every path was on the store: no stage left a staging area on local disk (ingest's, for a local output).
    assert staging_dirs(REPO, Path.cwd()) == strays_before
