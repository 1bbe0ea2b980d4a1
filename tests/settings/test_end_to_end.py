"""Acceptance: planted judge and generator, ingest -> judge/generate -> annotate -> reduce recovers them."""

from __future__ import annotations

import itertools

import polars as pl
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import cohen_kappa_score

from profile_dist.stages.annotate import annotate
from profile_dist.stages.generate import generate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.judge import judge
from profile_dist.stages.reduce import reduce

from settings_helpers import MODEL, endpoints_file, planted_server, write_human_corpus

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")

P_LONGER = 0.8
GEN = {"gen_base_words": 10, "gen_words_per_level": 12, "gen_noise_words": 20, "gen_list_from": 3}
LEVELS = 5


def expected_generation_length_tau(levels: int, per_level: int, noise: int) -> float:
    """tau(length) over all level pairs when words = base + per_level * L + U{0..noise-1}, independent."""
    concordant = discordant = 0
    for low, high in itertools.combinations(range(1, levels + 1), 2):
        for n_low, n_high in itertools.product(range(noise), repeat=2):
            diff = per_level * (high - low) + n_high - n_low
            concordant += diff > 0
            discordant += diff < 0
    return (concordant - discordant) / (concordant + discordant)


@pytest.fixture(scope="module")
def server():
    behaviour = [f"judge_prefers_longer={P_LONGER}"] + [f"{k}={v}" for k, v in GEN.items()]
    with planted_server(*behaviour) as process:
        yield process


def test_planted_judge_and_generator_are_recovered_by_the_reduce(tmp_path, server):
    endpoints = endpoints_file(tmp_path, server)
    corpus = write_human_corpus(tmp_path / "human.jsonl", n_pairs=500, n_prompts=80)
    human = str(tmp_path / "ingest" / "human")
    ingest("pairs", [corpus], human, progress=False)

    # 500 pairs: the dry-run estimate is printed first, and the run sends exactly what it projected.
    printed: list[str] = []
    judged = str(tmp_path / "judge")
    before = server.stats()["requests"]
    # In chunks of 128 pairs (4 engine runs): the estimate over the chunks is still exact.
    summary = judge(human, "model", judged, endpoints=endpoints, progress=False, say=printed.append, chunk_pairs=128)
    assert len(printed) == 1 and printed[0].startswith("dry run (judge, judge: model = sim-model): 1000 requests")
    assert "1000 to send" in printed[0]
    assert summary.llm["sent"] == 1000 == server.stats()["requests"] - before
    assert summary.n_pairs == 500 and summary.n_inconsistent == 0 and summary.n_failed == 0
    # A rerun projects and sends nothing: every reply is in the cache beside the output.
    again: list[str] = []
    rerun = judge(human, "model", judged, endpoints=endpoints, progress=False, say=again.append)
    assert "0 to send" in again[0] and rerun.llm["sent"] == 0 and server.stats()["requests"] - before == 1000

    generated = str(tmp_path / "generate")
    gen = generate(human, "model", generated, levels=LEVELS, check_llm="rater", endpoints=endpoints, progress=False)
    assert gen.n_prompts == 80 and gen.n_responses == 80 * LEVELS and gen.n_pairs == 80 * 10

    annotations = {name: str(tmp_path / "ann" / name) for name in ("human", "generate")}
    annotate(human, annotations["human"], factors=["length", "list_items", "bold"], progress=False)
    annotate(generated, annotations["generate"], factors=["length", "list_items", "bold"], progress=False)
    results = tmp_path / "results"
    # The judged pairs reuse the human corpus' response ids: its annotations serve both. Alignment compares the
    # task's factors by default; of helpful's, only length is annotated here (the rest are LLM factors), so the
    # planted rule factors are named explicitly (with the default there is no alignment: one factor).
    reduce([human, judged, generated], list(annotations.values()), str(results), n_bootstrap=200, progress=False,
           alignment_factors=["length", "list_items", "bold"])

    influence = pl.read_parquet(results / "influence.parquet")

    def row(labeler: str, setting: str, factor: str) -> dict:
        rows = influence.filter((pl.col("labeler") == labeler) & (pl.col("setting") == setting) & (pl.col("factor") == factor))
        assert rows.height == 1
        return rows.row(0, named=True)

    # Judge: prefers the longer response 80% of the time, the difference is always present: tau = 0.6.
    j = row(MODEL, "evaluation", "length")
    assert j["n_pairs"] == 500 and j["n_ties"] == 0
    assert j["tau"] > 0 and j["ci_low"] <= 2 * P_LONGER - 1 <= j["ci_high"]
    # Generator: longer with the level (up to noise), and more formatted: the expected tau from the planted
    # parameters, and list items / bold words never fewer at a higher level.
    g = row(MODEL, "generation", "length")
    expected = expected_generation_length_tau(LEVELS, GEN["gen_words_per_level"], GEN["gen_noise_words"])
    assert g["tau"] > 0 and g["ci_low"] <= expected <= g["ci_high"]
    for factor in ("list_items", "bold"):
        f = row(MODEL, "generation", factor)
        assert f["n_discordant"] == 0 and f["n_concordant"] > 0 and f["tau"] == 1.0
    # The model is a source in both settings: the reduce reports its generation-evaluation gap.
    gap = pl.read_parquet(results / "gap.parquet")
    assert set(gap["model"]) == {MODEL} and gap.height > 0
    # The documented figure (docs/paper.md): Kendall 1/3 as judge, -0.816 as writer, gap 1.15 [0.33, 1.82]. The
    # intervals' construction is separate work: the bounds get a looser tolerance than the point.
    kendall = gap.filter(pl.col("metric") == "kendall_tau_b").row(0, named=True)
    assert kendall["evaluation"] == pytest.approx(1 / 3, abs=1e-9) and kendall["generation"] == pytest.approx(-(2 / 3) ** 0.5, abs=1e-9)
    assert kendall["gap"] == pytest.approx(1.15, abs=0.01)
    assert kendall["ci_low"] == pytest.approx(0.33, abs=0.1) and kendall["ci_high"] == pytest.approx(1.82, abs=0.1)
    assert (kendall["factors"], kendall["evaluation_pairs"]) == ("bold,length,list_items", "intersection")
    # Judge and humans on the same pairs: the humans tied none and the judge was always consistent, so all 500.
    aligned = pl.read_parquet(results / "alignment.parquet").filter(pl.col("source_y") == f"{MODEL}/evaluation").row(0, named=True)
    assert (aligned["source_x"], aligned["pairs"], aligned["n_pairs"], aligned["n_dropped_x"], aligned["n_dropped_y"]) == (
        "human/human", "intersection", 500, 0, 0)

    # Agreement with humans, recomputed with sklearn from the stage's own outputs.
    agreement = pl.read_parquet(f"{judged}/judge_agreement.parquet").row(0, named=True)
    human_pairs = pl.read_parquet(f"{human}/pairs/*.parquet")
    judge_pairs = pl.read_parquet(f"{judged}/pairs/*.parquet")
    both = human_pairs.join(judge_pairs, on=["prompt_id", "response_a_id", "response_b_id"], suffix="_judge")
    assert both.height == agreement["n_compared"] == 500
    assert agreement["accuracy"] == pytest.approx((both["label"] == both["label_judge"]).mean())
    assert agreement["cohen_kappa"] == pytest.approx(cohen_kappa_score(both["label"], both["label_judge"]))
    assert agreement["position_consistency"] == 1.0
    # Always consistent: the figure over all judged pairs is the consistent-only one.
    assert (agreement["n_compared_consistent_only"], agreement["accuracy_consistent_only"]) == (500, agreement["accuracy"])

    # Manipulation check: tau(level, rating) within each prompt as scipy computes it on the stored ratings,
    # averaged over prompts, and positive; the pooled figure beside it.
    check = pl.read_parquet(f"{generated}/manipulation_check.parquet").row(0, named=True)
    rated = pl.read_parquet(f"{generated}/generations.parquet").drop_nulls("rating")
    assert check["n_rated"] == rated.height == 80 * LEVELS
    per_prompt = [kendalltau(g["level"], g["rating"]).statistic for _, g in rated.group_by("prompt_id")]
    defined = [t for t in per_prompt if t == t]  # nan: every rating of the prompt equal
    assert check["n_prompts"] == len(defined) and check["n_prompts"] + check["n_prompts_undefined"] == 80
    assert check["kendall_tau"] == pytest.approx(sum(defined) / len(defined))
    assert check["pooled_kendall_tau"] == pytest.approx(kendalltau(rated["level"], rated["rating"]).statistic)
    assert check["kendall_tau"] > 0.3 and check["ci_low"] < check["kendall_tau"] < check["ci_high"]

    # The report shows the judge's agreement, the manipulation check and what each LLM stage cost.
    from profile_dist.report import build_report

    build_report(str(results))
    report = (results / "report.md").read_text()
    assert "## Models as judges (evaluation setting)" in report
    assert (f"| {MODEL} | helpful | human/human | 500 | 0 | 0 | 1.000 | {agreement['accuracy']:.3f} | {agreement['cohen_kappa']:.3f} "
            f"| {agreement['accuracy']:.3f} |") in report
    assert "Factors compared (the factors named: length, list_items, bold), the same on both sides and in the gap: bold, length, list_items." in report
    assert f"human/human vs {MODEL}/evaluation: compared on the 500 judged pairs both decided" in report
    assert "## Generation setting: manipulation check" in report and f"{check['kendall_tau']:.3f} |" in report
    assert "## LLM cost" in report and "| judge |" in report
