"""A small planted audit shared by the improve and export tests (built once per session, on first use).

Humans (our corpus) do not reward length but reward list items; the test server's judge prefers the
longer response 80% of the time and its generator (``sim_improve``) makes better levels only longer.
The audit is human -> judge and generate -> annotate -> reduce, exactly as a user runs it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "settings"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from settings_helpers import KEY, KEY_ENV, endpoints_file, planted_server  # noqa: E402
from improve_helpers import FACTORS, human_rows  # noqa: E402


@pytest.fixture(scope="session")
def api_key_env():
    old = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = KEY
    yield
    if old is None:
        os.environ.pop(KEY_ENV, None)
    else:
        os.environ[KEY_ENV] = old


@pytest.fixture(scope="session")
def server():
    with planted_server("improve_generator=1", "judge_prefers_longer=0.8") as process:
        yield process


@pytest.fixture(scope="session")
def audit(tmp_path_factory, ray_session, api_key_env, server):
    """dict of paths: endpoints, human, judge, generate, results (a reduce with bootstrap replicates)."""
    from profile_dist.stages.annotate import annotate
    from profile_dist.stages.generate import generate
    from profile_dist.stages.ingest import ingest
    from profile_dist.stages.judge import judge
    from profile_dist.stages.reduce import reduce

    root = tmp_path_factory.mktemp("audit")
    corpus = root / "human.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in human_rows(400, 80)))
    paths = {"root": root, "endpoints": endpoints_file(root, server), "human": str(root / "human"),
             "judge": str(root / "judge"), "generate": str(root / "generate"), "results": str(root / "results")}
    ingest("pairs", [str(corpus)], paths["human"], progress=False)
    judge(paths["human"], "model", paths["judge"], endpoints=paths["endpoints"], progress=False)
    generate(paths["human"], "model", paths["generate"], levels=5, endpoints=paths["endpoints"], progress=False)
    ann = [str(root / "ann" / n) for n in ("human", "generate")]
    annotate(paths["human"], ann[0], factors=FACTORS, progress=False)
    annotate(paths["generate"], ann[1], factors=FACTORS, progress=False)
    reduce([paths["human"], paths["judge"], paths["generate"]], ann, paths["results"], n_bootstrap=200, progress=False,
           alignment_factors="all")  # rule factors only: helpful's own set has just length of them
    return paths
