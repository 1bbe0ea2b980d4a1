"""Versioned templates that turn a generator's misaligned factors into guidance text.

A template maps each chosen factor's *action* to one line: ``hold`` (humans do not reward the factor, the
generator's better responses move with it), ``more`` (humans reward it more than the generator's ranking
shows) and ``less`` (humans reward it less). The text is part of the generation prompt and so of the reply
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


register(FeedbackTemplate(
    version="feedback/v1",
    header=("An audit compared your quality levels with human preferences factor by factor (tau: how strongly "
            "a factor goes with the preferred response, from -1 to +1)."),
    lines={
        "hold": ("- {factor}: human raters do not reward it (tau {tau_human:+.2f}), yet your better responses mostly "
                 "just differ in it (tau {tau_generation:+.2f}). Keep {factor} about the same across quality levels "
                 "and make higher levels better in what human raters reward."),
        "more": ("- {factor}: human raters reward it (tau {tau_human:+.2f}) more than your levels show "
                 "(tau {tau_generation:+.2f}). Give higher quality levels more {factor}."),
        "less": ("- {factor}: human raters reward it less (tau {tau_human:+.2f}) than your levels show "
                 "(tau {tau_generation:+.2f}). Give higher quality levels less {factor} than you do now."),
    },
))
