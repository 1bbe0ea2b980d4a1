"""One nightly audit: ingest new data, annotate what is not cached, run model stages, reduce, compare
with the previous audit, publish under ``audits/date=YYYY-MM-DD/`` and say how it went.

Exit codes: 0 healthy (or the first audit: nothing to compare), 3 alignment with humans dropped past
the configured threshold, 1 the run failed (nothing is published; rerun to resume).
"""

from __future__ import annotations

import inspect
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from profile_dist import schema, storage
from profile_dist.layout import slug
from profile_dist.llm.cache import default_cache_location
from profile_dist.workflows.models import MODEL_STAGES, ModelRun
from profile_dist.workflows.audit import drift, layout as layout_mod
from profile_dist.workflows.audit.config import AuditConfig, AuditCorpus, check_date, check_models
from profile_dist.workflows.audit.layout import AuditLayout
from profile_dist.errors import BadInputError, ConfigError, ProfileDistError
from profile_dist.report import build_report
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ray_messages import release_ray
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce
from profile_dist.factors.rules import RULE_FACTORS
from profile_dist.user_factors import load_definitions
from profile_dist.layout.results import read_manifest, table_path

if TYPE_CHECKING:
    from profile_dist.workflows.models import ModelStage, Target

EXIT_HEALTHY = 0
EXIT_FAILED = 1
EXIT_ALIGNMENT_DROP = 3
STATUS_EXIT = {"baseline": EXIT_HEALTHY, "healthy": EXIT_HEALTHY, "alignment_drop": EXIT_ALIGNMENT_DROP}
TOP_CHANGES = 3
#: Where the model stages keep their LLM reply cache (a filesystem path); unset: ``<output>/_llm_cache``.
CACHE_ENV = "PROFILE_LLM_CACHE"


@dataclass
class AuditOutcome:
    date: str
    summary: dict[str, Any]
    reused: bool  # the date was already published: nothing was recomputed or written

    @property
    def exit_code(self) -> int:
        return int(self.summary["exit_code"])

    @property
    def paragraph(self) -> str:
        text = self.summary["paragraph"]
        return f"{text} (Already published; nothing was recomputed.)" if self.reused else text


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class CorpusData:
    """One corpus as the audit prepared it for a date: canonical pairs and their annotations."""

    name: str
    pairs_dirs: list[str] = field(default_factory=list)
    annotation_dirs: list[str] = field(default_factory=list)
    files: int = 0
    new_files: int = 0
    pairs: int = 0


# --- inputs ------------------------------------------------------------------------------------------


def resolve_inputs(corpus: AuditCorpus, date: str) -> list[storage.FileInfo]:
    """The input files of a corpus for ``date``: files as given, every file under a prefix ending in '/'."""
    found: dict[str, storage.FileInfo] = {}
    for uri in corpus.inputs_for(date):
        if uri.endswith("/"):
            infos = storage.list_infos(uri, suffix=corpus.suffix, recursive=True)
            if not infos:
                what = f"no files ending in {corpus.suffix!r}" if corpus.suffix else "no files"
                raise ConfigError(f"{uri}: {what} (missing or empty prefix) for corpus {corpus.name!r} on {date}")
            found.update((info.uri, info) for info in infos)
        else:
            info = storage.info(uri)
            if info is None:
                raise BadInputError(uri, None, None, f"file not found (corpus {corpus.name!r}, {date})")
            found[uri] = info
    return [found[uri] for uri in sorted(found)]


def prepare_corpus(config: AuditConfig, layout: AuditLayout, corpus: AuditCorpus, date: str, *, address: str | None,
                   say: Callable[[str], None], progress: bool | None) -> CorpusData:
    """Ingest input file versions not seen before and annotate whatever is not annotated yet."""
    data = CorpusData(corpus.name)
    for info in resolve_inputs(corpus, date):
        print_ = layout_mod.fingerprint(info)
        pairs_dir = layout.ingest_dir(corpus.name, print_)
        manifest_path = storage.join(pairs_dir, "_manifest.json")
        if not storage.exists(manifest_path):
            summary = ingest(
                corpus.format, [info.uri], pairs_dir, task=corpus.task, dataset=corpus.dataset,
                rows_per_shard=config.rows_per_shard, skip_bad_rows=corpus.skip_bad_rows, address=address, progress=progress,
            )
            say(f"{corpus.name}: new input {info.uri}: " + "; ".join(summary.lines()))
            data.new_files += 1
        manifest = storage.read_json(manifest_path)
        annotations_dir = layout.annotations_dir(corpus.name, print_)
        factors, llm_args = audit_factors(config)
        done = annotate(pairs_dir, annotations_dir, factors=factors, address=address, progress=progress, **llm_args)
        if done.shards_done:
            say(f"{corpus.name}: " + "; ".join(done.lines()))
        data.pairs_dirs.append(pairs_dir)
        data.annotation_dirs.append(annotations_dir)
        data.files += 1
        data.pairs += int(manifest.get("counts", {}).get("pairs", 0))
    return data


# --- comparison and summary ----------------------------------------------------------------------------


def _audit_taus(directory: str) -> drift.AuditTaus:
    manifest = read_manifest(directory)
    return drift.AuditTaus.from_tables(
        storage.read_parquet(table_path(directory, "influence"), schema.INFLUENCE),
        storage.read_parquet(table_path(directory, "replicates"), schema.REPLICATES),
        (manifest.get("alignment") or {}).get("factors"),  # absent before the reduce recorded its factor sets
    )


def _bootstrap_notes(previous_dir: str, current_dir: str) -> list[str]:
    """Replicates pair up only when both audits drew them alike; say so when they did not."""
    keys = ("n_bootstrap", "seed", "bootstrap")
    before = read_manifest(previous_dir)
    now = read_manifest(current_dir)
    differing = [k for k in keys if before.get(k) != now.get(k)]
    if not differing:
        return []
    return [f"bootstrap settings differ from the previous audit ({', '.join(differing)}): replicate differences are unpaired"]


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def describe_alert(row: dict[str, Any], level: float, threshold: float | None) -> str:
    return (
        f"{row['source_x']} vs {row['source_y']} on {row['task']}: {row['metric']} {row['value_previous']:.3f} -> "
        f"{row['value_current']:.3f} (change {_fmt(row['change'])}, {level:.0%} CI {_fmt(row['ci_low'])} to {_fmt(row['ci_high'])}; "
        f"tolerated drop {threshold:g})"
    )


def summarize(
    config: AuditConfig, date: str, previous: str | None, corpora: list[CorpusData], influence_drift: list[dict],
    alignment_drift: list[dict], alerts: list[dict], notes: list[str], results_uri: str, run_id: str,
) -> dict[str, Any]:
    status = "baseline" if previous is None else ("alignment_drop" if alerts else "healthy")
    significant = [r for r in influence_drift if r["significant"]]
    significant.sort(key=lambda r: (-abs(r["change"]), r["task"], r["labeler"], r["factor"]))
    level = config.confidence
    files = sum(c.files for c in corpora)
    new_files = sum(c.new_files for c in corpora)
    pairs = sum(c.pairs for c in corpora)
    parts = [
        f"Audit {date}" + (f" (compared with {previous})" if previous else " (first audit: nothing to compare with)") + ":",
        f"{_plural(len(corpora), 'corpus', 'corpora')}, {_plural(files, 'input file')} ({new_files} new), {pairs:,} pairs.",
    ]
    if previous is not None:
        watched = [r for r in alignment_drift if config.drift.watches(r)]
        if alerts:
            parts.append(
                f"Alignment with {config.drift.reference} dropped past the threshold for {_plural(len(alerts), 'comparison')}: "
                + "; ".join(describe_alert(r, level, config.drift.threshold(r["metric"])) for r in alerts[:TOP_CHANGES]) + "."
            )
        else:
            parts.append(
                f"Alignment with {config.drift.reference} held: no watched metric ("
                + ", ".join(f"{m} > {v:g}" for m, v in config.drift.max_drop) + f") dropped past its threshold over "
                f"{_plural(len(watched), 'comparison')}" + (" with significance." if config.drift.require_significant else ".")
            )
        changes = "; ".join(
            f"{r['labeler']}/{r['setting']} {r['factor']} on {r['task']} {_fmt(r['change'])} "
            f"(CI {_fmt(r['ci_low'])} to {_fmt(r['ci_high'])})"
            for r in significant[:TOP_CHANGES]
        )
        parts.append(
            f"{len(significant)} of {len(influence_drift)} factor influences changed significantly"
            + (f", largest: {changes}." if significant else ".")
        )
    parts += [f"Note: {n}." for n in notes]
    parts.append(f"Status: {status.replace('_', ' ')} (exit {STATUS_EXIT[status]}). Results: {results_uri}")
    return {
        "date": date, "previous_date": previous, "status": status, "exit_code": STATUS_EXIT[status], "run_id": run_id,
        "output": results_uri, "paragraph": " ".join(parts),
        "corpora": {c.name: {"files": c.files, "new_files": c.new_files, "pairs": c.pairs} for c in corpora},
        "models": list(config.models),
        "policy": {"reference": config.drift.reference, "max_drop": dict(config.drift.max_drop),
                   "require_significant": config.drift.require_significant},
        "alerts": alerts, "significant_factor_changes": significant, "notes": notes,
    }


# --- the models -----------------------------------------------------------------------------------------


def model_run(config: AuditConfig, address: str | None) -> "ModelRun":
    """What the judge and generate of every model share tonight: the audit's endpoints and factors, and the
    reply cache (``$PROFILE_LLM_CACHE``, else under the output root, on its store), so a night pays only for
    pairs and prompts it has not seen before."""
    factors = list(config.factors) if config.factors else None
    return ModelRun(endpoints=config.endpoints, cache_dir=default_cache_location(config.output, os.environ.get(CACHE_ENV)),
                    annotate=lambda pairs_dir, output: annotate(pairs_dir, output, factors=factors, address=address,
                                                                progress=False),
                    rows_per_shard=config.rows_per_shard, address=address, progress=False)


def model_targets(config: AuditConfig, date: str, corpora: list[CorpusData], model: str, stage: str) -> "list[Target]":
    """Every pairs directory of every corpus, written to ``<output>/models/<model>/date=<date>/<stage>/<corpus>/NNNN``
    (annotations of generations beside it, ``NNNN-annotations``)."""
    from profile_dist.workflows.models import Target  # here: --status stays light

    base = storage.join(config.output, "models", slug(model), f"date={date}", stage)
    targets = []
    for corpus in corpora:
        for i, pairs_dir in enumerate(corpus.pairs_dirs):
            output = storage.join(base, corpus.name, f"{i:04d}")
            targets.append(Target(pairs_dir, output, output + "-annotations"))
    return targets


# --- the run -----------------------------------------------------------------------------------------------


def _build_report(results_dir: str, previous_dir: str | None) -> None:
    if previous_dir is not None and "history" in inspect.signature(build_report).parameters:
        build_report(results_dir, history=[previous_dir])  # the report shows the drift too
    else:
        build_report(results_dir)


def run_audit(
    config: AuditConfig, date: str, *, address: str | None = None, say: Callable[[str], None] = _stderr,
    progress: bool | None = None, run_id: str | None = None, model_stages: "Mapping[str, ModelStage] | None" = None,
) -> AuditOutcome:
    """Audit ``date``; a date already published is returned as it was, without any write. Every model of the
    config runs ``model_stages`` (default: judge and generate, workflows/models.py) labelled by its endpoint
    name, stable across the checkpoints it serves, so drift compares checkpoint with checkpoint."""
    check_date(date)
    address = address or config.address
    layout = AuditLayout(config.output)
    if layout_mod.finish(layout, date):
        say(f"{date}: finished publishing a run that had stopped after claiming the date")
    summary = layout.published_summary(date)
    if summary is not None:
        return AuditOutcome(date, summary, reused=True)
    check_models(config)
    models = model_run(config, address) if config.models else None  # an unusable reply cache fails before any work

    corpora = [prepare_corpus(config, layout, c, date, address=address, say=say, progress=progress) for c in config.corpora]
    pairs_dirs = [d for c in corpora for d in c.pairs_dirs]
    annotation_dirs = [d for c in corpora for d in c.annotation_dirs]
    if models is not None:
        for model in config.models:
            for name, stage in (model_stages or MODEL_STAGES).items():
                output = stage(models, model, model_targets(config, date, corpora, model, name), model)
                say(f"{name} {model}: {len(output.pairs_dirs)} pairs director(ies)")
                pairs_dirs += output.pairs_dirs
                annotation_dirs += output.annotation_dirs

    run_id = run_id or uuid.uuid4().hex[:12]
    staging = layout.staging(date, run_id)
    try:
        for line in reduce(
            pairs_dirs, annotation_dirs, staging, factors=list(config.factors) if config.factors else None,
            n_bootstrap=config.bootstrap, seed=config.seed, level=config.confidence, address=address, progress=progress,
            alignment_factors=list(config.alignment_factors) if isinstance(config.alignment_factors, tuple) else config.alignment_factors,
        ).lines():
            say(line)
        previous = layout.previous(date)
        previous_dir = layout.date_dir(previous) if previous else None
        release_ray()  # what is left (report, drift) needs no Ray: its reads should not stack on idle workers
        _build_report(staging, previous_dir)
        notes: list[str] = []
        if previous_dir is not None:
            before, now = _audit_taus(previous_dir), _audit_taus(staging)
            influence = drift.influence_drift(before, now, config.confidence)
            alignment = drift.alignment_drift(before, now, config.confidence)
            notes = _bootstrap_notes(previous_dir, staging)
        else:
            influence, alignment = schema.DRIFT_INFLUENCE.empty_table(), schema.DRIFT_ALIGNMENT.empty_table()
        storage.write_parquet_atomic(influence, storage.join(staging, "drift_influence.parquet"))
        storage.write_parquet_atomic(alignment, storage.join(staging, "drift_alignment.parquet"))
        alerts = drift.alignment_alerts(alignment, config.drift)
        summary = summarize(
            config, date, previous, corpora, influence.to_pylist(), alignment.to_pylist(), alerts, notes,
            layout.date_dir(date), run_id,
        )
        storage.write_json_atomic(summary, storage.join(staging, "summary.json"))
        layout_mod.stage_complete(layout, date, run_id, summary)
    except BaseException:
        try:  # nothing of a failed run stays behind; the caches (ingest, annotations) do
            storage.remove_tree(staging)
        except Exception:
            pass
        raise
    won, published = layout_mod.commit(layout, date, run_id)
    if not won:
        say(f"{date}: another run ({published['run_id']}) published this date first; its result stands")
    return AuditOutcome(date, published, reused=not won)


def failure_paragraph(date: str, error: BaseException) -> str:
    reason = str(error) if isinstance(error, ProfileDistError) else f"{type(error).__name__}: {error}"
    return (
        f"Audit {date} FAILED: {reason}. Nothing was published for this date. Fix the cause and rerun the same "
        f"command: ingested files and finished annotation shards are kept and skipped. Status: failed (exit {EXIT_FAILED})."
    )


def audit_factors(config: AuditConfig) -> tuple[list[str] | None, dict[str, Any]]:
    """The factors the audit annotates and the annotator: the configured (or every rule) factors, plus the
    factor file's user-defined ones scored through ``annotate_llm`` (never the built-in LLM factors)."""
    names = list(config.factors) if config.factors else None
    if not config.factor_file:
        return names, {}
    names = (names or list(RULE_FACTORS)) + [d.name for d in load_definitions(config.factor_file)]
    return names, {"llm": config.annotate_llm, "endpoints": config.endpoints, "factor_file": config.factor_file}
