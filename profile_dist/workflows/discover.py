"""``profile-dist discover``: propose factors the existing ones miss, and keep only those that survive a held-out test.

For one source (labeler/setting) and task (docs/discovery.md):

1. **Split** the pairs by prompt into a proposal half and a validation half (a seeded hash of the prompt id;
   the assignment is written to ``split.parquet``).
2. **Pick** the proposal pairs the existing factors explain worst: fit the adjusted Bradley-Terry model
   (:mod:`profile_dist.analysis.adjusted`) on the proposal half and take the pairs whose observed preference it
   gives the lowest probability.
3. **Propose**: show a proposer LLM batches of them (:mod:`profile_dist.prompts.discover`); **merge** the proposals
   (same name, or near-identical question) into at most ``candidates`` definitions, the most often proposed
   first, each a valid factor-file entry.
4. **Validate**: annotate the validation half with the candidates (the annotate stage, ``factor_file``), reduce it
   together with the existing annotations, and keep a candidate only if its tau interval excludes 0 *and* its
   adjusted effect (the reduce's joint Bradley-Terry fit, every existing factor held fixed) does too.
5. **Write** ``discovered.yaml`` (kept definitions, usable as ``--factor-file``), ``candidates.yaml`` (all),
   ``discovery.parquet`` (:data:`DISCOVERY`), ``discovery.md`` and the validation reduce with its report, where
   the candidates sit next to the built-in factors.

Both LLM phases run through the engine (rate limits, cache, ``--max-cost`` over both, ``--dry-run``).
The chosen source/task pairs and their existing factor values are held in the driver's memory.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.analysis.adjusted import fit_bradley_terry, standardise
from profile_dist.errors import ConfigError
from profile_dist.user_factors import FactorDefinition, dump_definitions, parse_definitions, prompt_for
from profile_dist.factors.llm_calls import spec_requests
from profile_dist.llm.step import LLMStep
from profile_dist.prompts.discover import ShownPair, proposal_request
from profile_dist.report import build_report
from profile_dist.stages.annotate import annotate
from profile_dist.stages.reduce import reduce
from profile_dist.stages.runtime import ensure_ray
from profile_dist.layout.results import REPORT_MD, table_path

PROPOSAL, VALIDATION = "proposal", "validation"

DISCOVERY = pa.schema([
    pa.field("factor", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # "labeler/setting"
    pa.field("proposed_times", pa.int64(), nullable=False),  # proposals merged into this candidate
    pa.field("n_pairs", pa.int64(), nullable=False),  # validation pairs the candidate tells apart (C + D)
    pa.field("tau", pa.float64(), nullable=True),
    pa.field("tau_ci_low", pa.float64(), nullable=True),
    pa.field("tau_ci_high", pa.float64(), nullable=True),
    # joint Bradley-Terry coefficient (existing factors held fixed), log-odds per standardised difference
    pa.field("adjusted_effect", pa.float64(), nullable=True),
    pa.field("adjusted_ci_low", pa.float64(), nullable=True),
    pa.field("adjusted_ci_high", pa.float64(), nullable=True),
    pa.field("kept", pa.bool_(), nullable=False),
    pa.field("reason", pa.string(), nullable=False),  # why kept, or why not
    pa.field("nearest_factor", pa.string(), nullable=True),  # existing factor with the largest |r| of pair differences
    pa.field("nearest_correlation", pa.float64(), nullable=True),
    pa.field("definition_version", pa.string(), nullable=False),
])

SPLIT = pa.schema([pa.field("prompt_id", pa.string(), nullable=False), pa.field("half", pa.string(), nullable=False)])


# --- pure steps ----------------------------------------------------------------------------------


def split_half(prompt_id: str, seed: int) -> str:
    """The half of a prompt: a seeded hash, so the split is reproducible and independent of row order."""
    digest = hashlib.sha256(f"{seed}\x1f{prompt_id}".encode()).digest()
    return PROPOSAL if digest[0] % 2 == 0 else VALIDATION


def worst_explained(diffs: np.ndarray, k: int) -> np.ndarray:
    """Row indices of the ``k`` pairs (rows: preferred minus other factor values) whose preference the adjusted
    Bradley-Terry fit on all rows finds least likely; rows with an unknown value come last."""
    diffs = np.asarray(diffs, dtype=np.float64)
    complete = ~np.isnan(diffs).any(axis=1)
    p = np.ones(len(diffs))
    if complete.any() and diffs.shape[1]:
        z, scale = standardise(diffs[complete])
        used = scale > 0
        if used.any():
            fit = fit_bradley_terry(z[:, used])
            p[complete] = 1.0 / (1.0 + np.exp(-(z[:, used] @ fit.coef)))
        else:
            p[complete] = 0.5
    order = np.lexsort((np.arange(len(diffs)), p))  # least likely first, ties by row
    return order[:k]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 3}


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return (slug if slug[:1].isalpha() else f"f_{slug}")[:48]


@dataclass
class Candidate:
    entry: dict[str, Any]
    times: int = 1
    aliases: list[str] = field(default_factory=list)


def merge_proposals(proposals: Sequence[dict[str, Any]], known: Sequence[str], task: str, n: int,
                    similarity: float = 0.6) -> tuple[list[FactorDefinition], list[Candidate], list[str]]:
    """At most ``n`` definitions from the proposals: one candidate per name, proposals whose question shares at
    least ``similarity`` of its content words (Jaccard) with a candidate's folded into it; the most proposed
    first (ties: first proposed). Returns (definitions, merged candidates in order, notes on what was dropped)."""
    merged: list[Candidate] = []
    notes = []
    known_set = set(known)
    for p in proposals:
        name = _slug(str(p.get("name", "")))
        if not name or name in known_set:
            notes.append(f"{p.get('name')!r}: an existing factor's name; dropped")
            continue
        words = _words(str(p.get("question", "")) + " " + str(p.get("description", "")))
        for c in merged:
            other = _words(c.entry["question"] + " " + c.entry["description"])
            jaccard = len(words & other) / max(1, len(words | other))
            if c.entry["name"] == name or jaccard >= similarity:
                c.times += 1
                if name != c.entry["name"] and name not in c.aliases:
                    c.aliases.append(name)
                break
        else:
            merged.append(Candidate({"name": name, "description": p.get("description", ""),
                                     "question": p.get("question", ""), "rubric": list(p.get("rubric") or []),
                                     "tasks": [task], "version": "1"}))
    ranked = sorted(merged, key=lambda c: -c.times)  # stable: ties keep first-proposed order
    defs: list[FactorDefinition] = []
    kept: list[Candidate] = []
    for c in ranked:
        if len(defs) >= n:
            notes.append(f"{c.entry['name']}: beyond --candidates {n}; dropped")
            continue
        try:
            defs += parse_definitions({"factors": [c.entry]}, f"proposal {c.entry['name']}")
            kept.append(c)
        except Exception as exc:  # a malformed proposal is the proposer's fault, not the user's
            notes.append(f"{c.entry['name']}: not a valid definition ({exc}); dropped")
    return defs, kept, notes


def keep_decision(tau_ci: tuple[float | None, float | None], adjusted_ci: tuple[float | None, float | None],
                  nearest: tuple[str | None, float | None]) -> tuple[bool, str]:
    """Keep iff both intervals exclude 0; otherwise say which one did not, naming the nearest existing factor."""
    def excludes_zero(ci: tuple[float | None, float | None]) -> bool:
        lo, hi = ci
        return lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)) and (lo > 0 or hi < 0)

    near = f" (nearest existing factor: {nearest[0]}, r={nearest[1]:+.2f})" if nearest[0] and nearest[1] is not None else ""
    if not excludes_zero(tau_ci):
        return False, "tau interval includes 0: no effect on the validation half" + near
    if not excludes_zero(adjusted_ci):
        who = f"explained by {nearest[0]}" if nearest[0] else "explained by the existing factors"
        return False, f"{who}: adjusted effect interval includes 0 with the existing factors held fixed" + near
    return True, "tau and adjusted effect intervals both exclude 0" + near


def nearest_factor(candidate: np.ndarray, existing: dict[str, np.ndarray]) -> tuple[str | None, float | None]:
    """The existing factor whose pair differences correlate most (in absolute value) with the candidate's."""
    best: tuple[str | None, float | None] = (None, None)
    for name, values in existing.items():
        ok = ~(np.isnan(candidate) | np.isnan(values))
        if ok.sum() < 3 or np.std(candidate[ok]) == 0 or np.std(values[ok]) == 0:
            continue
        r = float(np.corrcoef(candidate[ok], values[ok])[0, 1])
        if best[1] is None or abs(r) > abs(best[1]):
            best = (name, r)
    return best


# --- data ---------------------------------------------------------------------------------------


def _read_dir(directory: str, table_schema: pa.Schema) -> pl.DataFrame:
    files = storage.list_files(directory)
    if not files:
        return pl.from_arrow(table_schema.empty_table())
    return pl.from_arrow(pa.concat_tables([storage.read_parquet(f, table_schema) for f in files]))


@dataclass
class Corpus:
    pairs: pl.DataFrame  # chosen task and source, no ties; + preferred_id, other_id, half
    prompts: pl.DataFrame
    responses: pl.DataFrame


def load_corpus(pairs_dir: str, task: str | None, source: str | None, seed: int) -> tuple[Corpus, str, str]:
    pairs = _read_dir(storage.join(pairs_dir, "pairs"), schema.PAIRS)
    if pairs.is_empty():
        raise ConfigError(f"{pairs_dir}: no pairs; is this the output directory of `profile-dist ingest`?")
    pairs = pairs.with_columns(source=pl.col("labeler") + "/" + pl.col("setting"))
    tasks = sorted(set(pairs["task"]))
    task = task or (tasks[0] if len(tasks) == 1 else None)
    if task not in tasks:
        raise ConfigError(f"{pairs_dir}: --task must be one of {', '.join(tasks)}")
    sources = sorted(set(pairs.filter(pl.col("task") == task)["source"]))
    source = source or (sources[0] if len(sources) == 1 else None)
    if source not in sources:
        raise ConfigError(f"{pairs_dir}: --source must be one of {', '.join(sources)} (labeler/setting)")
    chosen = (pairs.filter((pl.col("task") == task) & (pl.col("source") == source) & (pl.col("label") != "tie"))
              .with_columns(preferred_id=pl.when(pl.col("label") == "a").then("response_a_id").otherwise("response_b_id"),
                            other_id=pl.when(pl.col("label") == "a").then("response_b_id").otherwise("response_a_id"),
                            half=pl.col("prompt_id").map_elements(lambda p: split_half(p, seed), return_dtype=pl.String)))
    prompts = _read_dir(storage.join(pairs_dir, "prompts"), schema.PROMPTS)
    responses = _read_dir(storage.join(pairs_dir, "responses"), schema.RESPONSES)
    return Corpus(chosen, prompts, responses), task, source


def factor_values(annotation_dirs: Sequence[str], response_ids: list[str], factors: Sequence[str] | None = None
                  ) -> pl.DataFrame:
    """Wide response_id x factor values (null where unknown or failed) from annotation directories."""
    files = [f for d in annotation_dirs for f in storage.list_files(d)]
    if not files:
        raise ConfigError(f"no annotation shards under {', '.join(annotation_dirs)}; run `profile-dist annotate` first")
    import pyarrow.dataset as pads

    # Only the chosen responses' rows are read (a filtered scan), not whole annotation shards.
    wanted = pads.field("response_id").isin(pa.array(response_ids, pa.string()))
    if factors is not None:
        wanted = wanted & pads.field("factor").isin(pa.array(list(factors), pa.string()))
    fs, _ = storage.filesystem(files[0])
    with storage.arrow_errors(files[0]):
        table = pads.dataset([storage.filesystem(f)[1] for f in files], filesystem=fs, format="parquet",
                             schema=schema.ANNOTATIONS).to_table(columns=["response_id", "factor", "value"], filter=wanted)
    long = pl.from_arrow(table).unique(subset=["response_id", "factor"], keep="first", maintain_order=True)
    return long.pivot(on="factor", index="response_id", values="value")


def pair_diffs(pairs: pl.DataFrame, values: pl.DataFrame, factors: Sequence[str]) -> np.ndarray:
    """Rows: preferred minus other, per factor (NaN where either value is unknown)."""
    pref = pairs.select("preferred_id").join(values, left_on="preferred_id", right_on="response_id", how="left")
    other = pairs.select("other_id").join(values, left_on="other_id", right_on="response_id", how="left")
    cols = []
    for f in factors:
        a = pref[f].cast(pl.Float64).to_numpy() if f in pref.columns else np.full(pairs.height, np.nan)
        b = other[f].cast(pl.Float64).to_numpy() if f in other.columns else np.full(pairs.height, np.nan)
        cols.append(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return np.column_stack(cols) if cols else np.zeros((pairs.height, 0))


def _texts(corpus: Corpus) -> tuple[dict[str, str], dict[str, str]]:
    text = dict(zip(corpus.responses["response_id"], corpus.responses["text"]))
    src = corpus.prompts.select("prompt_id", pl.coalesce("source", "text").alias("s"))
    return text, dict(zip(src["prompt_id"], src["s"]))


def write_half(corpus: Corpus, half: str, directory: str) -> None:
    """An ingest-shaped directory holding one half (pairs, their prompts and responses)."""
    pairs = corpus.pairs.filter(pl.col("half") == half)
    ids = set(pairs["response_a_id"]) | set(pairs["response_b_id"])
    tables = {"pairs": (pairs.select(schema.PAIRS.names), schema.PAIRS),
              "prompts": (corpus.prompts.filter(pl.col("prompt_id").is_in(list(set(pairs["prompt_id"])))), schema.PROMPTS),
              "responses": (corpus.responses.filter(pl.col("response_id").is_in(list(ids))), schema.RESPONSES)}
    for name, (frame, table_schema) in tables.items():
        storage.write_parquet_atomic(schema.conform(frame.to_arrow(), table_schema, where=name),
                                     storage.join(directory, name, "part-00000.parquet"))


# --- the workflow --------------------------------------------------------------------------------


@dataclass
class DiscoverSummary:
    output: str
    task: str
    source: str
    n_proposal_pairs: int = 0
    n_validation_pairs: int = 0
    shown: int = 0
    proposals: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    dry_run: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        if self.dry_run:
            return [f"discover --dry-run ({self.task}, {self.source}): nothing sent"] + [
                f"  {phase}: requests={p['requests']} to_send={p['to_send']} input_tokens={p['input_tokens']} "
                f"output_tokens={p['output_tokens']} cost=${p['cost']:.4f}" + (f"  ({p['note']})" if p.get("note") else "")
                for phase, p in self.dry_run.items()]
        out = [f"discover ({self.task}, {self.source}): {self.n_proposal_pairs} proposal / {self.n_validation_pairs} "
               f"validation pairs; {self.shown} shown to the proposer, {self.proposals} proposals, "
               f"{len(self.rows)} candidate(s) into {self.output}"]
        for r in self.rows:
            out.append(f"  {'KEPT   ' if r['kept'] else 'dropped'} {r['factor']}: tau={_fmt(r['tau'])} "
                       f"[{_fmt(r['tau_ci_low'])}, {_fmt(r['tau_ci_high'])}], adjusted={_fmt(r['adjusted_effect'])} "
                       f"[{_fmt(r['adjusted_ci_low'])}, {_fmt(r['adjusted_ci_high'])}]; {r['reason']}")
        return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.3f}"


def _placeholder(i: int, task: str) -> FactorDefinition:
    """A candidate of typical size, to price the validation phase before anything is proposed."""
    anchor = "a typical rubric anchor of about eight words"
    return FactorDefinition(f"candidate_{i}", "a typical one-line description of a proposed factor",
                            "A typical question of about twenty words asking whether the response has the "
                            "proposed property, judged from the response alone?", (anchor,) * 5, False, (task,), "1")


def discover(
    pairs_dir: str, annotation_dirs: list[str], llm: str, annotate_llm: str, output: str, *,
    task: str | None = None, source: str | None = None, candidates: int = 5, seed: int = 0,
    proposal_pairs: int = 40, batch_size: int = 8, endpoints: str | None = None, cache_dir: str | None = None,
    max_cost: float | None = None, dry_run: bool = False, n_bootstrap: int = 200, level: float = 0.95,
    examples: int = 3, address: str | None = None, progress: bool | None = False,
    say: Callable[[str], None] = lambda _: None,
) -> DiscoverSummary:

    if candidates < 1 or proposal_pairs < 1 or batch_size < 1:
        raise ConfigError("--candidates, --proposal-pairs and --batch must be 1 or more")
    corpus, task, source = load_corpus(pairs_dir, task, source, seed)
    summary = DiscoverSummary(output, task, source)
    proposal = corpus.pairs.filter(pl.col("half") == PROPOSAL)
    validation = corpus.pairs.filter(pl.col("half") == VALIDATION)
    summary.n_proposal_pairs, summary.n_validation_pairs = proposal.height, validation.height
    if proposal.is_empty() or validation.is_empty():
        raise ConfigError(f"{pairs_dir}: too few prompts to split into proposal and validation halves")
    ids = list(set(corpus.pairs["preferred_id"]) | set(corpus.pairs["other_id"]))
    values = factor_values(annotation_dirs, ids)
    known = [c for c in values.columns if c != "response_id"]
    picked = proposal[worst_explained(pair_diffs(proposal, values, known), proposal_pairs).tolist()]
    text, src = _texts(corpus)
    shown = [ShownPair(src.get(p, ""), text[a], text[b])
             for p, a, b in zip(picked["prompt_id"], picked["preferred_id"], picked["other_id"])]
    requests = [proposal_request(shown[i:i + batch_size], known, task) for i in range(0, len(shown), batch_size)]
    summary.shown = len(shown)
    # One step for both phases: one reply cache, --max-cost over both, one cost record per phase.
    step = LLMStep("discover", output, endpoints=endpoints, cache_dir=cache_dir, max_cost=max_cost,
                   dry_run=dry_run, progress=bool(progress))
    proposer, annotator = step.endpoint(llm), step.endpoint(annotate_llm)
    ensure_ray(address)
    if dry_run:
        summary.dry_run = _dry_run(step, requests, corpus, candidates, task, proposer, annotator)
        return summary
    storage.write_parquet_atomic(schema.conform(corpus.pairs.select("prompt_id", "half").unique().sort("prompt_id").to_arrow(),
                                                SPLIT, where="split"), storage.join(output, "split.parquet"))
    with step.engine("propose", proposer, desc="discover (propose)") as engine:
        results = engine.run(requests)
    spent = float(step.records[-1]["spend"] or 0.0)
    proposals = [p for r in results if r.ok for p in r.value.get("proposals", [])]
    failed = sum(1 for r in results if not r.ok)
    summary.proposals = len(proposals)
    say(f"propose: {len(requests)} batch(es), {len(proposals)} proposals, {failed} failed; spent ${spent:.4f}")
    defs, merged, notes = merge_proposals(proposals, known, task, candidates)
    for note in notes:
        say(f"merge: {note}")
    if not defs:
        raise ConfigError("the proposer proposed no valid candidate; nothing to validate")
    candidates_file = storage.join(output, "candidates.yaml")
    storage.write_bytes_atomic(dump_definitions(defs).encode(), candidates_file)
    validation_dir = storage.join(output, "validation")
    write_half(corpus, VALIDATION, validation_dir)

    names = [d.name for d in defs]
    ann_dir = storage.join(output, "annotations")
    annotate(validation_dir, ann_dir, factors=names, llm=annotate_llm, endpoints=endpoints, cache_dir=step.cache,
             max_cost=step.remaining(), factor_file=candidates_file,
             address=address, progress=progress)
    reduce_dir = storage.join(output, "reduce")
    reduce([validation_dir], list(annotation_dirs) + [ann_dir], reduce_dir, n_bootstrap=n_bootstrap, seed=seed,
           level=level, address=address, progress=progress)
    summary.rows, cand_values = _judge_candidates(reduce_dir, defs, merged, known, task, source, validation,
                                                  annotation_dirs, ann_dir)
    storage.write_parquet_atomic(schema.conform(pa.Table.from_pylist(summary.rows, schema=DISCOVERY), DISCOVERY,
                                                where="discovery"), storage.join(output, "discovery.parquet"))
    kept = [d for d, r in zip(defs, summary.rows) if r["kept"]]
    storage.write_bytes_atomic((dump_definitions(kept) if kept else "factors: []\n").encode(),
                               storage.join(output, "discovered.yaml"))

    build_report(reduce_dir)
    section = discovery_section(summary, kept, validation, cand_values, text, src, examples)
    storage.write_bytes_atomic(section.encode(), storage.join(output, "discovery.md"))
    # The validation report, where the candidates sit next to the built-in factors, carries the section too.
    report_md = storage.join(reduce_dir, REPORT_MD)
    storage.write_bytes_atomic(storage.read_bytes(report_md) + b"\n" + section.encode(), report_md)
    storage.write_json_atomic({"stage": "discover", "pairs": pairs_dir, "annotations": list(annotation_dirs),
                               "task": task, "source": source, "seed": seed, "split": "sha256(seed, prompt_id) parity",
                               "proposal_pairs": proposal.height, "validation_pairs": validation.height,
                               "shown": len(shown), "batch_size": batch_size, "candidates": candidates,
                               "proposer": proposer.model, "annotator": annotator.model, "merge_notes": notes,
                               "llm": step.records},
                              storage.join(output, "_manifest.json"))
    return summary


def _dry_run(step: LLMStep, requests, corpus: Corpus, n: int, task: str, proposer, annotator) -> dict[str, Any]:
    """Both phases priced, nothing sent: the proposals as they will be asked, the validation annotations at
    ``n`` placeholder candidates of typical size (the real ones are not known yet)."""
    with step.engine("propose", proposer, desc="discover (propose)") as engine:
        propose = dict(engine.project([requests]))
    validation = corpus.pairs.filter(pl.col("half") == VALIDATION)
    ids = set(validation["preferred_id"]) | set(validation["other_id"])
    src = corpus.prompts.select("prompt_id", pl.coalesce("source", "text").alias("source_text"))
    frame = corpus.responses.filter(pl.col("response_id").is_in(list(ids))).join(src, on="prompt_id", how="left")
    frame = frame.with_columns(source_text=pl.coalesce("source", "source_text"))
    annotate_requests = [r for i in range(n) for r in spec_requests(prompt_for(_placeholder(i, task)), frame) if r]
    note = f"{n} candidate(s) of typical size x {frame.height} validation responses; the real ones are not known yet"
    validate = {**step.plan("validate", annotator, annotate_requests, "placeholder candidates"), "note": note}
    total = {k: propose[k] + validate[k] for k in ("requests", "to_send", "input_tokens", "output_tokens", "cost")}
    return {"propose": propose, "validate": validate, "total": total}


def _judge_candidates(reduce_dir: str, defs: list[FactorDefinition], merged: list[Candidate], known: list[str],
                      task: str, source: str, validation: pl.DataFrame, annotation_dirs: Sequence[str], ann_dir: str
                      ) -> tuple[list[dict[str, Any]], pl.DataFrame]:
    labeler, setting = source.rsplit("/", 1)
    where = (pl.col("task") == task) & (pl.col("labeler") == labeler) & (pl.col("setting") == setting)
    influence = pl.read_parquet(storage.read_bytes(table_path(reduce_dir, "influence"))).filter(where)
    adjusted = pl.read_parquet(storage.read_bytes(table_path(reduce_dir, "adjusted"))).filter(where)
    ids = list(set(validation["preferred_id"]) | set(validation["other_id"]))
    values = factor_values(list(annotation_dirs) + [ann_dir], ids, known + [d.name for d in defs])
    existing = {f: col for f, col in zip(known, pair_diffs(validation, values, known).T)}
    rows = []
    for d, c in zip(defs, merged):
        inf = influence.filter(pl.col("factor") == d.name).to_dicts()
        adj = adjusted.filter(pl.col("factor") == d.name).to_dicts()
        inf_row, adj_row = (inf[0] if inf else {}), (adj[0] if adj else {})
        near = nearest_factor(pair_diffs(validation, values, [d.name])[:, 0], existing)
        kept, reason = keep_decision((inf_row.get("ci_low"), inf_row.get("ci_high")),
                                     (adj_row.get("bt_coef_ci_low"), adj_row.get("bt_coef_ci_high")), near)
        rows.append({"factor": d.name, "task": task, "source": source, "proposed_times": c.times,
                     "n_pairs": int(inf_row.get("n_pairs") or 0), "tau": inf_row.get("tau"),
                     "tau_ci_low": inf_row.get("ci_low"), "tau_ci_high": inf_row.get("ci_high"),
                     "adjusted_effect": adj_row.get("bt_coef"), "adjusted_ci_low": adj_row.get("bt_coef_ci_low"),
                     "adjusted_ci_high": adj_row.get("bt_coef_ci_high"), "kept": kept, "reason": reason,
                     "nearest_factor": near[0], "nearest_correlation": near[1], "definition_version": d.version})
    return rows, values


def _quote(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return (flat if len(flat) <= limit else flat[:limit] + " ...").replace("|", "\\|")


def discovery_section(summary: DiscoverSummary, kept: list[FactorDefinition], validation: pl.DataFrame,
                      values: pl.DataFrame, text: dict[str, str], src: dict[str, str], examples: int) -> str:
    out = ["## Discovered factors", "",
           f"Task {summary.task}, source {summary.source}: {summary.n_proposal_pairs} proposal and "
           f"{summary.n_validation_pairs} validation pairs (split by prompt); {summary.shown} worst-explained "
           f"proposal pairs shown to the proposer; {summary.proposals} proposals merged into {len(summary.rows)} "
           "candidate(s). A candidate is kept when both its tau interval and its adjusted-effect interval (existing "
           "factors held fixed) exclude 0 on the validation half. The candidates sit next to the built-in factors "
           "in `reduce/report.md`.", "",
           "| candidate | kept | tau [CI] | adjusted [CI] | nearest existing (r) | why |", "|---|---|---|---|---|---|"]
    for r in summary.rows:
        near = f"{r['nearest_factor']} ({r['nearest_correlation']:+.2f})" if r["nearest_factor"] else "-"
        out.append(f"| {r['factor']} | {'yes' if r['kept'] else 'no'} | {_fmt(r['tau'])} [{_fmt(r['tau_ci_low'])}, "
                   f"{_fmt(r['tau_ci_high'])}] | {_fmt(r['adjusted_effect'])} [{_fmt(r['adjusted_ci_low'])}, "
                   f"{_fmt(r['adjusted_ci_high'])}] | {near} | {r['reason']} |")
    out.append("")
    for d in kept:
        out += [f"### {d.name}", "", d.description, "", f"Question: {d.question}", ""]
        diffs = pair_diffs(validation, values, [d.name])[:, 0]
        # Largest differences first and, among equals, the shortest pairs: a reader sees the whole texts.
        size = np.array([len(text[a]) + len(text[b]) for a, b in zip(validation["preferred_id"], validation["other_id"])])
        order = np.lexsort((size, -np.nan_to_num(diffs, nan=0.0)))
        deciding = [i for i in order if diffs[i] > 0][:examples]
        out += [f"Deciding validation pairs (the preferred response scores higher on {d.name}):", ""]
        for i in deciding:
            row = validation.row(int(i), named=True)
            out += [f"- source: {_quote(src.get(row['prompt_id'], ''), 120)}",
                    f"  - preferred: {_quote(text[row['preferred_id']])}",
                    f"  - other: {_quote(text[row['other_id']])}"]
        out.append("")
    out.append("Promote a kept factor by copying its entry from `discovered.yaml` into the team's factor file "
               "(docs/discovery.md).")
    return "\n".join(out) + "\n"
