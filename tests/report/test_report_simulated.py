"""The report marks what a simulated model produced, and nothing else."""

from __future__ import annotations

import json

from report_helpers import embedded_data, influence_row, write_results

from profile_dist.report import build_report


def _annotated_by(tmp_path, name: str, simulated: bool):
    """An annotations directory with one LLM shard manifest, as annotate writes it."""
    manifests = tmp_path / name / "_manifests"
    manifests.mkdir(parents=True)
    manifest = {"input_shard": "part-00000.parquet", "input_bytes": 1, "factors": {"fluency": "v1/fluency-v1"},
                "model": "m", "prompt_versions": {"fluency": "v1/fluency-v1"}, **({"simulated": True} if simulated else {})}
    (manifests / "part-00000.llm-m.json").write_text(json.dumps(manifest))
    return str(tmp_path / name)


def _results(tmp_path, simulated: bool):
    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "_manifest.json").write_text(json.dumps({
        "stage": "judge", "labeler": "m", "setting": "evaluation",
        "llm": [{"stage": "judge", "role": "judge", "endpoint": "e", "model": "m", "simulated": simulated, "requests": 80}]}))
    rows = [influence_row(labeler, setting, "helpful", factor, c, 40 - c)
            for labeler, setting in (("human", "human"), ("m", "evaluation")) for factor, c in (("fluency", 30), ("length", 12))]
    return write_results(tmp_path / "results", rows, manifest={
        "pairs": [str(judge)], "annotations": [_annotated_by(tmp_path, "annotations", simulated)]})


def test_a_simulated_judge_and_annotator_are_marked_in_markdown_and_page_data(tmp_path):
    results = _results(tmp_path, simulated=True)
    build_report(str(results))
    report = (results / "report.md").read_text()
    assert "> **Simulated: m is a simulated model" in report
    assert "| factor | human/human | m/evaluation (simulated) |" in report
    assert "\n| fluency (simulated) |" in report and "\n| length |" in report
    data = embedded_data((results / "report.html").read_text())
    assert data["simulated"] == {"models": ["m"], "sources": ["m/evaluation"], "factors": ["fluency"]}
    assert 'id="simulated-banner"' in (results / "report.html").read_text()


def test_a_report_without_simulated_models_has_no_simulated_marks(tmp_path):
    results = _results(tmp_path, simulated=False)
    build_report(str(results))
    assert "simulated" not in (results / "report.md").read_text().lower()
    html = (results / "report.html").read_text()
    assert 'id="simulated-banner"' not in html
    assert embedded_data(html)["simulated"] == {"models": [], "sources": [], "factors": []}
