"""discover on a planted corpus, through the CLI and the loopback server: labels depend on length and on a
hidden property (a ``Source:`` line) no built-in factor measures; the simulated proposer also proposes a decoy
that is length in other words. The planted tau is computed by enumeration (sim_discover.planted_cite_tau) and
checked here against an independent Monte Carlo of the same model."""

from __future__ import annotations

import math
import random

import polars as pl
import pytest

from profile_dist.cli import main
from profile_dist.user_factors import load_factor_file
from profile_dist.stages.annotate import annotate
from profile_dist.testing import sim_discover as sim

from tests.discover.conftest import ingest_planted

N_PAIRS = 400


def test_planted_tau_matches_an_independent_monte_carlo():
    rng = random.Random(1)
    hits = n = 0
    for _ in range(200_000):
        x, y = rng.randint(sim.LENGTH_MIN, sim.LENGTH_MAX), rng.randint(sim.LENGTH_MIN, sim.LENGTH_MAX)
        p = 1 / (1 + math.exp(-(sim.CITE_WEIGHT + sim.LENGTH_WEIGHT * (x - y) / sim.LENGTH_UNIT)))
        hits += rng.random() < p
        n += 1
    assert sim.planted_cite_tau() == pytest.approx(2 * hits / n - 1, abs=0.01)


@pytest.fixture
def planted(tmp_path, ray_session):
    pairs = ingest_planted(tmp_path, N_PAIRS, seed=3)
    annotations = tmp_path / "ann"
    annotate(str(pairs), str(annotations), progress=False)  # every rule factor: the existing ones
    return pairs, annotations


def test_discover_keeps_the_hidden_factor_and_drops_the_length_decoy(tmp_path, planted, server, endpoints, capsys):
    pairs, annotations = planted
    out = tmp_path / "discover"
    args = ["discover", "--pairs", str(pairs), "--annotations", str(annotations), "--llm", "proposer",
            "--annotate-llm", "annotator", "--endpoints", endpoints, "--output", str(out), "--candidates", "3",
            "--proposal-pairs", "40", "--batch", "7", "--bootstrap", "200"]
    # Dry run first: both phases priced, nothing sent.
    assert main(args + ["--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "propose: requests=6 " in printed and "validate: requests=" in printed and "total:" in printed
    assert server.stats()["requests"] == 0
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = {r["factor"]: r for r in pl.read_parquet(out / "discovery.parquet").to_dicts()}
    # The near-duplicate names_a_source was merged into cites_source, not kept as a third candidate.
    assert set(rows) == {"cites_source", "level_of_detail"}
    hidden, decoy = rows["cites_source"], rows["level_of_detail"]
    assert hidden["kept"] and hidden["tau_ci_low"] > 0 and hidden["adjusted_ci_low"] > 0
    assert hidden["tau_ci_low"] <= sim.planted_cite_tau() <= hidden["tau_ci_high"], hidden
    assert not decoy["kept"] and decoy["nearest_factor"] == "length" and decoy["nearest_correlation"] > 0.9
    assert decoy["reason"].startswith("explained by length"), decoy
    # The validation half's tau, recomputed here from the texts (a "Source:" line) and the labels.
    validation = pl.read_parquet(out / "validation" / "pairs" / "*.parquet")
    texts = dict(pl.read_parquet(pairs / "responses" / "*.parquet").select("response_id", "text").iter_rows())
    c = d = 0
    for a, b, label in validation.select("response_a_id", "response_b_id", "label").iter_rows():
        pref, other = (a, b) if label == "a" else (b, a)
        has = [any(l.startswith("Source: ") for l in texts[r].splitlines()) for r in (pref, other)]
        c += has[0] and not has[1]
        d += has[1] and not has[0]
    assert hidden["tau"] == pytest.approx((c - d) / (c + d))
    # discovered.yaml is a factor file as is; the report shows the candidates next to the built-in factors.
    assert [f.name for f in load_factor_file(str(out / "discovered.yaml"))] == ["cites_source"]
    report = (out / "reduce" / "report.md").read_text()
    assert "cites_source" in report and "length" in report and "## Discovered factors" in report
    section = (out / "discovery.md").read_text()
    assert "### cites_source" in section and "Source: the 2019" in section
    assert "KEPT    cites_source" in printed


def test_discover_max_cost_refuses_before_sending(tmp_path, ray_session, server, endpoints, capsys):
    pairs = ingest_planted(tmp_path, 40, seed=5)
    annotations = tmp_path / "ann"
    annotate(str(pairs), str(annotations), progress=False)
    code = main(["discover", "--pairs", str(pairs), "--annotations", str(annotations), "--llm", "proposer",
                 "--endpoints", endpoints, "--output", str(tmp_path / "d"), "--max-cost", "0.0001"])
    assert code == 2 and "max" in capsys.readouterr().err.lower()
    assert server.stats()["requests"] == 0
