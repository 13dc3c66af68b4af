//! Server-sent events from upstreams: an incremental parser with size limits, and the stream of
//! chat-completion chunks built on it.
//!
//! The parser follows the WHATWG rules that matter for LLM APIs: lines end in `\n`, `\r\n` or
//! `\r`; lines starting with `:` are comments; `data:` lines of one event are joined with `\n`;
//! a blank line dispatches the event. `event:` names are kept (Anthropic uses them); `id:` and
//! `retry:` are ignored. An event larger than [`MAX_EVENT_BYTES`] is an error, so a broken
//! upstream cannot make the gateway buffer without bound.

use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::failure::{Failure, FailureClass};
use crate::openai::stream::DONE;

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
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), EventTooLarge> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() + self.data.len() > MAX_EVENT_BYTES {
            return Err(EventTooLarge);
        }
        Ok(())
    }

    /// The next complete event in what was pushed so far.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.skip_lf && !self.buffer.is_empty() {
                if self.buffer[0] == b'\n' {
                    self.buffer.advance(1);
                }
                self.skip_lf = false;
            }
            let end = self.buffer.iter().position(|b| *b == b'\n' || *b == b'\r')?;
            let line = self.buffer.split_to(end);
            let terminator = self.buffer[0];
            self.buffer.advance(1);
            if terminator == b'\r' {
                self.skip_lf = true;
            }
            if let Some(event) = self.take_line(&line) {
                return Some(event);
            }
        }
    }

    fn take_line(&mut self, line: &[u8]) -> Option<SseEvent> {
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
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => value.clone_into(&mut self.event),
            _ => {}
        }
        None
    }
}

/// Turns an OpenAI-style SSE body into its `data:` payloads.
///
/// The stream ends cleanly at `data: [DONE]`. A payload that is an error object, a body that
/// ends without `[DONE]`, a read error or an oversized event yield one `Err` and end the stream.
pub fn chat_chunks<S>(provider: Arc<str>, body: S) -> impl Stream<Item = Result<String, Failure>>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Send + Unpin + 'static,
{
    let state = Some((body, SseParser::default()));
    futures_util::stream::unfold(state, move |state| {
        let provider = Arc::clone(&provider);
        async move {
            let (mut body, mut parser) = state?;
            loop {
                if let Some(event) = parser.next_event() {
                    if event.data == DONE {
                        return None;
                    }
                    if is_error_payload(&event.data) {
                        let failure = Failure::new(
                            FailureClass::ServerError,
                            &provider,
                            "upstream sent an error event in its stream",
                        );
                        return Some((Err(failure), None));
                    }
                    return Some((Ok(event.data), Some((body, parser))));
                }
                let failure = match body.next().await {
                    Some(Ok(bytes)) => match parser.push(&bytes) {
                        Ok(()) => continue,
                        Err(EventTooLarge) => Failure::new(
                            FailureClass::ServerError,
                            &provider,
                            format!("upstream sent an event larger than {MAX_EVENT_BYTES} bytes"),
                        ),
                    },
                    Some(Err(err)) => Failure::from_reqwest(&provider, &err),
                    None => Failure::new(
                        FailureClass::ServerError,
                        &provider,
                        "upstream stream ended without its terminal event",
                    ),
                };
                return Some((Err(failure), None));
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
}
