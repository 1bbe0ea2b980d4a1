"""Arrow schemas of every table profile-dist reads or writes: one place, imported everywhere.

Tables flow one way: ingest writes PROMPTS, RESPONSES, PAIRS and REJECTED; annotate writes
ANNOTATIONS; reduce writes INFLUENCE and ALIGNMENT (plus SKIPPED counts). Every stage validates what
it reads against these schemas, so a stage can be rerun alone on any earlier stage's output.
"""

from __future__ import annotations

import pyarrow as pa

from profile_dist.errors import ProfileDistError

LABELS = ("a", "b", "tie")
# Field metadata of a column added after tables were first written: a table without it reads as null.
OPTIONAL = {b"optional": b"added later; null in older outputs"}
SETTINGS = ("human", "evaluation", "generation")

PROMPTS = pa.schema(
    [
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        # The document a response is judged against where it differs from the prompt (e.g. the
        # quotes of document QA); null means the prompt text itself is the source.
        pa.field("source", pa.string(), nullable=True),
    ]
)

RESPONSES = pa.schema(
    [
        # Content hash of (prompt_id, text[, source]): the same text answering the same prompt (from the
        # same documents) is one response, annotated once however many pairs it appears in.
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        # The document this response alone is judged against, where it has its own (WebGPT: the question
        # plus the quotes this answer retrieved); null means its prompt's source (or text) applies.
        pa.field("source", pa.string(), nullable=True),
    ]
)

PAIRS = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("response_a_id", pa.string(), nullable=False),
        pa.field("response_b_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # one of LABELS
        pa.field("labeler", pa.string(), nullable=False),  # "human" or a model id
        pa.field("setting", pa.string(), nullable=False),  # one of SETTINGS
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),  # 0-based row/line/element index
    ]
)

REJECTED = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("field", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        # "invalid": bad input (stops the run unless --skip-bad-rows);
        # "skipped": a documented value the format uses for "no preference" (e.g. AlpacaEval's 0/null).
        pa.field("kind", pa.string(), nullable=False),
    ]
)

#: The columnar form of ``sources.RawPair`` (what an adapter parsed, before ids): one row per usable pair.
#: Null ``task`` is the command line's or the format's task; null ``source`` means the prompt is the source.
RAW_PAIRS = pa.schema(
    [
        pa.field("source_row", pa.int64(), nullable=False),
        pa.field("prompt", pa.large_string(), nullable=False),
        pa.field("response_a", pa.large_string(), nullable=False),
        pa.field("response_b", pa.large_string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("labeler", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=True),
        pa.field("source", pa.large_string(), nullable=True),
        # each response's own document where the two differ (RESPONSES.source; WebGPT's quotes per answer)
        pa.field("source_a", pa.large_string(), nullable=True),
        pa.field("source_b", pa.large_string(), nullable=True),
        pa.field("setting", pa.string(), nullable=False),
    ]
)

ANNOTATIONS = pa.schema(
    [
        pa.field("response_id", pa.string(), nullable=False),
        pa.field("factor", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=True),  # null only together with an error
        pa.field("annotator", pa.string(), nullable=False),  # "rule" or the model that scored it
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=True),
    ]
)

#: What an LLM scorer returns for a shard (in memory): one row per response and factor; the annotate stage
#: adds annotator and prompt_version to make ANNOTATIONS rows. Fields are nullable as pyarrow builds them.
LLM_FACTOR_VALUES = pa.schema([("response_id", pa.string()), ("factor", pa.string()), ("value", pa.float64()),
                               ("error", pa.string())])

INFLUENCE = pa.schema(
    [
        pa.field("labeler", pa.string(), nullable=False),
        pa.field("setting", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("factor", pa.string(), nullable=False),
        pa.field("n_pairs", pa.int64(), nullable=False),  # non-tie pairs with both values known
        pa.field("n_concordant", pa.int64(), nullable=False),
        pa.field("n_discordant", pa.int64(), nullable=False),
        pa.field("n_ties", pa.int64(), nullable=False),  # factor ties (equal values)
        pa.field("tau", pa.float64(), nullable=True),  # null when C + D == 0
        pa.field("tau_a", pa.float64(), nullable=True),
        pa.field("relevance", pa.float64(), nullable=True),
        pa.field("p_preferred_more", pa.float64(), nullable=True),  # (1 + tau) / 2
        pa.field("ci_low", pa.float64(), nullable=True),
        pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("n_bootstrap", pa.int64(), nullable=False),
        # What the interval rests on (absent from results written before they existed: read as null).
        # "prompt" when some prompt holds several of the group's pairs and they were resampled together,
        # else "pair"; n_units = prompts (or pairs) resampled, exact when n_units_exact (else an estimate);
        # design_effect = the variance inflation the interval allowed for (1 = independent pairs).
        pa.field("bootstrap_unit", pa.string(), nullable=True, metadata=OPTIONAL),
        pa.field("n_units", pa.int64(), nullable=True, metadata=OPTIONAL),
        pa.field("n_units_exact", pa.bool_(), nullable=True, metadata=OPTIONAL),
        pa.field("design_effect", pa.float64(), nullable=True, metadata=OPTIONAL),
    ]
)

ALIGNMENT_METRICS = ("kendall_tau_b", "spearman_rho", "sign_agreement", "top_k_overlap", "mean_abs_diff")

ALIGNMENT = pa.schema(
    [
        pa.field("task", pa.string(), nullable=False),
        pa.field("source_x", pa.string(), nullable=False),  # "labeler/setting"
        pa.field("source_y", pa.string(), nullable=False),
        pa.field("n_factors", pa.int64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),  # one of ALIGNMENT_METRICS
        pa.field("value", pa.float64(), nullable=True),
        pa.field("ci_low", pa.float64(), nullable=True),
        pa.field("ci_high", pa.float64(), nullable=True),
        # The factor set compared (the same on both sides): its rule (factor_sets.RULES: "task", "all",
        # "given") and its factors, comma-separated (n_factors: those with both taus defined).
        pa.field("factor_set", pa.string(), nullable=False),
        pa.field("factors", pa.string(), nullable=False),
        # "intersection": a judge and the labels it judged, each tau over the pairs both decided;
        # "separate": each source's tau over its own pairs.
        pa.field("pairs", pa.string(), nullable=False),
        pa.field("n_pairs", pa.int64(), nullable=True),  # pairs both decided (intersection only)
        # judged pairs each side left out of the intersection, and why ("12 tie label (no preference)")
        pa.field("n_dropped_x", pa.int64(), nullable=True),
        pa.field("n_dropped_y", pa.int64(), nullable=True),
        pa.field("dropped_x", pa.string(), nullable=True),
        pa.field("dropped_y", pa.string(), nullable=True),
    ]
)

SKIPPED = pa.schema(
    [
        pa.field("stage", pa.string(), nullable=False),
        pa.field("labeler", pa.string(), nullable=True),
        pa.field("setting", pa.string(), nullable=True),
        pa.field("task", pa.string(), nullable=True),
        pa.field("factor", pa.string(), nullable=True),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)


def conform(table: pa.Table, schema: pa.Schema, *, where: str) -> pa.Table:
    """Select, order and cast ``table``'s columns to ``schema``; a clear error names what is wrong."""
    missing = [f.name for f in schema if f.name not in table.column_names and not _optional(f)]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {', '.join(missing)}; expected {schema.names}")
    columns = []
    for field in schema:
        if field.name not in table.column_names:  # an optional column an older output lacks
            columns.append(pa.nulls(table.num_rows, field.type))
            continue
        column = table.column(field.name)
        if not column.type.equals(field.type):
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"{where}: column {field.name!r} has type {column.type}, expected {field.type}: {exc}"
                ) from None
        if not field.nullable and column.null_count:
            raise SchemaError(f"{where}: column {field.name!r} has {column.null_count} null value(s)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _optional(field: pa.Field) -> bool:
    return bool(field.metadata) and b"optional" in field.metadata


class SchemaError(ProfileDistError, ValueError):
    """A table does not match the schema its stage expects."""

REPLICATES = pa.schema(
    [
        pa.field("labeler", pa.string(), nullable=False),
        pa.field("setting", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("factor", pa.string(), nullable=False),
        pa.field("replicate", pa.int64(), nullable=False),
        pa.field("n_concordant", pa.int64(), nullable=False),  # Poisson-weighted counts
        pa.field("n_discordant", pa.int64(), nullable=False),
    ]
)

# --- appended by the reduce-at-scale work: adjusted effects and the generation-evaluation gap ------

ADJUSTED = pa.schema(
    [
        pa.field("labeler", pa.string(), nullable=False),
        pa.field("setting", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("factor", pa.string(), nullable=False),
        pa.field("tau", pa.float64(), nullable=True),  # the plain tau, repeated for side-by-side reading
        pa.field("tau_ci_low", pa.float64(), nullable=True),
        pa.field("tau_ci_high", pa.float64(), nullable=True),
        # tau over the pairs whose two responses have matched lengths (length held fixed)
        pa.field("length_controlled_tau", pa.float64(), nullable=True),
        pa.field("length_controlled_tau_ci_low", pa.float64(), nullable=True),
        pa.field("length_controlled_tau_ci_high", pa.float64(), nullable=True),
        pa.field("n_length_matched_decided", pa.int64(), nullable=False),  # C + D among length-matched pairs
        # penalised logistic Bradley-Terry coefficient on standardised differences (all factors jointly)
        pa.field("bt_coef", pa.float64(), nullable=True),
        pa.field("bt_coef_ci_low", pa.float64(), nullable=True),
        pa.field("bt_coef_ci_high", pa.float64(), nullable=True),
        pa.field("n_bt_pairs", pa.int64(), nullable=False),  # complete pairs in the (bottom-k hash) sample
        # "": consistent; else why the adjusted and the plain effect disagree (e.g. sign flips)
        pa.field("disagreement", pa.string(), nullable=False),
    ]
)

GAP = pa.schema(
    [
        pa.field("task", pa.string(), nullable=False),
        pa.field("reference", pa.string(), nullable=False),  # the human source, "labeler/setting"
        pa.field("model", pa.string(), nullable=False),  # the labeler judged in both settings
        pa.field("metric", pa.string(), nullable=False),  # one of ALIGNMENT_METRICS
        pa.field("evaluation", pa.float64(), nullable=True),  # alignment(reference, model/evaluation)
        pa.field("generation", pa.float64(), nullable=True),  # alignment(reference, model/generation)
        pa.field("gap", pa.float64(), nullable=True),  # evaluation - generation
        pa.field("ci_low", pa.float64(), nullable=True),
        pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("factors", pa.string(), nullable=False),  # the factor set of both terms, as in ALIGNMENT
        pa.field("evaluation_pairs", pa.string(), nullable=False),  # ALIGNMENT.pairs of the evaluation term
    ]
)

# --- appended by the nightly-audit work: change since the previous audit (profile_dist/workflows/audit/drift.py) ---

DRIFT_INFLUENCE = pa.schema(
    [
        pa.field("labeler", pa.string(), nullable=False),
        pa.field("setting", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("factor", pa.string(), nullable=False),
        pa.field("tau_previous", pa.float64(), nullable=True),  # null: the factor is new (or undefined)
        pa.field("tau_current", pa.float64(), nullable=True),  # null: the factor is gone (or undefined)
        pa.field("change", pa.float64(), nullable=True),  # current - previous
        pa.field("ci_low", pa.float64(), nullable=True),  # percentile CI of replicate-wise differences
        pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("significant", pa.bool_(), nullable=False),  # the CI excludes 0
        pa.field("n_replicates", pa.int64(), nullable=False),  # replicate pairs the CI is built from
    ]
)

DRIFT_ALIGNMENT = pa.schema(
    [
        pa.field("task", pa.string(), nullable=False),
        pa.field("source_x", pa.string(), nullable=False),  # "labeler/setting", as in ALIGNMENT
        pa.field("source_y", pa.string(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),  # one of ALIGNMENT_METRICS
        pa.field("value_previous", pa.float64(), nullable=True),
        pa.field("value_current", pa.float64(), nullable=True),
        pa.field("change", pa.float64(), nullable=True),  # current - previous
        pa.field("ci_low", pa.float64(), nullable=True),
        pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("significant", pa.bool_(), nullable=False),
        # the change expressed as a loss of agreement: -change, or +change for mean_abs_diff (lower is better)
        pa.field("drop", pa.float64(), nullable=True),
        pa.field("n_replicates", pa.int64(), nullable=False),
    ]
)

# --- appended by the model-settings work: judge (evaluation) and generate (generation) stages ----------

JUDGMENTS = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),  # the judged (input) pair, e.g. the human pair
        pa.field("judge", pa.string(), nullable=False),  # the model id
        pa.field("order", pa.string(), nullable=False),  # "ab": A shown first; "ba": B shown first
        pa.field("vote", pa.string(), nullable=True),  # one of LABELS, mapped back to the pair's A/B; null on error
        pa.field("raw", pa.string(), nullable=True),  # the reply text as received
        pa.field("error", pa.string(), nullable=True),
    ]
)

JUDGE_AGREEMENT = pa.schema(
    [
        pa.field("judge", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("reference", pa.string(), nullable=False),  # the labeler compared against, "labeler/setting"
        pa.field("n_pairs", pa.int64(), nullable=False),  # input pairs judged
        pa.field("n_failed", pa.int64(), nullable=False),  # pairs with a failed request in either order
        pa.field("n_inconsistent", pa.int64(), nullable=False),  # the two orders disagree
        pa.field("position_consistency", pa.float64(), nullable=True),
        # Over every judged pair with a verdict (not failed) and a reference label; an order-inconsistent
        # pair is a tie (whatever the inconsistent-pair policy kept for the judge's own tau).
        pa.field("n_compared", pa.int64(), nullable=False),
        pa.field("accuracy", pa.float64(), nullable=True),
        pa.field("cohen_kappa", pa.float64(), nullable=True),
        # The same over the position-consistent pairs only: overstates agreement, shown beside it.
        pa.field("n_compared_consistent_only", pa.int64(), nullable=False),
        pa.field("accuracy_consistent_only", pa.float64(), nullable=True),
        pa.field("cohen_kappa_consistent_only", pa.float64(), nullable=True),
    ]
)

#: Judge outcomes of a judged pair (JUDGED_PAIRS.outcome).
JUDGE_OUTCOMES = ("consistent", "inconsistent", "failed")

JUDGED_PAIRS = pa.schema(
    [
        # One row per judged input pair: the reference's label beside the judge's, so the reduce can compare
        # the two on exactly the pairs both decided (one file, read shard-locally: no join across directories).
        pa.field("reference_pair_id", pa.string(), nullable=False),  # the judged input pair (e.g. the human pair)
        pa.field("reference", pa.string(), nullable=False),  # its "labeler/setting"
        pa.field("reference_label", pa.string(), nullable=False),  # one of LABELS
        pa.field("judge", pa.string(), nullable=False),  # the judge's labeler (setting: evaluation)
        pa.field("label", pa.string(), nullable=True),  # the judge's label in its pairs; null: dropped
        pa.field("outcome", pa.string(), nullable=False),  # one of JUDGE_OUTCOMES
        pa.field("task", pa.string(), nullable=False),
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("response_a_id", pa.string(), nullable=False),
        pa.field("response_b_id", pa.string(), nullable=False),
    ]
)

GENERATIONS = pa.schema(
    [
        pa.field("prompt_id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("generator", pa.string(), nullable=False),  # the model id
        pa.field("level", pa.int64(), nullable=False),  # target quality level, 1..K
        pa.field("response_id", pa.string(), nullable=True),  # null when the generation failed
        pa.field("error", pa.string(), nullable=True),
        pa.field("rating", pa.float64(), nullable=True),  # the manipulation check's rating (null: not rated)
        pa.field("rating_error", pa.string(), nullable=True),
    ]
)

MANIPULATION_CHECK = pa.schema(
    [
        pa.field("generator", pa.string(), nullable=False),
        pa.field("checker", pa.string(), nullable=False),  # the independent rater's model id
        pa.field("task", pa.string(), nullable=False),
        pa.field("levels", pa.int64(), nullable=False),
        pa.field("n_rated", pa.int64(), nullable=False),
        pa.field("n_prompts", pa.int64(), nullable=False),  # prompts with a defined within-prompt tau-b
        pa.field("n_prompts_undefined", pa.int64(), nullable=False),  # < 2 rated generations, or constant ratings
        # mean over prompts of tau-b(level, rating) within the prompt (settings/manipulation.py)
        pa.field("kendall_tau", pa.float64(), nullable=True),
        pa.field("ci_low", pa.float64(), nullable=True),  # percentile bootstrap over prompts
        pa.field("ci_high", pa.float64(), nullable=True),
        pa.field("n_bootstrap", pa.int64(), nullable=False),
        pa.field("pooled_kendall_tau", pa.float64(), nullable=True),  # all generations pooled, for comparison
    ]
)
