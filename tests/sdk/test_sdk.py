"""The official `openai` Python SDK, unmodified, pointed at the real gateway binary.

Each test states one thing a client application relies on (PROTOCOL.md §11). Fixtures are in
conftest.py: `client` (max_retries=2, like an application's default), `counting_client` (also
records each HTTP request it sends), `fake_upstream` (records each request the gateway sends).
"""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from conftest import CLIENT_KEY, CONFIGURED_MODELS, CUT_STREAM_WORDS, UPSTREAM_KEY

USER_TEXT = "Please summarise why a gateway keeps applications simple"
MESSAGES = [{"role": "user", "content": USER_TEXT}]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
# What the mock fills in for WEATHER_TOOL: the first 5 words of the user text, 1, true.
EXPECTED_WEATHER_ARGUMENTS = {
    "city": " ".join(USER_TEXT.split()[:5]),
    "days": 1,
    "metric": True,
}


def collect_stream(stream) -> list[ChatCompletionChunk]:
    """Every chunk of a stream; bounded because the client timeout bounds each read."""
    chunks = []
    with stream:
        for chunk in stream:
            chunks.append(chunk)
            assert len(chunks) < 10_000, "stream does not end"
    return chunks


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(
        choice.delta.content or "" for chunk in chunks for choice in chunk.choices
    )


# --------------------------------------------------------------------------------------------
# Completions, streamed and not
# --------------------------------------------------------------------------------------------


def test_non_streaming_completion_parses(client):
    completion = client.chat.completions.create(model="demo-fast", messages=MESSAGES)

    assert isinstance(completion, ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.id
    assert completion.created > 0
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert not choice.message.tool_calls
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_the_same_messages_give_the_same_answer(client):
    first = client.chat.completions.create(model="demo-fast", messages=MESSAGES)
    second = client.chat.completions.create(model="demo-fast", messages=MESSAGES)
    other = client.chat.completions.create(
        model="demo-fast", messages=[{"role": "user", "content": "Something else entirely"}]
    )

    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content


def test_streaming_assembles_the_same_text_as_non_streaming(client):
    whole = client.chat.completions.create(model="demo-fast", messages=MESSAGES)
    chunks = collect_stream(
        client.chat.completions.create(model="demo-fast", messages=MESSAGES, stream=True)
    )

    assert chunks, "the stream carried no chunk"
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1, "every chunk of one completion has the same id"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert text_of(chunks) == whole.choices[0].message.content


def test_stream_usage_chunk_only_when_asked(client):
    whole = client.chat.completions.create(model="demo-fast", messages=MESSAGES)

    without = collect_stream(
        client.chat.completions.create(model="demo-fast", messages=MESSAGES, stream=True)
    )
    assert all(c.choices for c in without), "no empty-choices chunk unless include_usage"
    assert all(c.usage is None for c in without)

    with_usage = collect_stream(
        client.chat.completions.create(
            model="demo-fast",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = with_usage[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert last.usage.model_dump() == whole.usage.model_dump()
    assert all(c.usage is None for c in with_usage[:-1]), "usage only on the final chunk"
    assert text_of(with_usage) == whole.choices[0].message.content


def test_n_gives_n_choices_with_their_own_indexes(client):
    completion = client.chat.completions.create(model="demo-fast", messages=MESSAGES, n=3)

    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content for c in completion.choices)
    assert all(c.finish_reason == "stop" for c in completion.choices)


def test_max_tokens_truncates_with_finish_reason_length(client):
    completion = client.chat.completions.create(
        model="demo-fast", messages=MESSAGES, max_tokens=3
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert len(choice.message.content.split()) == 3
    assert completion.usage.completion_tokens == 3


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------


def test_tool_call_round_trip(client):
    first = client.chat.completions.create(
        model="demo-fast", messages=MESSAGES, tools=[WEATHER_TOOL, TIME_TOOL]
    )

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert call.id
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == EXPECTED_WEATHER_ARGUMENTS

    tool_result = "Sunny and 21 degrees in the city"
    second = client.chat.completions.create(
        model="demo-fast",
        messages=[
            *MESSAGES,
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": tool_result},
        ],
        tools=[WEATHER_TOOL, TIME_TOOL],
    )

    answer = second.choices[0]
    assert answer.finish_reason == "stop"
    assert not answer.message.tool_calls
    assert answer.message.content.startswith(f"Thanks, the tool said: {tool_result}")


def test_tool_choice_names_the_tool_that_is_called(client):
    completion = client.chat.completions.create(
        model="demo-fast",
        messages=MESSAGES,
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )

    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"zone": EXPECTED_WEATHER_ARGUMENTS["city"]}


def test_streamed_tool_call_arguments_assemble_to_json(client):
    whole = client.chat.completions.create(
        model="demo-fast", messages=MESSAGES, tools=[WEATHER_TOOL]
    )
    chunks = collect_stream(
        client.chat.completions.create(
            model="demo-fast", messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
        )
    )

    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]

    assert finishes == ["tool_calls"]
    assert list(calls) == [0]
    expected = whole.choices[0].message.tool_calls[0]
    assert calls[0]["id"] == expected.id
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == EXPECTED_WEATHER_ARGUMENTS
    assert calls[0]["arguments"] == expected.function.arguments


# --------------------------------------------------------------------------------------------
# Models, errors, headers
# --------------------------------------------------------------------------------------------


def test_models_list_contains_configured_aliases(client):
    models = list(client.models.list())

    assert sorted(m.id for m in models) == sorted(CONFIGURED_MODELS)
    assert all(m.object == "model" for m in models)
    assert all(isinstance(m.created, int) and m.owned_by for m in models)


def test_unknown_model_raises_not_found(counting_client):
    with pytest.raises(openai.NotFoundError) as caught:
        counting_client.sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)

    err = caught.value
    assert err.status_code == 404
    assert err.code == "model_not_found"
    assert err.type == "invalid_request_error"
    assert err.param == "model"
    assert "no-such-model" in err.message
    assert err.request_id, "error responses carry x-request-id too"
    assert len(counting_client.sent) == 1, "a 404 is never retried"


def test_empty_messages_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="demo-fast", messages=[])

    err = caught.value
    assert err.status_code == 400
    assert err.type == "invalid_request_error"
    assert err.param == "messages"
    assert err.request_id


def test_request_id_is_exposed(client):
    raw = client.chat.completions.with_raw_response.create(model="demo-fast", messages=MESSAGES)
    completion = raw.parse()

    request_id = raw.headers.get("x-request-id")
    assert request_id
    assert raw.request_id == request_id
    assert completion._request_id == request_id


def test_provenance_headers_name_provider_route_and_attempts(client):
    raw = client.chat.completions.with_raw_response.create(model="demo-fast", messages=MESSAGES)

    assert raw.http_response.status_code == 200
    assert raw.headers.get("x-ballast-provider") == "mock"
    assert raw.headers.get("x-ballast-route") == "primary"
    assert raw.headers.get("x-ballast-attempts") == "1"
    assert raw.headers.get("x-ballast-cache") == "off"


def test_client_request_id_is_kept_and_passed_upstream(client, fake_upstream):
    before = len(fake_upstream.seen("ok"))
    completion = client.chat.completions.create(
        model="fake-ok", messages=MESSAGES, extra_headers={"x-request-id": "sdk-trace-42"}
    )

    assert completion._request_id == "sdk-trace-42"
    assert completion.choices[0].message.content == "Fake upstream says hi."
    seen = fake_upstream.seen("ok")[before:]
    assert len(seen) == 1
    assert seen[0].headers.get("x-request-id") == "sdk-trace-42"


def test_upstream_sees_the_gateway_key_and_model_never_the_clients(client, fake_upstream):
    before = len(fake_upstream.seen("ok"))
    client.chat.completions.create(model="fake-ok", messages=MESSAGES, temperature=0.25)

    seen = fake_upstream.seen("ok")[before:]
    assert len(seen) == 1
    request = seen[0]
    assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert CLIENT_KEY not in json.dumps(request.headers)
    assert request.body["model"] == "upstream-model-ok"
    assert request.body["messages"] == MESSAGES
    assert request.body["temperature"] == 0.25


def test_streaming_through_an_openai_upstream_ends_cleanly(client):
    chunks = collect_stream(
        client.chat.completions.create(model="fake-ok", messages=MESSAGES, stream=True)
    )

    assert text_of(chunks) == "Fake upstream says hi."
    assert chunks[-1].choices[0].finish_reason == "stop"


# --------------------------------------------------------------------------------------------
# Failures: the gateway is the one retry layer, and a broken stream is never silent
# --------------------------------------------------------------------------------------------


def test_gateway_5xx_is_not_retried_by_sdk(counting_client, fake_upstream):
    before = len(fake_upstream.seen("fail500"))

    # The gateway answers 503; the SDK maps every status >= 500 to InternalServerError.
    with pytest.raises(openai.InternalServerError) as caught:
        counting_client.sdk.chat.completions.create(model="fake-500", messages=MESSAGES)

    err = caught.value
    assert err.status_code == 503
    assert err.code == "upstream_unavailable"
    assert err.type == "api_error"
    assert err.response.headers.get("x-should-retry") == "false"
    assert err.request_id
    assert len(counting_client.sent) == 1, f"the SDK retried: {counting_client.sent}"
    # One SDK request, and (with no gateway retries configured) one upstream request.
    assert len(fake_upstream.seen("fail500")) - before == 1


def test_mid_stream_cut_raises_api_error(client, fake_upstream):
    before = len(fake_upstream.seen("cut"))
    received: list[str] = []

    stream = client.chat.completions.create(model="fake-cut", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) as caught:
        with stream:
            for chunk in stream:
                received.extend(ch.delta.content or "" for ch in chunk.choices)
                assert len(received) < 100, "stream does not end"

    err = caught.value
    assert not isinstance(err, openai.APIStatusError), "the stream had started with a 200"
    assert err.code == "upstream_stream_error"
    assert "".join(received) == "".join(CUT_STREAM_WORDS), "chunks before the cut are delivered"
    assert len(fake_upstream.seen("cut")) - before == 1
