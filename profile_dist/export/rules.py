"""Factor filters of an export: rules over a pair's factor differences (chosen minus rejected).

A rule is written ``KIND:FACTOR[=VALUE]`` and drops the pairs it matches; kinds live in ``RULES``:

``only:F``      the chosen response differs from the rejected one only by having more F: F's difference
                is positive and every other annotated factor is equal (e.g. ``only:length``, the pair the
                chosen response wins only by being longer).
``more:F=X``    the chosen response has more than X more of F than the rejected one (e.g. ``more:length=50``).
``less:F=X``    the chosen response has more than X less of F.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from profile_dist.errors import ConfigError

Diffs = dict[str, float | None]  # factor -> chosen - rejected (None: unknown for either response)


def _known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _only(factor: str, threshold: float | None, diffs: Diffs) -> bool:
    if not _known(diffs.get(factor)) or diffs[factor] <= 0:
        return False
    return all(v == 0 for name, v in diffs.items() if name != factor and _known(v))


def _more(factor: str, threshold: float | None, diffs: Diffs) -> bool:
    return _known(diffs.get(factor)) and diffs[factor] > threshold


def _less(factor: str, threshold: float | None, diffs: Diffs) -> bool:
    return _known(diffs.get(factor)) and -diffs[factor] > threshold


#: kind -> (predicate, needs a value)
RULES: dict[str, tuple[Callable[[str, float | None, Diffs], bool], bool]] = {
    "only": (_only, False), "more": (_more, True), "less": (_less, True),
}


@dataclass(frozen=True)
class DropRule:
    kind: str
    factor: str
    threshold: float | None = None

    @classmethod
    def parse(cls, spec: str) -> "DropRule":
        kind, sep, rest = spec.partition(":")
        if not sep or kind not in RULES or not rest:
            raise ConfigError(f"drop rule {spec!r}: expected KIND:FACTOR[=VALUE] with KIND one of {', '.join(RULES)}")
        factor, eq, value = rest.partition("=")
        needs_value = RULES[kind][1]
        if needs_value != bool(eq):
            raise ConfigError(f"drop rule {spec!r}: {kind!r} {'needs' if needs_value else 'takes no'} =VALUE")
        try:
            threshold = float(value) if eq else None
        except ValueError:
            raise ConfigError(f"drop rule {spec!r}: {value!r} is not a number") from None
        return cls(kind, factor, threshold)

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.factor}" + ("" if self.threshold is None else f"={self.threshold:g}")

    def matches(self, diffs: Diffs) -> bool:
        return RULES[self.kind][0](self.factor, self.threshold, diffs)
