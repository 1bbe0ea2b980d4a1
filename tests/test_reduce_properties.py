"""Properties of tau that must hold through the whole reduce stage (hypothesis, real Ray tasks)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profile_dist import ids, schema, storage
from profile_dist.stages.reduce import reduce

pytestmark = pytest.mark.usefixtures("ray_session")

pair_rows = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from(["a", "b", "tie"])), min_size=1, max_size=25,
)


def write_corpus(directory: Path, rows: list[tuple[float, float, str]]) -> tuple[str, str]:
    """Pairs and one factor's annotations, written as the ingest and annotate stages would."""
    pairs, annotations = [], []
    for i, (value_a, value_b, label) in enumerate(rows):
        a_id, b_id = ids.content_id("a", i), ids.content_id("b", i)
        pairs.append({
            "pair_id": ids.content_id("pair", i), "task": "t", "prompt_id": ids.content_id("p", i),
            "response_a_id": a_id, "response_b_id": b_id, "label": label, "labeler": "human",
            "setting": "human", "dataset": "synthetic", "source_file": "mem", "source_row": i,
        })
        for rid, value in ((a_id, value_a), (b_id, value_b)):
            annotations.append({"response_id": rid, "factor": "f", "value": float(value), "annotator": "rule",
                                "prompt_version": "rule-v1", "error": None})
    storage.write_parquet_atomic(pa.Table.from_pylist(pairs, schema=schema.PAIRS), str(directory / "pairs" / "pairs" / "part-00000.parquet"))
    storage.write_parquet_atomic(pa.Table.from_pylist(annotations, schema=schema.ANNOTATIONS), str(directory / "ann" / "part-00000.parquet"))
    return str(directory / "pairs"), str(directory / "ann")


def influence(rows) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        pairs_dir, ann_dir = write_corpus(Path(tmp), rows)
        reduce([pairs_dir], [ann_dir], f"{tmp}/res", n_bootstrap=20)
        table = pl.read_parquet(f"{tmp}/res/influence.parquet").to_dicts()
    return table[0] if table else {}


SLOW_OK = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OTHER = {"a": "b", "b": "a", "tie": "tie"}


@given(pair_rows)
@SLOW_OK
def test_swapping_a_and_b_with_the_label_leaves_tau_unchanged(rows):
    swapped = [(b, a, OTHER[label]) for a, b, label in rows]
    before, after = influence(rows), influence(swapped)
    assert (before.get("tau"), before.get("n_concordant"), before.get("n_discordant"), before.get("n_ties")) == \
        (after.get("tau"), after.get("n_concordant"), after.get("n_discordant"), after.get("n_ties"))
    assert (before.get("ci_low"), before.get("ci_high")) == (after.get("ci_low"), after.get("ci_high"))


@given(pair_rows)
@SLOW_OK
def test_relabelling_every_pair_negates_tau(rows):
    flipped = [(a, b, OTHER[label]) for a, b, label in rows]
    before, after = influence(rows), influence(flipped)
    if not before or before["tau"] is None:
        assert not after or after["tau"] is None
        return
    assert after["tau"] == -before["tau"]
    assert (after["n_concordant"], after["n_discordant"]) == (before["n_discordant"], before["n_concordant"])
    assert after["ci_low"] == pytest.approx(-before["ci_high"]) and after["ci_high"] == pytest.approx(-before["ci_low"])


@given(pair_rows, st.sampled_from(["cube", "exp", "affine"]))
@SLOW_OK
def test_tau_is_invariant_under_strictly_increasing_transforms(rows, transform):
    import math

    f = {"cube": lambda v: v ** 3 - 2, "exp": math.exp, "affine": lambda v: 0.25 * v + 100}[transform]
    transformed = [(f(a), f(b), label) for a, b, label in rows]
    before, after = influence(rows), influence(transformed)
    assert {k: before.get(k) for k in ("tau", "n_concordant", "n_discordant", "n_ties", "ci_low", "ci_high")} == \
        {k: after.get(k) for k in ("tau", "n_concordant", "n_discordant", "n_ties", "ci_low", "ci_high")}
