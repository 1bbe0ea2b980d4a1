"""A whole job from one YAML file: ingest each corpus, annotate, reduce, report.

Layout under ``output``: ``ingest/<name>/`` and ``annotations/<name>/`` per corpus, and
``results/`` with the reduce tables and the report. Relative paths are taken from the working
directory (with ``ray job submit --working-dir .``, the submitted directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from profile_dist import storage
from profile_dist.errors import ConfigError
from profile_dist.report import build_report
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import DEFAULT_ROWS_PER_SHARD, ingest
from profile_dist.stages.reduce import reduce


@dataclass
class CorpusConfig:
    name: str
    format: str
    input: list[str]
    task: str | None = None
    dataset: str | None = None
    skip_bad_rows: bool = False


@dataclass
class JobConfig:
    output: str
    corpora: list[CorpusConfig]
    factors: list[str] | None = None
    bootstrap: int = 200
    seed: int = 0
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _check_keys(section: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def parse_job(raw: Any, where: str) -> JobConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    _check_keys(raw, {"output", "address", "rows_per_shard", "ingest", "annotate", "reduce", "report"}, where)
    if "output" not in raw:
        raise ConfigError(f"{where}: missing key 'output' (the directory the job writes to)")
    corpora_raw = raw.get("ingest")
    if not isinstance(corpora_raw, list) or not corpora_raw:
        raise ConfigError(f"{where}: 'ingest' must be a list of corpora, each with name, format and input")
    corpora = []
    for i, entry in enumerate(corpora_raw):
        at = f"{where}: ingest[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: expected a mapping")
        _check_keys(entry, {"name", "format", "input", "task", "dataset", "skip_bad_rows"}, at)
        for key in ("name", "format", "input"):
            if key not in entry:
                raise ConfigError(f"{at}: missing key {key!r}")
        inputs = entry["input"] if isinstance(entry["input"], list) else [entry["input"]]
        corpora.append(CorpusConfig(
            name=str(entry["name"]), format=str(entry["format"]), input=[str(p) for p in inputs],
            task=entry.get("task"), dataset=entry.get("dataset"), skip_bad_rows=bool(entry.get("skip_bad_rows", False)),
        ))
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: corpus names must be unique, got {names}")
    annotate_cfg = raw.get("annotate") or {}
    _check_keys(annotate_cfg, {"factors"}, f"{where}: annotate")
    reduce_cfg = raw.get("reduce") or {}
    _check_keys(reduce_cfg, {"bootstrap", "seed"}, f"{where}: reduce")
    return JobConfig(
        output=str(raw["output"]), corpora=corpora, factors=annotate_cfg.get("factors"),
        bootstrap=int(reduce_cfg.get("bootstrap", 200)), seed=int(reduce_cfg.get("seed", 0)),
        rows_per_shard=int(raw.get("rows_per_shard", DEFAULT_ROWS_PER_SHARD)), address=raw.get("address"),
    )


def load_job(path: str) -> JobConfig:
    try:
        raw = yaml.safe_load(storage.read_bytes(path))
    except FileNotFoundError:
        raise ConfigError(f"{path}: job file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_job(raw, path)


def run_job(job: JobConfig, *, address: str | None = None, say: Callable[[str], None] = print, progress: bool | None = None) -> str:
    """Run every stage; returns the results directory (where report.md and results.json are)."""
    address = address or job.address
    pairs_dirs, annotation_dirs = [], []
    for corpus in job.corpora:
        pairs_dir = storage.join(job.output, "ingest", corpus.name)
        summary = ingest(
            corpus.format, corpus.input, pairs_dir, task=corpus.task, dataset=corpus.dataset,
            rows_per_shard=job.rows_per_shard, skip_bad_rows=corpus.skip_bad_rows, address=address, progress=progress,
        )
        for line in summary.lines():
            say(line)
        annotations_dir = storage.join(job.output, "annotations", corpus.name)
        for line in annotate(pairs_dir, annotations_dir, factors=job.factors, address=address, progress=progress).lines():
            say(line)
        pairs_dirs.append(pairs_dir)
        annotation_dirs.append(annotations_dir)
    results_dir = storage.join(job.output, "results")
    summary = reduce(pairs_dirs, annotation_dirs, results_dir, n_bootstrap=job.bootstrap, seed=job.seed, address=address, progress=progress)
    for line in summary.lines():
        say(line)
    for line in build_report(results_dir).lines():
        say(line)
    return results_dir
