"""LLM factors end to end: annotate -> engine -> loopback test server (simulated annotator in
profile_dist/testing/sim_factors.py) -> annotations, with values computed independently from the texts."""

from __future__ import annotations

import json
import math

import polars as pl
import pytest

from profile_dist.cli import main
from profile_dist.factors.atomic import FACTS_PER_JUDGEMENT
from profile_dist.stages.annotate import annotate
from profile_dist.testing import sim_factors as sim

RESPONSE_LEVEL = ["fluency", "clarity", "formality_alignment", "intent_alignment", "receptiveness"]
FACT_LEVEL = ["facts", "hallucination", "off_focus", "source_coverage", "helpfulness", "misinformation"]
EXTRACT_PREFIX = "Split the response into atomic facts."
KEYS_PREFIX = "List the key facts of the source."


def responses_with_sources(corpus) -> pl.DataFrame:
    prompts = pl.read_parquet(corpus / "prompts" / "*.parquet").select(
        "prompt_id", pl.coalesce("source", "text").alias("source_text"))
    return pl.read_parquet(corpus / "responses" / "*.parquet").join(prompts, on="prompt_id")


def llm_rows(out) -> pl.DataFrame:
    return pl.read_parquet(out / "part-*.llm-judge.parquet")


def ok_requests(server, prefix: str | None = None) -> int:
    return sum(1 for e in server.log() if e["status"] == "200"
               and (prefix is None or (e["last_message"] or "").startswith(prefix)))


def expected_response_level(name: str, text: str, source: str) -> float:
    return float(sim.RESPONSE_LEVEL[name](text, source))


def judge_calls(frame: pl.DataFrame) -> int:
    """Judgement calls: one per chunk of at most FACTS_PER_JUDGEMENT facts."""
    return sum(math.ceil(len(sim.sentences(t)) / FACTS_PER_JUDGEMENT) for t in frame["text"])


def expected_fact_level(name: str, text: str, source: str) -> float | None:
    facts = [" ".join(f.split()) for f in sim.sentences(text)]
    if name == "facts":
        return float(len(facts))
    if name == "source_coverage":
        keys = [" ".join(k.split()) for k in sim.sentences(source)]
        return sum(sim.covered(k, text) for k in keys) / len(keys)
    judged = [sim.judge_fact(f, source) for f in facts]
    prop, when = {"hallucination": ("supported", False), "off_focus": ("on_focus", False),
                  "helpfulness": ("helpful", True), "misinformation": ("incorrect", True)}[name]
    return sum(j[prop] is when for j in judged) / len(judged)


@pytest.mark.parametrize("mode", ["combined", "per_factor"])
def test_response_level_values_end_to_end_and_calls_per_mode(tmp_path, corpus, server, endpoints, mode):
    out = tmp_path / "ann"
    summary = annotate(str(corpus), str(out), factors=RESPONSE_LEVEL, llm="judge", endpoints=endpoints,
                       llm_calls=mode, progress=False)
    frame = responses_with_sources(corpus)
    rows = llm_rows(out).join(frame, on="response_id")
    assert rows.height == frame.height * len(RESPONSE_LEVEL) and rows["error"].null_count() == rows.height
    for row in rows.iter_rows(named=True):
        assert row["value"] == expected_response_level(row["factor"], row["text"], row["source_text"]), row
    # Combined: one call per response for all five; per factor: five calls per response.
    calls_per_response = 1 if mode == "combined" else len(RESPONSE_LEVEL)
    assert ok_requests(server) == summary.llm["sent"] == frame.height * calls_per_response
    versions = dict(rows.select("factor", "prompt_version").unique().iter_rows())
    assert all(("combined-v1" in v) == (mode == "combined") for v in versions.values())
    # Cost per response and per factor, in the summary and the shard manifests.
    costs = summary.llm["costs"]
    assert set(costs["per_factor"]) == set(RESPONSE_LEVEL) and costs["responses"] == frame.height
    total_in = sum(c["input_tokens"] for c in costs["per_factor"].values())
    assert total_in == pytest.approx(summary.llm["input_tokens"])
    assert sum(c["spend"] for c in costs["per_factor"].values()) == pytest.approx(summary.llm["spend"], abs=1e-6)
    assert costs["per_response"]["spend"] == pytest.approx(summary.llm["spend"] / frame.height, rel=1e-4)
    manifests = [json.loads(p.read_text()) for p in (out / "_manifests").glob("*.llm-judge.json")]
    assert sum(m["cost"]["responses"] for m in manifests) == frame.height
    assert all(m["prompt_versions"] == versions for m in manifests)


def test_switching_the_call_mode_redoes_the_shards_and_the_cli_prints_costs(tmp_path, corpus, server, endpoints,
                                                                              capsys):
    out = str(tmp_path / "ann")
    args = ["annotate", "--pairs", str(corpus), "--output", out, "--factors", "clarity,fluency", "--llm", "judge",
            "--endpoints", endpoints]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "llm_calls=combined" in printed
    for name in ("clarity", "fluency"):
        assert f"cost per response of {name}: " in printed
    assert main([*args, "--llm-calls", "per_factor"]) == 0
    printed = capsys.readouterr().out
    assert "; 0 shard(s) already done)" in printed and "llm_calls=per_factor" in printed


def test_fact_factors_values_end_to_end_with_one_extraction_per_response(tmp_path, corpus, server, endpoints):
    out = tmp_path / "ann"
    summary = annotate(str(corpus), str(out), factors=FACT_LEVEL, llm="judge", endpoints=endpoints, progress=False)
    frame = responses_with_sources(corpus)
    rows = llm_rows(out).join(frame, on="response_id")
    assert rows.height == frame.height * len(FACT_LEVEL) and rows["error"].null_count() == rows.height
    for row in rows.iter_rows(named=True):
        assert row["value"] == pytest.approx(expected_fact_level(row["factor"], row["text"], row["source_text"])), row
    # Six fact factors, yet one extraction per response, one batched judgement per response (two for the
    # response with 30 facts), one key-fact extraction per distinct source and one coverage check per response.
    assert ok_requests(server, EXTRACT_PREFIX) == frame.height
    assert ok_requests(server, KEYS_PREFIX) == frame["source_text"].n_unique()
    assert judge_calls(frame) == frame.height + 1
    assert ok_requests(server) == 2 * frame.height + judge_calls(frame) + frame["source_text"].n_unique()
    assert set(summary.llm["costs"]["per_factor"]) == set(FACT_LEVEL)

    # Another run asking other fact factors reuses the cached extractions: no extraction is sent again.
    before = ok_requests(server, EXTRACT_PREFIX)
    annotate(str(corpus), str(tmp_path / "ann2"), factors=["facts", "misinformation"], llm="judge",
             endpoints=endpoints, cache_dir=str(out / "_llm_cache"), progress=False)
    assert ok_requests(server, EXTRACT_PREFIX) == before


def test_fact_values_on_a_hand_checked_example(tmp_path, corpus, server, endpoints):
    annotate(str(corpus), str(tmp_path / "ann"), factors=FACT_LEVEL, llm="judge", endpoints=endpoints, progress=False)
    rows = llm_rows(tmp_path / "ann").join(responses_with_sources(corpus), on="response_id")
    got = {r["factor"]: r["value"] for r in rows.filter(
        pl.col("text") == "A cycling lane along the river was approved. Shops never like change.").iter_rows(named=True)}
    # Source: "The council approved a new cycling lane along the river. Construction starts in March.
    # Local shops worry about losing parking spaces."  Fact 1 (cycling, lane, along, river, approved) is in
    # the source and shares words with its first sentence; fact 2 (shops, never, like, change): 1 of 4 content
    # words in the source, not about the first sentence, and says "never". Key facts covered: the first only.
    assert got == {"facts": 2.0, "hallucination": 0.5, "off_focus": 0.5, "helpfulness": 0.5,
                   "misinformation": 0.5, "source_coverage": pytest.approx(1 / 3)}


@pytest.mark.parametrize("factors, mode", [(RESPONSE_LEVEL, "combined"), (RESPONSE_LEVEL, "per_factor"),
                                           (FACT_LEVEL, "combined")], ids=["combined", "per_factor", "facts"])
def test_malformed_replies_end_as_recorded_failures(tmp_path, corpus, server, endpoints, factors, mode):
    server.configure(malformed_first=10)  # more than the endpoint's 1 + max_reasks calls
    out = tmp_path / "ann"
    summary = annotate(str(corpus), str(out), factors=factors, llm="judge", endpoints=endpoints, llm_calls=mode,
                       progress=False)
    rows = llm_rows(out)
    n = responses_with_sources(corpus).height
    assert rows.height == n * len(factors) and set(rows["factor"]) == set(factors)
    assert rows["value"].null_count() == rows.height  # never a default value
    for row in rows.iter_rows(named=True):
        assert "invalid_reply" in row["error"], row
        if row["factor"] == "source_coverage":
            assert row["error"].startswith("key facts failed: invalid_reply")
        elif row["factor"] in FACT_LEVEL:
            assert row["error"].startswith("extract failed: invalid_reply")
    assert summary.llm["failed"] > 0 and summary.llm["reasks"] > 0


def test_judgement_failure_fails_only_the_shares(tmp_path, corpus, server, endpoints):
    # Extraction first, alone: cached. Then every reply malformed: only the judgement (new) fails, and the
    # count of facts, which needs no judgement, keeps its value.
    annotate(str(corpus), str(tmp_path / "a1"), factors=["facts"], llm="judge", endpoints=endpoints,
             cache_dir=str(tmp_path / "cache"), progress=False)
    server.configure(malformed_first=10)
    annotate(str(corpus), str(tmp_path / "a2"), factors=["facts", "hallucination"], llm="judge",
             endpoints=endpoints, cache_dir=str(tmp_path / "cache"), progress=False)
    rows = llm_rows(tmp_path / "a2")
    facts, shares = rows.filter(pl.col("factor") == "facts"), rows.filter(pl.col("factor") == "hallucination")
    assert facts["error"].null_count() == facts.height and facts["value"].null_count() == 0
    assert shares["value"].null_count() == shares.height
    assert all(e.startswith("judge failed: invalid_reply") for e in shares["error"])


def test_default_factor_set_with_llm_is_the_tasks_defaults(tmp_path, corpus, server, endpoints, capsys):
    from profile_dist.factors import all_factors
    from profile_dist.tasks import get_task

    code = main(["annotate", "--pairs", str(corpus), "--output", str(tmp_path / "ann"), "--llm", "judge",
                 "--endpoints", endpoints, "--dry-run"])
    assert code == 0
    registered = {f.name for f in all_factors()}
    wanted = (set(get_task("summarization").default_factors) | set(get_task("helpful").default_factors)) & registered
    out = capsys.readouterr().out
    listed = set(out.splitlines()[0].split(" with ", 1)[1].split(" into ")[0].split(", "))
    rules = {f.name for f in all_factors() if f.kind == "rule"}
    assert listed == wanted | rules
    assert "document_qa" not in out and server.stats()["requests"] == 0
    # The dry run counts what a run sends: per response one combined response-level call, an extraction, a
    # judgement, a key-fact extraction (sent once per distinct source) and a coverage check; judgement and
    # coverage are estimated from sentences before any extraction is cached.
    frame = responses_with_sources(corpus)
    n, n_sources, n_judge = frame.height, frame["source_text"].n_unique(), judge_calls(frame)
    assert f"requests={4 * n + n_judge}," in out and f"to_send={3 * n + n_judge + n_sources}," in out
    annotate(str(corpus), str(tmp_path / "ann"), llm="judge", endpoints=endpoints, progress=False)
    assert ok_requests(server) == 3 * n + n_judge + n_sources


def test_factors_command_lists_kind_tasks_and_prompt_version(capsys):
    assert main(["factors"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["clarity"].split()[1] == "llm_response" and "v2/clarity-v2" in lines["clarity"]
    assert lines["receptiveness"].split()[2] == "helpful"
    assert lines["hallucination"].split()[1] == "llm_fact" and "atomic:extract-v1" in lines["hallucination"]
    assert lines["length"].split()[1] == "rule" and "rule-v1" in lines["length"]
    assert main(["factors", "--task", "document_qa"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names[:7] == ["length", "fluency", "intent_alignment", "facts", "hallucination", "source_coverage",
                         "helpfulness"]
