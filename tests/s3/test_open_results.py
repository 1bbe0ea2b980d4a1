"""profile_dist.open_results on a reduce output directory, on local disk and on the loopback S3 server."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import profile_dist
from profile_dist import schema, storage
from profile_dist.errors import ConfigError

# (labeler, setting, factor) -> (C, D, T, ci_low, ci_high)
COUNTS = {
    ("human", "human", "length"): (30, 70, 10, -0.55, -0.22),
    ("human", "human", "bold"): (40, 42, 28, -0.2, 0.18),
    ("judge", "evaluation", "length"): (80, 20, 10, 0.45, 0.72),
    ("judge", "evaluation", "bold"): (50, 30, 30, 0.02, 0.45),
}
GAP_ROW = {"task": "helpful", "reference": "human/human", "model": "judge", "metric": "kendall_tau_b",
           "evaluation": -0.4, "generation": 0.1, "gap": -0.5, "ci_low": -0.9, "ci_high": -0.1,
           "factors": "length,bold", "evaluation_pairs": "intersection"}


def _influence_rows() -> list[dict]:
    rows = []
    for (labeler, setting, factor), (c, d, t, lo, hi) in COUNTS.items():
        tau = (c - d) / (c + d)
        rows.append({"labeler": labeler, "setting": setting, "task": "helpful", "factor": factor,
                     "n_pairs": c + d + t, "n_concordant": c, "n_discordant": d, "n_ties": t, "tau": tau,
                     "tau_a": (c - d) / (c + d + t), "relevance": (c + d) / (c + d + t),
                     "p_preferred_more": (1 + tau) / 2, "ci_low": lo, "ci_high": hi, "n_bootstrap": 100})
    return rows


def _write(root: str) -> str:
    """A reduce output directory, table by table (what the reduce writes; no adjusted table)."""
    tables = {
        "influence": pa.Table.from_pylist(_influence_rows(), schema=schema.INFLUENCE),
        "alignment": pa.Table.from_pylist([{"task": "helpful", "source_x": "human/human", "source_y": "judge/evaluation",
                                            "n_factors": 2, "metric": "kendall_tau_b", "value": -1.0,
                                            "ci_low": -1.0, "ci_high": 1.0, "factor_set": "all", "factors": "length,bold",
                                            "pairs": "separate"}], schema=schema.ALIGNMENT),
        "skipped": pa.Table.from_pylist([{"stage": "ingest", "labeler": None, "setting": None, "task": None,
                                          "factor": None, "reason": "null preference", "count": 3}], schema=schema.SKIPPED),
        "gap": pa.Table.from_pylist([GAP_ROW], schema=schema.GAP),
    }
    for name, table in tables.items():
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        storage.write_bytes_atomic(sink.getvalue().to_pybytes(), storage.join(root, f"{name}.parquet"))
    storage.write_json_atomic({"stage": "reduce", "n_bootstrap": 100, "confidence_level": 0.95}, storage.join(root, "_manifest.json"))
    return root


@pytest.fixture(params=["local", "s3"])
def results_dir(request, tmp_path) -> str:
    root = str(tmp_path / "results") if request.param == "local" else f"{request.getfixturevalue('bucket')}/results"
    return _write(root)


def test_typed_tables_summary_and_inline_report(results_dir):
    res = profile_dist.open_results(results_dir)

    influence = res.influence()
    assert influence.schema == pl.from_arrow(schema.INFLUENCE.empty_table()).schema
    got = {(r["labeler"], r["setting"], r["factor"]): r["tau"] for r in influence.to_dicts()}
    assert got == {k: (c - d) / (c + d) for k, (c, d, _, _, _) in COUNTS.items()}
    assert res.alignment()["value"].to_list() == [-1.0]
    assert res.skipped().select("reason", "count").rows() == [("null preference", 3)]
    assert res.gap().to_dicts() == [GAP_ROW]
    adjusted = res.adjusted()  # not written by this reduce: empty, with its columns and types
    assert adjusted.height == 0 and adjusted.columns == schema.ADJUSTED.names

    summary = res.summary()
    assert summary.sources == ["human/human", "judge/evaluation"] and summary.tasks == ["helpful"]
    assert summary.factors == ["bold", "length"] and summary.n_pairs == 110
    assert (summary.n_bootstrap, summary.confidence_level) == (100, 0.95)
    # The strongest effect at its CI bound nearest zero is the judge's length (0.45), then human length (0.22).
    assert "judge/evaluation on helpful: the preferred response has more length" in summary.findings[0]
    assert "human/human on helpful: the preferred response has less length" in summary.findings[1]
    assert "2 source(s)" in str(summary)

    page = res._repr_html_()
    srcdoc = html.unescape(re.search(r'<iframe srcdoc="([^"]*)"', page).group(1))
    assert 'id="heatmap-plots"' in srcdoc and "<h3>Generation-evaluation gap</h3>" in srcdoc
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', srcdoc, re.S).group(1))
    assert {(r["labeler"], r["factor"]): r["tau"] for r in data["influence"]} == {(k[0], k[2]): v for k, v in got.items()}
    assert data["gaps"]["alignment"] and "judge" in json.dumps(data["gaps"]["alignment"])


def test_a_directory_that_is_not_a_reduce_output_is_named(tmp_path, bucket):
    with pytest.raises(ConfigError, match=r"empty: not a `profile-dist reduce` output directory \(no influence.parquet\)"):
        profile_dist.open_results(str(tmp_path / "empty"))
    ingest_out = f"{bucket}/pairs"
    storage.write_json_atomic({"stage": "ingest"}, storage.join(ingest_out, "_manifest.json"))
    with pytest.raises(ConfigError, match=r"pairs: not a .* \(it is the output of `profile-dist ingest`\)"):
        profile_dist.open_results(ingest_out)
