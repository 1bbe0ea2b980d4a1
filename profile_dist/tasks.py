"""Tasks: what "the source" of a response is and which factors apply by default (method section 2)."""

from __future__ import annotations

from dataclasses import dataclass

from profile_dist.factors.rules import RULE_FACTORS


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    default_factors: tuple[str, ...]


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task, or a generic one for a task name the registry does not know."""
    return _TASKS.get(name) or Task(name, "user-defined task", RULE_FACTORS)


def registered_task(name: str) -> Task | None:
    """The registered task of this name, or None (a user-defined task has no PROFILE factor set)."""
    return _TASKS.get(name)


def all_tasks() -> list[Task]:
    return [_TASKS[name] for name in sorted(_TASKS)]


register_task(Task(
    "summarization", "summarise a post; the post is the source",
    ("length", "novel_words", "fluency", "formality_alignment", "intent_alignment", "facts",
     "hallucination", "off_focus", "source_coverage"),
))
register_task(Task(
    "helpful", "answer a question or instruction helpfully; the question is the source",
    ("length", "fluency", "formality_alignment", "intent_alignment", "receptiveness", "facts",
     "helpfulness", "misinformation"),
))
register_task(Task(
    "document_qa", "answer a question from documents; the quotes plus the question are the source",
    ("length", "fluency", "intent_alignment", "facts", "hallucination", "source_coverage", "helpfulness"),
))
register_task(Task("harmless", "respond harmlessly to a possibly harmful request", RULE_FACTORS))
