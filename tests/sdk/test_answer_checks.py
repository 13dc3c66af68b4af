"""A 200 is not an answer (SPEC §4 "Answer checks", "Context windows"), seen from the official
`openai` and `anthropic` Python SDKs, unmodified.

This module's gateway runs on the offline mock only: `checked` has a primary told to answer
badly (`bad_answer`) and a sound backup, with every answer check on; `short-window` has one
target whose declared `context_window` is 1,000 tokens. The SDKs must get the backup's good
answer, whole and streamed, and for a prompt no window fits the error each SDK (and the tools
built on it: LangChain, Claude Code) recognises as a context overflow.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from conftest import CLIENT_KEY, CLIENT_TIMEOUT_S, _serve

CONFIG = """\
server: { listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }
cache: { backend: none }
providers:
  sound: { kind: mock, latency: 5ms }
  empty: { kind: mock, latency: 5ms, bad_answer: empty, retry: { max_retries: 0 } }
  refusing: { kind: mock, latency: 5ms, bad_answer: refusal, retry: { max_retries: 0 } }
  prose: { kind: mock, latency: 5ms, bad_answer: invalid_json, retry: { max_retries: 0 } }
models:
  checked-empty:
    answer_checks: [empty, invalid_json, refusal]
    targets: [ { provider: empty, model: m }, { provider: sound, model: m } ]
  checked-refusal:
    answer_checks: [empty, invalid_json, refusal]
    targets: [ { provider: refusing, model: m }, { provider: sound, model: m } ]
  checked-json:
    answer_checks: [empty, invalid_json, refusal]
    targets: [ { provider: prose, model: m }, { provider: sound, model: m } ]
  unchecked:
    targets: [ { provider: empty, model: m }, { provider: sound, model: m } ]
  short-window:
    targets: [ { provider: sound, model: m, context_window: 1000 } ]
"""

MAX_EVENTS = 500
LONG_PROMPT = " word" * 5_000  # about 5,000 o200k tokens


@pytest.fixture(scope="module")
def checks_gateway(tmp_path_factory):
    yield from _serve(CONFIG, tmp_path_factory)


@pytest.fixture(scope="module")
def client(checks_gateway):
    sdk = openai.OpenAI(
        base_url=checks_gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture(scope="module")
def claude(checks_gateway):
    sdk = anthropic.Anthropic(
        base_url=f"http://{checks_gateway.addr}", api_key=CLIENT_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )
    try:
        yield sdk
    finally:
        sdk.close()


def ask(text: str = "Tell me about gateways") -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("model", ["checked-empty", "checked-refusal"])
def test_a_bad_primary_answer_is_replaced_by_the_backups_good_one(client, model):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=ask())
    completion = raw.parse()

    assert raw.headers["x-ballast-provider"] == "sound"
    assert raw.headers["x-ballast-route"] == "failover"
    message = completion.choices[0].message
    assert message.content and message.content.strip()
    assert message.refusal is None


def test_without_checks_the_empty_answer_reaches_the_client_as_it_was(client):
    raw = client.chat.completions.with_raw_response.create(model="unchecked", messages=ask())

    assert raw.headers["x-ballast-provider"] == "empty"
    assert raw.parse().choices[0].message.content == ""


def test_a_streamed_empty_answer_is_failed_over_before_the_sdk_sees_a_chunk(client):
    stream = client.chat.completions.create(model="checked-empty", messages=ask(), stream=True)
    texts = []
    with stream:
        for n, chunk in enumerate(stream):
            assert n < MAX_EVENTS
            texts.extend(choice.delta.content or "" for choice in chunk.choices)

    assert "".join(texts).strip(), "the backup's words, not an empty stream"


def test_prose_where_json_was_asked_for_is_replaced_by_json(client):
    schema = {
        "type": "object",
        "properties": {"topic": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["topic", "score"],
        "additionalProperties": False,
    }
    raw = client.chat.completions.with_raw_response.create(
        model="checked-json",
        messages=ask(),
        response_format={"type": "json_schema", "json_schema": {"name": "rating", "strict": True, "schema": schema}},
    )

    assert raw.headers["x-ballast-provider"] == "sound"
    answer = json.loads(raw.parse().choices[0].message.content)
    assert set(answer) == {"topic", "score"} and isinstance(answer["score"], int)


def test_a_refusal_through_the_responses_api_is_failed_over_too(client):
    raw = client.responses.with_raw_response.create(model="checked-refusal", input="Tell me about gateways")
    response = raw.parse()

    assert raw.headers["x-ballast-provider"] == "sound"
    assert response.output_text.strip()


def test_a_prompt_no_window_fits_is_openais_context_length_exceeded(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="short-window", messages=ask(LONG_PROMPT))

    error = raised.value
    assert error.code == "context_length_exceeded"
    assert "maximum context length is 1000 tokens" in error.message


def test_a_prompt_no_window_fits_is_anthropics_prompt_is_too_long(claude):
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(model="short-window", max_tokens=100, messages=ask(LONG_PROMPT))

    error = raised.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "invalid_request_error"
    assert error.body["error"]["message"].startswith("prompt is too long: ")


def test_a_short_prompt_on_the_same_model_is_answered(client):
    completion = client.chat.completions.create(model="short-window", messages=ask("Hi"), max_tokens=50)

    assert completion.choices[0].message.content
