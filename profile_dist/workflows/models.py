"""Judge and generate per model: PROFILE's evaluation and generation settings for every model that a job
(``profile-dist run``, workflows/job.py) or the nightly audit (workflows/audit/run.py) names; one code path
for both.

For one model, :func:`judge_model` judges every target pairs directory (the judged pairs reuse the corpus'
responses, so the corpus' annotations apply) and :func:`generate_model` writes leveled responses to each
target's prompts and annotates them. The caller says where outputs go (:class:`Target`) and how the
generations are annotated (``ModelRun.annotate``): a job writes ``judge/<model>/<corpus>/`` and
``generate/<model>/<corpus>/``, the audit ``models/<model>/date=<date>/{judge,generate}/<corpus>/NNNN``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from profile_dist.stages.generate import generate
from profile_dist.stages.ingest import DEFAULT_ROWS_PER_SHARD
from profile_dist.stages.judge import judge


@dataclass
class JudgeConfig:
    corpora: list[str] | None = None  # the corpora a job judges (default: every corpus)
    inconsistent: str = "drop"
    max_cost: float | None = None


@dataclass
class GenerateConfig:
    corpora: list[str] | None = None  # the corpora a job generates for (default: every corpus)
    levels: int = 5
    mode: str = "joint"
    check_llm: str | None = None
    max_cost: float | None = None


@dataclass(frozen=True)
class Target:
    """One pairs directory a model works on: the input (an ingest output), where the stage writes, and where
    the annotations of its generations go (generate only)."""

    input: str
    output: str
    annotations: str | None = None


@dataclass
class ModelRun:
    """What every model's judge and generate share within one job or one audit night."""

    endpoints: str | None
    cache_dir: str  # one reply cache: a rerun or the next night pays for nothing twice
    annotate: Callable[[str, str], Any]  # (pairs dir, output dir) -> the annotate summary, with the caller's factors
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    address: str | None = None
    progress: bool | None = None
    say: Callable[[str], None] | None = None  # None: quiet (the audit says one line per model and setting)

    def tell(self, summary: Any) -> None:
        if self.say is not None:
            for line in summary.lines():
                self.say(line)


@dataclass
class ModelOutput:
    """Further pairs (labelled by the model, setting evaluation or generation) and annotations for the reduce."""

    pairs_dirs: list[str] = field(default_factory=list)
    annotation_dirs: list[str] = field(default_factory=list)

    def add(self, other: "ModelOutput") -> None:
        self.pairs_dirs += other.pairs_dirs
        self.annotation_dirs += other.annotation_dirs


def judge_model(run: ModelRun, model: str, targets: list[Target], labeler: str | None = None) -> ModelOutput:
    """The evaluation setting: ``model`` (an endpoint name) judges every target; ``labeler`` defaults to the
    endpoint's model id."""
    out = ModelOutput()
    for target in targets:
        run.tell(judge(target.input, model, target.output, endpoints=run.endpoints, cache_dir=run.cache_dir,
                       max_cost=run.judge.max_cost, inconsistent=run.judge.inconsistent, labeler=labeler,
                       rows_per_shard=run.rows_per_shard, address=run.address, progress=run.progress, say=run.say))
        out.pairs_dirs.append(target.output)
    return out


def generate_model(run: ModelRun, model: str, targets: list[Target], labeler: str | None = None) -> ModelOutput:
    """The generation setting: ``model`` writes leveled responses to every target's prompts, then they are
    annotated into ``target.annotations``."""
    out = ModelOutput()
    for target in targets:
        if target.annotations is None:
            raise ValueError(f"generate_model needs an annotations directory for {target.output}")
        run.tell(generate(target.input, model, target.output, levels=run.generate.levels, mode=run.generate.mode,
                          check_llm=run.generate.check_llm, endpoints=run.endpoints, cache_dir=run.cache_dir,
                          max_cost=run.generate.max_cost, labeler=labeler, rows_per_shard=run.rows_per_shard,
                          address=run.address, progress=run.progress, say=run.say))
        run.tell(run.annotate(target.output, target.annotations))
        out.pairs_dirs.append(target.output)
        out.annotation_dirs.append(target.annotations)
    return out


ModelStage = Callable[[ModelRun, str, list[Target], "str | None"], ModelOutput]
#: The settings every model runs, in this order.
MODEL_STAGES: dict[str, ModelStage] = {"judge": judge_model, "generate": generate_model}
