"""The official `anthropic` Python SDK, unmodified, on the gateway's `/v1/messages` (SPEC §3, §4
"Dialects", "Streams never lie"; the contract in issue #13).

Three kinds of target answer a Messages request:

* the offline mock (``demo-fast``) and a fake OpenAI upstream (``fake-tool``): translated to a
  chat completion and back into a Message or Anthropic's stream events;
* an ``anthropic``-kind provider on the fake upstream (``anth-ok``): a passthrough, whose answer
  must reach the SDK byte for byte;
* overloaded ``anthropic`` targets (``anth-overloaded``, and ``anth-failover`` whose second
  target is the mock): HTTP 529, failed over, or answered with Anthropic's 529.

Gateway keys (authentication, a model allow-list, a key's own rate limit) need ``auth``, which
the session gateway has not: they run on this module's ``auth_gateway``.

Every SDK call is bounded by ``CLIENT_TIMEOUT_S`` and every stream loop by ``MAX_EVENTS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import anthropic
import pytest
from anthropic.types import Message

from conftest import (
    ANTH_COUNT_TOKENS,
    ANTH_MESSAGE_ID,
    ANTH_TEXT_DELTAS,
    ANTH_USAGE,
    CLIENT_KEY,
    CLIENT_TIMEOUT_S,
    TOOL_ARGUMENTS,
    TOOL_FINAL_TEXT,
    TOOL_NAME,
    UPSTREAM_KEY,
    anth_ok_events,
    anth_ok_message,
    _serve,
)

MAX_EVENTS = 1_000
MAX_TOKENS = 1024
PROMPT = [{"role": "user", "content": "Say something about gateways."}]
WEATHER_QUESTION = "What's the weather like in San Francisco?"
WEATHER_TOOL = {
    "name": TOOL_NAME,
    "description": "Current weather for a location.",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["location"],
    },
}
TOOL_RESULT_TEXT = "15 degrees, foggy"
# The upstream model names of the session config's Anthropic targets.
ANTH_OK_UPSTREAM_MODEL = "claude-upstream-ok"


# --------------------------------------------------------------------------------------------
# Clients and helpers
# --------------------------------------------------------------------------------------------


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: dict | None


@dataclass
class CountingAnthropic:
    """An Anthropic SDK client plus every HTTP request it put on the wire (retries included)."""

    sdk: anthropic.Anthropic
    sent: list[SentRequest] = field(default_factory=list)


def anthropic_client(
    addr: str, *, api_key: str | None = CLIENT_KEY, max_retries: int = 0, **options
) -> CountingAnthropic:
    sent: list[SentRequest] = []

    def on_request(request):
        try:
            body = json.loads(request.content or b"null")
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        sent.append(SentRequest(request.method, str(request.url), headers, body))

    http_client = anthropic.DefaultHttpxClient(
        event_hooks={"request": [on_request]}, timeout=CLIENT_TIMEOUT_S
    )
    # The Anthropic SDK's base URL has no `/v1`: it adds it to every path itself.
    sdk = anthropic.Anthropic(
        base_url=f"http://{addr}",
        api_key=api_key,
        max_retries=max_retries,
        timeout=CLIENT_TIMEOUT_S,
        http_client=http_client,
        **options,
    )
    return CountingAnthropic(sdk=sdk, sent=sent)


@pytest.fixture
def claude(gateway, monkeypatch):
    """A counting Anthropic SDK client on the session gateway; the SDK does not retry."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    client = anthropic_client(gateway.addr)
    try:
        yield client
    finally:
        client.sdk.close()


@pytest.fixture
def retrying_claude(gateway, monkeypatch):
    """The same with the SDK's own retries on (2, as the OpenAI SDK's default)."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    client = anthropic_client(gateway.addr, max_retries=2)
    try:
        yield client
    finally:
        client.sdk.close()


def bounded(iterable, limit: int = MAX_EVENTS) -> list:
    items = []
    for item in iterable:
        items.append(item)
        assert len(items) <= limit, f"stream did not end within {limit} items"
    return items


def text_of(content) -> str:
    """The text of an OpenAI message's `content`: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def only_text(message: Message) -> str:
    assert [block.type for block in message.content] == ["text"], message.content
    return message.content[0].text


def sse_without_comments(data: bytes) -> bytes:
    """SSE bytes without comment-only events (`: keep-alive`), which a proxy may add."""
    blocks = data.replace(b"\r\n", b"\n").split(b"\n\n")
    kept = [b for b in blocks if b and not all(line.startswith(b":") for line in b.split(b"\n"))]
    return b"".join(block + b"\n\n" for block in kept)


def sse_events(data: bytes) -> list[tuple[str | None, dict]]:
    """(event name, parsed data) for each event of an SSE body; comments are skipped."""
    events = []
    for block in sse_without_comments(data).split(b"\n\n"):
        if not block:
            continue
        name, payload = None, []
        for line in block.decode().split("\n"):
            if line.startswith("event:"):
                name = line[len("event:"):].strip()
            elif line.startswith("data:"):
                payload.append(line[len("data:"):].lstrip(" "))
        events.append((name, json.loads("\n".join(payload))))
    return events


def assert_anthropic_error(error: anthropic.APIStatusError, status: int, kind: str) -> None:
    assert error.status_code == status
    assert isinstance(error.body, dict), error.body
    assert error.body.get("type") == "error", error.body
    assert error.body["error"]["type"] == kind, error.body
    assert isinstance(error.body["error"].get("message"), str) and error.body["error"]["message"]


# --------------------------------------------------------------------------------------------
# Translated: the mock model
# --------------------------------------------------------------------------------------------


def test_a_message_from_the_mock_model_has_text_end_turn_usage_and_its_alias(claude):
    message = claude.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)

    assert isinstance(message, Message)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "demo-fast"
    assert only_text(message).strip()
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0


def test_a_message_carries_the_provenance_headers(claude):
    raw = claude.sdk.messages.with_raw_response.create(
        model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT
    )

    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["x-ballast-provider"] == "mock"
    assert raw.headers["x-ballast-route"] == "primary"
    assert raw.headers["x-ballast-cache"] == "off"  # the session gateway's cache is `none`
    assert raw.headers["x-ballast-attempts"] == "1"
    assert raw.headers.get("x-request-id")
    assert "x-ballast-dropped" not in raw.headers  # nothing to drop in a plain request
    assert only_text(raw.parse())


def test_the_messages_route_accepts_a_query_such_as_beta_true(claude):
    # Claude Code posts to `/v1/messages?beta=true`.
    message = claude.sdk.messages.create(
        model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT, extra_query={"beta": "true"}
    )

    assert claude.sent[-1].url.endswith("/v1/messages?beta=true")
    assert message.model == "demo-fast"
    assert message.stop_reason == "end_turn"
    assert only_text(message).strip()


def test_a_hint_the_translated_target_cannot_carry_is_named_in_x_ballast_dropped(claude):
    raw = claude.sdk.messages.with_raw_response.create(
        model="demo-fast",
        max_tokens=MAX_TOKENS,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=PROMPT,
    )

    dropped = [name.strip() for name in raw.headers.get("x-ballast-dropped", "").split(",")]
    assert "cache_control" in dropped, raw.headers.get("x-ballast-dropped")
    assert only_text(raw.parse()).strip()


def test_the_same_prompt_gives_the_same_message_text(claude):
    first = claude.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)
    second = claude.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)
    other = claude.sdk.messages.create(
        model="demo-fast", max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "Other."}]
    )

    assert only_text(first) == only_text(second)
    assert only_text(first) != only_text(other)


def test_a_streamed_message_assembles_the_same_text_as_a_whole_one(claude):
    whole = claude.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)

    with claude.sdk.messages.stream(
        model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT
    ) as stream:
        pieces = bounded(stream.text_stream)
        final = stream.get_final_message()

    assert len(pieces) >= 2, "the mock streams word by word"
    assert "".join(pieces) == only_text(whole)
    assert only_text(final) == only_text(whole)
    assert final.model == "demo-fast"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_a_stream_is_anthropics_events_in_order_each_with_its_event_line(claude):
    with claude.sdk.messages.with_streaming_response.create(
        model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ballast-provider"] == "mock"
        data = b"".join(bounded(response.iter_bytes()))

    events = sse_events(data)
    assert events, "an empty stream"
    assert all(name == payload.get("type") for name, payload in events), events
    # `ping` may come anywhere (Anthropic sends one early); the rest has a fixed order.
    events = [(name, payload) for name, payload in events if name != "ping"]
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[1] == "content_block_start"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [payload for name, payload in events if name == "content_block_delta"]
    assert names[2:-3] == ["content_block_delta"] * len(deltas)
    assert len(deltas) >= 2
    assert all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for d in deltas)

    start = events[0][1]["message"]
    assert start["model"] == "demo-fast" and start["role"] == "assistant"
    assert start["content"] == []
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] > 0


# --------------------------------------------------------------------------------------------
# Translated: tools through an OpenAI upstream
# --------------------------------------------------------------------------------------------


def ask_for_weather(claude) -> Message:
    return claude.sdk.messages.create(
        model="fake-tool",
        max_tokens=256,
        system="You are terse.",
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": WEATHER_QUESTION}],
    )


def test_an_openai_tool_call_comes_back_as_a_tool_use_block(claude, fake_upstream):
    before = len(fake_upstream.seen("tool"))

    message = ask_for_weather(claude)

    assert message.stop_reason == "tool_use"
    assert message.model == "fake-tool"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == TOOL_NAME
    assert isinstance(uses[0].input, dict)
    assert uses[0].input == TOOL_ARGUMENTS
    assert uses[0].id

    sent = fake_upstream.seen("tool")[before:]
    assert len(sent) == 1
    assert sent[0].path == "/tool/v1/chat/completions"
    body = sent[0].body
    assert body["model"] == "upstream-model-tool"
    assert body["max_completion_tokens"] == 256
    assert body["messages"][0]["role"] == "system"
    assert text_of(body["messages"][0]["content"]) == "You are terse."
    assert body["messages"][-1]["role"] == "user"
    assert text_of(body["messages"][-1]["content"]) == WEATHER_QUESTION
    assert [tool["type"] for tool in body["tools"]] == ["function"]
    assert body["tools"][0]["function"]["name"] == TOOL_NAME
    assert body["tools"][0]["function"]["parameters"] == WEATHER_TOOL["input_schema"]


def test_a_tool_result_turn_reaches_the_upstream_as_a_tool_message(claude, fake_upstream):
    first = ask_for_weather(claude)
    use = next(block for block in first.content if block.type == "tool_use")
    before = len(fake_upstream.seen("tool"))

    second = claude.sdk.messages.create(
        model="fake-tool",
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": WEATHER_QUESTION},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": TOOL_RESULT_TEXT}
                ],
            },
        ],
    )

    assert second.stop_reason == "end_turn"
    assert only_text(second) == TOOL_FINAL_TEXT
    sent = fake_upstream.seen("tool")[before:]
    assert len(sent) == 1
    messages = sent[0].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    calls = messages[1]["tool_calls"]
    assert len(calls) == 1
    assert calls[0]["type"] == "function"
    assert calls[0]["function"]["name"] == TOOL_NAME
    assert json.loads(calls[0]["function"]["arguments"]) == TOOL_ARGUMENTS
    assert messages[2]["tool_call_id"] == calls[0]["id"]
    assert text_of(messages[2]["content"]) == TOOL_RESULT_TEXT


def test_a_streamed_tool_call_assembles_into_a_tool_use_block(claude):
    with claude.sdk.messages.stream(
        model="fake-tool",
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": WEATHER_QUESTION}],
    ) as stream:
        events = bounded(stream)
        final = stream.get_final_message()

    json_deltas = [
        e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert json_deltas, [e.type for e in events]
    assert final.stop_reason == "tool_use"
    uses = [block for block in final.content if block.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == TOOL_NAME
    assert uses[0].input == TOOL_ARGUMENTS


# --------------------------------------------------------------------------------------------
# Passthrough: an anthropic target
# --------------------------------------------------------------------------------------------


def test_an_anthropic_target_answers_with_the_upstreams_own_bytes(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-ok"))

    raw = claude.sdk.messages.with_raw_response.create(
        model="anth-ok",
        max_tokens=300,
        system="Be brief.",
        stop_sequences=["\n\nHuman:"],
        metadata={"user_id": "user-1"},
        messages=PROMPT,
    )

    assert raw.http_response.read() == anth_ok_message(ANTH_OK_UPSTREAM_MODEL)
    assert raw.headers["x-ballast-provider"] == "anthropic-ok"
    assert raw.headers["x-ballast-route"] == "primary"
    assert raw.headers["x-ballast-cache"] == "off"
    message = raw.parse()
    assert message.id == ANTH_MESSAGE_ID
    assert only_text(message) == "".join(ANTH_TEXT_DELTAS)
    assert message.usage.input_tokens == ANTH_USAGE["input_tokens"]
    assert message.usage.output_tokens == ANTH_USAGE["output_tokens"]

    seen = fake_upstream.seen("anth-ok")[before:]
    assert len(seen) == 1
    assert seen[0].path == "/anth-ok/v1/messages"
    client_body = claude.sent[-1].body
    assert seen[0].body == {**client_body, "model": ANTH_OK_UPSTREAM_MODEL}


def test_the_anthropic_upstream_gets_the_providers_key_never_the_clients(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-ok"))

    # This SDK sends `api_key` as `Authorization: Bearer`; Anthropic's own `x-api-key` is added
    # so that the client's key is in both of the headers a gateway key may arrive in.
    claude.sdk.messages.create(
        model="anth-ok", max_tokens=100, messages=PROMPT, extra_headers={"x-api-key": CLIENT_KEY}
    )

    seen = fake_upstream.seen("anth-ok")[before:]
    assert len(seen) == 1
    assert claude.sent[-1].headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert claude.sent[-1].headers["x-api-key"] == CLIENT_KEY
    assert seen[0].headers["x-api-key"] == UPSTREAM_KEY
    assert CLIENT_KEY not in json.dumps(seen[0].headers)
    # The SDK's own anthropic-version reached the upstream, and no beta the client did not ask.
    assert seen[0].headers["anthropic-version"] == claude.sent[-1].headers["anthropic-version"]
    assert "anthropic-beta" not in seen[0].headers
    # Other client headers stay behind (SPEC §4 "Dialects": version and beta are the exception).
    assert not [name for name in seen[0].headers if name.startswith("x-stainless-")]


def test_the_clients_anthropic_version_and_beta_headers_reach_the_upstream(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-ok"))

    # Not the SDK's default version: the upstream must see the client's, not a gateway default.
    claude.sdk.messages.create(
        model="anth-ok",
        max_tokens=100,
        messages=PROMPT,
        extra_headers={"anthropic-version": "2023-01-01", "anthropic-beta": "x-2025"},
    )

    seen = fake_upstream.seen("anth-ok")[before:]
    assert len(seen) == 1
    assert claude.sent[-1].headers["anthropic-version"] == "2023-01-01"
    assert seen[0].headers["anthropic-version"] == "2023-01-01"
    assert seen[0].headers["anthropic-beta"] == "x-2025"


def test_a_streamed_anthropic_answer_passes_through_event_for_event(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-ok"))

    with claude.sdk.messages.with_streaming_response.create(
        model="anth-ok", max_tokens=100, messages=PROMPT, stream=True
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ballast-provider"] == "anthropic-ok"
        data = b"".join(bounded(response.iter_bytes()))

    expected = b"".join(anth_ok_events(ANTH_OK_UPSTREAM_MODEL))
    assert sse_without_comments(data) == expected
    seen = fake_upstream.seen("anth-ok")[before:]
    assert len(seen) == 1
    assert seen[0].body["stream"] is True
    assert seen[0].body["model"] == ANTH_OK_UPSTREAM_MODEL


def test_a_streamed_anthropic_answer_assembles_in_the_sdk(claude):
    with claude.sdk.messages.stream(model="anth-ok", max_tokens=100, messages=PROMPT) as stream:
        pieces = bounded(stream.text_stream)
        final = stream.get_final_message()

    assert pieces == list(ANTH_TEXT_DELTAS)
    assert only_text(final) == "".join(ANTH_TEXT_DELTAS)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == ANTH_USAGE["output_tokens"]


# --------------------------------------------------------------------------------------------
# Failover
# --------------------------------------------------------------------------------------------


def test_an_overloaded_anthropic_target_fails_over_to_the_next_one(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-overloaded-fo"))

    raw = claude.sdk.messages.with_raw_response.create(
        model="anth-failover", max_tokens=MAX_TOKENS, messages=PROMPT
    )

    assert raw.status_code == 200
    assert raw.headers["x-ballast-route"] == "failover"
    assert raw.headers["x-ballast-provider"] == "mock"
    assert raw.headers["x-ballast-attempts"] == "2"
    message = raw.parse()
    assert message.model == "anth-failover"
    assert only_text(message).strip()
    assert message.stop_reason == "end_turn"
    seen = fake_upstream.seen("anth-overloaded-fo")[before:]
    assert [s.path for s in seen] == ["/anth-overloaded-fo/v1/messages"]


def test_a_streamed_request_fails_over_before_its_first_event(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-overloaded-fo"))

    with claude.sdk.messages.stream(
        model="anth-failover", max_tokens=MAX_TOKENS, messages=PROMPT
    ) as stream:
        assert stream.response.headers["x-ballast-route"] == "failover"
        assert stream.response.headers["x-ballast-provider"] == "mock"
        text = "".join(bounded(stream.text_stream))
        final = stream.get_final_message()

    assert text.strip()
    assert final.stop_reason == "end_turn"
    assert len(fake_upstream.seen("anth-overloaded-fo")) - before == 1


# --------------------------------------------------------------------------------------------
# count_tokens
# --------------------------------------------------------------------------------------------


def test_count_tokens_on_a_mock_model_is_an_estimate_that_grows_with_the_prompt(claude):
    short = claude.sdk.messages.with_raw_response.count_tokens(
        model="demo-fast", messages=[{"role": "user", "content": "Hi."}]
    )
    long_text = " ".join(["the gateway keeps every call answered"] * 40)
    long = claude.sdk.messages.count_tokens(
        model="demo-fast", messages=[{"role": "user", "content": long_text}]
    )

    assert short.headers["x-ballast-estimate"] == "true"
    assert short.parse().input_tokens > 0
    # 40 copies of a six-word sentence: at least one token a word in o200k_base.
    assert long.input_tokens >= 240
    assert long.input_tokens > short.parse().input_tokens


def test_count_tokens_on_an_anthropic_model_is_forwarded(claude, fake_upstream):
    before = len(fake_upstream.seen("anth-ok"))

    raw = claude.sdk.messages.with_raw_response.count_tokens(
        model="anth-ok", system="Be brief.", messages=PROMPT
    )

    assert raw.parse().input_tokens == ANTH_COUNT_TOKENS
    assert raw.headers.get("x-ballast-estimate") != "true"
    seen = fake_upstream.seen("anth-ok")[before:]
    assert len(seen) == 1
    assert seen[0].path == "/anth-ok/v1/messages/count_tokens"
    assert seen[0].headers["x-api-key"] == UPSTREAM_KEY
    assert seen[0].body == {**claude.sent[-1].body, "model": ANTH_OK_UPSTREAM_MODEL}


# --------------------------------------------------------------------------------------------
# Errors: Anthropic's shape, the SDK's classes
# --------------------------------------------------------------------------------------------


def test_an_unknown_model_raises_not_found_error(retrying_claude):
    with pytest.raises(anthropic.NotFoundError) as caught:
        retrying_claude.sdk.messages.create(
            model="no-such-model", max_tokens=MAX_TOKENS, messages=PROMPT
        )

    assert_anthropic_error(caught.value, 404, "not_found_error")
    assert len(retrying_claude.sent) == 1


def test_a_body_without_max_tokens_raises_bad_request_error(claude):
    # The typed `create` insists on max_tokens; the SDK's own low-level `post` does not.
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.sdk.post(
            "/v1/messages", cast_to=Message, body={"model": "demo-fast", "messages": PROMPT}
        )

    assert_anthropic_error(caught.value, 400, "invalid_request_error")


def test_an_overloaded_model_raises_overloaded_error_which_the_sdk_does_not_retry(
    retrying_claude, fake_upstream
):
    before = len(fake_upstream.seen("anth-overloaded"))

    with pytest.raises(anthropic.OverloadedError) as caught:
        retrying_claude.sdk.messages.create(
            model="anth-overloaded", max_tokens=MAX_TOKENS, messages=PROMPT
        )

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert_anthropic_error(caught.value, 529, "overloaded_error")
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(retrying_claude.sent) == 1, "the SDK retried despite x-should-retry: false"
    assert len(fake_upstream.seen("anth-overloaded")) - before == 1


def test_a_streamed_request_to_an_overloaded_model_raises_before_any_event(
    retrying_claude, fake_upstream
):
    before = len(fake_upstream.seen("anth-overloaded"))

    with pytest.raises(anthropic.OverloadedError) as caught:
        with retrying_claude.sdk.messages.stream(
            model="anth-overloaded", max_tokens=MAX_TOKENS, messages=PROMPT
        ) as stream:
            bounded(stream)

    assert_anthropic_error(caught.value, 529, "overloaded_error")
    assert len(retrying_claude.sent) == 1
    assert len(fake_upstream.seen("anth-overloaded")) - before == 1


# --------------------------------------------------------------------------------------------
# Gateway keys (a gateway of this module's own, with auth)
# --------------------------------------------------------------------------------------------

MAIN_KEY = "messages-main-key-0001"
LIMITED_KEY = "messages-limited-key-0002"
SMART_ONLY_KEY = "messages-smart-only-key-0003"

AUTH_CONFIG = f"""\
server: {{ listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }}
cache: {{ backend: none }}
auth:
  keys:
    - {{ name: main, key: {MAIN_KEY} }}
    - {{ name: limited, key: {LIMITED_KEY}, rate_limit: {{ requests_per_minute: 1 }} }}
    - {{ name: smart-only, key: {SMART_ONLY_KEY}, models: ["demo-smart"] }}
providers:
  mock: {{ kind: mock, latency: 1ms }}
models:
  demo-fast:
    targets: [ {{ provider: mock, model: mock-small }} ]
  demo-smart:
    targets: [ {{ provider: mock, model: mock-large }} ]
"""


@pytest.fixture(scope="module")
def auth_gateway(tmp_path_factory):
    yield from _serve(AUTH_CONFIG, tmp_path_factory)


@pytest.fixture
def keyed(auth_gateway, monkeypatch):
    """Makes Anthropic SDK clients on `auth_gateway` (no SDK retries) and closes them."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    made: list[CountingAnthropic] = []

    def make(**options) -> CountingAnthropic:
        client = anthropic_client(auth_gateway.addr, **options)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            client.sdk.close()


def test_the_gateway_key_is_accepted_as_a_bearer_token_and_as_x_api_key(keyed):
    # This SDK sends `api_key` (and `auth_token`) as `Authorization: Bearer`; `x-api-key`, the
    # header of Anthropic's API and of other Anthropic clients, goes as a default header.
    by_bearer = keyed(api_key=MAIN_KEY)
    by_x_api_key = keyed(api_key=None, default_headers={"x-api-key": MAIN_KEY})

    first = by_bearer.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)
    second = by_x_api_key.sdk.messages.create(
        model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT
    )

    assert by_bearer.sent[-1].headers["authorization"] == f"Bearer {MAIN_KEY}"
    assert "x-api-key" not in by_bearer.sent[-1].headers
    assert by_x_api_key.sent[-1].headers["x-api-key"] == MAIN_KEY
    assert "authorization" not in by_x_api_key.sent[-1].headers
    assert only_text(first) == only_text(second)


def test_a_wrong_gateway_key_raises_authentication_error(keyed):
    wrong = "not-a-key-of-this-gateway"
    by_bearer = keyed(api_key=wrong, max_retries=2)
    by_x_api_key = keyed(api_key=None, default_headers={"x-api-key": wrong}, max_retries=2)

    for client in (by_bearer, by_x_api_key):
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)

        assert_anthropic_error(caught.value, 401, "authentication_error")
        assert len(client.sent) == 1


def test_a_model_the_key_may_not_use_raises_permission_denied_error(keyed):
    client = keyed(api_key=SMART_ONLY_KEY)

    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        client.sdk.messages.create(model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT)

    assert_anthropic_error(caught.value, 403, "permission_error")
    allowed = client.sdk.messages.create(model="demo-smart", max_tokens=MAX_TOKENS, messages=PROMPT)
    assert only_text(allowed)


def test_the_keys_own_rate_limit_raises_rate_limit_error_with_retry_after(keyed):
    client = keyed(api_key=LIMITED_KEY)

    # One request a minute, counted in fixed windows of wall-clock minutes: of three requests
    # made within a second, at most two fall in different windows, so one must be refused.
    answers, refusals = [], []
    for _ in range(3):
        try:
            answer = client.sdk.messages.create(
                model="demo-fast", max_tokens=MAX_TOKENS, messages=PROMPT
            )
            answers.append(answer)
        except anthropic.RateLimitError as error:
            refusals.append(error)

    assert answers and only_text(answers[0]), "the key's first request of the minute is admitted"
    assert refusals, "three requests within a second on a one-a-minute key all got through"
    refused = refusals[0]
    assert_anthropic_error(refused, 429, "rate_limit_error")
    retry_after = refused.response.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    assert len(client.sent) == 3
