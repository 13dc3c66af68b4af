//! A stream's response body: the upstream's chunks framed as server-sent events in the route's
//! dialect, several to a frame when they come in a burst, with keep-alives while it is quiet.
//!
//! Chat: `data:` lines, ending with `data: [DONE]` only when the upstream reached its terminal
//! event; a stream that breaks ends with an OpenAI error event and no `[DONE]`. Messages: each
//! event named by its `type` (`event: message_start` ...), ending after `message_stop`; a break
//! ends it with `event: error` and no `message_stop`. Responses: each event named by its `type`,
//! ending after the terminal event; a break ends it with `error` and `response.failed`. Either
//! way SDKs raise instead of accepting a truncated answer.
//!
//! Writes: every frame the body yields is one write to the client's socket, and that write is
//! most of what a stream costs the gateway. So when the upstream's chunks are ready one after
//! the other (a burst read at once, handed over one by one by the upstream connection's task),
//! the body gathers them: with chunks in hand and the next one not ready, it yields once to the
//! scheduler so that the upstream's task can pass on the next, and writes what it holds when a
//! yield brought nothing, or [`BATCH_BYTES`] are gathered. A chunk that comes alone costs one
//! extra poll, never a wait.
//!
//! A quiet stream gets a keep-alive after [`KEEP_ALIVE`] without a write: an SSE comment for chat
//! and Responses, a `ping` event for Messages (as Anthropic sends). The timer is a [`Quiet`]: a
//! frame costs a clock read, not a timer update.
//!
//! Dropping the body (client gone) drops the upstream stream, which cancels the upstream request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::record::RequestRecord;
use crate::anthropic::ErrorBody as AnthropicError;
use crate::dialect::Api;
use crate::dialect::responses::StreamTail;
use crate::openai::error::ErrorBody;
use crate::openai::stream::{DONE, is_usage_only};
use crate::outcome::StreamEnding;
use crate::providers::ChunkStream;
use crate::quiet::Quiet;

/// The quiet time after which a keep-alive is sent (axum's and most servers' default).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A frame is written once it holds this much, without waiting for more.
pub const BATCH_BYTES: usize = 16 * 1024;

/// Messages' keep-alive, as Anthropic sends it.
const PING: &str = r#"{"type": "ping"}"#;

/// How a route writes its streams.
#[derive(Clone, Copy)]
pub struct Framing {
    pub api: Api,
    /// Chat's `stream_options.include_usage`: whether the usage-only chunk is sent.
    pub include_usage: bool,
}

/// The body of a streamed answer.
pub struct SseBody {
    chunks: ChunkStream,
    framing: Framing,
    /// Told how the stream ended; dropped (and so recorded) with the body.
    record: RequestRecord,
    /// What a Responses stream needs to end well after a break.
    tail: StreamTail,
    /// Resolves when the shutdown grace has run out (`Lifecycle::streams_cut`).
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    request_id: Arc<str>,
    /// Events framed and not yet written.
    pending: BytesMut,
    /// The body yielded to the scheduler and no chunk came since.
    yielded: bool,
    /// The last event was framed: what is pending is all there is.
    finished: bool,
    /// Touched by every write.
    keep_alive: Quiet,
}

impl SseBody {
    pub fn new(
        chunks: ChunkStream,
        framing: Framing,
        request_id: Arc<str>,
        cut: WaitForCancellationFutureOwned,
        record: RequestRecord,
    ) -> Self {
        Self {
            chunks,
            framing,
            record,
            tail: StreamTail::default(),
            cut: Box::pin(cut),
            request_id,
            pending: BytesMut::new(),
            yielded: false,
            finished: false,
            keep_alive: Quiet::new(KEEP_ALIVE),
        }
    }

    /// The body with what the upstream has ready already gathered (yielding as `poll_frame`
    /// does), for the response's head and first events to go out in one write: hyper writes
    /// the head as soon as the body is first `Pending`.
    pub async fn gathered(mut self) -> Self {
        // Nothing in hand (a stream is held until content, so rarely): nothing to wait for.
        std::future::poll_fn(|cx| match self.poll_batch(cx) {
            Poll::Pending if !self.pending.is_empty() => Poll::Pending,
            _ => Poll::Ready(()),
        })
        .await;
        self
    }

    /// One upstream chunk, framed into `pending`.
    fn push_chunk(&mut self, data: &str) {
        match self.framing.api {
            Api::Chat | Api::Embeddings => frame(&mut self.pending, None, data),
            Api::Messages => frame_named(&mut self.pending, data),
            Api::Responses => {
                self.tail.saw(data);
                frame_named(&mut self.pending, data);
            }
        }
    }

    /// The events that end a broken stream: chat's error chunk, Messages' `error` event, or
    /// Responses' `error` and `response.failed`.
    fn push_failure(&mut self, ending: StreamEnding, code: &str, message: &str) {
        self.record.ended(ending);
        self.finished = true;
        match self.framing.api {
            Api::Chat | Api::Embeddings => {
                let body = ErrorBody::new("api_error", Some(code), None, message.to_owned());
                let data = serde_json::to_string(&body).unwrap_or_default();
                frame(&mut self.pending, None, &data);
            }
            Api::Messages => {
                let body = AnthropicError::new("api_error", message.to_owned());
                frame_named(&mut self.pending, &serde_json::to_string(&body).unwrap_or_default());
            }
            Api::Responses => {
                for data in self.tail.failed(code, message) {
                    frame_named(&mut self.pending, &data);
                }
            }
        }
    }

    /// Takes what the upstream has ready into `pending`; `Pending` once it has nothing more.
    fn gather(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.cut.as_mut().poll(cx).is_ready() {
            tracing::warn!(request_id = %self.request_id, "shutdown grace passed; ending an open stream");
            self.push_failure(
                StreamEnding::Shutdown,
                "gateway_shutting_down",
                "The gateway is shutting down and ended this stream.",
            );
            return Poll::Ready(());
        }
        while self.pending.len() < BATCH_BYTES {
            match self.chunks.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    self.yielded = false;
                    // The gateway always asks upstreams for the usage chunk; only those who
                    // asked get it.
                    let Framing { api, include_usage } = self.framing;
                    if api == Api::Chat && !include_usage && is_usage_only(&data) {
                        continue;
                    }
                    self.push_chunk(&data);
                }
                Poll::Ready(None) => {
                    self.record.ended(StreamEnding::Complete);
                    self.finished = true;
                    // Messages and Responses streams end with their terminal event.
                    if self.framing.api == Api::Chat {
                        frame(&mut self.pending, None, DONE);
                    }
                    return Poll::Ready(());
                }
                Poll::Ready(Some(Err(failure))) => {
                    tracing::warn!(request_id = %self.request_id, failure = %failure, "upstream stream broke off");
                    self.push_failure(
                        StreamEnding::UpstreamError,
                        "upstream_stream_error",
                        "The upstream provider's stream broke off before it was complete.",
                    );
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }

    /// Ready when what `pending` holds is to be written now: the stream is finished, a batch is
    /// full, or a yield brought nothing more. `Pending` when it has nothing, or holds chunks and
    /// yielded to the scheduler (woken again at once) to let the upstream's task pass on the
    /// next one.
    fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.finished || self.gather(cx).is_ready() {
            return Poll::Ready(());
        }
        if self.pending.is_empty() {
            return Poll::Pending;
        }
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn take_frame(&mut self) -> Frame<Bytes> {
        self.keep_alive.touch();
        Frame::data(self.pending.split().freeze())
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.poll_batch(cx).is_pending() {
            if !this.pending.is_empty() {
                return Poll::Pending;
            }
            if this.keep_alive.poll_quiet(cx).is_pending() {
                return Poll::Pending;
            }
            match this.framing.api {
                Api::Messages => frame_named(&mut this.pending, PING),
                Api::Chat | Api::Responses | Api::Embeddings => this.pending.put_slice(b":\n\n"),
            }
        }
        if this.pending.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(this.take_frame())))
    }

    fn is_end_stream(&self) -> bool {
        self.finished && self.pending.is_empty()
    }
}

/// One event: its `event:` line when named, then its data, a `data:` line per line of it (an
/// SSE parser would end a line at any `\n` or `\r` in it), then the blank line.
fn frame(out: &mut BytesMut, name: Option<&str>, data: &str) {
    // One reservation for the usual event (a name, one line of data), not one per part.
    out.reserve(name.map_or(0, |name| name.len() + 8) + data.len() + 8);
    if let Some(name) = name {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_u8(b'\n');
    }
    let mut rest = data.as_bytes();
    loop {
        out.put_slice(b"data: ");
        let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else { break };
        out.put_slice(&rest[..end]);
        out.put_u8(b'\n');
        rest = &rest[end + 1..];
    }
    out.put_slice(rest);
    out.put_slice(b"\n\n");
}

/// A Messages or Responses event: named by its data's `type`, as the SDKs dispatch on it.
fn frame_named(out: &mut BytesMut, data: &str) {
    let name = crate::dialect::event_type(data);
    // A name with a line break would end the line early.
    let name = name.as_deref().filter(|name| !name.contains(['\r', '\n']));
    frame(out, name, data);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{StreamExt, stream};
    use http_body_util::BodyExt;
    use tokio::time::Instant;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::failure::{Failure, FailureClass};
    use crate::metrics::Metrics;

    fn body(chunks: ChunkStream, api: Api, cut: &CancellationToken) -> SseBody {
        let metrics = Arc::new(Metrics::new().unwrap());
        let model = Arc::from("m");
        let record = RequestRecord::new(&metrics, api, &model, true, Instant::now());
        let framing = Framing { api, include_usage: false };
        SseBody::new(chunks, framing, Arc::from("req"), cut.clone().cancelled_owned(), record)
    }

    /// Every frame the body yields, as text.
    async fn frames(mut body: SseBody) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            out.push(String::from_utf8(data.to_vec()).unwrap());
        }
        out
    }

    fn framed(name: Option<&str>, data: &str) -> String {
        let mut out = BytesMut::new();
        frame(&mut out, name, data);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn frames_an_event_line_by_line() {
        assert_eq!(framed(None, "{\"a\":1}"), "data: {\"a\":1}\n\n");
        assert_eq!(framed(Some("ping"), "x\ny\rz"), "event: ping\ndata: x\ndata: y\ndata: z\n\n");
        assert_eq!(framed(None, "a\r\nb\n"), "data: a\ndata: \ndata: b\ndata: \n\n");
        let mut out = BytesMut::new();
        frame_named(&mut out, r#"{"type":"message_stop"}"#);
        assert_eq!(&out[..], b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }

    #[tokio::test]
    async fn chunks_ready_together_go_out_in_one_frame_that_ends_with_done() {
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        let chunks = stream::iter(["{\"a\":1}", "{\"a\":2}", usage].map(|c| Ok(c.to_owned())));
        let out = frames(body(chunks.boxed(), Api::Chat, &CancellationToken::new())).await;
        // The usage chunk is left out: this client did not ask for it.
        assert_eq!(out, ["data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n"]);
    }

    #[tokio::test]
    async fn a_gathered_body_holds_the_burst_for_the_first_write() {
        let chunks = stream::iter(["{\"a\":1}", "{\"a\":2}"].map(|c| Ok(c.to_owned())));
        let chunks = chunks.chain(stream::pending());
        let gathered = body(chunks.boxed(), Api::Chat, &CancellationToken::new()).gathered().await;
        assert_eq!(&gathered.pending[..], b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\n");
    }

    #[tokio::test]
    async fn chunks_that_come_apart_go_out_apart() {
        let chunks = stream::iter(["one", "two"]).then(|chunk| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(chunk.to_owned())
        });
        let out = frames(body(chunks.boxed(), Api::Messages, &CancellationToken::new())).await;
        assert_eq!(out, ["data: one\n\n", "data: two\n\n"]);
    }

    #[tokio::test]
    async fn a_break_ends_the_stream_with_an_error_event_and_no_done() {
        let broken = Failure::new(FailureClass::ServerError, &Arc::from("p"), "cut");
        let chunks = stream::iter([Ok("{\"a\":1}".to_owned()), Err(broken)]);
        let out = frames(body(chunks.boxed(), Api::Chat, &CancellationToken::new())).await.concat();
        assert!(out.starts_with("data: {\"a\":1}\n\ndata: {\"error\":"), "{out}");
        assert!(out.contains("upstream_stream_error") && !out.contains("[DONE]"), "{out}");
    }

    #[tokio::test]
    async fn the_shutdown_cut_ends_an_open_stream_with_an_error_event() {
        let cut = CancellationToken::new();
        let open = body(stream::pending().boxed(), Api::Messages, &cut);
        cut.cancel();
        let out = frames(open).await.concat();
        assert!(out.starts_with("event: error\ndata: {\"type\":\"error\""), "{out}");
        assert!(out.contains("shutting down"), "{out}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_a_keep_alive_after_fifteen_seconds_without_a_write() {
        // One chunk at 10 s, then nothing: the keep-alive is due 15 s after that chunk.
        let chunks = stream::once(async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok("{\"type\":\"message_start\"}".to_owned())
        })
        .chain(stream::pending());
        let mut quiet = body(chunks.boxed(), Api::Messages, &CancellationToken::new());
        let start = Instant::now();
        let mut next = async || {
            let data = quiet.frame().await.unwrap().unwrap().into_data().unwrap();
            (start.elapsed().as_secs(), String::from_utf8(data.to_vec()).unwrap())
        };
        assert_eq!(next().await.0, 10);
        let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n".to_owned();
        assert_eq!(next().await, (25, ping.clone()));
        assert_eq!(next().await, (40, ping));

        let mut chat = body(stream::pending().boxed(), Api::Chat, &CancellationToken::new());
        let data = chat.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!((start.elapsed().as_secs(), &data[..]), (55, &b":\n\n"[..]));
    }
}
