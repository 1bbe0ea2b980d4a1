"""``profile-dist export dpo``: preference pairs for DPO-style training, from a PROFILE run.

```
profile-dist export dpo --results DIR --output FILE [--source judge|generation] [--labeler NAME]
                        [--drop RULE ...] [--drop-if-only-longer]
profile-dist export dpo --reproduce FILE.manifest.json --output FILE
```

``--results`` is a reduce output: its manifest names the pairs and annotation directories the export reads.
``--source judge`` takes the evaluation-setting pairs (a judge's verdicts, ties and inconsistent pairs
already removed by the judge stage); ``generation`` takes a model's own ranking of its leveled generations
(the higher level preferred); ``human`` takes the human-labelled pairs. Each line of FILE is one pair in the layout TRL's ``DPOTrainer`` (and most
DPO trainers) read::

    {"prompt": "...", "chosen": "...", "rejected": "...", "selection": {...}}

``selection`` records why the pair is there: labeler, setting, task, dataset, pair_id, prompt_id, the
chosen/rejected response ids and every factor's difference (chosen minus rejected; null where unknown).
Pairs are dropped when labelled a tie, when the two texts are identical, or when a factor rule matches
(``profile_dist.export.rules``). Lines are sorted by pair_id and serialised canonically, so the same
inputs give the same bytes. ``FILE.manifest.json`` beside the file records the inputs (with a digest of
every file read), the filters, the counts and the versions; ``--reproduce`` re-runs it, refusing if the
inputs changed, and writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

import profile_dist
from profile_dist import schema, storage
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.export import ONLY_LONGER, SOURCES  # noqa: F401  (ONLY_LONGER re-exported)
from profile_dist.export.rules import DropRule
from profile_dist.layout.results import require_results_dir

FORMAT = "dpo-jsonl/v1"


@dataclass
class ExportSummary:
    output: str
    manifest: str
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        c = self.counts
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k.startswith("dropped_") and v)
        return [f"exported {c['written']} of {c['candidates']} pairs to {self.output}"
                + (f" (dropped: {dropped})" if dropped else "") + f"; manifest {self.manifest}"]


def manifest_path(output: str) -> str:
    return f"{output}.manifest.json"


def _digest(files: list[str]) -> str:
    h = hashlib.sha256()
    for uri in sorted(files):
        h.update(uri.encode() + b"\0" + hashlib.sha256(storage.read_bytes(uri)).digest())
    return h.hexdigest()


def _inputs(results: str) -> tuple[list[str], list[str], list[str]]:
    manifest = require_results_dir(results, manifest=True)
    return list(manifest["pairs"]), list(manifest["annotations"]), list(manifest["factors"])


def _read_dir(directory: str, name: str, table_schema: Any) -> pl.DataFrame:
    return pl.from_arrow(storage.read_table_dir(storage.join(directory, name), table_schema))


def _candidate_pairs(pairs_dirs: list[str], setting: str, labeler: str | None) -> tuple[pl.DataFrame, list[str]]:
    """The pairs of the setting with prompt and response texts; and every file read (for the digest)."""
    frames, files = [], []
    for d in pairs_dirs:
        pairs = _read_dir(d, "pairs", schema.PAIRS).filter(pl.col("setting") == setting)
        if labeler is not None:
            pairs = pairs.filter(pl.col("labeler") == labeler)
        if pairs.height == 0:
            continue
        files += [f for name in ("pairs", "prompts", "responses") for f in storage.list_files(storage.join(d, name))]
        prompts = _read_dir(d, "prompts", schema.PROMPTS).select("prompt_id", prompt="text").unique("prompt_id")
        texts = _read_dir(d, "responses", schema.RESPONSES).select("response_id", "text").unique("response_id")
        joined = (pairs.join(prompts, on="prompt_id", how="left")
                  .join(texts.rename({"response_id": "response_a_id", "text": "text_a"}), on="response_a_id", how="left")
                  .join(texts.rename({"response_id": "response_b_id", "text": "text_b"}), on="response_b_id", how="left"))
        missing = joined.filter(pl.col("prompt").is_null() | pl.col("text_a").is_null() | pl.col("text_b").is_null())
        if missing.height:
            raise BadInputError(d, None, "pairs", f"pair {missing['pair_id'][0]} refers to a prompt or response "
                                f"not in {d}/prompts or {d}/responses")
        frames.append(joined)
    if not frames:
        return pl.DataFrame(), files
    return pl.concat(frames).unique("pair_id", keep="first").sort("pair_id"), files


def _factor_values(annotation_dirs: list[str], response_ids: set[str], factors: list[str]) -> tuple[dict[str, dict[str, float]], list[str]]:
    files = [f for d in annotation_dirs for f in storage.list_files(d)]
    values: dict[str, dict[str, float]] = {}
    for f in sorted(files):
        table = pl.from_arrow(storage.read_parquet(f, schema.ANNOTATIONS)).filter(
            pl.col("response_id").is_in(list(response_ids)) & pl.col("factor").is_in(factors) & pl.col("value").is_not_null())
        for rid, factor, value in table.select("response_id", "factor", "value").iter_rows():
            values.setdefault(rid, {}).setdefault(factor, value)  # first annotation wins, as in the reduce
    return values, files


def _diff(values: dict[str, dict[str, float]], chosen: str, rejected: str, factor: str) -> float | None:
    a, b = values.get(chosen, {}).get(factor), values.get(rejected, {}).get(factor)
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return None
    return a - b


def build(results: str, *, source: str, labeler: str | None, rules: list[DropRule]) -> tuple[list[str], dict[str, Any]]:
    """The JSONL lines and the manifest's content (without the output's own digest)."""
    if source not in SOURCES:
        raise ConfigError(f"unknown --source {source!r}; expected one of {', '.join(SOURCES)}")
    pairs_dirs, annotation_dirs, factors = _inputs(results)
    unknown = sorted({r.factor for r in rules} - set(factors))
    if unknown:
        raise ConfigError(f"drop rule factor(s) {', '.join(unknown)} not in the reduce's factors ({', '.join(factors)})")
    pairs, pair_files = _candidate_pairs(pairs_dirs, SOURCES[source], labeler)
    counts = {"candidates": pairs.height, "dropped_tie": 0, "dropped_identical_texts": 0,
              **{f"dropped_rule {r.spec}": 0 for r in rules}, "written": 0}
    if pairs.height == 0:
        raise ConfigError(f"no {SOURCES[source]}-setting pairs{'' if labeler is None else f' by {labeler}'} "
                          f"in {', '.join(pairs_dirs)}")
    ids = set(pairs["response_a_id"]) | set(pairs["response_b_id"])
    values, annotation_files = _factor_values(annotation_dirs, ids, factors)
    lines = []
    for row in pairs.iter_rows(named=True):
        if row["label"] not in ("a", "b"):
            counts["dropped_tie"] += 1
            continue
        a_wins = row["label"] == "a"
        chosen_id, rejected_id = (row["response_a_id"], row["response_b_id"]) if a_wins else (row["response_b_id"], row["response_a_id"])
        chosen, rejected = (row["text_a"], row["text_b"]) if a_wins else (row["text_b"], row["text_a"])
        if chosen == rejected:
            counts["dropped_identical_texts"] += 1
            continue
        diffs = {f: _diff(values, chosen_id, rejected_id, f) for f in factors}
        matched = next((r for r in rules if r.matches(diffs)), None)
        if matched is not None:
            counts[f"dropped_rule {matched.spec}"] += 1
            continue
        selection = {"pair_id": row["pair_id"], "labeler": row["labeler"], "setting": row["setting"], "task": row["task"],
                     "dataset": row["dataset"], "prompt_id": row["prompt_id"], "chosen_id": chosen_id,
                     "rejected_id": rejected_id, "factor_differences": diffs}
        lines.append(json.dumps({"prompt": row["prompt"], "chosen": chosen, "rejected": rejected, "selection": selection},
                                ensure_ascii=False, sort_keys=False, separators=(",", ":"), allow_nan=False))
        counts["written"] += 1
    manifest = {
        "format": FORMAT, "fields": ["prompt", "chosen", "rejected", "selection"],
        "profile_dist_version": profile_dist.__version__,
        "arguments": {"results": results, "source": source, "labeler": labeler, "drop": [r.spec for r in rules]},
        "inputs": {"pairs": pairs_dirs, "annotations": annotation_dirs, "factors": factors,
                   "sha256": _digest(pair_files + annotation_files), "n_files": len(pair_files) + len(annotation_files)},
        "counts": counts,
    }
    return lines, manifest


def export_dpo(results: str, output: str, *, source: str = "judge", labeler: str | None = None,
               drop: list[str] | None = None, expect_inputs: str | None = None) -> ExportSummary:
    rules = [DropRule.parse(spec) for spec in dict.fromkeys(drop or [])]
    lines, manifest = build(results, source=source, labeler=labeler, rules=rules)
    if expect_inputs is not None and manifest["inputs"]["sha256"] != expect_inputs:
        raise ConfigError(f"the inputs under {results} changed since the manifest was written "
                          f"(sha256 {manifest['inputs']['sha256']} != {expect_inputs}); cannot reproduce")
    data = "".join(line + "\n" for line in lines).encode()
    storage.write_bytes_atomic(data, output)
    manifest["output"] = {"path": output, "sha256": hashlib.sha256(data).hexdigest(), "lines": len(lines)}
    storage.write_json_atomic(manifest, manifest_path(output))
    return ExportSummary(output, manifest_path(output), manifest["counts"])


def reproduce(manifest_file: str, output: str) -> ExportSummary:
    """Re-run the export a manifest describes (same arguments, inputs checked unchanged) into ``output``."""
    manifest = storage.read_json(manifest_file)
    if manifest.get("format") != FORMAT:
        raise BadInputError(manifest_file, None, "format", f"is {manifest.get('format')!r}, expected {FORMAT!r}")
    args = manifest["arguments"]
    return export_dpo(args["results"], output, source=args["source"], labeler=args["labeler"], drop=args["drop"],
                      expect_inputs=manifest["inputs"]["sha256"])
