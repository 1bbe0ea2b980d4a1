"""A seeded split of an audit's prompts into a selection half and a held-out half, and ingest-shaped copies
of pairs directories restricted to one half.

``improve feedback`` picks the factors to feed back on one half and measures before/after on the other:
factors picked for their largest misalignment and re-measured on the same prompts would show a decrease
with no real effect (regression to the mean).
"""

from __future__ import annotations

from typing import Any, Iterable

import polars as pl
import pyarrow as pa

from profile_dist import ids, schema, storage
from profile_dist.layout import write_ingest_shaped

HALVES = ("select", "measure")

SPLIT = pa.schema([
    pa.field("prompt_id", pa.string(), nullable=False),
    pa.field("half", pa.string(), nullable=False),  # one of HALVES
])


def split_prompts(strata: list[Iterable[str]], seed: int) -> dict[str, str]:
    """prompt_id -> "select" | "measure". Within each stratum the prompts are ordered by a hash of
    (seed, prompt_id) and the first floor(n / 2) select, so each stratum is halved exactly (a lone prompt
    is held out). Depends only on the sets of ids and the seed, never on their order; a prompt in two
    strata keeps the half of the first."""
    out: dict[str, str] = {}
    for stratum in strata:
        unique = sorted(set(stratum) - set(out))
        order = sorted(unique, key=lambda p: (ids.content_id("feedback_split", seed, p), p))
        cut = len(order) // 2
        out.update({p: HALVES[0] if i < cut else HALVES[1] for i, p in enumerate(order)})
    return out


def split_table(halves: dict[str, str]) -> pa.Table:
    return pa.Table.from_pylist([{"prompt_id": p, "half": h} for p, h in sorted(halves.items())], schema=SPLIT)


def audit_prompt_ids(pairs_dirs: list[str]) -> set[str]:
    """Every prompt that has a pair in any of the directories."""
    out: set[str] = set()
    for d in pairs_dirs:
        out.update(storage.read_table_dir(storage.join(d, "pairs"), schema.PAIRS).column("prompt_id").to_pylist())
    return out


def write_subset(source: str, prompt_ids: set[str], output: str, note: dict[str, Any]) -> int:
    """An ingest-shaped copy of ``source`` with only the pairs, responses and prompts of ``prompt_ids``
    (what annotate, generate and reduce read; rejected rows are not carried over). Returns its pair count."""
    keep = pl.DataFrame({"prompt_id": sorted(prompt_ids)}, schema={"prompt_id": pl.String})
    tables = {name: pl.from_arrow(storage.read_table_dir(storage.join(source, name), table_schema))
              for name, table_schema in (("prompts", schema.PROMPTS), ("responses", schema.RESPONSES),
                                         ("pairs", schema.PAIRS))}
    pairs = tables["pairs"].join(keep, on="prompt_id", how="semi")
    if pairs.height == 0:
        return 0  # nothing of this directory in the half: no directory for reduce to read
    used = pl.concat([pairs["response_a_id"], pairs["response_b_id"]]).unique().to_frame("response_id")
    manifest_path = storage.join(source, "_manifest.json")
    manifest = storage.read_json(manifest_path) if storage.exists(manifest_path) else {}
    manifest = {k: v for k, v in manifest.items() if k not in ("counts", "notes", "dry_run", "llm")}  # the source's
    write_ingest_shaped(output, {
        "prompts": tables["prompts"].join(keep, on="prompt_id", how="semi").to_arrow(),
        "responses": tables["responses"].join(used, on="response_id", how="semi").to_arrow(),
        "pairs": pairs.to_arrow(),
        "rejected": schema.REJECTED.empty_table(),
    }, {}, {**manifest, "subset_of": source, **note}, 100_000)
    return pairs.height
