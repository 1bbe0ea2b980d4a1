"""On the real corpora: the distributed reduce's C, D, T and tau equal a single-process reference
exactly, and every result table is identical for 1 shard and for many shards."""

from __future__ import annotations

import polars as pl
import pytest
from profile_dist.analysis import stats
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce

pytestmark = pytest.mark.usefixtures("ray_session")

TABLES = ("influence", "alignment", "adjusted", "gap", "replicates", "skipped")


@pytest.fixture(scope="module")
def corpora(shared_data, tmp_path_factory):
    """HH-RLHF harmless and AlpacaEval (alpaca-7b, GPT-4 judge), each ingested as 1 shard and as many."""
    root = tmp_path_factory.mktemp("real")
    inputs = {
        "hh": ("hh_rlhf", [str(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")]),
        "alpaca": ("alpaca_eval", [str(shared_data / "alpaca_eval" / "alpaca-7b.alpaca_eval_gpt4.annotations.json.gz")]),
    }
    layouts = {}
    for layout, rows_per_shard in (("one", 1_000_000), ("many", 173)):
        pairs_dirs, annotation_dirs = [], []
        for name, (fmt, files) in inputs.items():
            pairs_dir, ann_dir = str(root / layout / name / "pairs"), str(root / layout / name / "ann")
            ingest(fmt, files, pairs_dir, task="helpful", rows_per_shard=rows_per_shard, progress=False)
            annotate(pairs_dir, ann_dir, factors=["length", "novel_words", "list_items", "bold"], progress=False)
            pairs_dirs.append(pairs_dir)
            annotation_dirs.append(ann_dir)
        layouts[layout] = (pairs_dirs, annotation_dirs)
    return root, layouts


def single_process_reference(pairs_dirs: list[str], annotation_dirs: list[str]) -> pl.DataFrame:
    """C, D, T per (labeler, setting, task, factor) straight from the Parquet files, in one process."""
    pairs = pl.concat([pl.read_parquet(f"{d}/pairs/*.parquet") for d in pairs_dirs]).filter(pl.col("label") != "tie")
    values = pl.concat([pl.read_parquet(f"{d}/*.parquet") for d in annotation_dirs]).select("response_id", "factor", "value")
    joined = (
        pairs.join(values.rename({"response_id": "response_a_id", "value": "value_a"}), on="response_a_id")
        .join(values.rename({"response_id": "response_b_id", "value": "value_b"}), on=["response_b_id", "factor"])
        .with_columns(
            preferred=pl.when(pl.col("label") == "a").then("value_a").otherwise("value_b"),
            other=pl.when(pl.col("label") == "a").then("value_b").otherwise("value_a"),
        )
    )
    return joined.group_by("labeler", "setting", "task", "factor").agg(
        n_concordant=(pl.col("preferred") > pl.col("other")).sum().cast(pl.Int64),
        n_discordant=(pl.col("preferred") < pl.col("other")).sum().cast(pl.Int64),
        n_ties=(pl.col("preferred") == pl.col("other")).sum().cast(pl.Int64),
    )


def test_counts_and_tau_match_the_single_process_reference_exactly(corpora):
    root, layouts = corpora
    pairs_dirs, annotation_dirs = layouts["many"]
    assert len(list((root / "many" / "hh" / "pairs" / "pairs").glob("*.parquet"))) > 10
    reduce(pairs_dirs, annotation_dirs, str(root / "res_many"), n_bootstrap=50, progress=False)
    ours = pl.read_parquet(root / "res_many" / "influence.parquet")
    expected = single_process_reference(pairs_dirs, annotation_dirs)
    keys = ["labeler", "setting", "task", "factor"]
    joined = ours.join(expected, on=keys, how="full", suffix="_ref", coalesce=True)
    assert joined.height == ours.height == expected.height == 8
    for column in ("n_concordant", "n_discordant", "n_ties"):
        assert (joined[column] == joined[f"{column}_ref"]).all(), column
    for row in joined.iter_rows(named=True):
        reference = stats.tau_from_counts(row["n_concordant_ref"], row["n_discordant_ref"])
        assert row["tau"] == reference or (row["tau"] is None and reference != reference)  # undefined: C + D = 0
    # the known figures of the shared data README (words = whitespace tokens)
    length = {r["labeler"]: r for r in ours.filter(pl.col("factor") == "length").iter_rows(named=True)}
    assert (length["human"]["n_concordant"] + length["human"]["n_discordant"], round(length["human"]["tau"], 3)) == (2267, -0.124)
    assert (length["alpaca_eval_gpt4"]["n_concordant"] + length["alpaca_eval_gpt4"]["n_discordant"], round(length["alpaca_eval_gpt4"]["tau"], 3)) == (758, 0.346)


def test_every_table_is_identical_for_one_shard_and_many(corpora):
    root, layouts = corpora
    for layout in ("one", "many"):
        if not (root / f"res_{layout}_b" / "influence.parquet").exists():
            reduce(*layouts[layout], str(root / f"res_{layout}_b"), n_bootstrap=50, progress=False, alignment_factors="all")
    for table in TABLES:
        one = pl.read_parquet(root / "res_one_b" / f"{table}.parquet")
        many = pl.read_parquet(root / "res_many_b" / f"{table}.parquet")
        assert one.equals(many), table
    assert pl.read_parquet(root / "res_one_b" / "alignment.parquet").height > 0  # "all": the rule factors are compared
    adjusted = pl.read_parquet(root / "res_one_b" / "adjusted.parquet")
    assert adjusted.height == 8 and adjusted["bt_coef"].is_not_null().sum() >= 6


def test_length_matched_counts_use_the_length_factor_whatever_the_factor_order(corpora):
    """The length-matched subset is pairs whose lengths differ by at most 10% of the longer: computed here
    from the length values alone. (It once took the last factor's values: here 'novel_words'.)"""
    root, layouts = corpora
    pairs_dirs, annotation_dirs = layouts["many"]
    if not (root / "res_many" / "adjusted.parquet").exists():
        reduce(pairs_dirs, annotation_dirs, str(root / "res_many"), n_bootstrap=50, progress=False)
    ours = pl.read_parquet(root / "res_many" / "adjusted.parquet")
    pairs = pl.concat([pl.read_parquet(f"{d}/pairs/*.parquet") for d in pairs_dirs]).filter(pl.col("label") != "tie")
    values = pl.concat([pl.read_parquet(f"{d}/*.parquet") for d in annotation_dirs]).select("response_id", "factor", "value")
    length = values.filter(pl.col("factor") == "length").select("response_id", length="value")
    matched = (pairs.join(length.rename({"response_id": "response_a_id", "length": "len_a"}), on="response_a_id")
               .join(length.rename({"response_id": "response_b_id", "length": "len_b"}), on="response_b_id")
               .filter((pl.col("len_a") - pl.col("len_b")).abs() <= 0.10 * pl.max_horizontal("len_a", "len_b")))
    preferred = pl.when(pl.col("label") == "a")
    for factor in ("bold", "list_items", "novel_words"):
        f = values.filter(pl.col("factor") == factor).select("response_id", "value")
        both = (matched.join(f.rename({"response_id": "response_a_id", "value": "fa"}), on="response_a_id")
                .join(f.rename({"response_id": "response_b_id", "value": "fb"}), on="response_b_id")
                .with_columns(d=preferred.then(pl.col("fa") - pl.col("fb")).otherwise(pl.col("fb") - pl.col("fa"))))
        expected = both.group_by("labeler").agg(n=(pl.col("d") != 0).sum().cast(pl.Int64))
        got = ours.filter(pl.col("factor") == factor).select("labeler", "n_length_matched_decided")
        check = got.join(expected, on="labeler", how="full", coalesce=True)
        assert check.height == 2 and (check["n_length_matched_decided"] == check["n"]).all(), (factor, check)


def test_the_factor_join_gives_the_same_tables_for_any_number_of_join_buckets(corpora):
    root, layouts = corpora
    pairs_dirs, annotation_dirs = layouts["many"]
    results = {}
    for buckets in (1, 3, 8):
        out = root / f"res_join_{buckets}"
        reduce(pairs_dirs, annotation_dirs, str(out), n_bootstrap=20, progress=False, join_buckets=buckets)
        results[buckets] = {t: pl.read_parquet(out / f"{t}.parquet") for t in TABLES}
        assert not [p for p in out.iterdir() if p.name.startswith(".join-")]  # the shuffle's scratch is removed
    for buckets in (3, 8):
        for table in TABLES:
            assert results[buckets][table].equals(results[1][table]), (buckets, table)
