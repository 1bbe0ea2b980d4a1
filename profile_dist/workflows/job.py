"""A whole job from one YAML file: ingest each corpus, annotate, reduce, report.

Layout under ``output``: ``ingest/<name>/`` and ``annotations/<name>/`` per corpus, and
``results/`` with the reduce tables and the report. With ``models`` (endpoint names), each model also
judges the corpora (``judge/<model>/<corpus>/``, evaluation setting; the corpus' annotations apply) and
writes leveled responses to their prompts (``generate/<model>/<corpus>/``, generation setting, annotated
into ``annotations/generate-<model>-<corpus>/``); see docs/paper.md and jobs/profile_paper.yaml. Relative paths are taken from the working
directory (with ``ray job submit --working-dir .``, the submitted directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from profile_dist import storage
from profile_dist.errors import ConfigError
from profile_dist.factor_sets import AlignmentFactors
from profile_dist.layout import slug
from profile_dist.llm.cache import default_cache_location
from profile_dist.report import build_report
from profile_dist.stages.annotate import LLM_CALL_MODES, annotate
from profile_dist.stages.ingest import DEFAULT_ROWS_PER_SHARD, ingest
from profile_dist.stages.ray_messages import release_ray
from profile_dist.stages.reduce import BOOTSTRAP_UNITS, reduce
from profile_dist.workflows.models import (GenerateConfig, JudgeConfig, ModelOutput, ModelRun, Target, generate_model,
                                           judge_model)

from profile_dist.user_factors import load_definitions

@dataclass
class CorpusConfig:
    name: str
    format: str
    input: list[str]
    task: str | None = None
    dataset: str | None = None
    skip_bad_rows: bool = False


@dataclass
class ModelConfig:
    """One model of the paper's experiment: an endpoint name, judged and/or generating."""

    name: str
    judge: bool = True
    generate: bool = True
    labeler: str | None = None  # default: the endpoint's model id (the same in both settings: gap rows)


@dataclass
class JobConfig:
    output: str
    corpora: list[CorpusConfig]
    factors: list[str] | None = None
    bootstrap: int = 200
    seed: int = 0
    alignment_factors: str | list[str] | None = None  # reduce: "task" (default), "all" or factor names
    bootstrap_unit: str = "auto"
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    address: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The model settings (all optional: a job without them is the human/corpus job it always was).
    endpoints: str | None = None
    llm_cache: str | None = None  # the LLM reply cache (default OUTPUT/_llm_cache; must be a filesystem path)
    annotate_llm: str | None = None  # endpoint scoring the LLM factors
    annotate_max_cost: float | None = None
    annotate_llm_calls: str = "combined"  # or "per_factor": one call per response-level factor (the paper's)
    factor_file: str | None = None  # user-defined LLM factors (profile_dist.user_factors; docs/discovery.md)
    models: list[ModelConfig] = field(default_factory=list)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)


def _check_keys(section: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def parse_job(raw: Any, where: str) -> JobConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    _check_keys(raw, {"output", "address", "rows_per_shard", "ingest", "annotate", "reduce", "report",
                      "endpoints", "models", "judge", "generate", "llm_cache"}, where)
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
    _check_keys(annotate_cfg, {"factors", "llm", "max_cost", "llm_calls", "factor_file"}, f"{where}: annotate")
    reduce_cfg = raw.get("reduce") or {}
    _check_keys(reduce_cfg, {"bootstrap", "seed", "bootstrap_unit", "alignment_factors"}, f"{where}: reduce")
    if reduce_cfg.get("bootstrap_unit", "auto") not in BOOTSTRAP_UNITS:
        raise ConfigError(f"{where}: reduce: bootstrap_unit {reduce_cfg['bootstrap_unit']!r} unknown; "
                          f"expected one of {', '.join(BOOTSTRAP_UNITS)}")
    job = JobConfig(
        output=str(raw["output"]), corpora=corpora, factors=annotate_cfg.get("factors"),
        bootstrap=int(reduce_cfg.get("bootstrap", 200)), seed=int(reduce_cfg.get("seed", 0)),
        bootstrap_unit=str(reduce_cfg.get("bootstrap_unit", "auto")),
        rows_per_shard=int(raw.get("rows_per_shard", DEFAULT_ROWS_PER_SHARD)), address=raw.get("address"),
        alignment_factors=reduce_cfg.get("alignment_factors"),
    )
    try:  # a bad value fails the job before any work
        AlignmentFactors.parse(job.alignment_factors)
    except ConfigError as exc:
        raise ConfigError(f"{where}: reduce: {exc}") from None
    _parse_settings(raw, annotate_cfg, job, where)
    job.factor_file = _factor_file(annotate_cfg.get("factor_file"), job.annotate_llm, f"{where}: annotate.factor_file")
    return job


def _factor_file(path: Any, llm: str | None, where: str) -> str | None:
    """The factor file, read and validated now so a bad entry fails before any stage runs."""
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}: expected a path to a factor file")
    if llm is None:
        raise ConfigError(f"{where}: user-defined factors are LLM factors; set annotate.llm")
    load_definitions(path)
    return path


def _optional_float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


def _corpus_names(value: Any, known: list[str], where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of corpus names")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown corpus name(s) {', '.join(unknown)}; the job's corpora: {', '.join(known)}")
    return list(value)


def _parse_settings(raw: dict[str, Any], annotate_cfg: dict[str, Any], job: JobConfig, where: str) -> None:
    """endpoints, models, judge and generate sections, and annotate's llm/max_cost/llm_calls (all optional)."""
    job.endpoints = raw.get("endpoints")
    job.llm_cache = raw.get("llm_cache")
    job.annotate_llm = annotate_cfg.get("llm")
    job.annotate_max_cost = _optional_float(annotate_cfg.get("max_cost"), f"{where}: annotate: max_cost")
    job.annotate_llm_calls = str(annotate_cfg.get("llm_calls", "combined"))
    if job.annotate_llm_calls not in LLM_CALL_MODES:
        raise ConfigError(f"{where}: annotate: llm_calls: expected one of {', '.join(LLM_CALL_MODES)}, "
                          f"got {job.annotate_llm_calls!r}")
    names = [c.name for c in job.corpora]
    models_raw = raw.get("models") or []
    if not isinstance(models_raw, list):
        raise ConfigError(f"{where}: 'models' must be a list of endpoint names or mappings with a name")
    for i, entry in enumerate(models_raw):
        at = f"{where}: models[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"{at}: expected an endpoint name or a mapping with 'name'")
        _check_keys(entry, {"name", "judge", "generate", "labeler"}, at)
        job.models.append(ModelConfig(name=str(entry["name"]), judge=bool(entry.get("judge", True)),
                                      generate=bool(entry.get("generate", True)), labeler=entry.get("labeler")))
    model_names = [m.name for m in job.models]
    if len(set(model_names)) != len(model_names):
        raise ConfigError(f"{where}: model names must be unique, got {model_names}")
    judge_cfg = raw.get("judge") or {}
    _check_keys(judge_cfg, {"corpora", "inconsistent", "max_cost"}, f"{where}: judge")
    job.judge = JudgeConfig(corpora=_corpus_names(judge_cfg.get("corpora"), names, f"{where}: judge: corpora"),
                            inconsistent=str(judge_cfg.get("inconsistent", "drop")),
                            max_cost=_optional_float(judge_cfg.get("max_cost"), f"{where}: judge: max_cost"))
    gen_cfg = raw.get("generate") or {}
    _check_keys(gen_cfg, {"corpora", "levels", "mode", "check_llm", "max_cost"}, f"{where}: generate")
    job.generate = GenerateConfig(corpora=_corpus_names(gen_cfg.get("corpora"), names, f"{where}: generate: corpora"),
                                  levels=int(gen_cfg.get("levels", 5)), mode=str(gen_cfg.get("mode", "joint")),
                                  check_llm=gen_cfg.get("check_llm"),
                                  max_cost=_optional_float(gen_cfg.get("max_cost"), f"{where}: generate: max_cost"))


def load_job(path: str) -> JobConfig:
    return parse_job(storage.read_yaml(path, "job file"), path)


def run_job(job: JobConfig, *, address: str | None = None, say: Callable[[str], None] = print, progress: bool | None = None) -> str:
    """Run every stage; returns the results directory (where report.md and results.json are)."""
    address = address or job.address
    if job.models or job.annotate_llm:
        _llm_cache(job)  # an unusable reply cache fails the job before any work, not after ingest
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
        for line in _annotate(job, pairs_dir, annotations_dir, address, progress).lines():
            say(line)
        pairs_dirs.append(pairs_dir)
        annotation_dirs.append(annotations_dir)
    more_pairs, more_annotations = _run_model_settings(job, address, say, progress)
    pairs_dirs += more_pairs
    annotation_dirs += more_annotations
    results_dir = storage.join(job.output, "results")
    summary = reduce(pairs_dirs, annotation_dirs, results_dir, n_bootstrap=job.bootstrap, seed=job.seed, address=address,
                     progress=progress, alignment_factors=job.alignment_factors, bootstrap_unit=job.bootstrap_unit)
    for line in summary.lines():
        say(line)
    # The report needs no Ray: its reads of example pairs (~0.3 GiB at 1M pairs) should not stack on idle workers.
    release_ray()
    for line in build_report(results_dir).lines():
        say(line)
    return results_dir


def _annotate(job: JobConfig, pairs_dir: str, output: str, address: str | None, progress: bool | None) -> Any:
    if job.annotate_llm is None:
        return annotate(pairs_dir, output, factors=job.factors, address=address, progress=progress)
    return annotate(pairs_dir, output, factors=job.factors, llm=job.annotate_llm, endpoints=job.endpoints,
                    cache_dir=_llm_cache(job), max_cost=job.annotate_max_cost, llm_calls=job.annotate_llm_calls,
                    factor_file=job.factor_file, address=address, progress=progress)


def _run_model_settings(job: JobConfig, address: str | None, say: Callable[[str], None],
                        progress: bool | None) -> tuple[list[str], list[str]]:
    """Judge and generate per model (workflows/models.py); returns the extra pairs and annotations
    directories for the reduce."""
    if not job.models:
        return [], []
    run = ModelRun(endpoints=job.endpoints, cache_dir=_llm_cache(job), judge=job.judge, generate=job.generate,
                   annotate=lambda pairs_dir, output: _annotate(job, pairs_dir, output, address, progress),
                   rows_per_shard=job.rows_per_shard, address=address, progress=progress, say=say)
    ingested = {c.name: storage.join(job.output, "ingest", c.name) for c in job.corpora}
    out = ModelOutput()
    for model in job.models:
        name = slug(model.name)
        if model.judge:
            out.add(judge_model(run, model.name, [Target(ingested[c], storage.join(job.output, "judge", name, c))
                                                  for c in job.judge.corpora or ingested], model.labeler))
        if model.generate:
            out.add(generate_model(run, model.name, [
                Target(ingested[c], storage.join(job.output, "generate", name, c),
                       storage.join(job.output, "annotations", f"generate-{name}-{c}"))
                for c in job.generate.corpora or ingested], model.labeler))
    return out.pairs_dirs, out.annotation_dirs


def _llm_cache(job: JobConfig) -> str:
    return default_cache_location(job.output, job.llm_cache)
