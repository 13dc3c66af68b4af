//! Server-sent events from upstreams: an incremental parser with size limits, and the stream of
//! chat-completion chunks built on it.
//!
//! The parser follows the WHATWG rules that matter for LLM APIs: lines end in `\n`, `\r\n` or
//! `\r`; lines starting with `:` are comments; `data:` lines of one event are joined with `\n`;
//! a blank line dispatches the event. `event:` names are kept (Anthropic uses them); `id:` and
//! `retry:` are ignored. An event larger than [`MAX_EVENT_BYTES`] is an error, so a broken
//! upstream cannot make the gateway buffer without bound.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;

use crate::failure::{Failure, FailureClass};
use crate::openai::stream::DONE;
use crate::outcome::Api;

/// The largest event (or unfinished line) accepted from an upstream.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; empty when absent.
    pub event: String,
    pub data: String,
}

#[derive(Debug, PartialEq, Eq)]
pub struct EventTooLarge;

/// Incremental parser: feed bytes with [`SseParser::push`], take events with [`SseParser::next_event`].
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: BytesMut,
    /// A `\r` ended the previous chunk, so a leading `\n` in the next one belongs to it.
    skip_lf: bool,
    lines: Lines,
}

/// The event being read, line by line.
#[derive(Debug, Default)]
struct Lines {
    event: String,
    data: String,
    has_data: bool,
    /// An event grew past the limit once decoded (invalid UTF-8 decodes to 3-byte U+FFFD, so
    /// the raw-byte check in `push` alone does not bound it): no more events, and `push` fails.
    overflowed: bool,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), EventTooLarge> {
        self.buffer.extend_from_slice(bytes);
        if self.lines.overflowed || self.buffer.len() + self.lines.data.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(())
    }

    /// The next complete event in what was pushed so far. Each line is read where it lies in the
    /// buffer, which then moves past it.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        if self.lines.overflowed {
            return None;
        }
        loop {
            if self.skip_lf && !self.buffer.is_empty() {
                if self.buffer[0] == b'\n' {
                    self.buffer.advance(1);
                }
                self.skip_lf = false;
            }
            let end = memchr::memchr2(b'\n', b'\r', &self.buffer)?;
            let event = self.lines.take(&self.buffer[..end]);
            self.skip_lf = self.buffer[end] == b'\r';
            self.buffer.advance(end + 1);
            if event.is_some() {
                return event;
            }
        }
    }
}

impl Lines {
    fn take(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            if !self.has_data {
                self.event.clear();
                return None;
            }
            self.has_data = false;
            return Some(SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
            });
        }
        if line[0] == b':' {
            return None;
        }
        // The field is what comes before the first colon: found in the bytes, so only the value
        // is checked as UTF-8 (nearly always valid: borrowed as it is, decoded lossily only when
        // it is not).
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                let value = String::from_utf8_lossy(value);
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    self.overflowed = true;
                    self.data = String::new();
                    self.has_data = false;
                    return None;
                }
                if self.has_data {
                    self.data.push('\n');
                    self.data.push_str(&value);
                } else {
                    // Empty (taken by the last event): one allocation of the right size.
                    self.data = value.into_owned();
                }
                self.has_data = true;
            }
            b"event" => String::from_utf8_lossy(value).as_ref().clone_into(&mut self.event),
            _ => {}
        }
        None
    }
}

/// What a translator makes of one upstream event.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// One chunk payload to pass on (the usual case: no `Vec` for it).
    Chunk(String),
    /// Chunk payloads to pass on (often none: pings, events that carry nothing for OpenAI).
    Chunks(Vec<String>),
    /// The upstream's terminal event: these last chunks, then a clean end.
    End(Vec<String>),
    /// Something that is not a valid answer; the words are for operators.
    Fail(String),
    /// The upstream's own error event (its payload, in the dialect `api`), classified by its
    /// words: most are a `server_error`, a context error is a `context_overflow`.
    Error { detail: String, event: String, api: Api },
}

/// Turns an SSE body into chat-completion chunk payloads, one upstream event at a time through
/// `on_event`. The stream ends cleanly only after [`Step::End`]; [`Step::Fail`], a read error,
/// an oversized event or a body that ends first yield one `Err` (a `server_error` for the
/// first two) and end it.
pub fn translate<S, F>(
    provider: Arc<str>,
    body: S,
    on_event: F,
) -> impl Stream<Item = Result<String, Failure>>
where
    S: Stream<Item = Result<Bytes, Failure>> + Send + Unpin + 'static,
    F: FnMut(SseEvent) -> Step + Send + 'static,
{
    Translate {
        provider,
        body,
        parser: SseParser::default(),
        on_event,
        ready: VecDeque::new(),
        ended: false,
        broken: false,
    }
}

/// The stream [`translate`] returns.
struct Translate<S, F> {
    provider: Arc<str>,
    body: S,
    parser: SseParser,
    on_event: F,
    /// Chunks made of events already read, to pass on first.
    ready: VecDeque<String>,
    /// The terminal event came: what is ready is all there is.
    ended: bool,
    /// It yielded its `Err`: nothing more.
    broken: bool,
}

// Nothing in it is pinned in place: the body is `Unpin`, and the rest is only used by `&mut`.
impl<S, F> Unpin for Translate<S, F> {}

impl<S, F> Translate<S, F>
where
    S: Stream<Item = Result<Bytes, Failure>> + Unpin,
    F: FnMut(SseEvent) -> Step,
{
    /// The next chunk of the events read so far; `None` when they make none yet.
    fn next_of_read(&mut self) -> Option<Result<String, Failure>> {
        loop {
            if let Some(chunk) = self.ready.pop_front() {
                return Some(Ok(chunk));
            }
            if self.ended {
                return None;
            }
            let event = self.parser.next_event()?;
            match (self.on_event)(event) {
                // Nothing is ready before it (`ready` was empty): it goes out at once.
                Step::Chunk(chunk) => return Some(Ok(chunk)),
                Step::Chunks(chunks) => self.ready.extend(chunks),
                Step::End(chunks) => {
                    self.ready.extend(chunks);
                    self.ended = true;
                }
                Step::Fail(detail) => {
                    return Some(Err(Failure::new(
                        FailureClass::ServerError,
                        &self.provider,
                        detail,
                    )));
                }
                Step::Error { detail, event, api } => {
                    return Some(Err(Failure::from_stream_error(
                        &self.provider,
                        detail,
                        &event,
                        api,
                    )));
                }
            }
        }
    }
}

impl<S, F> Stream for Translate<S, F>
where
    S: Stream<Item = Result<Bytes, Failure>> + Unpin,
    F: FnMut(SseEvent) -> Step,
{
    type Item = Result<String, Failure>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.broken {
            return Poll::Ready(None);
        }
        loop {
            if let Some(item) = this.next_of_read() {
                this.broken = item.is_err();
                return Poll::Ready(Some(item));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let failure = match ready!(Pin::new(&mut this.body).poll_next(cx)) {
                Some(Ok(bytes)) => match this.parser.push(&bytes) {
                    Ok(()) => continue,
                    Err(EventTooLarge) => Failure::new(
                        FailureClass::ServerError,
                        &this.provider,
                        format!("upstream sent an event larger than {MAX_EVENT_BYTES} bytes"),
                    ),
                },
                Some(Err(failure)) => failure,
                None => Failure::new(
                    FailureClass::ServerError,
                    &this.provider,
                    "upstream stream ended without its terminal event",
                ),
            };
            this.broken = true;
            return Poll::Ready(Some(Err(failure)));
        }
    }
}

/// Turns an OpenAI-style SSE body into its `data:` payloads, each passed through `tidy` (which
/// may rewrite it, or drop it by returning `None`).
///
/// The stream ends cleanly at `data: [DONE]`. A payload that is an error object, a body that
/// ends without `[DONE]`, a read error or an oversized event yield one `Err` and end the stream.
pub fn chat_chunks<S, T>(
    provider: Arc<str>,
    body: S,
    mut tidy: T,
) -> impl Stream<Item = Result<String, Failure>>
where
    S: Stream<Item = Result<Bytes, Failure>> + Send + Unpin + 'static,
    T: FnMut(String) -> Option<String> + Send + 'static,
{
    translate(provider, body, move |event| {
        if event.data == DONE {
            Step::End(Vec::new())
        } else if is_error_payload(&event.data) {
            let detail = "upstream sent an error event in its stream".to_owned();
            Step::Error { detail, event: event.data, api: Api::Chat }
        } else {
            match tidy(event.data) {
                Some(chunk) => Step::Chunk(chunk),
                None => Step::Chunks(Vec::new()),
            }
        }
    })
}

/// An OpenAI error object sent as a stream event; chunks always start with another key.
fn is_error_payload(data: &str) -> bool {
    data.trim_start().starts_with("{\"error\"")
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in chunks {
            parser.push(chunk).unwrap();
            while let Some(event) = parser.next_event() {
                events.push(event);
            }
        }
        events
    }

    fn data(text: &str) -> SseEvent {
        SseEvent { event: String::new(), data: text.to_owned() }
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let events =
            parse_all(&[b": keep-alive\n\ndata: {\"a\":1}\n\nevent: ping\ndata: x\ndata: y\n\n"]);
        assert_eq!(
            events,
            [data("{\"a\":1}"), SseEvent { event: "ping".into(), data: "x\ny".into() }]
        );
    }

    #[test]
    fn an_invalid_utf8_byte_in_a_value_decodes_to_a_replacement_character() {
        let events = parse_all(&[b"event: p\xffq\ndata: a\xffb\ndata\xff: ignored\n\n"]);
        assert_eq!(events, [SseEvent { event: "p\u{fffd}q".into(), data: "a\u{fffd}b".into() }]);
    }

    #[test]
    fn accepts_every_line_ending_even_split_across_chunks() {
        let events = parse_all(&[b"data: one\r", b"\n\r", b"\ndata: two\r\rdata:three\n\n"]);
        assert_eq!(events, [data("one"), data("two"), data("three")]);
    }

    #[test]
    fn refuses_an_event_without_end() {
        let mut parser = SseParser::default();
        let big = vec![b'x'; MAX_EVENT_BYTES];
        parser.push(b"data: ").unwrap();
        assert_eq!(parser.push(&big), Err(EventTooLarge));
    }

    #[test]
    fn any_split_of_the_input_gives_the_same_events() {
        let input: &[u8] =
            b"data: {\"id\":1}\r\n\r\n: c\ndata: a\ndata: b\n\nevent: e\ndata: [DONE]\n\n";
        let whole = parse_all(&[input]);
        assert_eq!(whole.len(), 3);
        for first in 0..input.len() {
            for second in first..input.len() {
                let parts = [&input[..first], &input[first..second], &input[second..]];
                assert_eq!(parse_all(&parts), whole, "split at {first} and {second}");
            }
        }
    }

    async fn run(
        body: &'static str,
        on_event: impl FnMut(SseEvent) -> Step + Send + 'static,
    ) -> Vec<Result<String, String>> {
        let bytes = futures_util::stream::iter(
            body.as_bytes()
                .chunks(7)
                .map(|piece| Ok(Bytes::from_static(piece)))
                .collect::<Vec<_>>(),
        );
        let chunks = translate(Arc::from("p"), bytes, on_event);
        chunks.map(|item| item.map_err(|f| f.detail)).collect().await
    }

    #[tokio::test]
    async fn a_translated_stream_ends_cleanly_only_after_its_terminal_step() {
        let echo = |event: SseEvent| match event.event.as_str() {
            "stop" => Step::End(vec![format!("last {}", event.data)]),
            "error" => Step::Fail(format!("failed at {}", event.data)),
            _ => Step::Chunks(vec![event.data.clone(), event.data]),
        };
        let body = "data: a\n\nevent: stop\ndata: b\n\ndata: never\n\n";
        assert_eq!(run(body, echo).await, [Ok("a".into()), Ok("a".into()), Ok("last b".into())]);

        let broken = run("data: a\n\nevent: error\ndata: b\n\ndata: c\n\n", echo).await;
        assert_eq!(broken, [Ok("a".into()), Ok("a".into()), Err("failed at b".into())]);

        let unfinished = run("data: a\n\n", echo).await;
        assert_eq!(unfinished.len(), 3);
        assert_eq!(unfinished[2], Err("upstream stream ended without its terminal event".into()));
    }

    #[tokio::test]
    async fn openai_chunks_are_tidied_and_end_at_done() {
        let body = "data: {\"keep\":1}\n\ndata: drop\n\ndata: [DONE]\n\n";
        let bytes = futures_util::stream::iter([Ok(Bytes::from_static(body.as_bytes()))]);
        let tidy = |data: String| (data != "drop").then_some(data);
        let chunks = chat_chunks(Arc::from("p"), bytes, tidy);
        let out: Vec<_> = chunks.map(|c| c.ok()).collect().await;
        assert_eq!(out, [Some("{\"keep\":1}".to_owned())]);
    }
}
