"""Adapters for the paper's corpora, on fixture files written here in their public layouts."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from profile_dist.layout import published
from profile_dist.sources import RawPair, RowProblem, get_source


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def records(format_name: str, path: Path):
    return list(get_source(format_name).records(str(path)))


TLDR_ROW = {
    "info": {"id": "t3_abc", "post": "I moved to a new city and my neighbour plays drums at 2am every night.",
             "title": "Neighbour drums at night", "subreddit": "relationships"},
    "summaries": [{"text": " Neighbour drums at 2am, what do I do?", "policy": "sup2", "note": None},
                  {"text": " I moved.", "policy": "ref", "note": None}],
    "choice": 0, "worker": "w1", "batch": "b1", "split": "valid1", "extra": {"confidence": 8},
}


def test_tldr_layout(tmp_path):
    flipped = {**TLDR_ROW, "choice": 1}
    got = records("tldr", write_jsonl(tmp_path / "comparisons.jsonl", [TLDR_ROW, flipped]))
    assert [r.label for r in got] == ["a", "b"]
    first = got[0]
    assert first.source == TLDR_ROW["info"]["post"]
    assert first.prompt.startswith("SUBREDDIT: r/relationships\nTITLE: Neighbour drums at night\nPOST: I moved")
    assert (first.response_a, first.response_b) == (" Neighbour drums at 2am, what do I do?", " I moved.")
    assert get_source("tldr").default_task == "summarization"


@pytest.mark.parametrize("change, field", [
    ({"choice": 2}, "choice"), ({"summaries": [{"text": "x"}]}, "summaries"),
    ({"info": {"title": "t"}}, "info.post"), ({"summaries": [{"text": "x"}, {"text": 5}]}, "summaries[1].text"),
])
def test_tldr_bad_rows(tmp_path, change, field):
    got = records("tldr", write_jsonl(tmp_path / "c.jsonl", [{**TLDR_ROW, **change}]))
    assert isinstance(got[0], RowProblem) and got[0].field == field


SHP_ROW = {
    "post_id": "himc90", "domain": "askculinary_train", "upvote_ratio": 0.99,
    "history": "How long should I rest a steak after grilling?",
    "c_root_id_A": "fv1", "c_root_id_B": "fv2", "created_at_utc_A": 1, "created_at_utc_B": 2,
    "score_A": 52, "score_B": 3, "human_ref_A": "About five minutes, tented loosely in foil.",
    "human_ref_B": "Never rest it.", "labels": 1, "seconds_difference": 1.0, "score_ratio": 17.3,
}


def test_shp_layout(tmp_path):
    b_wins = {**SHP_ROW, "score_A": 1, "score_B": 40, "labels": 0}
    got = records("shp", write_jsonl(tmp_path / "shp.jsonl", [SHP_ROW, b_wins]))
    assert [(r.prompt, r.label) for r in got] == [(SHP_ROW["history"], "a"), (SHP_ROW["history"], "b")]
    assert got[0].response_a == SHP_ROW["human_ref_A"]


def test_shp_label_that_contradicts_scores_is_bad_input(tmp_path):
    got = records("shp", write_jsonl(tmp_path / "shp.jsonl", [{**SHP_ROW, "labels": 0}]))
    assert isinstance(got[0], RowProblem) and got[0].field == "labels" and "disagrees" in got[0].reason


WEBGPT_ROW = {
    "question": {"dataset": "eli5", "id": "q1", "full_text": "Why is the sky blue?"},
    "quotes_0": {"title": ["Rayleigh scattering"], "extract": ["Shorter wavelengths scatter more strongly."]},
    "answer_0": "Blue light scatters more in the atmosphere [1].", "tokens_0": [], "score_0": 1.0,
    "quotes_1": {"title": [], "extract": []}, "answer_1": "Because the ocean reflects it.", "tokens_1": [], "score_1": -1.0,
}


def test_webgpt_layout(tmp_path):
    tie = {**WEBGPT_ROW, "score_0": 0.0, "score_1": 0.0}
    reverse = {**WEBGPT_ROW, "score_0": -0.5, "score_1": 0.5}
    got = records("webgpt", write_jsonl(tmp_path / "webgpt.jsonl", [WEBGPT_ROW, tie, reverse]))
    assert [r.label for r in got] == ["a", "tie", "b"]
    assert got[0].prompt == "Why is the sky blue?"
    assert "Rayleigh scattering: Shorter wavelengths scatter more strongly." in got[0].source
    assert got[0].source.startswith("QUESTION: Why is the sky blue?")
    # Each answer has its own source: the question and the quotes it retrieved, nothing the other one did.
    assert got[0].source_a == "QUESTION: Why is the sky blue?\n\nRayleigh scattering: Shorter wavelengths scatter more strongly."
    assert got[0].source_b == "QUESTION: Why is the sky blue?"


@pytest.mark.parametrize("change, field", [
    ({"score_0": 3}, "score_0"), ({"quotes_1": {"title": ["a"], "extract": []}}, "quotes_1"),
    ({"question": "x"}, "question"), ({"answer_1": None}, "answer_1"),
])
def test_webgpt_bad_rows(tmp_path, change, field):
    got = records("webgpt", write_jsonl(tmp_path / "w.jsonl", [{**WEBGPT_ROW, **change}]))
    assert isinstance(got[0], RowProblem) and got[0].field == field


@pytest.mark.usefixtures("ray_session")
def test_webgpt_source_reaches_the_novel_words_factor(tmp_path):
    from profile_dist.stages.annotate import annotate
    from profile_dist.stages.ingest import ingest

    path = write_jsonl(tmp_path / "webgpt.jsonl", [WEBGPT_ROW])
    summary = ingest("webgpt", [str(path)], str(tmp_path / "pairs"))
    assert summary.n_pairs == 1
    pairs = pl.read_parquet(tmp_path / "pairs" / "pairs")
    assert pairs["task"].to_list() == ["document_qa"]
    annotate(str(tmp_path / "pairs"), str(tmp_path / "ann"), factors=["novel_words"])
    values = pl.read_parquet(tmp_path / "ann" / "part-*.parquet").join(pl.read_parquet(tmp_path / "pairs" / "responses"), on="response_id")
    by_text = dict(zip(values["text"], values["value"]))
    # "scatters"/"more"/"blue"... mostly appear in the retrieved quote; the ocean answer's words do not.
    assert by_text[WEBGPT_ROW["answer_0"]] < by_text[WEBGPT_ROW["answer_1"]]


def novel_share(text: str, source: str) -> float:
    """Reference novel_words: share of the text's lowercased \\w+ types not among the source's."""
    import re

    types = set(re.findall(r"\w+", text.lower()))
    return len(types - set(re.findall(r"\w+", source.lower()))) / len(types)


@pytest.mark.usefixtures("ray_session")
def test_webgpt_answers_are_scored_against_their_own_quotes_not_the_union(tmp_path):
    """Answer 1 repeats a quote only answer 0 retrieved: against the union of both answers' quotes it would
    look fully supported (novel share 0); against its own (none) every word is novel."""
    from profile_dist.stages.annotate import annotate, shard_with_sources
    from profile_dist.stages.ingest import ingest

    row = {**WEBGPT_ROW, "answer_1": "Shorter wavelengths scatter more strongly."}
    ingest("webgpt", [str(write_jsonl(tmp_path / "webgpt.jsonl", [row]))], str(tmp_path / "pairs"))
    responses = pl.read_parquet(tmp_path / "pairs" / "responses")
    own = {"QUESTION: Why is the sky blue?\n\nRayleigh scattering: Shorter wavelengths scatter more strongly.": row["answer_0"],
           "QUESTION: Why is the sky blue?": row["answer_1"]}
    assert dict(zip(responses["source"], responses["text"])) == own
    frame = shard_with_sources(responses.to_arrow(), published.table_files(str(tmp_path / "pairs"), "prompts"))
    assert dict(zip(frame["text"], frame["source_text"])) == {text: src for src, text in own.items()}
    # The prompt keeps the union (what a generated answer is given and judged against; here it is also
    # answer 0's own quotes, since answer 1 retrieved none).
    prompts = pl.read_parquet(tmp_path / "pairs" / "prompts")
    assert prompts["source"].to_list() == [union := "QUESTION: Why is the sky blue?\n\nRayleigh scattering: "
                                           "Shorter wavelengths scatter more strongly."]
    annotate(str(tmp_path / "pairs"), str(tmp_path / "ann"), factors=["novel_words"])
    values = pl.read_parquet(tmp_path / "ann" / "part-*.parquet").join(responses, on="response_id")
    by_text = dict(zip(values["text"], values["value"]))
    assert by_text[row["answer_1"]] == pytest.approx(novel_share(row["answer_1"], "QUESTION: Why is the sky blue?")) == 1.0
    assert novel_share(row["answer_1"], union) == 0.0  # what the union of quotes made of it
    assert by_text[row["answer_0"]] == pytest.approx(novel_share(row["answer_0"], union)) == 5 / 8
