"""Deciding pairs: for each (source, task, factor), a few real pairs where the factor went the way tau says.

A pair "decided by" factor f for a source is one whose preferred response has more of f when tau(f) > 0
(less when tau(f) < 0). Among those, the pairs where f differs most are the clearest to a reader, so we
keep the top ``k`` by |f(preferred) - f(other)|, ties broken by pair_id: the choice is deterministic.

The scan goes pairs shard by pairs shard, keeping only the running top ``k`` per cell, so memory is
bounded by one shard (plus its responses' annotations), never by the corpus. It looks at the first
``EXAMPLE_SHARDS`` shards of each pairs directory (in manifest order; ~100,000 pairs each by default):
examples need a few clear pairs, not the corpus's clearest, and the report's time must not grow with the
corpus (each shard's responses are spread over every annotation file). Texts are fetched at the end for
the few pairs kept, one file at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads

from profile_dist import schema, storage
from profile_dist.layout import published

CELL_KEYS = ["labeler", "setting", "task", "factor"]
DEFAULT_PER_CELL = 3
DEFAULT_MAX_CHARS = 1500  # per text; the page stays small and a reader still sees the gist
EXAMPLE_SHARDS = 4


@dataclass
class DecidingPairs:
    """Example pairs per cell (as plain dicts for the page), and why some may be missing."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None


def _dataset(files: list[str], table_schema: pa.Schema) -> pads.Dataset:
    fs, _ = storage.filesystem(files[0])
    return pads.dataset([storage.filesystem(f)[1] for f in files], filesystem=fs, format="parquet", schema=table_schema)


def _directions(influence: list[dict[str, Any]]) -> pl.DataFrame:
    """+1 / -1 per cell whose tau is defined and non-zero (a zero tau has no deciding direction)."""
    rows = [
        {**{k: r[k] for k in CELL_KEYS}, "direction": 1.0 if r["tau"] > 0 else -1.0}
        for r in influence if r["tau"] is not None and r["tau"] != 0
    ]
    return pl.DataFrame(rows, schema={"labeler": pl.String, "setting": pl.String, "task": pl.String,
                                      "factor": pl.String, "direction": pl.Float64})


def _values(annotations: pads.Dataset, response_ids: pa.Array, factors: list[str]) -> pl.DataFrame:
    """Long (response_id, factor, value), first annotation per key as the reduce takes it."""
    table = annotations.to_table(
        columns=["response_id", "factor", "value"],
        filter=pads.field("response_id").isin(response_ids) & pads.field("factor").isin(pa.array(factors, pa.string())),
    )
    return (
        pl.from_arrow(table).unique(subset=["response_id", "factor"], keep="first", maintain_order=True)
        .drop_nulls("value")
    )


def _top(candidates: pl.DataFrame, k: int) -> pl.DataFrame:
    return (
        candidates.sort(["margin", "pair_id"], descending=[True, False])
        .group_by(CELL_KEYS, maintain_order=True).head(k)
    )


def _shard_candidates(shard: str, annotations: pads.Dataset, directions: pl.DataFrame, k: int) -> pl.DataFrame:
    pairs = pl.from_arrow(storage.read_parquet(shard, schema.PAIRS)).filter(pl.col("label") != "tie")
    pairs = pairs.with_columns(
        pl.when(pl.col("label") == "a").then(pl.col("response_a_id")).otherwise(pl.col("response_b_id")).alias("preferred_id"),
        pl.when(pl.col("label") == "a").then(pl.col("response_b_id")).otherwise(pl.col("response_a_id")).alias("other_id"),
    ).select("pair_id", "labeler", "setting", "task", "prompt_id", "preferred_id", "other_id", "dataset")
    if pairs.height == 0:
        return pl.DataFrame()
    response_ids = pl.concat([pairs["preferred_id"], pairs["other_id"]]).unique().to_arrow()
    values = _values(annotations, response_ids, directions["factor"].unique().to_list())
    cells = pairs.join(directions, on=["labeler", "setting", "task"], how="inner")
    joined = (
        cells.join(values.rename({"response_id": "preferred_id", "value": "preferred_value"}), on=["preferred_id", "factor"], how="inner")
        .join(values.rename({"response_id": "other_id", "value": "other_value"}), on=["other_id", "factor"], how="inner")
        .with_columns(((pl.col("preferred_value") - pl.col("other_value")) * pl.col("direction")).alias("margin"))
        .filter(pl.col("margin") > 0)
    )
    return _top(joined, k)


def _texts(dirs: list[str], table: str, id_column: str, ids: list[str], table_schema: pa.Schema) -> dict[str, str]:
    files = [f for d in dirs for f in published.table_files(d, table)]
    wanted = pa.array(ids, pa.string())
    texts: dict[str, str] = {}
    for file in files if ids else []:  # one file at a time: the filter still reads each file's text column
        found = _dataset([file], table_schema).to_table(columns=[id_column, "text"], filter=pads.field(id_column).isin(wanted))
        texts.update(zip(found.column(id_column).to_pylist(), found.column("text").to_pylist()))
    return texts


def _clip(text: str | None, max_chars: int) -> dict[str, Any]:
    text = (text or "").strip()  # dialogue prompts start with blank lines that would show as an empty box
    return {"text": text[:max_chars], "chars": len(text), "truncated": len(text) > max_chars}


def deciding_pairs(
    results: dict[str, Any], *, per_cell: int = DEFAULT_PER_CELL, max_chars: int = DEFAULT_MAX_CHARS,
) -> DecidingPairs:
    """Up to ``per_cell`` deciding pairs for every influence cell, read from the directories the reduce used."""
    manifest = results.get("reduce") or {}
    pairs_dirs, annotation_dirs = list(manifest.get("pairs") or []), list(manifest.get("annotations") or [])
    if not pairs_dirs or not annotation_dirs:
        return DecidingPairs(note="the reduce manifest names no pairs/annotations directories, so no example pairs")
    missing = [d for d in pairs_dirs + annotation_dirs if not storage.exists(d)]
    if missing:
        return DecidingPairs(note=f"example pairs unavailable: {', '.join(missing)} not found (moved since the reduce?)")
    directions = _directions(results["influence"])
    shards = [s for d in pairs_dirs for s in published.table_files(d, "pairs")[:EXAMPLE_SHARDS]]
    annotation_files = [f for d in annotation_dirs for f in storage.list_files(d)]
    if directions.height == 0 or not shards or not annotation_files:
        return DecidingPairs(note="no factor with a defined, non-zero tau, or no pairs/annotations: no example pairs")
    annotations = _dataset(annotation_files, schema.ANNOTATIONS)
    kept = [c for c in (_shard_candidates(s, annotations, directions, per_cell) for s in shards) if c.height]
    if not kept:
        return DecidingPairs(note="no pair went the way tau says for any factor")
    top = _top(pl.concat(kept), per_cell).sort([*CELL_KEYS, "margin", "pair_id"], descending=[False] * 4 + [True, False])
    prompts = _texts(pairs_dirs, "prompts", "prompt_id", top["prompt_id"].unique().to_list(), schema.PROMPTS)
    response_ids = pl.concat([top["preferred_id"], top["other_id"]]).unique().to_list()
    responses = _texts(pairs_dirs, "responses", "response_id", response_ids, schema.RESPONSES)
    out = []
    for row in top.iter_rows(named=True):
        out.append({
            **{k: row[k] for k in CELL_KEYS}, "pair_id": row["pair_id"], "dataset": row["dataset"],
            "prompt": _clip(prompts.get(row["prompt_id"]), max_chars),
            "preferred": {**_clip(responses.get(row["preferred_id"]), max_chars), "value": row["preferred_value"]},
            "other": {**_clip(responses.get(row["other_id"]), max_chars), "value": row["other_value"]},
        })
    return DecidingPairs(out)
