"""Fixtures: the real gateway binary on 127.0.0.1:0, a scripted fake upstream, SDK clients.

The gateway runs once per session on a config written here. Its models:

* ``demo-fast`` and ``demo-smart``: the built-in offline ``mock`` provider.
* ``fake-ok``, ``fake-500``, ``fake-cut``: an ``openai``-kind provider each, pointed at the fake
  upstream below under a path that picks its behaviour (a normal answer, HTTP 500, or a stream
  cut after two chunks). The fake upstream records every request it gets, so tests can count
  them and look at what the gateway sent.

Everything listens on loopback only, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
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
CONFIGURED_MODELS = ("demo-fast", "demo-smart", "fake-ok", "fake-500", "fake-cut")

# What the `cut` upstream streams before it drops the connection.
CUT_STREAM_WORDS = ("Hello", " there")


# --------------------------------------------------------------------------------------------
# Fake OpenAI-compatible upstream
# --------------------------------------------------------------------------------------------


@dataclass
class UpstreamRequest:
    scenario: str
    path: str
    headers: dict[str, str]
    body: dict


@dataclass
class FakeUpstream:
    """A stdlib HTTP server whose first path segment picks the behaviour: ok, fail500, cut."""

    server: ThreadingHTTPServer
    requests: list[UpstreamRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def base_url(self, scenario: str) -> str:
        return f"http://127.0.0.1:{self.port}/{scenario}/v1"

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
            if parts[1:] != ["v1", "chat", "completions"]:
                return self._json(404, {"error": {"message": "no such path", "type": "x"}})
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

    return f"""\
server: {{ listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }}
# Off for these tests: they count what reaches the upstream. test_cache.py turns it on.
cache: {{ backend: none }}
providers:
  mock: {{ kind: mock, latency: 5ms }}
  upstream-ok: {openai_provider("ok")}
  upstream-500: {openai_provider("fail500")}
  upstream-cut: {openai_provider("cut")}
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


CACHED_CONFIG = """\
server: { listen: 127.0.0.1:0, request_timeout: 30s, shutdown_grace: 2s }
cache: { backend: memory, ttl: 1h }
providers:
  mock: { kind: mock, latency: 5ms }
models:
  demo-cached:
    targets: [ { provider: mock, model: mock-cached } ]
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
