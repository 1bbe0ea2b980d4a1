"""Endpoints YAML."""

from __future__ import annotations

import pytest

from profile_dist.llm.endpoints import EndpointConfigError, Price, get_endpoint, load_endpoints

YAML = """
endpoints:
  judge:
    base_url: http://127.0.0.1:8000/v1
    model: gpt-4o-2024-08-06
    api_key_env: PD_TEST_KEY
    rpm: 500
    tpm: 200000
    max_concurrency: 64
    params: {temperature: 0}
    price_per_1k: {input: 0.0025, output: 0.01}
  local:
    base_url: http://127.0.0.1:8001/v1
    model: llama
    api_key_env: null
"""


def write(tmp_path, text):
    path = tmp_path / "endpoints.yaml"
    path.write_text(text)
    return path


def test_load_and_pick(tmp_path, monkeypatch):
    path = write(tmp_path, YAML)
    eps = load_endpoints(path)
    judge = eps["judge"]
    assert (judge.rpm, judge.tpm, judge.max_concurrency, judge.params) == (500, 200000, 64, {"temperature": 0})
    assert judge.price_per_1k == Price(0.0025, 0.01)
    assert judge.price_per_1k.cost(1000, 2000) == pytest.approx(0.0225)
    assert eps["local"].rpm is None and eps["local"].api_key() == "EMPTY"
    monkeypatch.setenv("PROFILE_ENDPOINTS", str(path))
    assert get_endpoint("judge").model == "gpt-4o-2024-08-06"
    monkeypatch.setenv("PD_TEST_KEY", "sk-secret")
    assert judge.api_key() == "sk-secret"
    assert judge.limiter_id == get_endpoint("judge").limiter_id != eps["local"].limiter_id


def test_missing_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("PD_TEST_KEY", raising=False)
    judge = load_endpoints(write(tmp_path, YAML))["judge"]
    with pytest.raises(EndpointConfigError, match="PD_TEST_KEY is not set"):
        judge.api_key()


@pytest.mark.parametrize("text, message", [
    ("endpoints: {j: {base_url: u, model: m, rmp: 5}}", "unknown keys \\['rmp'\\]"),
    ("endpoints: {j: {base_url: u}}", "missing \\['model'\\]"),
    ("endpoints: {j: {base_url: u, model: m, api_key: sk-x}}", "environment variable"),
    ("endpoints: {j: {base_url: u, model: m, rpm: 0}}", "rpm must be positive"),
    ("endpoints: {j: {base_url: u, model: m, structured: xml}}", "structured must be"),
    ("nothing: here", "top-level 'endpoints:'"),
])
def test_config_errors(tmp_path, text, message):
    with pytest.raises(EndpointConfigError, match=message):
        load_endpoints(write(tmp_path, text))


def test_unknown_name_and_no_file(tmp_path, monkeypatch):
    with pytest.raises(EndpointConfigError, match="no endpoint 'nope'; defined: \\['judge', 'local'\\]"):
        get_endpoint("nope", write(tmp_path, YAML))
    monkeypatch.delenv("PROFILE_ENDPOINTS", raising=False)
    with pytest.raises(EndpointConfigError, match="--endpoints"):
        load_endpoints()
