"""The judge and generate stages as the nightly audit's model stages (``profile_dist.workflows.audit.model_stages``).

Registered on import (the audit imports this module when it needs a model stage). For each model, every pairs directory the audit prepared is judged
(the judged pairs reuse the corpus' responses, so the corpus' annotations apply) and its prompts are
generated from (annotated with the audit's factors). Outputs live under
``<root>/models/<model>/date=<date>/``; the reply cache under ``$PROFILE_LLM_CACHE``, else
``<root>/_llm_cache`` (which must then be a filesystem path), so a night pays only for pairs and prompts
it has not seen before.
"""

from __future__ import annotations

import os

from profile_dist import storage
from profile_dist.workflows.audit.model_stages import StageContext, StageOutput, register_model_stage
from profile_dist.llm.step import cache_dir_for
from profile_dist.stages.annotate import annotate
from profile_dist.stages.generate import generate
from profile_dist.stages.judge import judge

CACHE_ENV = "PROFILE_LLM_CACHE"
GENERATION_LEVELS = 5


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)


def _targets(context: StageContext, model: str, stage: str) -> list[tuple[str, str]]:
    """(input pairs dir, output dir) for every pairs directory of every corpus."""
    base = storage.join(context.root, "models", _slug(model), f"date={context.date}", stage)
    return [(pairs_dir, storage.join(base, corpus.name, f"{i:04d}"))
            for corpus in context.corpora for i, pairs_dir in enumerate(corpus.pairs_dirs)]


def judge_for_audit(context: StageContext, model: str) -> StageOutput:
    cache = cache_dir_for(context.root, os.environ.get(CACHE_ENV))
    out = StageOutput()
    for pairs_dir, target in _targets(context, model, "judge"):
        # The labeler is the endpoint's name, stable across nights, so drift compares checkpoint with
        # checkpoint; the cache key carries the served model id, so a new checkpoint is asked afresh.
        judge(pairs_dir, model, target, endpoints=context.config.endpoints, cache_dir=cache, labeler=model,
              rows_per_shard=context.config.rows_per_shard, address=context.address, progress=False)
        out.pairs_dirs.append(target)
    return out


def generate_for_audit(context: StageContext, model: str) -> StageOutput:
    cache = cache_dir_for(context.root, os.environ.get(CACHE_ENV))
    factors = list(context.config.factors) if context.config.factors else None
    out = StageOutput()
    for pairs_dir, target in _targets(context, model, "generate"):
        generate(pairs_dir, model, target, levels=GENERATION_LEVELS, endpoints=context.config.endpoints, labeler=model,
                 cache_dir=cache, rows_per_shard=context.config.rows_per_shard, address=context.address,
                 progress=False)
        annotations = target + "-annotations"
        annotate(target, annotations, factors=factors, address=context.address, progress=False)
        out.pairs_dirs.append(target)
        out.annotation_dirs.append(annotations)
    return out


def register() -> None:
    """Make the audit run these stages for every model in its config."""
    register_model_stage("judge", judge_for_audit)
    register_model_stage("generate", generate_for_audit)


register()
