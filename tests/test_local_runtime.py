"""The local Ray a command starts for itself: only the processes a single-node command uses.

Each case starts its own local runtime in a fresh process (the session's runtime is already up in this one)
and lists the processes under it from /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Starts the runtime the way a CLI command does (inside ray_messages), runs one task, and prints the command
# lines of every process under this one.
SCRIPT = r"""
import json, os, sys
import ray
from profile_dist.stages.ray_messages import ray_messages
from profile_dist.stages.runtime import ensure_ray

def tree(root):
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return out

with ray_messages(sys.argv[1] == "verbose", sys.argv[2]):
    ensure_ray()
    assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    print(json.dumps(tree(os.getpid())))
"""


def _processes(tmp_path: Path, mode: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode, str(tmp_path / "ray.log")], capture_output=True,
                            text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _running(processes: list[str], script: str) -> bool:
    return any(script in p for p in processes)


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_a_command_starts_no_api_server_or_autoscaler_and_a_log_monitor_only_when_verbose(tmp_path, mode):
    processes = _processes(tmp_path, mode)
    assert any("raylet" in p for p in processes) and any("gcs_server" in p for p in processes), processes
    assert not _running(processes, "dashboard/dashboard.py"), processes  # the API server
    assert not _running(processes, "autoscaler/_private/monitor.py"), processes
    # Workers' output is forwarded (by the log monitor) only with --verbose.
    assert _running(processes, "_private/log_monitor.py") == (mode == "verbose"), processes
    # The dashboard agent takes any free port: the default one is held by the runtime of the pytest process
    # (as by any other Ray on the machine), and the raylet would wait ~3 s for the agent's retries on it.
    agents = [p for p in processes if "dashboard/agent.py" in p]
    assert agents and all("--listen-port=0" in p for p in agents), agents


def test_the_skipped_starts_are_restored_after_the_command_starts_its_runtime():
    """Ray's Node is patched only for the duration of ray.init: a cluster started later in the same process
    (ray.cluster_utils, tests) is whole."""
    from ray._private.node import Node

    from profile_dist.stages.runtime import LOG_MONITOR, UNUSED_LOCAL_PROCESSES, _lean_local_node

    before = {name: Node.__dict__[name] for name in [*UNUSED_LOCAL_PROCESSES, LOG_MONITOR, "__init__"]}
    with _lean_local_node(log_to_driver=False):
        assert all(Node.__dict__[name] is not before[name] for name in before)
    assert {name: Node.__dict__[name] for name in before} == before


# Times Ray's own registration check (services.get_node) as ray.init makes it, inside the command's runtime start.
REGISTRATION_SCRIPT = r"""
import json, sys, time
from ray._private import services
from profile_dist.stages.runtime import ensure_ray

ray_get_node, took = services.get_node, []
def timed(*args, **kwargs):
    start = time.monotonic()
    try:
        return ray_get_node(*args, **kwargs)
    finally:
        took.append(time.monotonic() - start)
services.get_node = timed
ensure_ray()
print(json.dumps(took))
"""


def test_ray_is_asked_for_the_new_node_only_once_it_has_registered(tmp_path):
    """Ray's check sleeps a whole second whenever the raylet has not registered yet (~0.9 s after it starts);
    the command's start waits for the registration in 50 ms steps first, so Ray's check answers at its first
    look, well under the second it would otherwise sleep."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", REGISTRATION_SCRIPT], capture_output=True, text=True, timeout=300,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    took = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(took) == 1 and took[0] < 0.9, took


RUN_SCRIPT = r"""
import json, sys
import ray
import profile_dist.workflows.job as job
from profile_dist.cli import main

seen = []
build_report = job.build_report
def spy(*args, **kwargs):
    seen.append(ray.is_initialized())
    return build_report(*args, **kwargs)
job.build_report = spy
assert main(["run", sys.argv[1]]) == 0
print(json.dumps(seen))
"""


def test_run_shuts_its_runtime_down_before_the_report(tmp_path):
    """The report needs no Ray: `run` releases the runtime it started first, so the report's reads do not stack
    on idle workers (the peak of a 1M-pair run fell from 1.70 to 1.43 GiB)."""
    rows = [{"prompt": f"p{i}", "response_a": "a " * (i % 5 + 1), "response_b": "b " * (i % 3 + 1), "label": "ab"[i % 2]}
            for i in range(40)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "job.yaml").write_text(
        f"output: {tmp_path / 'out'}\ningest:\n  - name: c\n    format: pairs\n    input: [{tmp_path / 'pairs.jsonl'}]\n"
        "annotate:\n  factors: [length]\nreduce:\n  bootstrap: 10\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "PROFILE_DIST_PROGRESS": "0"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-c", RUN_SCRIPT, str(tmp_path / "job.yaml")], capture_output=True, text=True,
                            timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False]
    assert (tmp_path / "out" / "results" / "report.md").exists()
