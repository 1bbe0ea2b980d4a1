"""Each task is put to the judge, the writer and the rater in its own terms, and the manipulation check is
computed within prompts (issue 12, points 7, 8 and 10)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats

from profile_dist import schema, storage
from profile_dist.layout import published
from profile_dist.prompts.fencing import find_block
from profile_dist.analysis import manipulation
from profile_dist.prompts.settings import GenerationPrompt, JudgePrompt, RatingPrompt
from profile_dist.stages.generate import generate, generation_requests, prompt_tasks
from profile_dist.stages.ingest import ingest
from profile_dist.stages.judge import PairTexts, judge, judge_requests, select_pairs

from settings_helpers import endpoints_file, planted_server, write_human_corpus

POST = "I moved to a new city and my neighbour plays drums at 2am every night."
TLDR_ROWS = [{"info": {"id": f"t{i}", "post": f"{POST} Day {i}.", "title": "Drums", "subreddit": "relationships"},
              "summaries": [{"text": f"Neighbour drums at 2am, what do I do? ({i})"}, {"text": f"I moved. ({i})"}],
              "choice": i % 2} for i in range(2)]
QUOTE_0 = "Rayleigh scattering: Shorter wavelengths scatter more strongly."
QUOTE_1 = "Ocean colour: The sea looks blue because water absorbs red light."
WEBGPT_ROWS = [{"question": {"full_text": f"Why is the sky blue? ({i})"},
                "quotes_0": {"title": ["Rayleigh scattering"], "extract": ["Shorter wavelengths scatter more strongly."]},
                "answer_0": "Blue light scatters more in the atmosphere [1].", "score_0": 1.0,
                "quotes_1": {"title": ["Ocean colour"], "extract": ["The sea looks blue because water absorbs red light."]},
                "answer_1": f"Because the ocean reflects it [1]. ({i})", "score_1": -1.0} for i in range(2)]


def ingested(tmp_path, fmt: str, rows: list[dict]) -> str:
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = str(tmp_path / "ingest" / fmt)
    ingest(fmt, [str(path)], out, progress=False)
    return out


def judge_users(pairs_dir: str) -> tuple[list[str], list[str]]:
    """User message and template version of every judge request the stage builds for ``pairs_dir``."""
    tables = {n: storage.read_table_dir(storage.join(pairs_dir, n), s)
              for n, s in (("pairs", schema.PAIRS), ("prompts", schema.PROMPTS), ("responses", schema.RESPONSES))}
    chosen = select_pairs(pl.from_arrow(tables["pairs"]))
    requests = judge_requests(chosen, PairTexts.of(tables["prompts"], tables["responses"]), JudgePrompt())
    assert len(requests) == 2 * chosen.height
    return [r.messages[1]["content"] for r in requests], [r.template_version for r in requests]


@pytest.mark.usefixtures("ray_session")
def test_the_judge_is_asked_what_each_tasks_human_raters_were_asked(tmp_path):
    users, versions = judge_users(ingested(tmp_path, "tldr", TLDR_ROWS))
    assert set(versions) == {"judge/v2/summarization-v1"}
    for user in users:
        assert "Reddit post:" in user and "Which summary of this post is better?" in user
        assert find_block("PROMPT", user) in {f"SUBREDDIT: r/relationships\nTITLE: Drums\nPOST: {POST} Day {i}." for i in (0, 1)}
        assert find_block("DOCUMENTS", user) is None  # the post is the prompt: shown once

    # Document QA: the question, and each answer beside the quotes IT retrieved (never the other's).
    users, versions = judge_users(ingested(tmp_path, "webgpt", WEBGPT_ROWS))
    assert set(versions) == {"judge/v2/document_qa-v1"}
    for user in users:
        assert "Which answer to the question is better?" in user
        assert find_block("PROMPT", user).startswith("Why is the sky blue?")
        first, second = find_block("RESPONSE_ONE", user), find_block("RESPONSE_TWO", user)
        by_answer = {first: find_block("DOCUMENTS_ONE", user), second: find_block("DOCUMENTS_TWO", user)}
        blue = next(a for a in by_answer if a.startswith("Blue light"))
        ocean = next(a for a in by_answer if a.startswith("Because the ocean"))
        assert QUOTE_0 in by_answer[blue] and QUOTE_1 not in by_answer[blue]
        assert QUOTE_1 in by_answer[ocean] and QUOTE_0 not in by_answer[ocean]

    # A conversation of the helpful task is asked about helpfulness.
    corpus = write_human_corpus(tmp_path / "h.jsonl", 4, 2)
    users, versions = judge_users(ingested(tmp_path, "pairs", [json.loads(line) for line in open(corpus)]))
    assert set(versions) == {"judge/v2/helpful-v1"}
    assert all("Conversation:" in u and "Which reply is more helpful" in u for u in users)


@pytest.mark.usefixtures("ray_session")
def test_each_generation_request_carries_its_task_instruction_and_documents(tmp_path):
    tldr, webgpt = ingested(tmp_path, "tldr", TLDR_ROWS), ingested(tmp_path, "webgpt", WEBGPT_ROWS)
    for mode in ("joint", "separate"):
        frame = prompt_tasks(tldr, None)
        requests = generation_requests(frame, 3, mode, GenerationPrompt())
        assert len(requests) == frame.height * (1 if mode == "joint" else 3)
        for request in requests:
            user = request.messages[1]["content"]
            assert user.startswith("Write a TL;DR: a short summary of this Reddit post.")
            assert find_block("PROMPT", user) in frame["text"].to_list() and find_block("DOCUMENTS", user) is None
            assert request.template_version == "generate/v2/summarization-v1"
        frame = prompt_tasks(webgpt, None)
        for request in generation_requests(frame, 3, mode, GenerationPrompt()):
            user = request.messages[1]["content"]
            assert user.startswith("Answer the question from the retrieved documents.")
            question = find_block("PROMPT", user)
            # The documents given are the prompt's: every quote retrieved for the question.
            assert find_block("DOCUMENTS", user) == frame.filter(pl.col("text") == question)["source"].item()
            assert QUOTE_0 in find_block("DOCUMENTS", user) and QUOTE_1 in find_block("DOCUMENTS", user)
    rate = RatingPrompt().request("Why?", "Because.", task="document_qa", documents="QUESTION: Why?\n\nq")
    assert find_block("DOCUMENTS", rate.messages[1]["content"]) == "QUESTION: Why?\n\nq"


@pytest.mark.usefixtures("ray_session", "api_key")
def test_the_stages_record_each_tasks_prompt_version_and_generations_are_judged_against_their_documents(tmp_path):
    from profile_dist.stages.annotate import shard_with_sources

    webgpt = ingested(tmp_path, "webgpt", WEBGPT_ROWS)
    with planted_server() as server:
        endpoints = endpoints_file(tmp_path, server)
        judge(webgpt, "model", str(tmp_path / "judge"), endpoints=endpoints, progress=False)
        generate(webgpt, "model", str(tmp_path / "gen"), levels=3, check_llm="rater", endpoints=endpoints, progress=False)
    judged = json.loads((tmp_path / "judge" / "_manifest.json").read_text())
    assert judged["prompt_versions"] == {"document_qa": "judge/v2/document_qa-v1"}
    generated = json.loads((tmp_path / "gen" / "_manifest.json").read_text())
    assert generated["prompt_versions"] == {"document_qa": "generate/v2/document_qa-v1"}
    assert generated["check"]["prompt_versions"] == {"document_qa": "rate/v2/document_qa-v1"}
    # A generated answer has no documents of its own: it is judged against those it was given.
    responses = storage.read_table_dir(str(tmp_path / "gen" / "responses"), schema.RESPONSES)
    assert responses.column("source").null_count == responses.num_rows == 2 * 3
    frame = shard_with_sources(responses, published.table_files(str(tmp_path / "gen"), "prompts"))
    assert all(QUOTE_0 in s and QUOTE_1 in s for s in frame["source_text"])


def test_manipulation_check_averages_the_tau_within_each_prompt():
    """By hand: p1 rates 2, 4, 6 at levels 1..3 (tau 1); p2 rates 9, 8, 10 (1 discordant, 2 concordant pairs:
    tau 1/3); p3 rates 5, 5, 5 (undefined). Mean 2/3; the pooled tau mixes the prompts' rating offsets."""
    rated = [("p1", 1, 2), ("p1", 2, 4), ("p1", 3, 6), ("p2", 1, 9), ("p2", 2, 8), ("p2", 3, 10),
             ("p3", 1, 5), ("p3", 2, 5), ("p3", 3, 5)]
    row = manipulation.check_row(rated)
    assert row["kendall_tau"] == pytest.approx(2 / 3) and row["n_prompts"] == 2 and row["n_prompts_undefined"] == 1
    assert row["pooled_kendall_tau"] == pytest.approx(stats.kendalltau([r[1] for r in rated], [r[2] for r in rated]).statistic)
    assert row["pooled_kendall_tau"] < 0.4 < row["kendall_tau"]
    assert row["ci_low"] <= row["kendall_tau"] <= row["ci_high"] and row["n_bootstrap"] == manipulation.N_BOOTSTRAP
    # The two prompts' taus are the only bootstrap values: the percentile interval spans them.
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((1 / 3, 1.0))
    assert manipulation.mean_interval([0.5]) == (0.5, None, None) and manipulation.mean_interval([]) == (None, None, None)


def test_bootstrap_interval_of_the_mean_agrees_with_the_t_interval_on_many_prompts():
    taus = np.clip(np.random.default_rng(3).normal(0.6, 0.25, size=200), -1, 1)
    mean, low, high = manipulation.mean_interval(list(taus))
    t_low, t_high = stats.t.interval(0.95, len(taus) - 1, loc=taus.mean(), scale=stats.sem(taus))
    assert mean == pytest.approx(taus.mean())
    assert low == pytest.approx(t_low, abs=0.01) and high == pytest.approx(t_high, abs=0.01)


@pytest.mark.usefixtures("ray_session", "api_key")
def test_generate_reports_the_within_prompt_manipulation_check(tmp_path):
    human = str(tmp_path / "human")
    ingest("pairs", [write_human_corpus(tmp_path / "h.jsonl", 30, 10)], human, progress=False)
    with planted_server() as server:
        summary = generate(human, "model", str(tmp_path / "out"), levels=5, check_llm="rater",
                           endpoints=endpoints_file(tmp_path, server), progress=False)
    check = pl.read_parquet(tmp_path / "out" / "manipulation_check.parquet").row(0, named=True)
    gens = pl.read_parquet(tmp_path / "out" / "generations.parquet").drop_nulls("rating")
    # Independently: scipy's tau-b per prompt (nan where undefined), averaged over the prompts that have one.
    per_prompt = [stats.kendalltau(g["level"], g["rating"]).statistic for _, g in gens.group_by("prompt_id")]
    defined = [t for t in per_prompt if not np.isnan(t)]
    assert check["n_prompts"] == len(defined) and check["n_prompts_undefined"] == 10 - len(defined)
    assert check["kendall_tau"] == pytest.approx(np.mean(defined))
    assert check["pooled_kendall_tau"] == pytest.approx(stats.kendalltau(gens["level"], gens["rating"]).statistic)
    assert check["ci_low"] <= check["kendall_tau"] <= check["ci_high"]
    assert summary.check[0]["kendall_tau"] == check["kendall_tau"]
