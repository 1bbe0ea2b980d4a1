"""The nightly audit with corpora and results in S3 (loopback server): planted judge drift, idempotent reruns,
one publisher per date, clear failures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from profile_dist import schema, storage
from profile_dist.workflows.audit import layout as audit_layout
from profile_dist.workflows.audit.config import load_audit_config
from profile_dist.workflows.audit.example import write_example
from profile_dist.workflows.audit.run import EXIT_ALIGNMENT_DROP, run_audit

REPO = Path(__file__).resolve().parents[2]


def _nightly_main():
    spec = importlib.util.spec_from_file_location("nightly_audit", REPO / "jobs" / "nightly_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _snapshot(prefix: str) -> dict[str, str]:
    return {uri: storage.info(uri).version for uri in storage.list_tree(prefix)}


def test_two_nightly_audits_report_a_planted_judge_change_and_a_rerun_changes_nothing(ray_session, s3, bucket):
    config_path = write_example(f"{bucket}/example", {"2024-05-01": "aligned", "2024-05-02": "drifted"}, output=f"{bucket}/audit", bootstrap=100)
    config = load_audit_config(config_path)
    quiet = dict(progress=False, say=lambda line: None)

    first = run_audit(config, "2024-05-01", **quiet)
    assert (first.exit_code, first.summary["status"], first.summary["previous_date"]) == (0, "baseline", None)

    second = run_audit(config, "2024-05-02", **quiet)
    assert second.exit_code == EXIT_ALIGNMENT_DROP and second.summary["status"] == "alignment_drop"
    assert second.summary["previous_date"] == "2024-05-01"
    assert second.summary["corpora"]["human"]["new_files"] == 0  # the human corpus was ingested once, on the first night
    assert second.summary["corpora"]["judged"]["new_files"] == 1
    alerted = {(a["source_x"], a["source_y"], a["metric"]) for a in second.summary["alerts"]}
    assert ("human/human", "nightly-judge/evaluation", "sign_agreement") in alerted
    assert all(a["significant"] and a["drop"] > config.drift.threshold(a["metric"]) for a in second.summary["alerts"])
    assert "Status: alignment drop (exit 3)" in second.paragraph and "sign_agreement" in second.paragraph

    date_dir = f"{bucket}/audit/audits/date=2024-05-02"
    influence = {(r["labeler"], r["factor"]): r for r in storage.read_parquet(f"{date_dir}/drift_influence.parquet", schema.DRIFT_INFLUENCE).to_pylist()}
    # The planted change: the judge now rewards length; the humans' labels did not change at all.
    judge_length = influence[("nightly-judge", "length")]
    assert judge_length["change"] > 0.3 and judge_length["ci_low"] > 0 and judge_length["significant"]
    human_length = influence[("human", "length")]
    assert human_length["change"] == 0 and not human_length["significant"]
    # The drift's recomputed alignment is the reduce's own, for both nights.
    for date, column in (("2024-05-01", "value_previous"), ("2024-05-02", "value_current")):
        reduced = {(r["source_x"], r["source_y"], r["metric"]): r["value"] for r in storage.read_parquet(
            f"{bucket}/audit/audits/date={date}/alignment.parquet", schema.ALIGNMENT).to_pylist()}
        drifted = {(r["source_x"], r["source_y"], r["metric"]): r[column] for r in storage.read_parquet(
            f"{date_dir}/drift_alignment.parquet", schema.DRIFT_ALIGNMENT).to_pylist()}
        assert drifted == pytest.approx(reduced)
    for name in ("influence.parquet", "alignment.parquet", "replicates.parquet", "drift_alignment.parquet", "report.md",
                 "results.json", "summary.json", "_manifest.json", "_CLAIM.json", "_SUCCESS.json"):
        assert storage.exists(f"{date_dir}/{name}"), name
    assert storage.list_tree(f"{date_dir}/.runs") == []  # staging removed once published

    before = _snapshot(f"{bucket}/audit")
    s3.reset_requests()
    again = run_audit(config, "2024-05-02", **quiet)
    assert again.reused and again.exit_code == EXIT_ALIGNMENT_DROP and again.summary == second.summary
    assert _snapshot(f"{bucket}/audit") == before
    assert [r for r in s3.requests() if r["method"] in ("PUT", "POST", "DELETE")] == []

    # The job script prints the stored paragraph and exits with the stored code, still writing nothing.
    assert _nightly_main()(["--config", config_path, "--date", "2024-05-02"]) == EXIT_ALIGNMENT_DROP
    assert _nightly_main()(["--config", config_path, "--date", "2024-05-02", "--status"]) == EXIT_ALIGNMENT_DROP
    assert _nightly_main()(["--config", config_path, "--date", "2024-05-03", "--status"]) == 1  # not run: nothing published
    assert _snapshot(f"{bucket}/audit") == before


def _stage(layout: audit_layout.AuditLayout, date: str, run_id: str) -> None:
    staging = layout.staging(date, run_id)
    storage.write_bytes_atomic(run_id.encode(), f"{staging}/influence.parquet")
    storage.write_bytes_atomic(run_id.encode(), f"{staging}/_manifest.json")
    audit_layout.stage_complete(layout, date, run_id, {"run_id": run_id, "exit_code": 0})


def test_two_runs_racing_for_a_date_publish_exactly_one_result(bucket):
    layout = audit_layout.AuditLayout(f"{bucket}/audit")
    _stage(layout, "2024-06-01", "run-a")
    _stage(layout, "2024-06-01", "run-b")
    won_a, summary_a = audit_layout.commit(layout, "2024-06-01", "run-a")
    won_b, summary_b = audit_layout.commit(layout, "2024-06-01", "run-b")
    assert (won_a, won_b) == (True, False)
    assert summary_a == summary_b == {"run_id": "run-a", "exit_code": 0}
    date_dir = layout.date_dir("2024-06-01")
    assert storage.read_bytes(f"{date_dir}/influence.parquet") == b"run-a"  # run-b overwrote nothing
    assert storage.read_bytes(f"{date_dir}/_manifest.json") == b"run-a"
    assert storage.list_tree(f"{date_dir}/.runs") == []


def test_a_run_that_died_after_claiming_is_published_by_the_next_run(bucket):
    layout = audit_layout.AuditLayout(f"{bucket}/audit")
    _stage(layout, "2024-06-02", "crashed")
    storage.write_bytes_exclusive(b'{"run_id": "crashed"}', f"{layout.date_dir('2024-06-02')}/{audit_layout.CLAIM}")
    assert not layout.is_published("2024-06-02")
    assert audit_layout.finish(layout, "2024-06-02")
    assert layout.published_summary("2024-06-02") == {"run_id": "crashed", "exit_code": 0}
    assert storage.read_bytes(f"{layout.date_dir('2024-06-02')}/influence.parquet") == b"crashed"


def test_a_missing_output_bucket_fails_in_seconds_with_the_uri(s3, bucket, tmp_path, capsys):
    config = tmp_path / "audit.yaml"
    config.write_text(
        "output: s3://no-such-audit-bucket/audit\n"
        f"corpora: [{{name: c, format: pairs, input: {bucket}/nothing-here/}}]\n"
    )
    assert _nightly_main()(["--config", str(config), "--date", "2024-05-01"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Audit 2024-05-01 FAILED: s3://no-such-audit-bucket/audit/audits/")
    assert "bucket 'no-such-audit-bucket' does not exist" in out and "(exit 1)" in out


def test_an_empty_input_prefix_fails_with_the_prefix_and_date(s3, bucket, tmp_path, capsys):
    config = tmp_path / "audit.yaml"
    config.write_text(
        f"output: {bucket}/audit\n"
        f"corpora: [{{name: judged, format: pairs, input: '{bucket}/judgments/date={{date}}/', suffix: .jsonl}}]\n"
    )
    assert _nightly_main()(["--config", str(config), "--date", "2024-05-07"]) == 1
    out = capsys.readouterr().out
    assert f"{bucket}/judgments/date=2024-05-07/: no files ending in '.jsonl' (missing or empty prefix) for corpus 'judged' on 2024-05-07" in out
    assert not storage.exists(f"{bucket}/audit/audits/date=2024-05-07/{audit_layout.SUCCESS}")
