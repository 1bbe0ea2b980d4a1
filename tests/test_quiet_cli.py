"""A command prints its own progress and summary only: Ray's banners and warnings go to a log it names.

Each case runs the real CLI in a fresh process (its own local Ray), as a user would, and reads its stderr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from profile_dist.testing.llm_server import ServerProcess

REPO = Path(__file__).resolve().parent.parent
KEY_ENV, KEY = "PROFILE_TEST_QUIET_KEY", "sk-quiet-test-0123456789"
# What Ray prints on its own: Python log records, the token warning, its start banner, C++ log lines.
RAY_NOISE = re.compile(r"Token authentication|Started a local Ray|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING|ERROR)|"
                       r"\(raylet\)|\bcore_worker\b|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
LOG_LINE = re.compile(r"^Ray's messages: (\S+\.log)$", re.M)


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PROFILE_DIST_LOG_DIR": str(tmp_path / "logs"), **env}
    environ.pop("RAY_ADDRESS", None)
    result = subprocess.run([sys.executable, "-m", "profile_dist.cli", *args], capture_output=True, text=True,
                            timeout=300, env=environ, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result


def _own_lines(stderr: str, prefixes: tuple[str, ...]) -> None:
    """Every piece of stderr is one of the command's progress bars or the line naming the log."""
    for piece in filter(None, (p.strip() for p in re.split(r"[\r\n]", stderr))):
        assert piece.startswith(prefixes) or LOG_LINE.match(piece), f"not the command's own output: {piece!r}"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    rows = [
        {"prompt": "hi", "response_a": "hello there, friend", "response_b": "yo", "label": "a"},
        {"prompt": "what is 2+2", "response_a": "4", "response_b": "It is **four**.", "label": "b"},
        {"prompt": "name a colour", "response_a": "red", "response_b": "- blue\n- green", "label": "b"},
    ]
    path = tmp_path / "tiny.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_commands_print_no_ray_noise_name_the_log_and_verbose_shows_it(tmp_path, corpus):
    ingest = _run(["ingest", "--format", "pairs", "--input", str(corpus), "--output", "pairs"], tmp_path)
    assert "ingested 3 pairs" in ingest.stdout
    assert not RAY_NOISE.search(ingest.stderr), ingest.stderr
    _own_lines(ingest.stderr, ("ingest",))
    log = Path(LOG_LINE.search(ingest.stderr).group(1))
    assert log.parent == tmp_path / "logs" and "Started a local Ray instance" in log.read_text()

    # An LLM command against the loopback test server: its progress line, nothing of Ray's.
    with ServerProcess(["--api-key", KEY]) as server:
        endpoints = tmp_path / "endpoints.yaml"
        endpoints.write_text(f"endpoints:\n  judge:\n    base_url: {server.base_url}\n    model: test-judge\n"
                             f"    api_key_env: {KEY_ENV}\n    max_concurrency: 4\n")
        annotate = _run(["annotate", "--pairs", "pairs", "--output", "ann", "--factors", "fluency", "--llm", "judge",
                         "--endpoints", str(endpoints), "--max-cost", "1"], tmp_path, **{KEY_ENV: KEY})
        assert server.stats()["requests"] == 6
    assert "annotated 1 shard(s)" in annotate.stdout
    assert not RAY_NOISE.search(annotate.stderr), annotate.stderr
    _own_lines(annotate.stderr, ("annotate",))
    assert "done=6 cached=0 failed=0" in annotate.stderr and "of $1.00" in annotate.stderr

    # --verbose: Ray's own messages are shown again, and no log is kept.
    reduce = _run(["reduce", "--pairs", "pairs", "--annotations", "ann", "--output", "res", "--bootstrap", "10",
                   "--verbose"], tmp_path)
    assert "reduced 1 pairs shard(s)" in reduce.stdout
    assert "Started a local Ray instance" in reduce.stderr and not LOG_LINE.search(reduce.stderr)


def test_the_command_exits_with_its_own_status_and_everything_it_printed(tmp_path, corpus):
    """The command leaves without the interpreter's teardown (cli.console): its status, its piped stdout and the
    Ray log it wrote all arrive whole, on success and on a user error."""
    ok = _run(["ingest", "--format", "pairs", "--input", str(corpus), "--output", "pairs"], tmp_path)
    assert "ingested 3 pairs" in ok.stdout
    log = Path(LOG_LINE.search(ok.stderr).group(1))
    assert "Started a local Ray instance" in log.read_text()
    # A command starts Ray as it begins (runtime.ray_started_early); one that fails before using it still shuts it down.
    ray_tmp = tempfile.mkdtemp(prefix="pdq-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PROFILE_DIST_LOG_DIR": str(tmp_path / "logs"), "RAY_TMPDIR": ray_tmp}
    environ.pop("RAY_ADDRESS", None)
    try:
        bad = subprocess.run([sys.executable, "-m", "profile_dist.cli", "reduce", "--pairs", "pairs", "--annotations", "nowhere",
                              "--output", "results"], capture_output=True, text=True, timeout=300, env=environ, cwd=tmp_path)
        assert bad.returncode == 2, bad.stderr
        assert "profile-dist reduce: error: no annotation shards under" in bad.stderr
        assert list(Path(ray_tmp).glob("ray/session_*")), "the command did not start Ray early"
        assert not [p for p in _cmdlines() if ray_tmp in p], "Ray processes outlived the command"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _cmdlines() -> list[str]:
    lines = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            lines.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return lines
