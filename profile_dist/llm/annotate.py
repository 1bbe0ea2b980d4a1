"""LLM factor values for a table of responses: the call the annotate stage makes per shard.

```python
from profile_dist.llm.annotate import annotate_llm_factor
rows, summary = annotate_llm_factor(shard, get_factor("fluency"), engine)
# shard: response_id, text[, source_text]  ->  rows: response_id, factor, value (float64), error (string)
```
Exactly one output row per input row, in input order: ``value`` is null where ``error`` says why (reason,
detail and the raw reply; a null text is ``no_text`` and is not sent). Pass one
:class:`~profile_dist.llm.engine.LLMEngine` for all shards of a stage run: its workers and cache index are
reused, and ``max_cost`` bounds the whole stage. :func:`request_keys` gives a shard's content keys for the
stage's shard manifest.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pyarrow as pa

from profile_dist.factors.base import Factor
from profile_dist.llm.endpoints import Endpoint
from profile_dist.llm.engine import LLMEngine
from profile_dist.prompts.fencing import PromptSpec
from profile_dist.llm.request import LLMRequest, LLMResult

OUTPUT_SCHEMA = pa.schema([("response_id", pa.string()), ("factor", pa.string()), ("value", pa.float64()),
                           ("error", pa.string())])
_RAW_IN_ERROR = 1000


def factor_requests(factor: Factor, texts: list[str], sources: list[str | None]) -> list[LLMRequest]:
    """One request per text (texts must not be null), keyed by factor name, factor version and template."""
    spec = factor.llm
    if not isinstance(spec, PromptSpec):
        raise TypeError(f"factor {factor.name!r} has no PromptSpec (kind {factor.kind!r})")
    version = f"{factor.name}/{factor.version}/{spec.template_version}"
    if any(t is None for t in texts):
        raise ValueError(f"factor {factor.name!r}: a response text is null; leave such rows out")
    return [LLMRequest(messages=spec.render(src, text), template_version=version, json_schema=spec.json_schema,
                       schema_name=spec.name, params=dict(spec.params)) for text, src in zip(texts, sources)]


def _value_and_error(spec: PromptSpec, r: LLMResult) -> tuple[float | None, str | None]:
    if r.error is None:
        try:
            return spec.parse(r.value), None
        except (KeyError, TypeError, ValueError) as exc:
            error = f"invalid_reply: cannot read {spec.value_field!r}: {exc}"
    else:
        error = r.error
    if r.raw is not None:
        error = f"{error}; raw={json.dumps(r.raw[:_RAW_IN_ERROR], ensure_ascii=False)}"
    return None, error


def _columns(table: pa.Table | pl.DataFrame) -> tuple[pl.DataFrame, list[str | None], list[str | None]]:
    df = table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    texts = df["text"].to_list()
    sources = df["source_text"].to_list() if "source_text" in df.columns else [None] * len(texts)
    return df, texts, sources


def request_keys(table: pa.Table | pl.DataFrame, factor: Factor, endpoint: Endpoint) -> list[str | None]:
    """The cache key of each row's request (None for a null text), e.g. for a shard manifest."""
    _, texts, sources = _columns(table)
    sent = [i for i, t in enumerate(texts) if t is not None]
    reqs = factor_requests(factor, [texts[i] for i in sent], [sources[i] for i in sent])
    keys: list[str | None] = [None] * len(texts)
    for i, r in zip(sent, reqs):
        keys[i] = r.cache_key(endpoint)
    return keys


def annotate_llm_factor(table: pa.Table | pl.DataFrame, factor: Factor, engine: LLMEngine
                        ) -> tuple[pa.Table, dict[str, Any]]:
    """(rows of OUTPUT_SCHEMA, the engine's run summary) for the responses in ``table``."""
    df, texts, sources = _columns(table)
    sent = [i for i, t in enumerate(texts) if t is not None]
    results = engine.run(factor_requests(factor, [texts[i] for i in sent], [sources[i] for i in sent]))
    values: list[float | None] = [None] * len(texts)
    errors: list[str | None] = ["no_text: the response text is null"] * len(texts)
    for i, r in zip(sent, results):
        values[i], errors[i] = _value_and_error(factor.llm, r)
    out = pa.table({"response_id": pa.array(df["response_id"].cast(pl.Utf8).to_list(), pa.string()),
                    "factor": pa.array([factor.name] * len(texts), pa.string()),
                    "value": pa.array(values, pa.float64()),
                    "error": pa.array(errors, pa.string())}, schema=OUTPUT_SCHEMA)
    summary = {**engine.summary, "factor": factor.name, "prompt_version": factor.llm.template_version}
    return out, summary
