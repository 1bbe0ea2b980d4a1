"""Reply validation, re-ask messages and response formats."""

from __future__ import annotations

from profile_dist.llm.structured import (is_response_format_rejection, json_mode_messages, reask_messages,
                                         response_format, validate_reply)

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
          "required": ["score"], "additionalProperties": False}


def test_valid_reply():
    assert validate_reply('{"score": 4}', SCHEMA) == ({"score": 4}, None)
    assert validate_reply('```json\n{"score": 2}\n```', SCHEMA) == ({"score": 2}, None)


def test_invalid_replies_say_why():
    cases = {
        "": "empty",
        '{"score": 4': "not valid JSON",
        '{"score": "high"}': "at score",
        '{"score": 9}': "9 is greater than the maximum of 5",
        '{"score": 3, "why": "x"}': "Additional properties",
        "Sure! 4": "not valid JSON",
    }
    for text, expected in cases.items():
        value, error = validate_reply(text, SCHEMA)
        assert value is None and expected in error, (text, error)


def test_no_schema_accepts_text():
    assert validate_reply("anything", None) == ({"text": "anything"}, None)


def test_reask_appends_the_reply_and_the_error():
    messages = [{"role": "user", "content": "rate"}]
    out = reask_messages(messages, '{"score": 9}', "too high")
    assert out[:1] == messages and messages == [{"role": "user", "content": "rate"}]
    assert out[1] == {"role": "assistant", "content": '{"score": 9}'}
    assert out[2]["role"] == "user" and "too high" in out[2]["content"]


def test_response_formats():
    strict = response_format("json_schema", SCHEMA, "fluency v1!")
    assert strict == {"type": "json_schema", "json_schema": {"name": "fluency_v1_", "schema": SCHEMA, "strict": True}}
    assert response_format("json_object", SCHEMA, "x") == {"type": "json_object"}
    assert response_format("json_schema", None, "x") is None
    msgs = json_mode_messages([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], SCHEMA)
    assert len(msgs) == 2 and msgs[0]["content"].startswith("S\n\n") and '"maximum": 5' in msgs[0]["content"]


def test_rejection_detection():
    assert is_response_format_rejection(400, "response_format of type json_schema is not supported")
    assert not is_response_format_rejection(400, "maximum context length")
    assert not is_response_format_rejection(404, "json_schema")


def test_equal_schema_copies_share_one_validator():
    from profile_dist.llm import structured
    import copy

    before = len(structured._by_text)
    for _ in range(3):
        assert validate_reply('{"score": 1}', copy.deepcopy(SCHEMA)) == ({"score": 1}, None)
    assert len(structured._by_text) <= before + 1
