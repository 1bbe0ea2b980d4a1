"""Versioned templates that turn a generator's misaligned factors into guidance text.

A template maps each chosen factor's *action* to one line. The action follows the humans' own tau, never
the generator's: ``hold`` (the humans' interval contains 0: they show no preference either way), ``more``
(humans prefer the response with more of the factor, tau > 0) and ``less`` (tau < 0). The text is part of the generation prompt and so of the reply
cache key: change the wording only under a new version.
"""

from __future__ import annotations

from dataclasses import dataclass

from profile_dist.errors import ConfigError

ACTIONS = ("hold", "more", "less")


@dataclass(frozen=True)
class FeedbackTemplate:
    version: str
    header: str
    lines: dict[str, str]  # action -> line, formatted with factor, tau_human, tau_generation

    def render(self, items: list[tuple[str, str, float, float]]) -> str:
        """``items``: (factor, action, tau_human, tau_generation), most misaligned first."""
        body = [self.lines[action].format(factor=f, tau_human=h, tau_generation=g) for f, action, h, g in items]
        return "\n".join([self.header, *body])


def action_for(tau_human: float, human_ci: tuple[float | None, float | None]) -> str:
    """The guidance for a factor, from the humans' side only: ``hold`` when their interval contains 0 (or
    there is none), else ``more`` for tau_human > 0 and ``less`` for tau_human < 0."""
    low, high = human_ci
    if low is None or high is None or low <= 0 <= high:
        return "hold"
    return "more" if tau_human > 0 else "less"


TEMPLATES: dict[str, FeedbackTemplate] = {}


def register(template: FeedbackTemplate) -> FeedbackTemplate:
    assert set(template.lines) == set(ACTIONS), template.version
    TEMPLATES[template.version] = template
    return template


def get_template(version: str) -> FeedbackTemplate:
    try:
        return TEMPLATES[version]
    except KeyError:
        raise ConfigError(f"unknown feedback template {version!r}; known: {', '.join(sorted(TEMPLATES))}") from None


# v1 (removed) chose "more"/"less" by comparing the human tau with the generator's, so a factor humans
# reward (tau > 0) that the generator over-used got "less": the opposite of what humans prefer.
register(FeedbackTemplate(
    version="feedback/v2",
    header=("An audit compared your quality levels with human preferences factor by factor (tau: how strongly "
            "a factor goes with the preferred response, from -1 to +1)."),
    lines={
        "hold": ("- {factor}: human raters do not reward it (tau {tau_human:+.2f}), yet your better responses mostly "
                 "just differ in it (tau {tau_generation:+.2f}). Keep {factor} about the same across quality levels "
                 "and make higher levels better in what human raters reward."),
        "more": ("- {factor}: human raters prefer the response with more {factor} (tau {tau_human:+.2f}); across your "
                 "quality levels it is {tau_generation:+.2f}. Give higher quality levels more {factor}, about as "
                 "consistently as human raters reward it."),
        "less": ("- {factor}: human raters prefer the response with less {factor} (tau {tau_human:+.2f}); across your "
                 "quality levels it is {tau_generation:+.2f}. Give higher quality levels less {factor}, about as "
                 "consistently as human raters penalise it."),
    },
))
