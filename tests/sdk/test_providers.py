"""The official `openai` SDK against the gateway's translating providers (PROTOCOL.md §8, §9).

A small stdlib fake plays Anthropic's Messages API and Azure OpenAI from the fixtures in
tests/fixtures/ (the shapes the official APIs document) and records what the gateway
sent. The SDK must parse every translated answer and chunk as it parses OpenAI's own, and its
error classes must follow the translated statuses.

The fake (conftest's ``FakeUpstream`` with a handler of its own) picks its behaviour by the
first path segment: ``ok``, ``invalid`` (Anthropic 400 ``invalid_request_error``),
``overloaded`` (Anthropic 529 ``overloaded_error``) or ``azure``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from conftest import (
    CLIENT_KEY,
    REPO_ROOT,
    UPSTREAM_KEY,
    FakeUpstream,
    UpstreamRequest,
    _serve,
)

FIXTURES = REPO_ROOT / "tests" / "fixtures"
MESSAGES = [{"role": "user", "content": "What's the weather like in San Francisco?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a location.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
INVALID_MESSAGE = "messages: roles must alternate between \"user\" and \"assistant\""


# --------------------------------------------------------------------------------------------
# Fake Anthropic and Azure upstream
# --------------------------------------------------------------------------------------------


class ProvidersHandler(BaseHTTPRequestHandler):
    """Plays Anthropic or Azure; records each request in its server's `recorder`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def do_POST(self):  # noqa: N802 - stdlib name
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        scenario = self.path.strip("/").split("/")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.recorder.record(UpstreamRequest(scenario, self.path, headers, body))
        if scenario == "azure":
            name = "azure_stream.sse" if body.get("stream") else "azure_completion.json"
        elif scenario == "invalid":
            return self._error(400, "invalid_request_error", INVALID_MESSAGE)
        elif scenario == "overloaded":
            return self._error(529, "overloaded_error", "Overloaded")
        elif body.get("stream"):
            name = "anthropic_tool_stream.sse" if body.get("tools") else "anthropic_stream.sse"
        else:
            name = "anthropic_tool_use.json" if body.get("tools") else "anthropic_message.json"
        content_type = "text/event-stream" if name.endswith(".sse") else "application/json"
        self._send(status=200, content_type=content_type, data=(FIXTURES / name).read_bytes())

    def _error(self, status: int, kind: str, message: str) -> None:
        error = {"type": "error", "error": {"type": kind, "message": message}}
        self._send(status=status, content_type="application/json", data=json.dumps(error).encode())

    def _send(self, *, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def fake_providers():
    """The fake, as conftest's `FakeUpstream` (its requests, `seen(scenario)`, `port`)."""
    with ThreadingHTTPServer(("127.0.0.1", 0), ProvidersHandler) as server:
        server.daemon_threads = True
        server.recorder = FakeUpstream(server=server)
        serving = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
        serving.start()
        try:
            yield server.recorder
        finally:
            server.shutdown()
            serving.join(timeout=5)


@pytest.fixture(scope="module")
def gateway(fake_providers, tmp_path_factory):
    """This module's gateway (conftest's `client` fixture then talks to it)."""
    def provider(kind: str, scenario: str) -> str:
        url = f"http://127.0.0.1:{fake_providers.port}/{scenario}"
        return (
            f"{{ kind: {kind}, base_url: '{url}', api_key: {UPSTREAM_KEY}, "
            "retry: { max_retries: 0 } }"
        )

    config = f"""\
server: {{ listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }}
cache: {{ backend: none }}
providers:
  claude: {provider("anthropic", "ok")}
  claude-invalid: {provider("anthropic", "invalid")}
  claude-overloaded: {provider("anthropic", "overloaded")}
  azure: {provider("azure", "azure")}
  offline: {{ kind: mock, latency: 1ms }}
models:
  claude:
    targets: [ {{ provider: claude, model: claude-sonnet-4-5 }} ]
  claude-invalid:
    targets: [ {{ provider: claude-invalid, model: claude-sonnet-4-5 }} ]
  claude-or-mock:
    targets: [ {{ provider: claude-overloaded, model: claude-sonnet-4-5 }}, {{ provider: offline, model: mock-model }} ]
  azure:
    targets: [ {{ provider: azure, model: gpt-4o-deployment }} ]
"""
    yield from _serve(config, tmp_path_factory)


def stream_of(client, model: str, include_usage: bool = False) -> list[ChatCompletionChunk]:
    """Every chunk of a streamed answer to MESSAGES, each checked to be a chunk."""
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = []
    with client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, **options
    ) as stream:
        for chunk in stream:
            assert isinstance(chunk, ChatCompletionChunk)
            chunks.append(chunk)
            assert len(chunks) < 1_000, "stream does not end"
    return chunks


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)


# --------------------------------------------------------------------------------------------
# Anthropic
# --------------------------------------------------------------------------------------------


def test_anthropic_answer_parses_as_a_chat_completion(client, fake_providers):
    completion = client.chat.completions.create(model="claude", messages=MESSAGES)

    assert isinstance(completion, ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hi! My name is Claude."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 27
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == 39
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    seen = fake_providers.seen("ok")[-1]
    assert seen.path == "/ok/v1/messages"
    assert seen.headers["x-api-key"] == UPSTREAM_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert CLIENT_KEY not in json.dumps(seen.headers)
    assert seen.body["model"] == "claude-sonnet-4-5"
    assert seen.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": MESSAGES[0]["content"]}]}
    ]


def test_anthropic_stream_parses_chunk_by_chunk(client):
    chunks = stream_of(client, "claude")

    assert text_of(chunks) == "Hi! My name is Claude."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.choices for chunk in chunks), "no usage chunk unless asked"
    assert len({chunk.id for chunk in chunks}) == 1


def test_anthropic_stream_usage_chunk_when_asked(client):
    chunks = stream_of(client, "claude", include_usage=True)

    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 27
    assert chunks[-1].usage.completion_tokens == 12
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_anthropic_tool_call_round_trip(client, fake_providers):
    first = client.chat.completions.create(model="claude", messages=MESSAGES, tools=[WEATHER_TOOL])

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments == {"location": "San Francisco, CA", "unit": "celsius"}

    follow_up = [
        *MESSAGES,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "15 degrees, foggy"},
    ]
    second = client.chat.completions.create(model="claude", messages=follow_up, tools=[WEATHER_TOOL])

    assert second.choices[0].message.tool_calls
    sent = fake_providers.seen("ok")[-1].body
    assert sent["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": call.id,
        "name": "get_weather",
        "input": arguments,
    }
    assert sent["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "15 degrees, foggy"}
        ],
    }
    assert sent["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]


def test_anthropic_streamed_tool_call_assembles_in_the_sdk(client):
    with client.chat.completions.stream(
        model="claude", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "I'll check the weather in San Francisco."
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_01A09q90qw90lq917835lq9"
    assert json.loads(call.function.arguments) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }


def test_anthropic_invalid_request_raises_bad_request_with_its_message(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude-invalid", messages=MESSAGES)

    assert caught.value.status_code == 400
    assert caught.value.body["message"] == INVALID_MESSAGE
    assert caught.value.body["type"] == "invalid_request_error"


def test_n_above_one_raises_bad_request_without_calling_anthropic(client, fake_providers):
    before = len(fake_providers.requests)

    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="claude", messages=MESSAGES, n=2)

    assert caught.value.body["param"] == "n"
    assert len(fake_providers.requests) == before


def test_anthropic_overload_fails_over_to_the_next_target(client, fake_providers):
    raw = client.chat.completions.with_raw_response.create(model="claude-or-mock", messages=MESSAGES)

    assert raw.headers["x-ballast-provider"] == "offline"
    assert raw.headers["x-ballast-route"] == "failover"
    assert raw.parse().choices[0].message.content
    assert fake_providers.seen("overloaded")


# --------------------------------------------------------------------------------------------
# Azure
# --------------------------------------------------------------------------------------------


def test_azure_answer_parses_as_a_chat_completion(client, fake_providers):
    completion = client.chat.completions.create(model="azure", messages=MESSAGES)

    assert completion.choices[0].message.content == "Hello from Azure"
    assert completion.usage.total_tokens == 12
    seen = fake_providers.seen("azure")[-1]
    assert seen.path == "/azure/openai/deployments/gpt-4o-deployment/chat/completions?api-version=2024-10-21"
    assert seen.headers["api-key"] == UPSTREAM_KEY
    assert "authorization" not in seen.headers


def test_azure_stream_has_no_empty_chunks_unless_usage_is_asked(client):
    plain = stream_of(client, "azure")
    with_usage = stream_of(client, "azure", include_usage=True)

    assert text_of(plain) == "Hello from Azure"
    assert all(chunk.choices and chunk.id for chunk in plain)
    assert all(chunk.choices[0].delta is not None for chunk in plain)
    assert text_of(with_usage) == "Hello from Azure"
    assert with_usage[-1].choices == [] and with_usage[-1].usage.total_tokens == 12
    assert all(chunk.choices for chunk in with_usage[:-1])
