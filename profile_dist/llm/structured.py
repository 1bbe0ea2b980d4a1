"""Structured replies: ask for JSON matching a schema, validate what comes back, re-ask with the error.

``response_format`` is ``json_schema`` (strict) where the endpoint supports it and ``json_object`` (JSON
mode) otherwise; in JSON mode the schema is spelled out in an extra system message, since the model is not
constrained by it. Every reply is validated either way: providers' guarantees have gaps, and
OpenAI-compatible servers vary. An invalid reply is re-asked with the validation error (see
:func:`reask_messages`) up to the endpoint's ``max_reasks``; a reply cut by ``finish_reason=length`` is not
re-asked with the same token cap (it would be cut again) but asked once more with twice the cap, then
recorded as ``length`` (see :mod:`profile_dist.llm.worker`).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

Message = dict[str, str]

_by_text: dict[str, Any] = {}
_by_id: dict[int, tuple[dict[str, Any], Any]] = {}


def response_format(mode: str, schema: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": _schema_name(name), "schema": schema, "strict": True}}
    return {"type": "json_object"}


def _schema_name(name: str) -> str:
    # OpenAI: a-z, A-Z, 0-9, underscores and dashes, at most 64 characters.
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)[:64]
    return cleaned or "reply"


def json_mode_messages(messages: list[Message], schema: dict[str, Any]) -> list[Message]:
    """Messages for JSON mode: the schema goes into the prompt (which must mention JSON anyway)."""
    hint = ("Reply with a single JSON object and nothing else. It must match this JSON schema:\n"
            + json.dumps(schema, sort_keys=True))
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{hint}"}, *messages[1:]]
    return [{"role": "system", "content": hint}, *messages]


def _validator(schema: dict[str, Any]) -> Any:
    # Building a validator checks the schema against its metaschema (milliseconds): do it once per
    # distinct schema. Requests arrive with their own copies of it, hence the text key; the identity
    # key (its object kept alive beside it) skips even the dumps for the copies already seen.
    hit = _by_id.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    text = json.dumps(schema, sort_keys=True)
    validator = _by_text.get(text)
    if validator is None:
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        validator = _by_text[text] = cls(schema)
    if len(_by_id) > 4096:
        _by_id.clear()
    _by_id[id(schema)] = (schema, validator)
    return validator


def validate_reply(text: str | None, schema: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(parsed value, None) for a valid reply, else (None, the reason in one line)."""
    if schema is None:
        return {"text": text or ""}, None
    if not text or not text.strip():
        return None, "the reply is empty"
    stripped = text.strip()
    if stripped.startswith("```"):  # some servers fence JSON even in JSON mode
        stripped = stripped.strip("`").removeprefix("json").strip()
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError as exc:
        return None, f"the reply is not valid JSON ({exc.msg} at position {exc.pos})"
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return None, f"the reply does not match the schema at {where}: {error.message}"
    return value, None


def reask_messages(messages: list[Message], reply: str, error: str) -> list[Message]:
    """The conversation so far plus the invalid reply and what was wrong with it."""
    return [*messages,
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"That reply was invalid: {error}. "
                                        "Answer again with only a JSON object that matches the schema."}]


def is_response_format_rejection(status: int, message: str) -> bool:
    """A 400 that says the server does not do json_schema (fall back to JSON mode, don't fail the row)."""
    text = message.lower()
    return status == 400 and ("response_format" in text or "json_schema" in text)
