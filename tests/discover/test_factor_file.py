"""User-defined factors (--factor-file): validation naming file/entry/field, and annotation end to end through
the engine and the loopback server, values checked against the texts independently of the simulator."""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from profile_dist.cli import main
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.user_factors import dump_definitions, load_definitions, load_factor_file
from profile_dist.workflows.audit.config import parse_audit_config
from profile_dist.workflows.job import parse_job

RUBRIC = ["none", "vague", "one", "most", "all"]


def entry(**over):
    base = {"name": "cites_source", "description": "Cites a named source", "question": "Does it cite a source?",
            "rubric": RUBRIC, "tasks": ["helpful"], "version": "1"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def write(tmp_path, entries, name="factors.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"factors": entries}))
    return str(path)


@pytest.mark.parametrize("entries, index, field, words", [
    ([entry(rubric=None)], 0, "rubric", "missing rubric"),
    ([entry(rubric=RUBRIC[:4])], 0, "rubric", "five anchors"),
    ([entry(), entry(question="Other?")], 1, "name", "duplicate"),
    ([entry(name="length")], 0, "name", "built-in"),
    ([entry(name="clarity")], 0, "name", "built-in"),
    ([entry(tasks=["cooking"])], 0, "tasks", "unknown task"),
    ([entry(version=None)], 0, "version", "missing version"),
    ([entry(binary=True)], 0, "rubric", "not both"),
    ([entry(colour="red")], 0, "colour", "unknown key"),
])
def test_bad_entry_is_refused_naming_file_entry_and_field(tmp_path, entries, index, field, words):
    path = write(tmp_path, entries)
    with pytest.raises(BadInputError) as info:
        load_factor_file(path)
    err = info.value
    assert (err.source_file, err.source_row, err.field) == (path, index, field)
    assert words in str(err) and path in str(err)


def test_file_round_trips_and_definition_text_is_in_the_prompt_version(tmp_path):
    defs = load_definitions(write(tmp_path, [entry(), entry(name="asks_back", rubric=None, binary=True, tasks="all")]))
    again = load_definitions(write(tmp_path, yaml.safe_load(dump_definitions(defs))["factors"], "again.yaml"))
    assert again == defs and again[1].binary and again[1].tasks is None
    edited = load_definitions(write(tmp_path, [entry(question="Does it name a source?")], "edited.yaml"))[0]
    assert edited.version == defs[0].version
    f0, f1 = (load_factor_file(str(tmp_path / n))[0] for n in ("factors.yaml", "edited.yaml"))
    # Same name and version, other wording: another prompt version, hence other cache keys and manifests.
    assert f0.llm.template_version != f1.llm.template_version and "Does it name a source?" in f1.llm.system


def test_job_and_audit_configs_take_a_factor_file_and_validate_it_up_front(tmp_path):
    good, bad = write(tmp_path, [entry()]), write(tmp_path, [entry(tasks=["cooking"])], "bad.yaml")
    base = {"output": str(tmp_path / "out"), "ingest": [{"name": "c", "format": "pairs", "input": "x.jsonl"}],
            "endpoints": "e.yaml"}
    job = parse_job({**base, "annotate": {"llm": "annotator", "factor_file": good}}, "job.yaml")
    assert job.factor_file == good
    with pytest.raises(BadInputError, match="tasks"):
        parse_job({**base, "annotate": {"llm": "annotator", "factor_file": bad}}, "job.yaml")
    with pytest.raises(ConfigError, match="annotate.llm"):
        parse_job({**base, "annotate": {"factor_file": good}}, "job.yaml")
    audit = {"output": str(tmp_path / "a"), "corpora": [{"name": "c", "format": "pairs", "input": "x.jsonl"}]}
    assert parse_audit_config({**audit, "factor_file": good, "annotate_llm": "annotator"}, "a.yaml").factor_file == good
    with pytest.raises(ConfigError, match="annotate_llm"):
        parse_audit_config({**audit, "factor_file": good}, "a.yaml")


def _expected(text: str, binary: bool) -> float:
    # Independent of the simulator: a line starting "Source: " is a citation.
    has = any(line.startswith("Source: ") for line in text.splitlines())
    return float(has) if binary else (5.0 if has else 1.0)


def test_user_factors_annotate_through_engine_cache_and_dry_run(tmp_path, small_corpus, server, endpoints, capsys):
    path = write(tmp_path, [entry(), entry(name="names_a_source", rubric=None, binary=True)])
    out = tmp_path / "ann"
    args = ["annotate", "--pairs", str(small_corpus), "--output", str(out), "--llm", "annotator",
            "--endpoints", endpoints, "--factor-file", path, "--factors", "length", "cites_source", "names_a_source"]
    assert main(args + ["--dry-run"]) == 0
    responses = pl.read_parquet(small_corpus / "responses" / "*.parquet")
    printed = capsys.readouterr().out
    assert f"requests={2 * responses.height}" in printed and server.stats()["requests"] == 0
    assert main(args) == 0
    rows = pl.read_parquet(out / "part-*.llm-annotator.parquet").join(responses, on="response_id")
    assert rows.height == 2 * responses.height and rows["error"].null_count() == rows.height
    for row in rows.iter_rows(named=True):
        assert row["value"] == _expected(row["text"], row["factor"] == "names_a_source"), row
    assert set(pl.read_parquet(out / "part-*[0-9].parquet")["factor"]) == {"length"}
    sent = server.stats()["requests"]
    assert sent == 2 * responses.height
    assert main(args) == 0 and server.stats()["requests"] == sent  # nothing changed: every shard skipped
    # Reworded rubric, same version: the prompt differs, so the shards are redone and new replies paid for.
    write(tmp_path, [entry(question="Does the response name a source?"),
                     entry(name="names_a_source", rubric=None, binary=True)])
    assert main(args) == 0 and server.stats()["requests"] == sent + responses.height


def test_cli_refuses_a_bad_factor_file_before_any_request(tmp_path, small_corpus, server, endpoints, capsys):
    path = write(tmp_path, [entry(name="length")])
    code = main(["annotate", "--pairs", str(small_corpus), "--output", str(tmp_path / "ann"), "--llm", "annotator",
                 "--endpoints", endpoints, "--factor-file", path])
    err = capsys.readouterr().err
    assert code == 2 and f"{path}, row 0, field 'name'" in err and "built-in" in err
    assert server.stats()["requests"] == 0 and not (tmp_path / "ann").exists()


def test_audit_annotates_rule_factors_plus_the_file_never_builtin_llm_factors(tmp_path):
    from profile_dist.factors.rules import RULE_FACTORS
    from profile_dist.workflows.audit.run import audit_factors

    path = write(tmp_path, [entry()])
    audit = {"output": str(tmp_path / "a"), "corpora": [{"name": "c", "format": "pairs", "input": "x.jsonl"}],
             "endpoints": "e.yaml"}
    names, llm = audit_factors(parse_audit_config({**audit, "factor_file": path, "annotate_llm": "annotator"}, "a.yaml"))
    assert names == list(RULE_FACTORS) + ["cites_source"]
    assert llm == {"llm": "annotator", "endpoints": "e.yaml", "factor_file": path}
    assert audit_factors(parse_audit_config(audit, "a.yaml")) == (None, {})


def test_job_with_a_factor_file_reports_the_user_factor_next_to_the_built_in_ones(tmp_path, ray_session, server, endpoints):
    from profile_dist.testing.sim_discover import planted_rows
    from tests.discover.conftest import write_rows

    path = write(tmp_path, [entry()])
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump({
        "output": str(tmp_path / "out"), "endpoints": endpoints,
        "ingest": [{"name": "planted", "format": "pairs", "input": write_rows(tmp_path / "p.jsonl", planted_rows(30, 1))}],
        "annotate": {"llm": "annotator", "factors": ["length", "cites_source"], "factor_file": path},
        "reduce": {"bootstrap": 20}}))
    assert main(["run", str(job)]) == 0
    report = next((tmp_path / "out").rglob("report.md")).read_text()
    assert "cites_source" in report and "length" in report


def test_factors_command_lists_and_validates_a_factor_file(tmp_path, capsys):
    path = write(tmp_path, [entry(), entry(name="asks_back", rubric=None, binary=True, tasks=["summarization"])])
    assert main(["factors", "--task", "helpful", "--factor-file", path]) == 0
    out = capsys.readouterr().out
    assert "cites_source" in out and "user-cites_source-v1-" in out and "asks_back" not in out
    assert main(["factors", "--factor-file", write(tmp_path, [entry(rubric=None)], "bad.yaml")]) == 2
