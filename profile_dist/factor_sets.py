"""Which factors two sources are compared over (alignment and the generation-evaluation gap), per task.

PROFILE compares sources over the task's factors (method section 2; ``profile_dist/tasks.py``), not over
everything that happened to be annotated: the rule extras (list_items, headers, bold, code_blocks, and
novel_words outside summarization) are cheap to compute, so they are annotated everywhere, but they are
not part of every task's factor set. The same set is used on both sides of every comparison and in both
terms of the gap. A rule in ``RULES`` picks the set; the reduce records which rule and which factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from profile_dist.errors import ConfigError
from profile_dist.tasks import registered_task

#: (task, reduced factors in reduce order, factors named by the user) -> the factors compared.
FactorSetRule = Callable[[str, tuple[str, ...], tuple[str, ...]], tuple[str, ...]]


def _task_factors(task: str, reduced: tuple[str, ...], given: tuple[str, ...]) -> tuple[str, ...]:
    known = registered_task(task)
    if known is None:  # a user-defined task names no factor set: compare over everything reduced
        return reduced
    return tuple(f for f in reduced if f in known.default_factors)


RULES: dict[str, tuple[FactorSetRule, str]] = {
    "task": (_task_factors, "the task's factors (profile_dist/tasks.py; every factor for a user-defined task)"),
    "all": (lambda task, reduced, given: reduced, "every reduced factor"),
    "given": (lambda task, reduced, given: tuple(f for f in reduced if f in given), "the factors named"),
}


@dataclass(frozen=True)
class AlignmentFactors:
    """A factor-set rule (a key of ``RULES``) and, for "given", the factor names."""

    rule: str = "task"
    given: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"alignment factor set {self.rule!r} unknown; expected one of {', '.join(RULES)} or factor names")

    def for_task(self, task: str, reduced: Sequence[str]) -> tuple[str, ...]:
        """The factors compared for ``task``, in reduce order (top-k ties are broken by that order)."""
        return RULES[self.rule][0](task, tuple(reduced), self.given)

    def describe(self) -> str:
        text = RULES[self.rule][1]
        return f"{text}: {', '.join(self.given)}" if self.rule == "given" else text

    @classmethod
    def parse(cls, value: str | Sequence[str] | None, *, factors: Sequence[str] | None = None) -> "AlignmentFactors":
        """From ``--alignment-factors`` / the job's ``reduce: alignment_factors``: "task", "all" or factor names.

        Unset: the factors the reduce was restricted to with ``--factors`` when it was (the user named the
        set), else the task's factors.
        """
        if value is None:
            return cls("given", tuple(factors)) if factors else cls("task")
        names = [value] if isinstance(value, str) else list(value)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"alignment factors: expected 'task', 'all' or a list of factor names, got {value!r}")
        if len(names) == 1 and names[0] in RULES and names[0] != "given":
            return cls(names[0])
        return cls("given", tuple(names))
