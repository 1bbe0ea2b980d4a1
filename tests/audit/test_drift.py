"""Drift maths against an independent reference (scipy) on the same replicate counts."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats as sps
from scipy.stats import mstats

from profile_dist import schema
from profile_dist.workflows.audit import drift

FACTORS = ["length", "novel_words", "list_items", "headers", "bold"]
GROUPS = [("human", "human", "helpful"), ("judge", "evaluation", "helpful")]
B = 120
LEVEL = 0.9


def _reference_interval(diffs: np.ndarray, level: float) -> tuple[float, float]:
    diffs = diffs[~np.isnan(diffs)]
    alpha = (1 - level) / 2
    low, high = mstats.mquantiles(diffs, prob=[alpha, 1 - alpha], alphap=1, betap=1)  # Hyndman-Fan type 7
    return float(low), float(high)


def _tables(rng: np.random.Generator, shift: dict[tuple[str, str], int] | None = None) -> tuple[pa.Table, pa.Table, dict]:
    """Influence and replicate tables from random counts; also the raw counts for the reference."""
    shift = shift or {}
    influence, replicates, counts = [], [], {}
    for labeler, setting, task in GROUPS:
        for factor in FACTORS:
            c, d = int(rng.integers(20, 120)), int(rng.integers(20, 120))
            c += shift.get((labeler, factor), 0)
            if factor == "headers" and labeler == "judge":
                c = d = 0  # undefined tau: no pair tells the factor apart
            rc = rng.poisson(c, B) if c else np.zeros(B, dtype=int)
            rd = rng.poisson(d, B) if d else np.zeros(B, dtype=int)
            counts[(labeler, factor)] = (c, d, rc, rd)
            tau = (c - d) / (c + d) if c + d else None
            influence.append({
                "labeler": labeler, "setting": setting, "task": task, "factor": factor, "n_pairs": c + d,
                "n_concordant": c, "n_discordant": d, "n_ties": 0, "tau": tau, "tau_a": tau, "relevance": 1.0,
                "p_preferred_more": None if tau is None else (1 + tau) / 2, "ci_low": None, "ci_high": None, "n_bootstrap": B,
            })
            replicates += [
                {"labeler": labeler, "setting": setting, "task": task, "factor": factor, "replicate": b,
                 "n_concordant": int(rc[b]), "n_discordant": int(rd[b])}
                for b in range(B)
            ]
    # Rows in a shuffled order: nothing may depend on the order they are stored in.
    order = rng.permutation(len(replicates))
    return (
        pa.Table.from_pylist(influence, schema=schema.INFLUENCE),
        pa.Table.from_pylist([replicates[i] for i in order], schema=schema.REPLICATES),
        counts,
    )


def _taus(c, d):
    c, d = np.asarray(c, dtype=float), np.asarray(d, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(c + d > 0, (c - d) / (c + d), np.nan)


@pytest.fixture(scope="module")
def audits():
    rng = np.random.default_rng(7)
    previous = _tables(rng)
    current = _tables(rng, shift={("judge", "length"): 150})
    return previous, current


def test_change_interval_matches_scipy_quantiles_and_drops_undefined_replicates():
    rng = np.random.default_rng(1)
    previous, current = rng.normal(0, 1, 500), rng.normal(0.3, 1, 480)
    previous[[3, 10]] = np.nan
    current[[10, 20]] = np.nan
    low, high, n = drift.change_interval(previous, current, 0.95)
    want = _reference_interval(current - previous[:480], 0.95)
    assert n == 480 - 3  # pairs up to the shorter run, minus pairs with an undefined side
    assert (low, high) == pytest.approx(want, abs=1e-12)


def test_no_replicates_means_no_interval_and_no_significance():
    found = drift.measure_change(0.1, 0.5, np.empty(0), np.empty(0), 0.95)
    assert found.change == pytest.approx(0.4) and (found.ci_low, found.ci_high, found.n_replicates) == (None, None, 0)
    assert not found.significant


def test_influence_drift_matches_an_independent_computation(audits):
    (p_inf, p_rep, p_counts), (c_inf, c_rep, c_counts) = audits
    table = drift.influence_drift(drift.AuditTaus.from_tables(p_inf, p_rep), drift.AuditTaus.from_tables(c_inf, c_rep), LEVEL)
    assert table.schema == schema.DRIFT_INFLUENCE
    rows = {(r["labeler"], r["factor"]): r for r in table.to_pylist()}
    assert len(rows) == len(GROUPS) * len(FACTORS)
    for key, row in rows.items():
        pc, pd, prc, prd = p_counts[key]
        cc, cd, crc, crd = c_counts[key]
        if pc + pd == 0 or cc + cd == 0:
            assert row["change"] is None and not row["significant"]
            continue
        assert row["tau_previous"] == pytest.approx((pc - pd) / (pc + pd))
        assert row["change"] == pytest.approx((cc - cd) / (cc + cd) - (pc - pd) / (pc + pd))
        low, high = _reference_interval(_taus(crc, crd) - _taus(prc, prd), LEVEL)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-12)
        assert row["significant"] == (low > 0 or high < 0)
    assert rows[("judge", "length")]["significant"] and rows[("judge", "length")]["change"] > 0


def test_alignment_drift_matches_scipy_kendall_and_spearman_per_replicate(audits):
    (p_inf, p_rep, p_counts), (c_inf, c_rep, c_counts) = audits
    table = drift.alignment_drift(drift.AuditTaus.from_tables(p_inf, p_rep), drift.AuditTaus.from_tables(c_inf, c_rep), LEVEL)
    rows = {r["metric"]: r for r in table.to_pylist()}
    assert set(rows) == set(schema.ALIGNMENT_METRICS)
    assert {(r["source_x"], r["source_y"]) for r in rows.values()} == {("human/human", "judge/evaluation")}

    def vectors(counts, b=None):
        out = []
        for labeler in ("human", "judge"):
            c = [counts[(labeler, f)][0] if b is None else counts[(labeler, f)][2][b] for f in FACTORS]
            d = [counts[(labeler, f)][1] if b is None else counts[(labeler, f)][3][b] for f in FACTORS]
            out.append(_taus(c, d))
        x, y = out
        keep = ~(np.isnan(x) | np.isnan(y))
        return x[keep], y[keep]

    references = {"kendall_tau_b": lambda x, y: sps.kendalltau(x, y).statistic, "spearman_rho": lambda x, y: sps.spearmanr(x, y).statistic}
    for metric, reference in references.items():
        row = rows[metric]
        assert row["value_previous"] == pytest.approx(reference(*vectors(p_counts)))
        assert row["value_current"] == pytest.approx(reference(*vectors(c_counts)))
        diffs = np.array([reference(*vectors(c_counts, b)) - reference(*vectors(p_counts, b)) for b in range(B)])
        low, high = _reference_interval(diffs, LEVEL)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-9), metric
        assert row["drop"] == pytest.approx(-row["change"])
    assert rows["mean_abs_diff"]["drop"] == pytest.approx(rows["mean_abs_diff"]["change"])  # lower is better


def test_identical_audits_show_no_change_anywhere(audits):
    (inf, rep, _), _ = audits
    same = drift.AuditTaus.from_tables(inf, rep)
    for table in (drift.influence_drift(same, same, LEVEL), drift.alignment_drift(same, same, LEVEL)):
        for row in table.to_pylist():
            assert row["change"] in (0.0, None) and not row["significant"]


def test_new_and_gone_factors_and_sources_have_rows_without_a_change(audits):
    (p_inf, p_rep, _), (c_inf, c_rep, _) = audits
    keep = [f != "bold" for f in p_inf.column("factor").to_pylist()]
    previous = drift.AuditTaus.from_tables(p_inf.filter(pa.array(keep)), p_rep)
    rows = drift.influence_drift(previous, drift.AuditTaus.from_tables(c_inf, c_rep), LEVEL).to_pylist()
    bold = [r for r in rows if r["factor"] == "bold"]
    assert len(bold) == 2 and all(r["tau_previous"] is None and r["change"] is None and not r["significant"] for r in bold)
    only_human = [l == "human" for l in c_inf.column("labeler").to_pylist()]
    gone = drift.alignment_drift(drift.AuditTaus.from_tables(p_inf, p_rep), drift.AuditTaus.from_tables(c_inf.filter(pa.array(only_human)), c_rep), LEVEL)
    assert gone.num_rows == len(schema.ALIGNMENT_METRICS)
    assert all(r["value_current"] is None and r["change"] is None for r in gone.to_pylist())


def _row(metric: str, change: float, significant: bool, x: str = "human/human", y: str = "judge/evaluation") -> dict:
    return {"task": "helpful", "source_x": x, "source_y": y, "metric": metric, "change": change,
            "drop": drift.drop_of(metric, change), "significant": significant}


def test_policy_watches_only_alignment_with_the_reference_and_respects_direction():
    policy = drift.DriftPolicy(reference="human", max_drop=(("kendall_tau_b", 0.2), ("mean_abs_diff", 0.1)))
    assert policy.breached(_row("kendall_tau_b", -0.5, True))
    assert not policy.breached(_row("kendall_tau_b", -0.5, False))  # not significant
    assert not policy.breached(_row("kendall_tau_b", -0.15, True))  # within tolerance
    assert not policy.breached(_row("kendall_tau_b", +0.5, True))  # agreement rose
    assert policy.breached(_row("mean_abs_diff", +0.3, True))  # larger distance = less agreement
    assert not policy.breached(_row("mean_abs_diff", -0.3, True))
    assert not policy.breached(_row("spearman_rho", -0.9, True))  # not watched
    assert not policy.breached(_row("kendall_tau_b", -0.9, True, x="judge/evaluation", y="other/evaluation"))
    assert not policy.breached(_row("kendall_tau_b", -0.9, True, x="human/human", y="human/generation"))
    lenient = drift.DriftPolicy(max_drop=(("kendall_tau_b", 0.2),), require_significant=False)
    assert lenient.breached(_row("kendall_tau_b", -0.5, False))
    assert [r["metric"] for r in drift.alignment_alerts([_row("kendall_tau_b", -0.5, True), _row("kendall_tau_b", 0.1, True)], policy)] == ["kendall_tau_b"]


@pytest.mark.parametrize("bad", [(("no_such_metric", 0.1),), (("kendall_tau_b", -0.1),), ()])
def test_policy_rejects_unknown_metrics_and_negative_thresholds(bad):
    with pytest.raises(ValueError):
        drift.DriftPolicy(max_drop=bad)


def test_drop_of_is_never_negative_zero():
    assert math.copysign(1, drift.drop_of("kendall_tau_b", 0.0)) == 1
