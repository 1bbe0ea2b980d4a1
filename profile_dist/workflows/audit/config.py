"""The nightly audit's YAML config, validated up front: every error names the file and the key.

```yaml
output: s3://my-bucket/profile-audit   # ingest/, annotations/ (caches) and audits/date=YYYY-MM-DD/
corpora:
  - name: hh_rlhf
    format: hh_rlhf
    input: s3://my-bucket/corpora/hh-rlhf/        # ends in "/": every file under the prefix
    suffix: .jsonl.gz                             # only these files of a prefix (default: all)
    task: helpful
  - name: judged
    format: pairs
    input: s3://my-bucket/judgments/date={date}/  # {date} is the audit date
models: []            # endpoint names (see endpoints); the judge and generate stages run for each
endpoints: null       # the endpoints file (default $PROFILE_ENDPOINTS); required when models is set
factors: null         # rule factors to annotate (default: all)
factor_file: null     # user-defined LLM factors (docs/discovery.md), scored by endpoint annotate_llm
annotate_llm: null    # endpoint of the annotator; required with factor_file
reduce: {bootstrap: 200, seed: 0, confidence: 0.95, alignment_factors: task}  # task (default), all, or names
drift: {reference: human, max_drop: {kendall_tau_b: 0.2, sign_agreement: 0.2, mean_abs_diff: 0.1}, require_significant: true}
```
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any


from profile_dist import schema, storage
from profile_dist.workflows.audit.drift import DriftPolicy
from profile_dist.errors import ConfigError
from profile_dist.sources import get_source
from profile_dist.factor_sets import AlignmentFactors
from profile_dist.user_factors import load_definitions

DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_ROWS_PER_SHARD = 100_000


@dataclass(frozen=True)
class AuditCorpus:
    name: str
    format: str
    inputs: tuple[str, ...]  # files, or directories/prefixes ending in "/"; may contain {date}
    suffix: str = ""
    task: str | None = None
    dataset: str | None = None
    skip_bad_rows: bool = False

    def inputs_for(self, date: str) -> list[str]:
        return [uri.replace("{date}", date) for uri in self.inputs]


@dataclass(frozen=True)
class AuditConfig:
    path: str  # where the config was read from (for messages)
    output: str
    corpora: tuple[AuditCorpus, ...]
    models: tuple[str, ...] = ()
    endpoints: str | None = None
    factors: tuple[str, ...] | None = None
    bootstrap: int = 200
    seed: int = 0
    confidence: float = 0.95
    alignment_factors: str | tuple[str, ...] | None = None  # the reduce's factor set ("task", "all", names)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    address: str | None = None
    factor_file: str | None = None
    annotate_llm: str | None = None


def check_date(date: str) -> str:
    """A real calendar date written YYYY-MM-DD (the partition name)."""
    import datetime

    if not DATE_PATTERN.match(date or ""):
        raise ConfigError(f"--date {date!r}: expected YYYY-MM-DD")
    try:
        datetime.date.fromisoformat(date)
    except ValueError as exc:
        raise ConfigError(f"--date {date!r}: {exc}") from None
    return date


def _keys(section: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(sorted(allowed))}")
    return section


def _typed(section: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    value = section.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"{where}.{key}: expected {name}, got {value!r}")
    return value


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{where}: expected a non-empty string or a list of non-empty strings, got {value!r}")
    return tuple(v.strip() for v in items)


def _corpus(raw: Any, where: str) -> AuditCorpus:
    section = _keys(raw, {"name", "format", "input", "suffix", "task", "dataset", "skip_bad_rows"}, where)
    for key in ("name", "format", "input"):
        if key not in section:
            raise ConfigError(f"{where}: missing key {key!r}")
    name = _typed(section, "name", str, where, None)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        raise ConfigError(f"{where}.name: {name!r} must be letters, digits, '_', '.' or '-' (it names a directory)")
    try:
        get_source(section["format"])
    except KeyError as exc:
        raise ConfigError(f"{where}.format: {exc.args[0]}") from None
    return AuditCorpus(
        name=name, format=section["format"], inputs=_string_list(section["input"], f"{where}.input"),
        suffix=_typed(section, "suffix", str, where, ""), task=_typed(section, "task", str, where, None),
        dataset=_typed(section, "dataset", str, where, None),
        skip_bad_rows=_typed(section, "skip_bad_rows", bool, where, False),
    )


def _drift(raw: Any, where: str) -> DriftPolicy:
    section = _keys(raw, {"reference", "max_drop", "require_significant"}, where)
    defaults = DriftPolicy()
    max_drop = defaults.max_drop
    if "max_drop" in section:
        value = section["max_drop"]
        if not isinstance(value, dict) or not value:
            raise ConfigError(f"{where}.max_drop: expected a mapping of alignment metric -> largest tolerated drop, e.g. {{kendall_tau_b: 0.2}}")
        for metric, limit in value.items():
            if metric not in schema.ALIGNMENT_METRICS:
                raise ConfigError(f"{where}.max_drop: unknown metric {metric!r}; expected some of {', '.join(schema.ALIGNMENT_METRICS)}")
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit < 0:
                raise ConfigError(f"{where}.max_drop.{metric}: expected a number 0 or more, got {limit!r}")
        max_drop = tuple((str(m), float(v)) for m, v in value.items())
    return DriftPolicy(
        reference=_typed(section, "reference", str, where, defaults.reference), max_drop=max_drop,
        require_significant=_typed(section, "require_significant", bool, where, defaults.require_significant),
    )


def _alignment_factors(value: Any, where: str) -> str | tuple[str, ...] | None:
    try:
        AlignmentFactors.parse(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value if value is None or isinstance(value, str) else tuple(value)


def parse_audit_config(raw: Any, where: str) -> AuditConfig:
    top = _keys(raw, {"output", "corpora", "models", "endpoints", "factors", "reduce", "drift", "rows_per_shard", "address",
                     "factor_file", "annotate_llm"}, where)
    if not top:
        raise ConfigError(f"{where}: empty config; expected at least 'output' and 'corpora'")
    if "output" not in top:
        raise ConfigError(f"{where}: missing key 'output' (where ingest caches and dated audits are written)")
    output = _typed(top, "output", str, where, None)
    corpora_raw = top.get("corpora")
    if not isinstance(corpora_raw, list) or not corpora_raw:
        raise ConfigError(f"{where}: 'corpora' must be a non-empty list, each with name, format and input")
    corpora = tuple(_corpus(entry, f"{where}: corpora[{i}]") for i, entry in enumerate(corpora_raw))
    names = [c.name for c in corpora]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: corpus names must be unique, got {names}")
    models_raw = top.get("models") or []
    if not isinstance(models_raw, list) or not all(isinstance(m, str) and m.strip() for m in models_raw):
        raise ConfigError(f"{where}.models: expected a list of endpoint names, got {models_raw!r}")
    models = tuple(m.strip() for m in models_raw)
    if len(set(models)) != len(models):
        raise ConfigError(f"{where}.models: endpoint names must be unique, got {list(models)}")
    factors_raw = top.get("factors")
    factors = None if factors_raw is None else _string_list(factors_raw, f"{where}.factors")
    reduce_cfg = _keys(top.get("reduce"), {"bootstrap", "seed", "confidence", "alignment_factors"}, f"{where}: reduce")
    bootstrap = _typed(reduce_cfg, "bootstrap", int, f"{where}: reduce", 200)
    if bootstrap < 1:
        raise ConfigError(f"{where}: reduce.bootstrap must be 1 or more: the drift CIs come from the replicates")
    confidence = float(_typed(reduce_cfg, "confidence", (int, float), f"{where}: reduce", 0.95))
    if not 0 < confidence < 1:
        raise ConfigError(f"{where}: reduce.confidence must be between 0 and 1, got {confidence}")
    rows_per_shard = _typed(top, "rows_per_shard", int, where, DEFAULT_ROWS_PER_SHARD)
    if rows_per_shard < 1:
        raise ConfigError(f"{where}.rows_per_shard: must be positive, got {rows_per_shard}")
    return AuditConfig(
        path=where, output=output, corpora=corpora, models=models, endpoints=_typed(top, "endpoints", str, where, None),
        factors=factors, bootstrap=bootstrap, seed=_typed(reduce_cfg, "seed", int, f"{where}: reduce", 0),
        confidence=confidence, alignment_factors=_alignment_factors(reduce_cfg.get("alignment_factors"), f"{where}: reduce"),
        drift=_drift(top.get("drift"), f"{where}: drift"), rows_per_shard=rows_per_shard,
        address=_typed(top, "address", str, where, None),
        factor_file=_factor_file(top, where), annotate_llm=_typed(top, "annotate_llm", str, where, None),
    )


def _factor_file(top: dict, where: str) -> str | None:
    """The factor file, validated now (a bad entry fails before the audit starts); it needs annotate_llm."""
    path = _typed(top, "factor_file", str, where, None)
    if path is None:
        return None
    if not top.get("annotate_llm"):
        raise ConfigError(f"{where}.factor_file: user-defined factors are LLM factors; set annotate_llm to an endpoint")
    load_definitions(path)
    return path


def load_audit_config(path: str) -> AuditConfig:
    return parse_audit_config(storage.read_yaml(path, "config file"), path)


def check_models(config: AuditConfig) -> None:
    """Every model names an endpoint of the endpoints file (format of profile_dist.llm.endpoints)."""
    if not config.models:
        return
    path = config.endpoints or os.environ.get("PROFILE_ENDPOINTS")
    if not path:
        raise ConfigError(f"{config.path}: models {', '.join(config.models)} need an endpoints file: set 'endpoints' or $PROFILE_ENDPOINTS")
    doc = storage.read_yaml(path, f"endpoints file (named by {config.path})")
    entries = doc.get("endpoints") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f"{path}: expected a top-level 'endpoints:' mapping of name -> settings")
    missing = [m for m in config.models if m not in entries]
    if missing:
        raise ConfigError(f"{config.path}.models: no endpoint named {', '.join(missing)} in {path} (defined: {', '.join(sorted(map(str, entries)))})")
