"""Judge: the evaluation setting. A model labels pairs (each asked in both orders), giving one more source.

```
profile-dist judge --pairs DIR --llm ENDPOINT [--endpoints FILE] --output DIR [--max-cost USD] [--dry-run]
```

Input: an ingest output. The pairs judged are its human-labelled pairs (all pairs if it has none), one per
distinct (task, prompt, response A, response B). Each is asked in its task's terms
(``settings.prompts.TaskFrame``: "which summary of this post is better"; document QA shows each answer with
the documents it was written from) as (A, B) and as (B, A); the two votes are mapped back to A/B. Where
they agree the label is kept; where they disagree the pair is *inconsistent*, and the ``inconsistent``
policy decides: ``drop`` (default: recorded in ``rejected`` as skipped, so the reduce's skipped table
counts it), ``first`` (keep the (A, B) vote) or ``tie``. A pair whose request failed
in either order is dropped the same way.

Output: an ingest-shaped directory whose pairs have labeler = the model and setting = evaluation and reuse
the input's prompt and response ids (so the input's annotations apply unchanged), plus
``judgments.parquet`` (every raw vote, schema.JUDGMENTS), ``judge_agreement.parquet`` (position
consistency, accuracy and Cohen's kappa against the human labels of the same pairs, per task: over every
judged pair with an inconsistent pair counted as a tie, and over the consistent pairs only) and
``judged_pairs.parquet`` (schema.JUDGED_PAIRS: per judged pair its reference label beside the judge's, which
the reduce uses to compare the judge and the reference on the pairs both decided).
The reply cache (``OUTPUT/_llm_cache`` by default) makes a rerun or a resumed run pay only for what is missing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import polars as pl
import pyarrow as pa

from profile_dist import ids, schema, storage
from profile_dist.analysis import agreement
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.layout import write_ingest_shaped
from profile_dist.llm.step import LLMStep, projection_line
from profile_dist.prompts.settings import JudgePrompt, frame_for
from profile_dist.stages.ingest import DEFAULT_ROWS_PER_SHARD
from profile_dist.stages.runtime import ensure_ray

ORDERS = ("ab", "ba")
#: How the two orders' votes become one label; None: the pair is dropped as inconsistent.
INCONSISTENT_POLICIES: dict[str, Callable[[str, str], str | None]] = {
    "drop": lambda first, second: None,
    "first": lambda first, second: first,
    "tie": lambda first, second: "tie",
}
#: A reply's "preferred" field, per order, as the pair's label.
_VOTE = {"ab": {"1": "a", "2": "b", "tie": "tie"}, "ba": {"1": "b", "2": "a", "tie": "tie"}}
REFERENCE = ("human", "human")


@dataclass
class JudgeSummary:
    output: str
    judge: str
    n_pairs: int = 0
    n_kept: int = 0
    n_inconsistent: int = 0
    n_failed: int = 0
    agreement: list[dict[str, Any]] = field(default_factory=list)
    llm: dict[str, Any] = field(default_factory=dict)
    dry_run: dict[str, Any] | None = None

    def lines(self) -> list[str]:
        if self.dry_run is not None:
            return [projection_line(self.dry_run)]
        out = [f"judged {self.n_pairs} pairs with {self.judge} in both orders: {self.n_kept} labelled, "
               f"{self.n_inconsistent} position-inconsistent, {self.n_failed} failed, into {self.output}"]
        for row in self.agreement:
            def fmt(v: float | None) -> str:
                return "n/a" if v is None else f"{v:.3f}"
            out.append(f"  {row['task']}: position consistency {fmt(row['position_consistency'])}, vs {row['reference']}: "
                       f"accuracy {fmt(row['accuracy'])}, Cohen's kappa {fmt(row['cohen_kappa'])} over all "
                       f"{row['n_compared']} judged pairs (inconsistent = tie); consistent pairs only: accuracy "
                       f"{fmt(row['accuracy_consistent_only'])}, kappa {fmt(row['cohen_kappa_consistent_only'])} "
                       f"(n = {row['n_compared_consistent_only']})")
        if self.llm:
            out.append("  llm: " + ", ".join(f"{k}={v}" for k, v in self.llm.items()))
        return out


def _read_input(pairs_dir: str) -> tuple[pl.DataFrame, pa.Table, pa.Table]:
    pairs = storage.read_table_dir(storage.join(pairs_dir, "pairs"), schema.PAIRS)
    if pairs.num_rows == 0:
        raise BadInputError(pairs_dir, None, "pairs", "no pairs to judge; is this the output directory of `profile-dist ingest`?")
    prompts = storage.read_table_dir(storage.join(pairs_dir, "prompts"), schema.PROMPTS)
    responses = storage.read_table_dir(storage.join(pairs_dir, "responses"), schema.RESPONSES)
    return pl.from_arrow(pairs), prompts, responses


def select_pairs(pairs: pl.DataFrame) -> pl.DataFrame:
    """The human pairs (all pairs if none), one per (task, prompt, A, B), in pair_id order."""
    human = pairs.filter((pl.col("labeler") == REFERENCE[0]) & (pl.col("setting") == REFERENCE[1]))
    chosen = human if human.height else pairs
    return chosen.sort("pair_id").unique(["task", "prompt_id", "response_a_id", "response_b_id"], keep="first",
                                         maintain_order=True)


@dataclass(frozen=True)
class PairTexts:
    """What a judge is shown of a pair: the prompt, the responses, and the documents each response was
    written from (its own where it has them, as WebGPT's answers do, else the prompt's source)."""

    prompts: dict[str, tuple[str, str | None]]  # prompt_id -> (text, source)
    responses: dict[str, tuple[str, str | None]]  # response_id -> (text, own source)

    @classmethod
    def of(cls, prompts: pa.Table, responses: pa.Table) -> "PairTexts":
        def index(table: pa.Table, key: str) -> dict[str, tuple[str, str | None]]:
            return dict(zip(table.column(key).to_pylist(),
                            zip(table.column("text").to_pylist(), table.column("source").to_pylist())))
        return cls(index(prompts, "prompt_id"), index(responses, "response_id"))

    def request_pair(self, row: dict[str, Any], prompt: JudgePrompt) -> list[Any]:
        """(A, B) then (B, A), in the task's terms."""
        try:
            p_text, p_source = self.prompts[row["prompt_id"]]
            (a, a_source), (b, b_source) = self.responses[row["response_a_id"]], self.responses[row["response_b_id"]]
        except KeyError as exc:
            raise BadInputError(row["source_file"], row["source_row"], "pair",
                                f"pair {row['pair_id']} names {exc.args[0]}, which is not in the prompts/responses tables") from None
        a_docs, b_docs = a_source or p_source, b_source or p_source
        return [prompt.request(p_text, a, b, task=row["task"], first_documents=a_docs, second_documents=b_docs),
                prompt.request(p_text, b, a, task=row["task"], first_documents=b_docs, second_documents=a_docs)]


def judge_requests(chosen: pl.DataFrame, texts: PairTexts, prompt: JudgePrompt) -> list[Any]:
    """Two requests per pair, (A, B) then (B, A), in ``chosen`` order."""
    return [r for row in chosen.iter_rows(named=True) for r in texts.request_pair(row, prompt)]


def vote_of(order: str, result: Any) -> str | None:
    if not result.ok:
        return None
    return _VOTE[order][result.value["preferred"]]


def agreement_rows(judge: str, chosen: pl.DataFrame, votes: dict[str, tuple[str | None, str | None]]) -> list[dict[str, Any]]:
    """Per task: consistency over both votes, and accuracy/kappa of the judge's verdict vs the reference label
    over every judged pair (an inconsistent pair is a tie, whatever the ``inconsistent`` policy kept) and over
    the consistent pairs only (``agreement.verdict_agreement``)."""
    rows = []
    is_reference = (chosen["labeler"] == REFERENCE[0]) & (chosen["setting"] == REFERENCE[1])
    for task in sorted(set(chosen["task"])):
        part = chosen.filter(pl.col("task") == task)
        ref_part = chosen.filter((pl.col("task") == task) & is_reference)
        first = [votes[p][0] for p in part["pair_id"]]
        second = [votes[p][1] for p in part["pair_id"]]
        compared = agreement.verdict_agreement([votes[p][0] for p in ref_part["pair_id"]],
                                               [votes[p][1] for p in ref_part["pair_id"]], ref_part["label"].to_list())
        failed = sum(a is None or b is None for a, b in zip(first, second))
        rows.append({
            "judge": judge, "task": task, "reference": "/".join(REFERENCE), "n_pairs": part.height,
            "n_failed": failed,
            "n_inconsistent": sum(a is not None and b is not None and a != b for a, b in zip(first, second)),
            "position_consistency": agreement.position_consistency(first, second), **compared,
        })
    return rows


def judged_pairs_table(judge: str, chosen: pl.DataFrame, votes: dict[str, tuple[str | None, str | None]],
                       kept: dict[str, str]) -> pa.Table:
    """schema.JUDGED_PAIRS: each judged pair's reference label beside the label the judge's pairs carry."""
    def outcome(pair_id: str) -> str:
        first, second = votes[pair_id]
        return "failed" if first is None or second is None else "consistent" if first == second else "inconsistent"

    frame = chosen.select(
        pl.col("pair_id").alias("reference_pair_id"),
        pl.concat_str("labeler", pl.lit("/"), "setting").alias("reference"), pl.col("label").alias("reference_label"),
        pl.lit(judge).alias("judge"),
        pl.col("pair_id").replace_strict(kept, default=None, return_dtype=pl.String).alias("label"),
        pl.col("pair_id").map_elements(outcome, return_dtype=pl.String).alias("outcome"),
        "task", "prompt_id", "response_a_id", "response_b_id",
    )
    return schema.conform(frame.to_arrow(), schema.JUDGED_PAIRS, where="judged_pairs")


def judge(
    pairs: str, llm: str, output: str, *, endpoints: str | None = None, cache_dir: str | None = None,
    max_cost: float | None = None, dry_run: bool = False, inconsistent: str = "drop", labeler: str | None = None,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD, address: str | None = None, progress: bool | None = None,
    say: Callable[[str], None] | None = None, prompt: JudgePrompt = JudgePrompt(), chunk_pairs: int = 20_000,
) -> JudgeSummary:
    if inconsistent not in INCONSISTENT_POLICIES:
        raise ConfigError(f"unknown inconsistent-pair policy {inconsistent!r}; expected one of {', '.join(INCONSISTENT_POLICIES)}")
    step = LLMStep("judge", output, endpoints=endpoints, cache_dir=cache_dir, max_cost=max_cost, dry_run=dry_run,
                   progress=progress, say=say)
    endpoint = step.endpoint(llm)
    labeler = labeler or endpoint.model
    if chunk_pairs < 1:
        raise ConfigError(f"chunk_pairs must be positive, got {chunk_pairs}")
    frame, prompts, responses = _read_input(pairs)
    chosen = select_pairs(frame)
    texts = PairTexts.of(prompts, responses)
    chunks = [chosen.slice(i, chunk_pairs) for i in range(0, chosen.height, chunk_pairs)]

    def chunk_requests() -> Iterator[list[Any]]:  # rendered per chunk: requests for all pairs never sit in memory
        for chunk in chunks:
            yield judge_requests(chunk, texts, prompt)

    summary = JudgeSummary(output=output, judge=labeler, n_pairs=chosen.height)
    # Ray only when a request must be sent: a fully cached rerun or a dry run never waits for it.
    with step.engine("judge", endpoint, desc="judge", connect=lambda: ensure_ray(address)) as engine:
        projection = engine.project(chunk_requests())
        if step.announce():
            summary.dry_run = projection
            return summary
        engine.check_budget(f"judging {chosen.height} pairs")
        results: list[Any] = []
        for requests in chunk_requests():
            results += engine.run(requests)
    spend = step.records[0]

    votes: dict[str, tuple[str | None, str | None]] = {}
    judgment_rows: dict[str, list] = {name: [] for name in schema.JUDGMENTS.names}
    for i, pair_id in enumerate(chosen["pair_id"]):
        pair_votes = []
        for order, result in zip(ORDERS, results[2 * i: 2 * i + 2]):
            vote = vote_of(order, result)
            pair_votes.append(vote)
            for name, value in zip(schema.JUDGMENTS.names, (pair_id, labeler, order, vote, result.raw, result.error)):
                judgment_rows[name].append(value)
        votes[pair_id] = (pair_votes[0], pair_votes[1])

    policy = INCONSISTENT_POLICIES[inconsistent]
    kept: dict[str, str] = {}
    out_pairs: dict[str, list] = defaultdict(list)
    rejected: dict[str, list] = defaultdict(list)
    for row in chosen.iter_rows(named=True):
        first, second = votes[row["pair_id"]]
        if first is None or second is None:
            label, reason = None, "judge request failed in at least one order"
            summary.n_failed += 1
        elif first == second:
            label, reason = first, None
        else:
            label = policy(first, second)
            reason = f"position-inconsistent judgment (policy {inconsistent})"
            summary.n_inconsistent += 1
        if label is None:
            for name, value in zip(schema.REJECTED.names, (row["source_file"], row["source_row"], "label", reason, "skipped")):
                rejected[name].append(value)
            continue
        kept[row["pair_id"]] = label
        new_id = ids.pair_id(row["dataset"], labeler, "evaluation", row["task"], storage.basename(row["source_file"]),
                             row["source_row"], row["response_a_id"], row["response_b_id"])
        values = {**row, "pair_id": new_id, "label": label, "labeler": labeler, "setting": "evaluation"}
        for name in schema.PAIRS.names:
            out_pairs[name].append(values[name])
    summary.n_kept = len(kept)
    summary.agreement = agreement_rows(labeler, chosen, votes)
    summary.llm = {k: spend[k] for k in ("requests", "sent", "cached", "failed", "input_tokens", "output_tokens", "spend")}

    tables = {
        "prompts": prompts, "responses": responses,
        "pairs": pa.Table.from_pydict(dict(out_pairs), schema=schema.PAIRS) if out_pairs else schema.PAIRS.empty_table(),
        "rejected": pa.Table.from_pydict(dict(rejected), schema=schema.REJECTED) if rejected else schema.REJECTED.empty_table(),
    }
    extra = {"judgments": pa.Table.from_pydict(judgment_rows, schema=schema.JUDGMENTS),
             "judge_agreement": pa.Table.from_pylist(summary.agreement, schema=schema.JUDGE_AGREEMENT),
             "judged_pairs": judged_pairs_table(labeler, chosen, votes, kept)}
    manifest = {
        "stage": "judge", "input": pairs, "endpoint": endpoint.name, "model": endpoint.model, "labeler": labeler,
        "setting": "evaluation", "prompt_version": prompt.version,
        "prompt_versions": {t: frame_for(t).versioned(prompt.version) for t in sorted(set(chosen["task"]))},
        "inconsistent": inconsistent,
        "counts": {"pairs": summary.n_pairs, "kept": summary.n_kept, "inconsistent": summary.n_inconsistent,
                   "failed": summary.n_failed},
        "dry_run": projection, "llm": [spend],
    }
    write_ingest_shaped(output, tables, extra, manifest, rows_per_shard)
    return summary
