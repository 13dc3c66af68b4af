"""Fixtures: the real gateway binary on 127.0.0.1:0, a scripted fake upstream, SDK clients.

The gateway runs once per session on a config written here. Its models:

* ``demo-fast`` and ``demo-smart``: the built-in offline ``mock`` provider.
* ``fake-ok``, ``fake-500``, ``fake-cut``: an ``openai``-kind provider each, pointed at the fake
  upstream below under a path that picks its behaviour (a normal answer, HTTP 500, or a stream
  cut after two chunks).
* ``fake-tool``: an ``openai``-kind provider whose fake answers a user turn with a
  ``get_weather`` tool call and a ``tool`` turn with text (scenario ``tool``).
* ``anth-ok``, ``anth-overloaded``: an ``anthropic``-kind provider each, on fake scenarios that
  speak Anthropic's Messages API at ``/SCENARIO/v1/messages`` and ``.../count_tokens``: a normal
  Message (or its SSE events when ``stream`` is true), or HTTP 529 ``overloaded_error``.
* ``anth-failover``: an overloaded ``anthropic`` target (scenario ``anth-overloaded-fo``, its own
  provider so its hits are counted apart), then the mock.
* ``demo-embed``: the mock's embeddings (deterministic unit vectors, 1536 dimensions).
* ``fake-resp``: an ``openai``-kind provider with ``native_responses: true`` on scenario ``resp``,
  which speaks the Responses API at ``/resp/v1/responses``: a whole Response, or its SSE events
  when ``stream`` is true (the passthrough).
* ``fake-resp-cut``: the same on scenario ``resp-cut``, whose stream dies after its first text
  delta (no terminal event).
* ``fake-embed``: an ``openai``-kind provider on scenario ``embed-floats``, an OpenAI-compatible
  server that answers ``/v1/embeddings`` with float arrays whatever ``encoding_format`` says.

The fake upstream records every request it gets, so tests can count them and look at what the
gateway sent. Every provider on it makes one attempt per request (``max_retries: 0``).

Everything listens on loopback only, and every wait is bounded.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import openai
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 15.0
# Every SDK call in the suite is bounded by this (connect, read, write, pool).
CLIENT_TIMEOUT_S = 20.0

CLIENT_KEY = "client-key"
UPSTREAM_KEY = "upstream-key"

# The models the config below defines, in the order it lists them.
CONFIGURED_MODELS = (
    "demo-fast",
    "demo-smart",
    "fake-ok",
    "fake-500",
    "fake-cut",
    "fake-tool",
    "anth-ok",
    "anth-overloaded",
    "anth-failover",
    "demo-embed",
    "fake-resp",
    "fake-resp-cut",
    "fake-embed",
)

# What the `cut` upstream streams before it drops the connection.
CUT_STREAM_WORDS = ("Hello", " there")

# The `tool` scenario (OpenAI dialect): a user turn last gets this tool call, a `tool` turn last
# gets TOOL_FINAL_TEXT. Its arguments stream in the two pieces of TOOL_ARGUMENT_PIECES.
TOOL_NAME = "get_weather"
TOOL_CALL_ID = "call_fake_weather_01"
TOOL_ARGUMENTS = {"location": "San Francisco, CA", "unit": "celsius"}
TOOL_ARGUMENT_PIECES = ('{"location": "San Francisco, CA",', ' "unit": "celsius"}')
TOOL_FINAL_TEXT = "It is 15 degrees and foggy in San Francisco."

# The `anth-*` scenarios (Anthropic dialect).
ANTH_TEXT_DELTAS = ("Anthropic fake", " says hi.")
ANTH_MESSAGE_ID = "msg_fake_anth_ok_01"
ANTH_USAGE = {"input_tokens": 11, "output_tokens": 5}
ANTH_COUNT_TOKENS = 42
ANTH_OVERLOADED_MESSAGE = "The fake Anthropic upstream is overloaded on purpose."

# The `resp` scenario (Responses API, native): its Response and what its stream says. Each
# Response gets an id of its own (RESP_ID_PREFIX and a count), as OpenAI's do.
RESP_ID_PREFIX = "resp_fake_native_"
RESP_MESSAGE_ID = "msg_fake_native_01"
RESP_TEXT_DELTAS = ("Native fake", " says hi.")
RESP_USAGE = {
    "input_tokens": 13,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 6,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 19,
}

# The `embed-floats` scenario: every input gets this vector, as JSON numbers, always.
FAKE_EMBEDDING = (0.1, -0.2, 0.5)


# --------------------------------------------------------------------------------------------
# Fake upstream: OpenAI-compatible scenarios and Anthropic Messages ones
# --------------------------------------------------------------------------------------------


@dataclass
class UpstreamRequest:
    scenario: str
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class FakeUpstream:
    """A stdlib HTTP server whose first path segment picks the behaviour: ok, fail500, cut,
    tool (OpenAI dialect), anth-ok, anth-overloaded, anth-overloaded-fo (Anthropic dialect)."""

    server: ThreadingHTTPServer
    requests: list[UpstreamRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def base_url(self, scenario: str) -> str:
        """An `openai`-kind provider's base URL (with `/v1`) for `scenario`."""
        return f"http://127.0.0.1:{self.port}/{scenario}/v1"

    def anthropic_base_url(self, scenario: str) -> str:
        """An `anthropic`-kind provider's base URL (no `/v1`: the provider adds it)."""
        return f"http://127.0.0.1:{self.port}/{scenario}"

    def record(self, request: UpstreamRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def seen(self, scenario: str) -> list[UpstreamRequest]:
        with self.lock:
            return [r for r in self.requests if r.scenario == scenario]


def _chunk(model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ],
    }


def anth_ok_message(model: str) -> bytes:
    """The `anth-ok` scenario's non-streamed answer, exactly as it goes on the wire."""
    message = {
        "id": ANTH_MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "".join(ANTH_TEXT_DELTAS)}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": ANTH_USAGE,
    }
    return json.dumps(message).encode()


def anth_ok_events(model: str) -> list[bytes]:
    """The `anth-ok` scenario's streamed answer: one `event:`/`data:` pair per item, as sent."""
    start = {
        "id": ANTH_MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": ANTH_USAGE["input_tokens"], "output_tokens": 1},
    }
    events = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": t},
                },
            )
            for t in ANTH_TEXT_DELTAS
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": ANTH_USAGE["output_tokens"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events]


def resp_response(body: dict, response_id: str, status: str = "completed") -> dict:
    """The `resp` scenario's Response: one message with the whole text (empty while not done)."""
    done = status == "completed"
    text = "".join(RESP_TEXT_DELTAS) if done else ""
    message = {
        "id": RESP_MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [{"type": "output_text", "text": text, "annotations": []}] if done else [],
    }
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": status,
        "model": body.get("model", ""),
        "output": [message] if done else [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "previous_response_id": body.get("previous_response_id"),
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": RESP_USAGE if done else None,
    }


def resp_events(body: dict, response_id: str, cut: bool = False) -> list[bytes]:
    """The `resp` scenario's stream as sent: `event:`/`data:` pairs numbered from 0, no
    `[DONE]`. Cut, it stops after the first text delta."""
    part = {"type": "output_text", "text": "", "annotations": []}
    whole = {**part, "text": "".join(RESP_TEXT_DELTAS)}
    ids = {"item_id": RESP_MESSAGE_ID, "output_index": 0, "content_index": 0}
    item = {"id": RESP_MESSAGE_ID, "type": "message", "role": "assistant",
            "status": "in_progress", "content": []}
    events = [
        {"type": "response.created", "response": resp_response(body, response_id, "in_progress")},
        {"type": "response.in_progress", "response": resp_response(body, response_id, "in_progress")},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **ids, "part": part},
        *({"type": "response.output_text.delta", **ids, "delta": d} for d in RESP_TEXT_DELTAS),
        {"type": "response.output_text.done", **ids, "text": whole["text"]},
        {"type": "response.content_part.done", **ids, "part": whole},
        {"type": "response.output_item.done", "output_index": 0,
         "item": resp_response(body, response_id)["output"][0]},
        {"type": "response.completed", "response": resp_response(body, response_id)},
    ]
    if cut:
        events = events[:5]
    return [
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': n})}\n\n".encode()
        for n, e in enumerate(events)
    ]


_response_numbers = itertools.count(1)


def _make_handler(upstream_ref: list[FakeUpstream]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - stdlib signature
            pass  # quiet: pytest shows failures, not access logs

        def do_POST(self):  # noqa: N802 - stdlib name
            parts = self.path.strip("/").split("/")
            scenario = parts[0] if parts else ""
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_unparsed": raw.decode("utf-8", "replace")}
            upstream_ref[0].record(
                UpstreamRequest(
                    scenario=scenario,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
            )
            if scenario.startswith("anth-"):
                return self._anthropic(scenario, parts[1:], body)
            if scenario in ("resp", "resp-cut") and parts[1:] == ["v1", "responses"]:
                return self._responses(body, cut=scenario == "resp-cut")
            if scenario == "embed-floats" and parts[1:] == ["v1", "embeddings"]:
                return self._embeddings(body)
            if parts[1:] != ["v1", "chat", "completions"]:
                return self._json(404, {"error": {"message": "no such path", "type": "x"}})
            if scenario == "tool":
                return self._tool(body)
            if scenario == "ok":
                return self._ok(body)
            if scenario == "fail500":
                return self._json(
                    500,
                    {
                        "error": {
                            "message": "The fake upstream failed on purpose.",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            if scenario == "cut":
                return self._cut(body)
            return self._json(404, {"error": {"message": "unknown scenario", "type": "x"}})

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _ok(self, body: dict) -> None:
            model = body.get("model", "")
            text = "Fake upstream says hi."
            if body.get("stream"):
                events = [
                    _chunk(model, {"role": "assistant", "content": ""}),
                    _chunk(model, {"content": text}),
                    _chunk(model, {}, "stop"),
                ]
                data = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
                data += b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
                },
            )

        def _anthropic(self, scenario: str, path: list[str], body: dict) -> None:
            """Anthropic's Messages API: `anth-ok` answers, `anth-overloaded*` is 529."""
            if path not in (["v1", "messages"], ["v1", "messages", "count_tokens"]):
                return self._anthropic_not_found("no such path")
            if scenario.startswith("anth-overloaded"):
                error = {"type": "overloaded_error", "message": ANTH_OVERLOADED_MESSAGE}
                return self._json(529, {"type": "error", "error": error})
            if scenario != "anth-ok":
                return self._anthropic_not_found("unknown scenario")
            if path[-1] == "count_tokens":
                return self._json(200, {"input_tokens": ANTH_COUNT_TOKENS})
            model = body.get("model", "")
            if not body.get("stream"):
                return self._raw(200, "application/json", anth_ok_message(model))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("cache-control", "no-cache")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in anth_ok_events(model):
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _responses(self, body: dict, cut: bool) -> None:
            """The Responses API itself: a Response, or its events in chunked framing. Cut, the
            socket closes after the first text delta (no terminating zero-length chunk)."""
            response_id = f"{RESP_ID_PREFIX}{next(_response_numbers):04d}"
            if not body.get("stream"):
                data = json.dumps(resp_response(body, response_id)).encode()
                return self._raw(200, "application/json", data)
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for event in resp_events(body, response_id, cut):
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
            if cut:
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

        def _embeddings(self, body: dict) -> None:
            """An OpenAI-compatible server that writes floats, whatever `encoding_format` says."""
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(
                inputs[0], int) else 1
            data = [
                {"object": "embedding", "index": i, "embedding": list(FAKE_EMBEDDING)}
                for i in range(count)
            ]
            usage = {"prompt_tokens": 2 * count, "total_tokens": 2 * count}
            self._json(200, {"object": "list", "data": data, "model": body.get("model", ""),
                             "usage": usage})

        def _anthropic_not_found(self, message: str) -> None:
            error = {"type": "not_found_error", "message": message}
            self._json(404, {"type": "error", "error": error})

        def _tool(self, body: dict) -> None:
            """An OpenAI upstream that calls `get_weather`, then answers the tool's result."""
            model = body.get("model", "")
            messages = body.get("messages") or [{}]
            answered = messages[-1].get("role") == "tool"
            if body.get("stream"):
                if answered:
                    deltas = [({"role": "assistant", "content": ""}, None),
                              ({"content": TOOL_FINAL_TEXT}, None), ({}, "stop")]
                else:
                    first, second = TOOL_ARGUMENT_PIECES
                    call = {"index": 0, "id": TOOL_CALL_ID, "type": "function",
                            "function": {"name": TOOL_NAME, "arguments": first}}
                    deltas = [
                        ({"role": "assistant", "content": None, "tool_calls": [call]}, None),
                        ({"tool_calls": [{"index": 0, "function": {"arguments": second}}]}, None),
                        ({}, "tool_calls"),
                    ]
                events = [_chunk(model, delta, finish) for delta, finish in deltas]
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
                    events.append({**_chunk(model, {}), "choices": [], "usage": usage})
                data = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
                return self._raw(200, "text/event-stream", data + b"data: [DONE]\n\n")
            if answered:
                message = {"role": "assistant", "content": TOOL_FINAL_TEXT}
                finish = "stop"
            else:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": TOOL_CALL_ID,
                            "type": "function",
                            "function": {
                                "name": TOOL_NAME,
                                "arguments": json.dumps(TOOL_ARGUMENTS),
                            },
                        }
                    ],
                }
                finish = "tool_calls"
            self._json(
                200,
                {
                    "id": "chatcmpl-fake-tool",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                    ],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
                },
            )

        def _raw(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _cut(self, body: dict) -> None:
            """Two content chunks in chunked framing, then the socket closes: no `[DONE]`, no
            terminating zero-length chunk. What an upstream that dies mid-answer looks like."""
            model = body.get("model", "")
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for word in CUT_STREAM_WORDS:
                event = f"data: {json.dumps(_chunk(model, {'content': word}))}\n\n".encode()
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)
            self.close_connection = True

    return Handler


@pytest.fixture(scope="session")
def fake_upstream():
    ref: list[FakeUpstream] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(ref))
    server.daemon_threads = True
    upstream = FakeUpstream(server=server)
    ref.append(upstream)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# The gateway binary
# --------------------------------------------------------------------------------------------


def _gateway_config(upstream: FakeUpstream) -> str:
    timeouts = "{ connect: 2s, first_byte: 10s, idle: 10s, total: 10s }"

    def openai_provider(scenario: str) -> str:
        return (
            f"{{ kind: openai, base_url: {upstream.base_url(scenario)}, "
            # One attempt per request: the tests count what reaches the fake upstream.
            f"api_key: {UPSTREAM_KEY}, timeouts: {timeouts}, retry: {{ max_retries: 0 }} }}"
        )

    def native_responses_provider(scenario: str) -> str:
        # A loopback `openai` server is taken for one without the Responses API unless told.
        return openai_provider(scenario)[:-2] + ", native_responses: true }"

    def anthropic_provider(scenario: str) -> str:
        return (
            f"{{ kind: anthropic, base_url: '{upstream.anthropic_base_url(scenario)}', "
            f"api_key: {UPSTREAM_KEY}, timeouts: {timeouts}, retry: {{ max_retries: 0 }}, "
            # The overloaded ones fail on every call: their circuits must stay closed all session
            # so that each test sees its request reach them.
            "circuit_breaker: { consecutive_failures: 100000, open_for: 1s } }"
        )

    return f"""\
server: {{ listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }}
# Off for these tests: they count what reaches the upstream. test_cache.py turns it on.
cache: {{ backend: none }}
providers:
  mock: {{ kind: mock, latency: 5ms }}
  upstream-ok: {openai_provider("ok")}
  upstream-500: {openai_provider("fail500")}
  upstream-cut: {openai_provider("cut")}
  upstream-tool: {openai_provider("tool")}
  anthropic-ok: {anthropic_provider("anth-ok")}
  anthropic-overloaded: {anthropic_provider("anth-overloaded")}
  anthropic-overloaded-fo: {anthropic_provider("anth-overloaded-fo")}
  upstream-resp: {native_responses_provider("resp")}
  upstream-resp-cut: {native_responses_provider("resp-cut")}
  upstream-embed: {openai_provider("embed-floats")}
models:
  demo-fast:
    targets: [ {{ provider: mock, model: mock-small }} ]
  demo-smart:
    targets: [ {{ provider: mock, model: mock-large }} ]
  fake-ok:
    targets: [ {{ provider: upstream-ok, model: upstream-model-ok }} ]
  fake-500:
    targets: [ {{ provider: upstream-500, model: upstream-model-500 }} ]
  fake-cut:
    targets: [ {{ provider: upstream-cut, model: upstream-model-cut }} ]
  fake-tool:
    targets: [ {{ provider: upstream-tool, model: upstream-model-tool }} ]
  anth-ok:
    targets: [ {{ provider: anthropic-ok, model: claude-upstream-ok }} ]
  anth-overloaded:
    targets: [ {{ provider: anthropic-overloaded, model: claude-upstream-overloaded }} ]
  anth-failover:
    targets:
      - {{ provider: anthropic-overloaded-fo, model: claude-upstream-overloaded }}
      - {{ provider: mock, model: mock-failover }}
  demo-embed:
    targets: [ {{ provider: mock, model: mock-embedding }} ]
  fake-resp:
    targets: [ {{ provider: upstream-resp, model: upstream-model-resp }} ]
  fake-resp-cut:
    targets: [ {{ provider: upstream-resp-cut, model: upstream-model-resp-cut }} ]
  fake-embed:
    targets: [ {{ provider: upstream-embed, model: upstream-model-embed }} ]
"""


def _gateway_binary() -> Path:
    configured = os.environ.get("BALLAST_BIN", "target/debug/ballast")
    path = Path(configured)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


@dataclass
class Gateway:
    process: subprocess.Popen
    addr: str
    log_lines: list[str]

    @property
    def base_url(self) -> str:
        return f"http://{self.addr}/v1"

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_lines[-n:])


def _listening_addr(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    fields = record.get("fields") if isinstance(record, dict) else None
    if isinstance(fields, dict) and fields.get("message") == "listening":
        addr = fields.get("addr")
        return addr if isinstance(addr, str) else None
    return None


@pytest.fixture(scope="session")
def gateway(fake_upstream, tmp_path_factory):
    yield from _serve(_gateway_config(fake_upstream), tmp_path_factory)


def _kept_config(upstream: FakeUpstream) -> str:
    """The same models, on a store that keeps Responses conversations (the memory cache) while
    no answer is cached (`cache: false` on every model), so upstream hits can still be counted."""
    config = _gateway_config(upstream).replace(
        "# Off for these tests: they count what reaches the upstream. test_cache.py turns it on.\n"
        "cache: { backend: none }",
        "# On for its store only: every model below says `cache: false`.\n"
        "cache: { backend: memory, ttl: 1h }",
    )
    assert "backend: memory" in config
    models = config.index("\nmodels:\n")
    body = re.sub(r"(?m)^(  [a-z0-9-]+:\n)(    targets:)", r"\1    cache: false\n\2",
                  config[models:])
    return config[:models] + body


@pytest.fixture(scope="session")
def kept_gateway(fake_upstream, tmp_path_factory):
    """A gateway that keeps conversations by response id (SPEC §4: with `backend: none`, as on
    `gateway`, it keeps none, and a `previous_response_id` it does not know is refused)."""
    yield from _serve(_kept_config(fake_upstream), tmp_path_factory)


CACHED_CONFIG = """\
server: { listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }
cache: { backend: memory, ttl: 1h }
providers:
  mock: { kind: mock, latency: 5ms }
models:
  demo-cached:
    targets: [ { provider: mock, model: mock-cached } ]
  demo-embed-cached:
    targets: [ { provider: mock, model: mock-embedding-cached } ]
"""


@pytest.fixture(scope="session")
def cached_gateway(tmp_path_factory):
    """A gateway whose answers are cached in memory (the default backend)."""
    yield from _serve(CACHED_CONFIG, tmp_path_factory)


def _serve(config_text: str, tmp_path_factory):
    binary = _gateway_binary()
    if not binary.is_file():
        pytest.fail(
            f"gateway binary not found at {binary}: run `cargo build` first (or set BALLAST_BIN)"
        )
    config = tmp_path_factory.mktemp("ballast") / "sdk.yaml"
    config.write_text(config_text)

    process = subprocess.Popen(
        [
            str(binary), "serve", "--config", str(config),
            "--listen", "127.0.0.1:0", "--log-format", "json",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    log_lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def drain_stderr():
        # Reads until the gateway closes stderr (it exits), so the pipe never fills up.
        for line in process.stderr:
            line = line.rstrip("\n")
            log_lines.append(line)
            if not ready.is_set():
                addr = _listening_addr(line)
                if addr:
                    found["addr"] = addr
                    ready.set()
        ready.set()  # stderr closed: the gateway is gone; wake the waiter

    reader = threading.Thread(target=drain_stderr, daemon=True)
    reader.start()
    ready.wait(timeout=STARTUP_TIMEOUT_S)
    if "addr" not in found:
        alive = process.poll() is None
        if alive:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        reader.join(timeout=5)
        why = (
            f"did not log `listening` within {STARTUP_TIMEOUT_S}s"
            if alive
            else f"exited with code {process.returncode} before logging `listening`"
        )
        pytest.fail(f"gateway {why}; its stderr:\n" + "\n".join(log_lines[-40:]))

    gw = Gateway(process=process, addr=found["addr"], log_lines=log_lines)
    try:
        yield gw
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
            reader.join(timeout=5)
            pytest.fail(
                f"gateway did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM:\n{gw.log_tail()}"
            )
        reader.join(timeout=5)
        assert code == 0, f"gateway exited with {code} after SIGTERM:\n{gw.log_tail()}"


# --------------------------------------------------------------------------------------------
# SDK clients
# --------------------------------------------------------------------------------------------


@pytest.fixture
def client(gateway):
    sdk = openai.OpenAI(
        base_url=gateway.base_url,
        api_key=CLIENT_KEY,
        max_retries=2,
        timeout=CLIENT_TIMEOUT_S,
    )
    try:
        yield sdk
    finally:
        sdk.close()


@pytest.fixture
def kept_client(kept_gateway):
    sdk = openai.OpenAI(
        base_url=kept_gateway.base_url,
        api_key=CLIENT_KEY,
        max_retries=2,
        timeout=CLIENT_TIMEOUT_S,
    )
    try:
        yield sdk
    finally:
        sdk.close()


@dataclass
class CountingClient:
    """An SDK client plus every HTTP request it put on the wire (retries included)."""

    sdk: openai.OpenAI
    sent: list[str]


@pytest.fixture
def counting_client(gateway):
    sent: list[str] = []

    def on_request(request):
        sent.append(f"{request.method} {request.url}")

    http_client = openai.DefaultHttpxClient(
        event_hooks={"request": [on_request]}, timeout=CLIENT_TIMEOUT_S
    )
    sdk = openai.OpenAI(
        base_url=gateway.base_url,
        api_key=CLIENT_KEY,
        max_retries=2,
        timeout=CLIENT_TIMEOUT_S,
        http_client=http_client,
    )
    try:
        yield CountingClient(sdk=sdk, sent=sent)
    finally:
        sdk.close()
        http_client.close()
