"""The factor noun and its registry.

A factor maps a response (in the context of its prompt/source) to a number. Rule factors are polars
expressions evaluated vectorised over a whole shard; LLM factors (kinds ``llm_response`` and
``llm_fact``) carry a prompt template and a reply schema and are computed by the LLM engine.
Adding a factor is one ``register(...)`` call in one module under ``profile_dist/factors/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import polars as pl

FactorKind = Literal["rule", "llm_response", "llm_fact"]

#: Columns a rule expression may read: ``text`` (the response) and ``source_text`` (the prompt or,
#: for tasks that have one, the source document the response is judged against).
RULE_INPUT_COLUMNS = ("text", "source_text")


@dataclass(frozen=True)
class Factor:
    name: str
    kind: FactorKind
    description: str
    version: str = "1"
    #: Tasks this factor applies to; ``None`` means every task.
    tasks: frozenset[str] | None = None
    #: Rule factors: a function returning a polars expression over RULE_INPUT_COLUMNS, yielding Float64.
    expr: Callable[[], pl.Expr] | None = None
    #: LLM factors: whatever the LLM engine needs (prompt template, JSON schema, reply parser).
    llm: Any = None
    #: Higher values mean "more of the factor"; documentation only, tau's sign follows the values.
    unit: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def applies_to(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks


#: Filled by the factor modules, which the package's __init__ imports before anyone can reach this module.
_REGISTRY: dict[str, Factor] = {}


def register(factor: Factor) -> Factor:
    if factor.name in _REGISTRY:
        raise ValueError(f"factor {factor.name!r} is already registered")
    if factor.kind == "rule" and factor.expr is None:
        raise ValueError(f"rule factor {factor.name!r} needs an expr")
    _REGISTRY[factor.name] = factor
    return factor


def get_factor(name: str) -> Factor:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown factor {name!r}; registered factors: {known}") from None


def all_factors() -> list[Factor]:
    return sorted(_REGISTRY.values(), key=lambda f: (f.kind, f.name))


def factors_of_kind(kind: str) -> tuple[str, ...]:
    """Names of the registered factors of ``kind``, in registration order (the order tables list them in)."""
    return tuple(name for name, f in _REGISTRY.items() if f.kind == kind)
