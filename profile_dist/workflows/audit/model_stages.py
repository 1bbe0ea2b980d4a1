"""Where the judge and generate stages plug into the audit.

For every model in the config, the audit runs each stage of ``REQUIRED_STAGES`` in order. A stage takes
the audit's context (config, date, the corpora ingested and annotated for this date) and one model's
endpoint name, and returns further pairs/annotations directories in the canonical layout (pairs
labelled by the model with setting "evaluation" or "generation"), which the reduce adds to the human
pairs. Until a stage is registered, an audit with models configured fails before doing any work with
"<stage> stage not available"; an audit without models never needs one.

Registering (e.g. in ``profile_dist/stages/judge.py``)::

    from profile_dist.workflows.audit.model_stages import StageOutput, register_model_stage

    def judge_for_audit(context, model): ...  # -> StageOutput([pairs_dir], [annotations_dir])
    register_model_stage("judge", judge_for_audit)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable
from profile_dist.workflows.audit.config import AuditConfig
from profile_dist.errors import ConfigError

REQUIRED_STAGES = ("judge", "generate")
#: Modules that register stages when imported; a missing module simply means "not available yet".
STAGE_MODULES = {"judge": "profile_dist.workflows.models", "generate": "profile_dist.workflows.models"}


@dataclass
class CorpusData:
    """One corpus as the audit prepared it for a date: canonical pairs and their annotations."""

    name: str
    pairs_dirs: list[str] = field(default_factory=list)
    annotation_dirs: list[str] = field(default_factory=list)
    files: int = 0
    new_files: int = 0
    pairs: int = 0


@dataclass
class StageContext:
    config: AuditConfig
    date: str
    root: str  # the audit's output root (caches for model outputs belong under it)
    corpora: list[CorpusData]
    address: str | None = None


@dataclass
class StageOutput:
    pairs_dirs: list[str] = field(default_factory=list)
    annotation_dirs: list[str] = field(default_factory=list)


ModelStage = Callable[[StageContext, str], StageOutput]
_STAGES: dict[str, ModelStage] = {}


def register_model_stage(name: str, stage: ModelStage) -> ModelStage:
    if name not in REQUIRED_STAGES:
        raise ValueError(f"unknown audit stage {name!r}; expected one of {', '.join(REQUIRED_STAGES)}")
    _STAGES[name] = stage
    return stage


def _load(name: str) -> ModelStage | None:
    if name not in _STAGES:
        try:
            importlib.import_module(STAGE_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name != STAGE_MODULES[name]:
                raise
    return _STAGES.get(name)


def model_stages(config: AuditConfig) -> list[tuple[str, ModelStage]]:
    """The stages to run per model; a clear error when models are configured and a stage is missing."""
    if not config.models:
        return []
    stages = []
    for name in REQUIRED_STAGES:
        stage = _load(name)
        if stage is None:
            raise ConfigError(
                f"{name} stage not available: {config.path} lists models ({', '.join(config.models)}) to judge and "
                f"generate with, but this version of profile-dist has no {name} stage for the audit yet; remove "
                f"'models' to audit the corpora alone"
            )
        stages.append((name, stage))
    return stages
