"""The official `openai` Python SDK's Responses API (`client.responses`) against the gateway.

Each test states one thing a client application relies on (PROTOCOL.md §12). On the mock
(`demo-fast`) and on an OpenAI-compatible upstream without the Responses API (`fake-ok`,
`fake-cut`) the gateway translates through chat completions and keeps each conversation by its
response id; on `fake-resp` (an `openai` provider with `native_responses: true`) it passes the
request and the answer, event by event, through. Fixtures are in conftest.py: `client` talks to
a gateway without a cache store (so it keeps no conversation), `kept_client` to one that keeps
them (and caches no answer).
"""

from __future__ import annotations

import json

import openai
import pytest
from openai.types.responses import Response

from conftest import (
    CLIENT_KEY,
    CLIENT_TIMEOUT_S,
    CUT_STREAM_WORDS,
    RESP_ID_PREFIX,
    RESP_MESSAGE_ID,
    RESP_TEXT_DELTAS,
    RESP_USAGE,
    UPSTREAM_KEY,
)

USER_TEXT = "Please summarise why a gateway keeps applications simple"
WEATHER_QUESTION = "What is the weather like in Paris today?"

# A Responses function tool: flat, no `function` wrapper as in chat.
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TOOL_RESULT = "Sunny and 21 degrees in the city"

PERSON_FORMAT = {
    "type": "json_schema",
    "name": "person",
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    },
    "strict": True,
}

# The lifecycle events of a text answer, in the order PROTOCOL.md §12.3 gives.
TEXT_EVENT_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def collect_events(stream) -> list:
    """Every event of a raw stream; bounded because the client timeout bounds each read."""
    events = []
    with stream:
        for event in stream:
            events.append(event)
            assert len(events) < 10_000, "stream does not end"
    return events


def deltas_of(events) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def collapsed_types(events) -> list[str]:
    """The event types in order, runs of the same type written once."""
    types: list[str] = []
    for event in events:
        if not types or types[-1] != event.type:
            types.append(event.type)
    return types


def function_calls(response: Response) -> list:
    return [item for item in response.output if item.type == "function_call"]


# --------------------------------------------------------------------------------------------
# A response, whole and streamed (the mock, translated through chat)
# --------------------------------------------------------------------------------------------


def test_a_response_has_output_text_usage_and_the_x_ballast_headers(client):
    raw = client.responses.with_raw_response.create(model="demo-fast", input=USER_TEXT)
    response = raw.parse()

    assert isinstance(response, Response)
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.created_at > 0
    assert response.error is None
    assert [item.type for item in response.output] == ["message"]
    message = response.output[0]
    assert message.role == "assistant"
    assert message.id
    assert [part.type for part in message.content] == ["output_text"]
    assert response.output_text.strip(), "the answer has text"
    assert response.output_text == message.content[0].text
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0

    assert raw.http_response.status_code == 200
    assert raw.headers.get("x-ballast-provider") == "mock"
    assert raw.headers.get("x-ballast-route") == "primary"
    assert raw.headers.get("x-ballast-attempts") == "1"
    assert raw.headers.get("x-ballast-cache") == "off"
    assert raw.request_id and raw.request_id == raw.headers.get("x-request-id")
    assert response._request_id == raw.request_id


def test_a_streamed_response_starts_with_created_ends_with_completed_and_its_deltas_add_up(
    client,
):
    whole = client.responses.create(model="demo-fast", input=USER_TEXT)
    events = collect_events(client.responses.create(model="demo-fast", input=USER_TEXT, stream=True))

    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert collapsed_types(events) == TEXT_EVENT_ORDER
    assert [e.sequence_number for e in events] == list(range(len(events)))
    lifecycle = [e.response for e in events if e.type.startswith("response.") and hasattr(e, "response")]
    assert len({r.id for r in lifecycle}) == 1, "one response id on every lifecycle event"
    assert events[0].response.status == "in_progress"
    completed = events[-1].response
    assert completed.status == "completed"
    assert deltas_of(events) == completed.output_text
    assert completed.output_text == whole.output_text, "streamed and whole answers agree"
    assert completed.usage.total_tokens == whole.usage.total_tokens
    done = [e for e in events if e.type == "response.output_text.done"]
    assert [e.text for e in done] == [completed.output_text]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.content == [], "an added message is empty (Node's helper needs that)"
    assert {e.item_id for e in events if hasattr(e, "item_id")} == {added.item.id}


def test_the_stream_helper_gives_the_final_response(client):
    texts: list[str] = []
    with client.responses.stream(model="demo-fast", input=USER_TEXT) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                texts.append(event.delta)
            assert len(texts) < 10_000, "stream does not end"
        final = stream.get_final_response()

    assert final.status == "completed"
    assert final.output_text.strip()
    assert final.output_text == "".join(texts)
    assert final.usage.output_tokens > 0


def test_max_output_tokens_makes_an_incomplete_response(client):
    response = client.responses.create(model="demo-fast", input=USER_TEXT, max_output_tokens=16)
    # The mock writes more than 16 words for this question, so the cap cuts it.
    longer = client.responses.create(model="demo-fast", input=USER_TEXT)
    assert longer.usage.output_tokens > 16

    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage.output_tokens == 16
    assert response.output_text


# --------------------------------------------------------------------------------------------
# Function tools
# --------------------------------------------------------------------------------------------


def test_a_function_tool_is_called_and_its_output_sent_by_previous_response_id_is_answered(
    kept_client,
):
    client = kept_client
    first = client.responses.create(model="demo-fast", input=WEATHER_QUESTION, tools=[WEATHER_TOOL])

    calls = function_calls(first)
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert call.call_id and call.id
    assert set(json.loads(call.arguments)) == {"city"}
    assert first.output_text == ""

    second = client.responses.create(
        model="demo-fast",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT}],
        tools=[WEATHER_TOOL],
    )

    assert second.status == "completed"
    assert second.previous_response_id == first.id
    assert not function_calls(second)
    assert second.output_text.startswith(f"Thanks, the tool said: {TOOL_RESULT}")


def test_a_function_tool_output_sent_with_the_whole_input_list_is_answered(client):
    question = [{"role": "user", "content": WEATHER_QUESTION}]
    first = client.responses.create(model="demo-fast", input=question, tools=[WEATHER_TOOL])
    call = function_calls(first)[0]

    second = client.responses.create(
        model="demo-fast",
        input=[
            *question,
            *(item.model_dump(exclude_none=True) for item in first.output),
            {"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT},
        ],
        tools=[WEATHER_TOOL],
    )

    assert not function_calls(second)
    assert second.output_text.startswith(f"Thanks, the tool said: {TOOL_RESULT}")


def test_a_streamed_function_call_adds_up_to_the_whole_ones_arguments(client):
    whole = client.responses.create(model="demo-fast", input=WEATHER_QUESTION, tools=[WEATHER_TOOL])
    events = collect_events(
        client.responses.create(
            model="demo-fast", input=WEATHER_QUESTION, tools=[WEATHER_TOOL], stream=True
        )
    )

    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["function_call"]
    assert added[0].item.arguments == ""
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    expected = function_calls(whole)[0]
    assert arguments == expected.arguments
    assert [e.arguments for e in done] == [expected.arguments]
    final = function_calls(events[-1].response)
    assert [(c.name, c.arguments) for c in final] == [("get_weather", expected.arguments)]


# --------------------------------------------------------------------------------------------
# Conversations kept by response id
# --------------------------------------------------------------------------------------------


def test_previous_response_id_continues_the_conversation_on_the_mock(kept_client):
    client = kept_client
    first = client.responses.create(model="demo-fast", input="My name is Ada.")

    continued = client.responses.create(
        model="demo-fast", input="What is my name?", previous_response_id=first.id
    )
    fresh = client.responses.create(model="demo-fast", input="What is my name?")
    again = client.responses.create(
        model="demo-fast", input="What is my name?", previous_response_id=first.id
    )

    assert continued.previous_response_id == first.id
    assert continued.id not in (first.id, fresh.id)
    # The mock answers from the whole conversation it is sent: the kept turns change the answer.
    assert continued.output_text != fresh.output_text
    assert again.output_text == continued.output_text


def test_a_continuation_sends_the_kept_conversation_to_an_upstream_without_responses(
    kept_client, fake_upstream
):
    client = kept_client
    first = client.responses.create(model="fake-ok", input="My name is Ada.", instructions="Be brief.")
    before = len(fake_upstream.seen("ok"))

    client.responses.create(model="fake-ok", input="What is my name?", previous_response_id=first.id)

    seen = fake_upstream.seen("ok")[before:]
    assert len(seen) == 1
    assert seen[0].path == "/ok/v1/chat/completions"
    messages = [(m["role"], m["content"]) for m in seen[0].body["messages"]]
    # `instructions` are not carried over by previous_response_id (PROTOCOL.md §12.1).
    assert messages == [
        ("user", "My name is Ada."),
        ("assistant", "Fake upstream says hi."),
        ("user", "What is my name?"),
    ]
    assert "previous_response_id" not in seen[0].body


def test_a_streamed_tool_loop_continues_by_previous_response_id(kept_client):
    client = kept_client
    with client.responses.stream(
        model="demo-fast", input=WEATHER_QUESTION, tools=[WEATHER_TOOL]
    ) as stream:
        for n, _ in enumerate(stream):
            assert n < 10_000, "stream does not end"
        first = stream.get_final_response()
    call = function_calls(first)[0]

    with client.responses.stream(
        model="demo-fast",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": TOOL_RESULT}],
        tools=[WEATHER_TOOL],
    ) as stream:
        for n, _ in enumerate(stream):
            assert n < 10_000, "stream does not end"
        second = stream.get_final_response()

    assert call.name == "get_weather"
    assert second.output_text.startswith(f"Thanks, the tool said: {TOOL_RESULT}")


def test_a_response_asked_not_to_be_stored_cannot_be_continued(kept_client):
    first = kept_client.responses.create(model="demo-fast", input="Forget me.", store=False)

    with pytest.raises(openai.BadRequestError) as caught:
        kept_client.responses.create(
            model="demo-fast", input="Go on", previous_response_id=first.id
        )

    assert caught.value.param == "previous_response_id"


def test_an_unknown_previous_response_id_is_refused_not_dropped(kept_client):
    with pytest.raises(openai.BadRequestError) as caught:
        kept_client.responses.create(
            model="demo-fast", input="Go on", previous_response_id="resp_never_seen_here"
        )

    assert caught.value.status_code == 400
    assert caught.value.param == "previous_response_id"
    assert caught.value.request_id


def test_without_a_cache_store_a_continuation_on_the_mock_is_refused(client):
    first = client.responses.create(model="demo-fast", input="My name is Ada.")

    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="demo-fast", input="What is my name?", previous_response_id=first.id
        )

    assert caught.value.param == "previous_response_id"


# --------------------------------------------------------------------------------------------
# Structured output
# --------------------------------------------------------------------------------------------


def test_a_json_schema_text_format_is_accepted(client):
    response = client.responses.create(
        model="demo-fast", input="Describe a person", text={"format": PERSON_FORMAT}
    )

    assert response.status == "completed"
    assert response.output_text
    assert response.text.format.type == "json_schema"
    assert response.text.format.name == "person"


def test_a_json_schema_text_format_reaches_a_chat_upstream_as_response_format(client, fake_upstream):
    before = len(fake_upstream.seen("ok"))
    response = client.responses.create(
        model="fake-ok", input="Describe a person", text={"format": PERSON_FORMAT}
    )

    assert response.output_text == "Fake upstream says hi."
    seen = fake_upstream.seen("ok")[before:]
    assert len(seen) == 1
    assert seen[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "person",
            "schema": PERSON_FORMAT["schema"],
            "strict": True,
        },
    }


# --------------------------------------------------------------------------------------------
# An upstream that serves the Responses API itself: a passthrough
# --------------------------------------------------------------------------------------------


def test_a_native_responses_upstream_gets_the_request_as_sent_with_the_model_swapped(
    client, fake_upstream
):
    before = len(fake_upstream.seen("resp"))
    raw = client.responses.with_raw_response.create(
        model="fake-resp",
        input=USER_TEXT,
        instructions="Be brief.",
        metadata={"ticket": "42"},
        text={"format": PERSON_FORMAT},
    )
    response = raw.parse()

    seen = fake_upstream.seen("resp")[before:]
    assert len(seen) == 1
    request = seen[0]
    assert request.path == "/resp/v1/responses"
    assert request.headers.get("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert request.body == {
        "model": "upstream-model-resp",
        "input": USER_TEXT,
        "instructions": "Be brief.",
        "metadata": {"ticket": "42"},
        "text": {"format": PERSON_FORMAT},
    }
    assert raw.headers.get("x-ballast-provider") == "upstream-resp"
    assert response.id.startswith(RESP_ID_PREFIX)
    assert response.output[0].id == RESP_MESSAGE_ID
    assert response.output_text == "".join(RESP_TEXT_DELTAS)
    assert response.usage.model_dump(exclude_none=True) == RESP_USAGE


def test_a_native_responses_stream_passes_through_event_by_event(client):
    events = collect_events(client.responses.create(model="fake-resp", input=USER_TEXT, stream=True))

    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *("response.output_text.delta" for _ in RESP_TEXT_DELTAS),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.delta for e in events if e.type == "response.output_text.delta"] == list(
        RESP_TEXT_DELTAS
    )
    assert events[-1].response.id.startswith(RESP_ID_PREFIX)
    assert events[0].response.id == events[-1].response.id
    assert events[-1].response.output_text == "".join(RESP_TEXT_DELTAS)


def test_the_stream_helper_reads_a_native_stream(client):
    with client.responses.stream(model="fake-resp", input=USER_TEXT) as stream:
        for n, _ in enumerate(stream):
            assert n < 10_000, "stream does not end"
        final = stream.get_final_response()

    assert final.id.startswith(RESP_ID_PREFIX)
    assert final.status == "completed"
    assert final.output_text == "".join(RESP_TEXT_DELTAS)


def test_a_continuation_of_a_native_response_goes_upstream_by_its_id(kept_client, fake_upstream):
    client = kept_client
    first = client.responses.create(model="fake-resp", input="My name is Ada.")
    before = len(fake_upstream.seen("resp"))

    continued = client.responses.create(
        model="fake-resp", input="What is my name?", previous_response_id=first.id
    )

    seen = fake_upstream.seen("resp")[before:]
    assert len(seen) == 1
    # The upstream stored its response: it is asked to continue it, not sent it again.
    assert seen[0].body == {
        "model": "upstream-model-resp",
        "input": "What is my name?",
        "previous_response_id": first.id,
    }
    assert continued.previous_response_id == first.id


def test_a_native_response_continued_on_a_chat_upstream_sends_it_the_whole_conversation(
    kept_client, fake_upstream
):
    first = kept_client.responses.create(model="fake-resp", input="I am in Paris.")
    before = len(fake_upstream.seen("ok"))

    continued = kept_client.responses.create(
        model="fake-ok", input="Where am I?", previous_response_id=first.id
    )

    seen = fake_upstream.seen("ok")[before:]
    assert len(seen) == 1
    messages = [(m["role"], m["content"]) for m in seen[0].body["messages"]]
    assert messages == [
        ("user", "I am in Paris."),
        ("assistant", "".join(RESP_TEXT_DELTAS)),
        ("user", "Where am I?"),
    ]
    assert continued.output_text == "Fake upstream says hi."


# --------------------------------------------------------------------------------------------
# A stream that breaks is never silent
# --------------------------------------------------------------------------------------------


def test_a_native_stream_cut_midway_raises_api_error_after_its_first_delta(client, fake_upstream):
    before = len(fake_upstream.seen("resp-cut"))
    received: list[str] = []

    stream = client.responses.create(model="fake-resp-cut", input=USER_TEXT, stream=True)
    with pytest.raises(openai.APIError) as caught:
        with stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    received.append(event.delta)
                assert len(received) < 100, "stream does not end"

    assert not isinstance(caught.value, openai.APIStatusError), "the stream had started with a 200"
    assert received == [RESP_TEXT_DELTAS[0]], "the delta before the cut is delivered"
    assert len(fake_upstream.seen("resp-cut")) - before == 1


def test_a_translated_stream_cut_midway_raises_api_error_after_its_deltas(client, fake_upstream):
    before = len(fake_upstream.seen("cut"))
    received: list[str] = []

    stream = client.responses.create(model="fake-cut", input=USER_TEXT, stream=True)
    with pytest.raises(openai.APIError) as caught:
        with stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    received.append(event.delta)
                assert len(received) < 100, "stream does not end"

    assert not isinstance(caught.value, openai.APIStatusError), "the stream had started with a 200"
    assert caught.value.code == "upstream_stream_error"
    assert "".join(received) == "".join(CUT_STREAM_WORDS)
    assert len(fake_upstream.seen("cut")) - before == 1


def test_a_failing_upstream_is_a_503_the_sdk_does_not_retry(counting_client, fake_upstream):
    before = len(fake_upstream.seen("fail500"))

    with pytest.raises(openai.InternalServerError) as caught:
        counting_client.sdk.responses.create(model="fake-500", input=USER_TEXT)

    err = caught.value
    assert err.status_code == 503
    assert err.code == "upstream_unavailable"
    assert err.response.headers.get("x-should-retry") == "false"
    assert len(counting_client.sent) == 1, f"the SDK retried: {counting_client.sent}"
    assert len(fake_upstream.seen("fail500")) - before == 1


def test_an_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input=USER_TEXT)

    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


# --------------------------------------------------------------------------------------------
# Cached responses
# --------------------------------------------------------------------------------------------


def test_a_replayed_response_stream_parses_like_the_live_one(cached_gateway):
    with openai.OpenAI(
        base_url=cached_gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    ) as client:
        question = "Tell me about caching responses"
        live = client.responses.with_raw_response.create(
            model="demo-cached", input=question, stream=True
        )
        live_events = collect_events(live.parse())
        replay = client.responses.with_raw_response.create(
            model="demo-cached", input=question, stream=True
        )
        replay_events = collect_events(replay.parse())
        whole = client.responses.with_raw_response.create(model="demo-cached", input=question)
        with client.responses.stream(model="demo-cached", input=question) as stream:
            for n, _ in enumerate(stream):
                assert n < 10_000, "stream does not end"
            helper_final = stream.get_final_response()

    assert live.headers.get("x-ballast-cache") == "miss"
    assert replay.headers.get("x-ballast-cache") == "hit"
    assert replay.headers.get("x-ballast-route") == "cache"
    assert [e.type for e in replay_events] == [e.type for e in live_events]
    assert [e.sequence_number for e in replay_events] == list(range(len(replay_events)))
    assert deltas_of(replay_events) == deltas_of(live_events)
    assert len([e for e in replay_events if e.type == "response.output_text.delta"]) > 3, (
        "replayed delta by delta"
    )
    assert whole.headers.get("x-ballast-cache") == "hit"
    assert whole.parse().output_text == live_events[-1].response.output_text
    assert helper_final.output_text == live_events[-1].response.output_text


def test_a_response_asked_not_to_be_stored_never_answers_one_that_may_be_continued(cached_gateway):
    with openai.OpenAI(
        base_url=cached_gateway.base_url, api_key=CLIENT_KEY, max_retries=0,
        timeout=CLIENT_TIMEOUT_S,
    ) as client:
        question = "A question first asked not to be stored"
        unstored = client.responses.with_raw_response.create(
            model="demo-cached", input=question, store=False
        )
        stored = client.responses.with_raw_response.create(model="demo-cached", input=question)
        again = client.responses.with_raw_response.create(model="demo-cached", input=question)
        continued = client.responses.create(
            model="demo-cached", input="Go on", previous_response_id=stored.parse().id
        )

    assert unstored.headers.get("x-ballast-cache") == "miss"
    assert stored.headers.get("x-ballast-cache") == "miss", "an unstored answer is not reused"
    assert stored.parse().store is True
    assert stored.parse().id != unstored.parse().id
    assert again.headers.get("x-ballast-cache") == "hit"
    assert again.parse().id == stored.parse().id
    assert continued.previous_response_id == stored.parse().id
    assert continued.output_text
