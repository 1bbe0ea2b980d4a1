"""Time from a command's start to its first useful work, as a user sees it (a fresh `profile-dist` process).

  time_to_first_row_s      `profile-dist ingest` on the demo corpus: from starting the process until the
                           ingest's plan step starts reading the input (its progress bar's first line).
  time_to_first_request_s  `profile-dist annotate --llm` (fluency) against the project's test server on
                           loopback, with an empty reply cache: from starting the process until the server
                           logs its first chat-completion request.

Both include interpreter start, imports, Ray's start (or connection with --address) and the stage's own
preparation. Each figure is the median over --repeat fresh processes; one line per run, then the last line:

    time_to_first_request_s=... time_to_first_row_s=...

    python bench/time_to_first.py                        # local Ray started by each command
    python bench/time_to_first.py --address auto         # an already running cluster (`ray start --head`)

Run it alone on the machine: Ray's start-up is mostly process spawning and is slowed by any other load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from profile_dist.workflows.demo import demo_rows
from profile_dist.testing.llm_server import ServerProcess

KEY_ENV, KEY = "PROFILE_BENCH_TTF_KEY", "sk-bench-time-to-first"
REPO = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def _cli(args: list[str], address: str | None) -> list[str]:
    return [sys.executable, "-m", "profile_dist.cli", *args, *(["--address", address] if address else [])]


def _finish(proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{err}")


def time_to_first_row(work: Path, corpus: bytes, address: str | None) -> float:
    """Until ingest's plan step starts (its first read of the input: splits are cut by reading the file).
    Ingest seeks in its inputs, so a named pipe cannot stand in for the file; the plan's progress bar is the
    first thing the command prints once it reads."""
    path = work / f"corpus-{time.monotonic_ns()}.jsonl"
    path.write_bytes(corpus)
    started = time.time()
    proc = subprocess.Popen(_cli(["ingest", "--format", "pairs", "--input", str(path), "--output", str(work / f"pairs-{path.stem}")],
                                 address), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = None
    buffer = b""
    while True:
        chunk = proc.stderr.read1(4096) if hasattr(proc.stderr, "read1") else proc.stderr.read(4096)
        if not chunk:
            break
        buffer += chunk
        if first is None and b"ingest: plan" in buffer:
            first = time.time()
    proc.wait(timeout=300)
    if proc.returncode != 0 or first is None:
        raise RuntimeError(f"ingest failed ({proc.returncode}):\n{buffer.decode(errors='replace')[-2000:]}")
    return first - started


def time_to_first_request(work: Path, server: ServerProcess, endpoints: Path, pairs: Path, address: str | None, run: int) -> float:
    server.reset()
    output = work / f"annotations-{run}"  # a fresh output and so a fresh reply cache: every request is sent
    started = time.time()
    proc = subprocess.Popen(_cli(["annotate", "--pairs", str(pairs), "--output", str(output), "--factors", "fluency",
                                  "--llm", "judge", "--endpoints", str(endpoints)], address),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _finish(proc, "annotate --llm")
    first = min(entry["t"] for entry in server.log())
    return first - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default=None, help="pass --address to the commands (default: each starts a local Ray)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure (default 3; the median is reported)")
    a = parser.parse_args()

    load = os.getloadavg()
    print(f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} "
          f"loadavg={load[0]:.1f},{load[1]:.1f},{load[2]:.1f} address={a.address or 'local'}", flush=True)
    corpus = "".join(json.dumps(row) + "\n" for row in demo_rows()).encode()
    with tempfile.TemporaryDirectory(prefix="ttf-") as tmp, ServerProcess(["--api-key", KEY]) as server:
        work = Path(tmp)
        (work / "corpus.jsonl").write_bytes(corpus)
        pairs = work / "pairs"
        _finish(subprocess.Popen(_cli(["ingest", "--format", "pairs", "--input", str(work / "corpus.jsonl"),
                                       "--output", str(pairs)], a.address),
                                 env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), "ingest")
        endpoints = work / "endpoints.yaml"
        endpoints.write_text(f"endpoints:\n  judge:\n    base_url: {server.base_url}\n    model: test-judge\n"
                             f"    api_key_env: {KEY_ENV}\n    max_concurrency: 8\n")
        rows, requests = [], []
        for run in range(a.repeat):
            rows.append(time_to_first_row(work, corpus, a.address))
            requests.append(time_to_first_request(work, server, endpoints, pairs, a.address, run))
            print(f"run {run}: time_to_first_row_s={rows[-1]:.2f} time_to_first_request_s={requests[-1]:.2f}", flush=True)
    print(f"time_to_first_request_s={statistics.median(requests):.2f} time_to_first_row_s={statistics.median(rows):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
