"""User-defined response-level LLM factors, read from a factor file (``--factor-file FILE.yaml``).

A factor file is what a team writes for the factors PROFILE's taxonomy does not list, and what
``profile-dist discover`` writes (``discovered.yaml``)::

    factors:
      - name: cites_source
        description: Whether the response backs its claims with a named source   # one line
        question: Does the response cite a source (a publication, a URL, a named study) for its claims?
        rubric:                       # five anchors, 1..5 (a list of five, or a mapping 1: ... 5: ...)
          - no source at all
          - a vague appeal ("studies show")
          - one named source for a minor claim
          - named sources for most claims
          - every substantive claim has a named source
        # or, instead of rubric:  binary: true   (a yes/no question; the value is 1 for yes, 0 for no)
        tasks: [helpful]              # registered task names, or "all"
        version: "1"                  # bump on any change of wording
        uses_source: false            # optional: judged against the source (post, question) too

Each entry becomes a :class:`~profile_dist.factors.base.Factor` of kind ``llm_response`` with a prompt of its
own (the per-factor prompt of the built-in criteria, :func:`profile_dist.factors.llm_response.single_prompt`),
so it runs through the same engine, cache, dry-run estimate, reduce and report as the built-in ones. The
definition's text is hashed into the prompt's ``template_version``: editing a rubric without bumping the
version still changes the cache key and re-annotates the shards. User factors are not registered globally:
the stage that reads the file passes the factors on, so two jobs with different files never collide.

A bad entry is refused with the file, the entry (its index and name) and the field
(:class:`~profile_dist.errors.BadInputError`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from profile_dist import storage
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.factors import all_factors
from profile_dist.factors.base import Factor
from profile_dist.factors.llm_response import DATA_NOTE
from profile_dist.prompts.fencing import PromptSpec
from profile_dist.tasks import all_tasks

_NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
_KEYS = {"name", "description", "question", "rubric", "binary", "tasks", "version", "uses_source"}
#: The kind recorded in Factor.extra so reports and ``profile-dist factors`` can tell user factors apart.
ORIGIN = "factor_file"


@dataclass(frozen=True)
class FactorDefinition:
    """One validated entry of a factor file."""

    name: str
    description: str
    question: str
    #: Five anchors for 1..5; empty for a binary question.
    rubric: tuple[str, ...]
    binary: bool
    #: Task names, or None for every task.
    tasks: tuple[str, ...] | None
    version: str
    uses_source: bool = False

    def digest(self) -> str:
        """A short hash of everything the annotator sees: part of the prompt version (and so the cache key)."""
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]

    def as_yaml_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "description": self.description, "question": self.question}
        if self.binary:
            entry["binary"] = True
        else:
            entry["rubric"] = list(self.rubric)
        entry["tasks"] = list(self.tasks) if self.tasks is not None else "all"
        entry["version"] = self.version
        if self.uses_source:
            entry["uses_source"] = True
        return entry


def _score_schema(binary: bool) -> dict[str, Any]:
    prop = {"type": "boolean"} if binary else {"type": "integer", "minimum": 1, "maximum": 5}
    field = "answer" if binary else "score"
    return {"type": "object", "properties": {field: prop}, "required": [field], "additionalProperties": False}


def prompt_for(d: FactorDefinition) -> PromptSpec:
    """The factor's own prompt: the built-in criteria's per-factor prompt, with the user's question and anchors."""
    blocks = "{source}\n\n{response}" if d.uses_source else "{response}"
    against = " against the source (SOURCE block)" if d.uses_source else ""
    if d.binary:
        scale, reply = "Answer yes (true) or no (false).", '{"answer": <true or false>}'
    else:
        scale = "; ".join(f"{i} = {a}" for i, a in enumerate(d.rubric, 1)) + "."
        reply = '{"score": <integer 1-5>}'
    return PromptSpec(
        name=d.name,
        template_version=f"user-{d.name}-v{d.version}-{d.digest()}",
        system=(f"You are a careful annotator of text quality. You rate one response{against}.\n"
                f"{DATA_NOTE}\nCriterion: {d.question}\nScale: {scale}\n"
                f"Reply with a JSON object only: {reply}."),
        user_template=f"Rate the {d.name.replace('_', ' ')} of this response.\n\n{blocks}",
        json_schema=_score_schema(d.binary),
        value_field="answer" if d.binary else "score",
        params={"max_tokens": 20},
    )


def to_factor(d: FactorDefinition) -> Factor:
    return Factor(name=d.name, kind="llm_response", description=d.description, version=d.version,
                  tasks=frozenset(d.tasks) if d.tasks is not None else None, llm=prompt_for(d),
                  unit="0/1" if d.binary else "1-5", extra={"origin": ORIGIN, "definition": d})


def _text(entry: dict, key: str, where: str, index: int, *, required: bool = True, one_line: bool = False) -> str:
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadInputError(where, index, key, f"entry {entry.get('name')!r}: missing {key}")
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise BadInputError(where, index, key, f"entry {entry.get('name')!r}: {key} must be text, got {type(value).__name__}")
    text = " ".join(str(value).split()) if one_line else str(value).strip()
    return text


def _rubric(entry: dict, where: str, index: int) -> tuple[tuple[str, ...], bool]:
    name = entry.get("name")
    rubric, binary = entry.get("rubric"), entry.get("binary", False)
    if not isinstance(binary, bool):
        raise BadInputError(where, index, "binary", f"entry {name!r}: binary must be true or false")
    if binary and rubric is not None:
        raise BadInputError(where, index, "rubric", f"entry {name!r}: give a rubric or binary: true, not both")
    if binary:
        return (), True
    if rubric is None:
        raise BadInputError(where, index, "rubric",
                            f"entry {name!r}: missing rubric (five anchors for 1..5), or binary: true for a yes/no question")
    if isinstance(rubric, dict):
        keys = sorted(rubric, key=str)
        if [str(k) for k in keys] != ["1", "2", "3", "4", "5"]:
            raise BadInputError(where, index, "rubric", f"entry {name!r}: rubric keys must be 1..5, got {keys}")
        rubric = [rubric[k] for k in keys]
    if not isinstance(rubric, list) or len(rubric) != 5:
        raise BadInputError(where, index, "rubric", f"entry {name!r}: rubric needs exactly five anchors (1..5)")
    anchors = tuple(" ".join(str(a).split()) for a in rubric)
    if not all(anchors):
        raise BadInputError(where, index, "rubric", f"entry {name!r}: an anchor of the rubric is empty")
    return anchors, False


def _tasks(entry: dict, where: str, index: int) -> tuple[str, ...] | None:
    raw = entry.get("tasks")
    name = entry.get("name")
    if raw is None:
        raise BadInputError(where, index, "tasks", f"entry {name!r}: missing tasks (task names, or \"all\")")
    if raw == "all":
        return None
    if isinstance(raw, str):
        raw = [raw]
    known = {t.name for t in all_tasks()}
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise BadInputError(where, index, "tasks", f"entry {name!r}: tasks must be a list of task names or \"all\"")
    unknown = [t for t in raw if t not in known]
    if unknown:
        raise BadInputError(where, index, "tasks",
                            f"entry {name!r}: unknown task(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return tuple(sorted(set(raw)))


def parse_definitions(doc: Any, where: str) -> list[FactorDefinition]:
    """Validated definitions of a factor-file document; ``where`` names the file in errors."""
    entries = doc.get("factors") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: a factor file needs a non-empty list under 'factors:'")
    builtin = {f.name for f in all_factors()}
    seen: set[str] = set()
    out = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise BadInputError(where, index, None, "each entry of 'factors' must be a mapping")
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise BadInputError(where, index, unknown[0], f"entry {entry.get('name')!r}: unknown key; "
                                f"allowed: {', '.join(sorted(_KEYS))}")
        name = _text(entry, "name", where, index)
        if not _NAME.match(name):
            raise BadInputError(where, index, "name", f"entry {name!r}: a name is lower_snake_case, 2-48 characters")
        if name in builtin:
            raise BadInputError(where, index, "name", f"entry {name!r}: a built-in factor has this name")
        if name in seen:
            raise BadInputError(where, index, "name", f"entry {name!r}: duplicate name in this file")
        seen.add(name)
        description = _text(entry, "description", where, index, one_line=True)
        question = _text(entry, "question", where, index, one_line=True)
        rubric, binary = _rubric(entry, where, index)
        version = _text(entry, "version", where, index)
        uses_source = entry.get("uses_source", False)
        if not isinstance(uses_source, bool):
            raise BadInputError(where, index, "uses_source", f"entry {name!r}: uses_source must be true or false")
        out.append(FactorDefinition(name, description, question, rubric, binary, _tasks(entry, where, index),
                                    version, uses_source))
    return out


def load_definitions(uri: str) -> list[FactorDefinition]:
    """The definitions of a factor file (local or s3://)."""
    return parse_definitions(storage.read_yaml(uri, "factor file"), uri)


def load_factor_file(uri: str) -> list[Factor]:
    """The factors of a factor file, ready for the annotate stage."""
    return [to_factor(d) for d in load_definitions(uri)]


def dump_definitions(defs: Sequence[FactorDefinition]) -> str:
    """A factor file (YAML text) holding ``defs``: ``load_definitions`` reads it back unchanged."""
    import yaml

    return yaml.safe_dump({"factors": [d.as_yaml_entry() for d in defs]}, sort_keys=False, allow_unicode=True,
                          width=110)


def with_user_factors(names: list[str] | None, user: list[Factor]) -> tuple[list[str] | None, list[Factor]]:
    """Split requested factor names into (built-in names, user factors): with no names, every user factor
    and None (the stage's default built-ins); with names, the user factors named and the other names (maybe
    none) for the registry."""
    if not names:
        return None, list(user)
    by_name = {f.name: f for f in user}
    return [n for n in names if n not in by_name], [by_name[n] for n in names if n in by_name]
