//! What a `FakeUpstream` answers: `Reply` scripts, canned bodies and streams, the fixtures.

use std::time::Duration;

use serde_json::{Value, json};

/// What the fake upstream does with the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An HTTP response with this status, extra headers and body.
    Respond { status: u16, headers: Vec<(String, String)>, body: String },
    /// A `text/event-stream` answer: each string is one event's `data:`, sent `gap` apart.
    Stream { events: Vec<String>, gap: Duration, end: StreamEnd },
    /// Read the request, then never answer (the connection stays open).
    Hang,
    /// Read the request, then reset the connection (RST).
    Reset,
    /// Wait, then do the inner reply.
    Delay(Duration, Box<Reply>),
    /// The inner reply, then the connection closed without a word (as by a server whose
    /// keep-alive time ran out).
    ThenClose(Box<Reply>),
    /// A `text/event-stream` answer of whole SSE events (`event:` and `data:` lines, as
    /// Anthropic sends them), each sent as written followed by a blank line, `gap` apart.
    Events { events: Vec<String>, gap: Duration, end: StreamEnd },
}

/// How a streamed reply ends after its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The chunked body ends properly.
    Finish,
    /// The connection is closed without ending the chunked body.
    Close,
    /// The connection is reset.
    Reset,
    /// Nothing more is sent; the connection stays open.
    Stall,
}

impl Reply {
    /// A 200 `chat.completion` whose answer is `text`.
    pub fn completion(text: &str) -> Self {
        Self::json(200, &completion_body(text))
    }

    pub fn json(status: u16, body: &Value) -> Self {
        Self::Respond { status, headers: Vec::new(), body: body.to_string() }
    }

    /// An OpenAI-shaped error with `status`.
    pub fn error(status: u16, message: &str) -> Self {
        Self::json(
            status,
            &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}}),
        )
    }

    /// A well-formed stream: a role chunk, one chunk per piece, a finish chunk, `[DONE]`.
    pub fn chunks(pieces: &[&str]) -> Self {
        Self::Stream {
            events: chunk_events(pieces, true),
            gap: Duration::ZERO,
            end: StreamEnd::Finish,
        }
    }

    pub fn with_header(self, name: &str, value: &str) -> Self {
        match self {
            Self::Respond { status, mut headers, body } => {
                headers.push((name.to_owned(), value.to_owned()));
                Self::Respond { status, headers, body }
            }
            other => other,
        }
    }

    /// The events of an SSE fixture, at once, ending properly.
    pub fn sse(name: &str) -> Self {
        Self::Events { events: sse_fixture(name), gap: Duration::ZERO, end: StreamEnd::Finish }
    }

    /// One Anthropic SSE event: `event: {type}` and the JSON.
    pub fn anthropic_event(data: &Value) -> String {
        format!("event: {}\ndata: {data}", data["type"].as_str().unwrap_or("unknown"))
    }

    /// A `text/event-stream` answer of Anthropic events, one per JSON `data` (each named by its
    /// `type`, as [`Reply::anthropic_event`] writes it), at once, ending as `end` says.
    pub fn anthropic_stream(events: &[Value], end: StreamEnd) -> Self {
        Self::Events {
            events: events.iter().map(Self::anthropic_event).collect(),
            gap: Duration::ZERO,
            end,
        }
    }

    /// A `text/event-stream` answer of OpenAI Responses events, one per JSON `data`, each named
    /// by its `type` (`event: response.created` ...) as OpenAI sends them, at once, ending as
    /// `end` says. The framing is Anthropic's, so this is [`Reply::anthropic_stream`] by the
    /// name a Responses test reads.
    pub fn responses_stream(events: &[Value], end: StreamEnd) -> Self {
        Self::anthropic_stream(events, end)
    }

    /// An Anthropic error answer: `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_error(status: u16, kind: &str, message: &str) -> Self {
        Self::json(
            status,
            &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}),
        )
    }
}

/// A `chat.completion` body whose answer is `text`, as an OpenAI upstream sends it.
pub fn completion_body(text: &str) -> Value {
    json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000u64,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    })
}

/// Chunk payloads for `pieces`, with a finish chunk and (when `done`) a `[DONE]`.
pub fn chunk_events(pieces: &[&str], done: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
               "model": "upstream-model",
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    events.extend(pieces.iter().map(|piece| chunk(json!({"content": piece}), Value::Null)));
    events.push(chunk(json!({}), json!("stop")));
    if done {
        events.push("[DONE]".to_owned());
    }
    events
}

// === Fixtures ===

/// A file of `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("fixture {}: {err}", path.display()))
}

/// A JSON fixture.
pub fn json_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// An SSE fixture as its events (the text between blank lines).
pub fn sse_fixture(name: &str) -> Vec<String> {
    fixture(name)
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|event| !event.is_empty())
        .map(str::to_owned)
        .collect()
}
