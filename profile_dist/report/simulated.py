"""What in a report came from a simulated model (an endpoint with ``simulated: true``, e.g. the demo's).

The stages record it, the report only reads it back: judge and generate manifests carry ``simulated`` on
each spend record (``llm``), and an annotations shard scored through a simulated endpoint carries
``simulated: true`` in its manifest. From those, results.json gets::

    "simulated": {"models": [...], "sources": ["labeler/setting", ...], "factors": [...]}

``sources``: the model sources whose labels a simulated model made (its judge or writer role);
``factors``: the LLM factors with at least one value scored by a simulated model (so a factor is labelled
even where a real model scored the rest). report.md, report.html and the demo's terminal mark each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profile_dist import storage

MARK = " (simulated)"
#: Roles whose model makes a source's labels (a checker rates, it does not label pairs).
LABELLING_ROLES = ("judge", "generator")


def collect_simulated(reduce_manifest: dict[str, Any]) -> dict[str, list[str]]:
    """The ``simulated`` entry of results.json, from the stage manifests of the reduce's inputs."""
    models: set[str] = set()
    sources: set[str] = set()
    factors: set[str] = set()
    for directory in reduce_manifest.get("pairs", []):
        path = storage.join(directory, "_manifest.json")
        if not storage.exists(path):
            continue
        manifest = storage.read_json(path)
        for record in manifest.get("llm") or []:
            if not (isinstance(record, dict) and record.get("simulated")):
                continue
            models.add(str(record.get("model")))
            if record.get("role") in LABELLING_ROLES and manifest.get("labeler") and manifest.get("setting"):
                sources.add(f"{manifest['labeler']}/{manifest['setting']}")
    for directory in reduce_manifest.get("annotations", []):
        for path in storage.list_files(storage.join(directory, "_manifests"), suffix=".json"):
            manifest = storage.read_json(path)
            if manifest.get("simulated"):
                models.add(str(manifest.get("model")))
                factors.update(manifest.get("factors") or {})
    return {"models": sorted(models), "sources": sorted(sources), "factors": sorted(factors)}


@dataclass(frozen=True)
class Simulated:
    """Labels for names that came from a simulated model; every method returns the name unchanged otherwise."""

    models: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    factors: frozenset[str] = frozenset()

    @classmethod
    def of(cls, results: dict[str, Any]) -> "Simulated":
        entry = results.get("simulated") or {}
        return cls(frozenset(entry.get("models") or ()), frozenset(entry.get("sources") or ()),
                   frozenset(entry.get("factors") or ()))

    def __bool__(self) -> bool:
        return bool(self.models or self.sources or self.factors)

    def model(self, name: str) -> str:
        return name + MARK if name in self.models else name

    def source(self, label: str) -> str:
        return label + MARK if label in self.sources else label

    def factor(self, name: str) -> str:
        return name + MARK if name in self.factors else name

    def banner(self) -> str:
        """One paragraph saying what is simulated ('' when nothing is)."""
        if not self:
            return ""
        parts = [f"Simulated: {', '.join(sorted(self.models))} "
                 f"{'is a simulated model' if len(self.models) == 1 else 'are simulated models'} "
                 "(the project's loopback test server, profile_dist/testing), not real LLMs."]
        if self.sources:
            parts.append(f"Sources labelled by a simulated model: {', '.join(sorted(self.sources))}.")
        if self.factors:
            parts.append(f"LLM factors scored by a simulated model: {', '.join(sorted(self.factors))}.")
        parts.append("Everything marked (simulated) follows documented rules, not a model's judgment: "
                     "read it as a demonstration of the method, not as a finding about any LLM.")
        return " ".join(parts)
