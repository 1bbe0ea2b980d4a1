"""What report.html is built from, checked without a browser: deciding pairs, gaps, drift, adjusted
effects, the embedded JSON, and the build/CLI wiring. Maths against scipy/numpy on the same inputs."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.stats
from report_helpers import embedded_data, influence_row, write_results

from profile_dist import schema
from profile_dist.cli import main
from profile_dist.errors import ConfigError
from profile_dist.report import build_report
from profile_dist.report.adjusted import load_adjusted, load_gap
from profile_dist.report.drift import audit_drift, audit_label, drift, load_audit
from profile_dist.report.examples import deciding_pairs
from profile_dist.report.gaps import generation_gaps
from profile_dist.report.html import script_json


def test_embedded_json_cannot_end_the_script_block():
    data = {"text": "</script><script>alert(1)</script><!-- & \u2028 \u2029", "n": float("nan"), "v": np.float64(0.5)}
    text = script_json(data)
    for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
        assert forbidden not in text
    back = json.loads(text)
    assert back == {"text": data["text"], "n": None, "v": 0.5}


# --- deciding pairs: the scan over shards against a direct reference --------------------------------------


def _write_corpus(root, rng):
    """Two pairs shards, prompts, responses and annotations, with ties, missing values and equal values."""
    prompts = [{"prompt_id": f"p{i}", "text": f"prompt <{i}> & more", "source": None} for i in range(12)]
    responses, annotations, pairs = [], [], []
    for i in range(40):
        prompt = f"p{i % 12}"
        rid = f"r{i}"
        responses.append({"response_id": rid, "prompt_id": prompt, "text": f"response {i} " + "word " * int(rng.integers(1, 400))})
        for factor in ("f1", "f2"):
            missing = rng.random() < 0.1
            value = None if missing else float(rng.integers(0, 6))
            annotations.append({"response_id": rid, "factor": factor, "value": value, "annotator": "rule", "prompt_version": "1",
                                "error": "failed" if missing else None})
    for j in range(90):
        a, b = rng.choice(40, size=2, replace=False)
        labeler, setting = [("human", "human"), ("judge", "evaluation")][j % 2]
        pairs.append({
            "pair_id": f"pair{j:03d}", "task": "helpful", "prompt_id": f"p{a % 12}", "response_a_id": f"r{a}", "response_b_id": f"r{b}",
            "label": ["a", "b", "tie"][int(rng.integers(0, 3))], "labeler": labeler, "setting": setting, "dataset": "synthetic",
            "source_file": "synthetic.jsonl", "source_row": j,
        })
    ingest, annotated = root / "ingest", root / "annotations"
    for name, rows, table_schema in (("prompts", prompts, schema.PROMPTS), ("responses", responses, schema.RESPONSES)):
        (ingest / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=table_schema), ingest / name / "part-00000.parquet")
    (ingest / "pairs").mkdir()
    for k, chunk in enumerate((pairs[:50], pairs[50:])):
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema.PAIRS), ingest / "pairs" / f"part-{k:05d}.parquet")
    annotated.mkdir()
    pq.write_table(pa.Table.from_pylist(annotations, schema=schema.ANNOTATIONS), annotated / "part-00000.parquet")
    return ingest, annotated, prompts, responses, annotations, pairs


def test_deciding_pairs_are_the_largest_margins_in_taus_direction(tmp_path):
    rng = np.random.default_rng(3)
    ingest, annotated, prompts, responses, annotations, pairs = _write_corpus(tmp_path, rng)
    influence = [
        influence_row("human", "human", "helpful", "f1", 10, 4),   # tau > 0: preferred has more
        influence_row("human", "human", "helpful", "f2", 3, 9),    # tau < 0: preferred has less
        influence_row("judge", "evaluation", "helpful", "f1", 5, 5),  # tau = 0: no direction, no examples
        influence_row("judge", "evaluation", "helpful", "f2", 8, 2),
    ]
    results = {"influence": influence, "reduce": {"pairs": [str(ingest)], "annotations": [str(annotated)]}}
    got = deciding_pairs(results, per_cell=3, max_chars=60)
    assert got.note is None

    value = {(a["response_id"], a["factor"]): a["value"] for a in annotations}
    text = {r["response_id"]: r["text"] for r in responses}
    expected = []
    for row in influence:
        if not row["tau"]:
            continue
        sign = 1 if row["tau"] > 0 else -1
        candidates = []
        for p in pairs:
            if (p["labeler"], p["setting"]) != (row["labeler"], row["setting"]) or p["label"] == "tie":
                continue
            preferred, other = (p["response_a_id"], p["response_b_id"]) if p["label"] == "a" else (p["response_b_id"], p["response_a_id"])
            vp, vo = value[(preferred, row["factor"])], value[(other, row["factor"])]
            if vp is None or vo is None or (vp - vo) * sign <= 0:
                continue
            candidates.append(((vp - vo) * sign, p["pair_id"], preferred, other, vp, vo))
        candidates.sort(key=lambda c: (-c[0], c[1]))
        expected += [(row["labeler"], row["factor"], c[1], c[2], c[4], c[5]) for c in candidates[:3]]
    got_rows = [(e["labeler"], e["factor"], e["pair_id"]) for e in got.pairs]
    assert sorted(got_rows) == sorted((e[0], e[1], e[2]) for e in expected)
    assert len(got.pairs) == 9  # three cells with a direction, three pairs each
    by_pair = {(e["labeler"], e["factor"], e["pair_id"]): e for e in got.pairs}
    for labeler, factor, pair_id, preferred, vp, vo in expected:
        shown = by_pair[(labeler, factor, pair_id)]
        assert (shown["preferred"]["value"], shown["other"]["value"]) == (vp, vo)
        full = text[preferred].strip()  # shown without surrounding blank space
        assert shown["preferred"]["text"] == full[:60]
        assert shown["preferred"]["truncated"] == (len(full) > 60) and shown["preferred"]["chars"] == len(full)
        assert shown["prompt"]["text"].startswith("prompt <")


def test_deciding_pairs_say_why_when_the_inputs_are_gone(tmp_path):
    results = {"influence": [influence_row("h", "human", "t", "f", 3, 1)], "reduce": {"pairs": [str(tmp_path / "gone")], "annotations": [str(tmp_path)]}}
    got = deciding_pairs(results)
    assert got.pairs == [] and "gone" in got.note
    assert "no pairs/annotations" in deciding_pairs({"influence": [], "reduce": {}}).note


# --- generation-evaluation gap against scipy -----------------------------------------------------------------


def test_generation_gap_against_scipy():
    rng = np.random.default_rng(11)
    factors = [f"f{i}" for i in range(6)]
    sources = [("human", "human"), ("m", "evaluation"), ("m", "generation")]
    tau = {s: rng.uniform(-0.8, 0.8, len(factors)) for s in sources}
    influence = [
        {"labeler": s[0], "setting": s[1], "task": "helpful", "factor": f, "tau": float(tau[s][i])}
        for s in sources for i, f in enumerate(factors)
    ]
    reps = {(s[0], s[1], "helpful", f): tau[s][i] + rng.normal(0, 0.15, 40) for s in sources for i, f in enumerate(factors)}
    got = generation_gaps(influence, reps, level=0.9)
    rows = {r["metric"]: r for r in got["alignment"]}
    th, te, tg = (tau[s] for s in sources)
    spearman_gap = scipy.stats.spearmanr(th, te).statistic - scipy.stats.spearmanr(th, tg).statistic
    kendall_gap = scipy.stats.kendalltau(th, te).statistic - scipy.stats.kendalltau(th, tg).statistic
    assert rows["spearman_rho"]["gap"] == pytest.approx(spearman_gap, abs=1e-12)
    assert rows["kendall_tau_b"]["gap"] == pytest.approx(kendall_gap, abs=1e-12)
    assert rows["mean_abs_diff"]["gap"] == pytest.approx(np.mean(np.abs(th - te)) - np.mean(np.abs(th - tg)), abs=1e-12)
    boot = [np.stack([reps[(s[0], s[1], "helpful", f)] for f in factors]) for s in sources]
    replicate_gaps = [
        scipy.stats.spearmanr(boot[0][:, r], boot[1][:, r]).statistic - scipy.stats.spearmanr(boot[0][:, r], boot[2][:, r]).statistic
        for r in range(40)
    ]
    assert rows["spearman_rho"]["gap_ci"] == pytest.approx(list(np.quantile(replicate_gaps, [0.05, 0.95])), abs=1e-12)
    per_factor = {r["factor"]: r for r in got["factors"]}
    for i, f in enumerate(factors):
        assert per_factor[f]["generation_minus_evaluation"] == pytest.approx(tg[i] - te[i])
        assert per_factor[f]["ci"] == pytest.approx(list(np.quantile(boot[2][i] - boot[1][i], [0.05, 0.95])))


def test_no_gap_without_both_settings():
    influence = [{"labeler": l, "setting": s, "task": "t", "factor": f, "tau": 0.1 * k}
                 for k, (l, s) in enumerate([("human", "human"), ("m", "evaluation")]) for f in ("a", "b", "c")]
    assert generation_gaps(influence, {}) == {"alignment": [], "factors": []}


# --- drift ------------------------------------------------------------------------------------------------


def _replicates(labeler, setting, task, factor, c, d):
    return [{"labeler": labeler, "setting": setting, "task": task, "factor": factor, "replicate": r, "n_concordant": int(c[r]), "n_discordant": int(d[r])}
            for r in range(len(c))]


def test_drift_change_ci_is_the_replicate_difference(tmp_path):
    rng = np.random.default_rng(5)
    counts = {name: (rng.integers(20, 60, 30), rng.integers(20, 60, 30)) for name in ("old", "new")}
    dirs = {}
    for name, (c, d) in counts.items():
        dirs[name] = write_results(
            tmp_path / name / "results",
            [influence_row("human", "human", "helpful", "length", int(c.sum()), int(d.sum()), n_bootstrap=30)],
            _replicates("human", "human", "helpful", "length", c, d),
        )
    audits = [load_audit(str(dirs["old"])), load_audit(str(dirs["new"]))]
    assert [a.label for a in audits] == ["old", "new"]
    got = drift(audits, level=0.95)
    assert [p["audit"] for p in got["points"]] == [0, 1]
    (change,) = got["changes"]
    old_tau = (counts["old"][0].sum() - counts["old"][1].sum()) / (counts["old"][0].sum() + counts["old"][1].sum())
    new_tau = (counts["new"][0].sum() - counts["new"][1].sum()) / (counts["new"][0].sum() + counts["new"][1].sum())
    assert change["delta"] == pytest.approx(new_tau - old_tau)
    per_rep = [(c - d) / (c + d) for c, d in (counts["new"], counts["old"])]
    low, high = np.quantile(per_rep[0] - per_rep[1], [0.025, 0.975])
    assert (change["ci_low"], change["ci_high"]) == pytest.approx((low, high))
    assert change["significant"] == bool(low > 0 or high < 0)


def test_history_accepts_report_dirs_and_rejects_others(tmp_path):
    report_dir = tmp_path / "2024-01-01"
    report_dir.mkdir()
    (report_dir / "results.json").write_text(json.dumps({"influence": [influence_row("h", "human", "t", "f", 3, 1)]}))
    audit = load_audit(str(report_dir))
    assert audit.label == "2024-01-01" and audit.replicate_taus == {}
    with pytest.raises(ConfigError, match="neither influence.parquet nor results.json"):
        load_audit(str(tmp_path / "empty"))
    assert audit_label("s3://bucket/audits/week-3/results/") == "week-3"


# --- adjusted effects and the reduce's gap table -----------------------------------------------------


def test_adjusted_and_gap_tables_are_read_when_present(tmp_path):
    assert load_adjusted(str(tmp_path)) == [] and load_gap(str(tmp_path)) is None
    row = {name: None for name in schema.ADJUSTED.names}
    row.update(labeler="h", setting="human", task="t", factor="facts", tau=0.3, length_controlled_tau=-0.1,
               length_controlled_tau_ci_low=-0.2, length_controlled_tau_ci_high=0.0, n_length_matched_decided=40,
               bt_coef=float("nan"), n_bt_pairs=100, disagreement="sign flips once other factors are held fixed (length)")
    pq.write_table(pa.Table.from_pylist([row], schema=schema.ADJUSTED), tmp_path / "adjusted.parquet")
    (got,) = load_adjusted(str(tmp_path))  # the NaN coefficient is left out, not shown as a number
    assert got["series"] == "length-controlled tau" and got["value"] == -0.1 and (got["ci_low"], got["ci_high"]) == (-0.2, 0.0)
    assert got["disagreement"].startswith("sign flips")


# --- build_report and the CLI ----------------------------------------------------------------------------


def test_build_report_writes_html_and_cli_history(tmp_path, capsys):
    now = write_results(tmp_path / "week2" / "results", [influence_row("human", "human", "helpful", "length", 30, 10, ci=(0.2, 0.7), n_bootstrap=50)])
    before = write_results(tmp_path / "week1" / "results", [influence_row("human", "human", "helpful", "length", 20, 20, ci=(-0.3, 0.3), n_bootstrap=50)])
    summary = build_report(str(now))
    assert summary.html == str(now / "report.html") and f"html report: {summary.html}" in summary.lines()
    page = (now / "report.html").read_text()
    assert "Content-Security-Policy" in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    data = embedded_data(page)
    assert data["drift"] is None and data["top_cells"] == [{"task": "helpful", "labeler": "human", "setting": "human", "factor": "length"}]
    assert "no pairs/annotations" in data["examples_note"]
    assert main(["report", "--results", str(now), "--output", str(tmp_path / "out"), "--history", str(before)]) == 0
    assert "html report:" in capsys.readouterr().out
    data = embedded_data((tmp_path / "out" / "report.html").read_text())
    assert [a["label"] for a in data["drift"]["audits"]] == ["week1", "this audit"]
    (change,) = data["drift"]["changes"]
    assert change["delta"] == pytest.approx(0.5) and change["significant"] is None  # no replicates: no CI claimed



def test_the_audits_own_drift_tables_are_the_reference(tmp_path):
    results = write_results(tmp_path / "date=2026-11-27", [influence_row("human", "human", "helpful", "length", 30, 10, ci=(0.2, 0.7))])
    rows = [
        {"labeler": "human", "setting": "human", "task": "helpful", "factor": "length", "tau_previous": 0.1, "tau_current": 0.5,
         "change": 0.4, "ci_low": 0.1, "ci_high": 0.7, "significant": True, "n_replicates": 50},
        {"labeler": "human", "setting": "human", "task": "helpful", "factor": "bold", "tau_previous": None, "tau_current": 0.2,
         "change": None, "ci_low": None, "ci_high": None, "significant": False, "n_replicates": 0},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema.DRIFT_INFLUENCE), results / "drift_influence.parquet")
    alignment = [{"task": "helpful", "source_x": "a/evaluation", "source_y": "human/human", "metric": "spearman_rho", "value_previous": 0.5,
                  "value_current": 0.1, "change": -0.4, "ci_low": -0.7, "ci_high": -0.1, "significant": True, "drop": 0.4, "n_replicates": 50}]
    pq.write_table(pa.Table.from_pylist(alignment, schema=schema.DRIFT_ALIGNMENT), results / "drift_alignment.parquet")
    alone = audit_drift(str(results), None)
    assert [a["label"] for a in alone["audits"]] == ["previous audit", "this audit"]
    assert [(p["factor"], p["audit"], p["tau"]) for p in alone["points"]] == [("length", 0, 0.1), ("length", 1, 0.5), ("bold", 0, None), ("bold", 1, 0.2)]
    assert alone["changes"] == [{"labeler": "human", "setting": "human", "task": "helpful", "factor": "length", "before": 0.1, "after": 0.5,
                                 "delta": 0.4, "ci_low": 0.1, "ci_high": 0.7, "significant": True}]
    assert alone["alignment_changes"] == alignment
    earlier = write_results(tmp_path / "date=2026-11-26", [influence_row("human", "human", "helpful", "length", 20, 20)])
    with_history = audit_drift(str(results), [str(earlier)])
    assert [a["label"] for a in with_history["audits"]] == ["2026-11-26", "this audit"]
    assert with_history["changes"] == alone["changes"]  # the audit's table, not a recomputation
    assert audit_drift(str(earlier), None) is None
