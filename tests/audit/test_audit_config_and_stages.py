"""The audit's config validation, exit codes of the job script, and how the per-model stages plug into a night."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from profile_dist import schema, storage
from profile_dist.workflows import models
from profile_dist.workflows.audit.config import check_date, load_audit_config, parse_audit_config
from profile_dist.workflows.audit.example import ALIGNED, example_config, write_human_corpus, write_judgments
from profile_dist.workflows.audit.run import run_audit
from profile_dist.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _nightly_main():
    spec = importlib.util.spec_from_file_location("nightly_audit", REPO / "jobs" / "nightly_audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _minimal(**extra) -> dict:
    return {"output": "/tmp/unused", "corpora": [{"name": "c", "format": "pairs", "input": "/data/c.jsonl"}], **extra}


def test_the_shipped_config_is_valid():
    config = load_audit_config(str(REPO / "jobs" / "nightly_audit.yaml"))
    assert config.output.startswith("s3://") and [c.name for c in config.corpora] == ["hh_rlhf", "judged"]
    assert config.corpora[1].inputs_for("2024-05-02") == ["s3://my-profile-bucket/judgments/date=2024-05-02/"]
    assert config.models == () and dict(config.drift.max_drop)["kendall_tau_b"] == 0.2


@pytest.mark.parametrize("raw, message", [
    ({"corpora": []}, "missing key 'output'"),
    (_minimal(colour="red"), "unknown key(s) colour"),
    ({"output": "x", "corpora": []}, "'corpora' must be a non-empty list"),
    (_minimal(corpora=[{"name": "c", "format": "nope", "input": "x"}]), "corpora[0].format"),
    (_minimal(corpora=[{"name": "c", "format": "pairs"}]), "corpora[0]: missing key 'input'"),
    (_minimal(corpora=[{"name": "a/b", "format": "pairs", "input": "x"}]), "corpora[0].name"),
    (_minimal(corpora=[{"name": "c", "format": "pairs", "input": "x"}] * 2), "corpus names must be unique"),
    (_minimal(models="judge"), ".models: expected a list"),
    (_minimal(models=["a", "a"]), "endpoint names must be unique"),
    (_minimal(reduce={"bootstrap": 0}), "reduce.bootstrap must be 1 or more"),
    (_minimal(reduce={"confidence": 1.5}), "reduce.confidence must be between 0 and 1"),
    (_minimal(drift={"max_drop": {"kendall": 0.1}}), "max_drop: unknown metric 'kendall'"),
    (_minimal(drift={"max_drop": {"kendall_tau_b": -1}}), "max_drop.kendall_tau_b: expected a number 0 or more"),
    (_minimal(drift={"max_drop": 0.1}), "max_drop: expected a mapping"),
    (_minimal(drift={"require_significant": "yes"}), "require_significant: expected bool"),
])
def test_bad_configs_name_the_file_and_key(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_audit_config(raw, "audit.yaml")
    assert str(error.value).startswith("audit.yaml") and message in str(error.value)


@pytest.mark.parametrize("date", ["2024-5-1", "yesterday", "2024-02-30", ""])
def test_dates_must_be_real_and_written_yyyy_mm_dd(date):
    with pytest.raises(ConfigError, match="--date"):
        check_date(date)


def test_models_must_name_endpoints_of_the_endpoints_file(tmp_path, capsys):
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({"endpoints": {"judge": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}}))
    config = tmp_path / "audit.yaml"
    config.write_text(yaml.safe_dump(_minimal(output=str(tmp_path / "out"), models=["ckpt-nightly"], endpoints=str(endpoints))))
    assert _nightly_main()(["--config", str(config), "--date", "2024-05-01"]) == 1
    assert f"no endpoint named ckpt-nightly in {endpoints} (defined: judge)" in capsys.readouterr().out
    config.write_text(yaml.safe_dump(_minimal(output=str(tmp_path / "out"), models=["ckpt-nightly"])))
    assert _nightly_main()(["--config", str(config), "--date", "2024-05-01"]) == 1
    assert "need an endpoints file" in capsys.readouterr().out


def test_model_stages_run_per_model_on_every_pairs_dir_and_their_pairs_are_reduced(ray_session, tmp_path):
    """Stand-in stages (the real ones: tests/settings/test_audit_stages.py): what they return is reduced with the
    corpora, and each is given every pairs directory of the night with its output under models/."""
    from profile_dist.stages.ingest import ingest

    root = str(tmp_path / "data")
    write_human_corpus(root, pairs_per_prompt=2)
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({"endpoints": {"nightly-judge": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}}}))
    raw = example_config(root, str(tmp_path / "out"), bootstrap=20)
    raw["corpora"] = raw["corpora"][:1]  # humans only: the model's labels come from the stage
    raw.update(models=["nightly-judge"], endpoints=str(endpoints))
    config = parse_audit_config(raw, "audit.yaml")
    calls = []

    def judge(run: models.ModelRun, model: str, targets: list[models.Target], labeler: str | None) -> models.ModelOutput:
        calls.append(("judge", model, labeler, targets))
        judged = write_judgments(str(tmp_path / "stage"), "2024-05-01", ALIGNED, pairs_per_prompt=2)
        ingest("pairs", [judged], targets[0].output, progress=False)
        run.annotate(targets[0].output, targets[0].annotations)
        return models.ModelOutput([targets[0].output], [targets[0].annotations])

    def generate(run: models.ModelRun, model: str, targets: list[models.Target], labeler: str | None) -> models.ModelOutput:
        calls.append(("generate", model, labeler, targets))
        return models.ModelOutput()

    outcome = run_audit(config, "2024-05-01", progress=False, say=lambda line: None,
                        model_stages={"judge": judge, "generate": generate})
    ingested = calls[0][3][0].input  # the night's one pairs directory of the corpus
    assert ingested.startswith(str(tmp_path / "out" / "ingest" / "human"))
    night = tmp_path / "out" / "models" / "nightly-judge" / "date=2024-05-01"
    assert calls == [(name, "nightly-judge", "nightly-judge",  # labelled by the endpoint name
                      [models.Target(ingested, str(night / name / "human" / "0000"),
                                     str(night / name / "human" / "0000-annotations"))])
                     for name in ("judge", "generate")]
    assert outcome.exit_code == 0 and outcome.summary["models"] == ["nightly-judge"]
    influence = storage.read_parquet(str(tmp_path / "out" / "audits" / "date=2024-05-01" / "influence.parquet"), schema.INFLUENCE)
    assert set(influence.column("labeler").to_pylist()) == {"human", "nightly-judge"}
