//! `Answer` → HTTP response: JSON or SSE in the route's dialect, with the `x-ballast-*` headers.
//!
//! A stream is forwarded chunk by chunk as the upstream sends it. Chat: `data:` lines, ending
//! with `data: [DONE]` only when the upstream reached its terminal event; a stream that breaks
//! ends with an OpenAI error event and no `[DONE]`. Messages: each event named by its `type`
//! (`event: message_start` ...), ending after `message_stop`; a break ends it with `event:
//! error` and no `message_stop`. Responses: each event named by its `type`, ending after the
//! terminal event; a break ends it with `error` and `response.failed`. Either way SDKs raise
//! instead of accepting a truncated answer. A quiet stream gets keep-alives: SSE comments for
//! chat and Responses, `ping` events for Messages (as Anthropic sends). Dropping the response (client gone) drops the upstream stream, which
//! cancels the upstream request.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::record::RequestRecord;
use crate::anthropic::ErrorBody as AnthropicError;
use crate::dialect::Api;
use crate::dialect::responses::StreamTail;
use crate::openai::error::ErrorBody;
use crate::openai::stream::{DONE, is_usage_only};
use crate::outcome::StreamEnding;
use crate::pipeline::{Answer, Provenance};
use crate::providers::{ChunkStream, Reply};

/// How a route writes its streams.
#[derive(Clone, Copy)]
pub struct Framing {
    pub api: Api,
    /// Chat's `stream_options.include_usage`: whether the usage-only chunk is sent.
    pub include_usage: bool,
}

/// The response for `answer`. `record` is dropped (and so recorded) when the answer is done:
/// here for a whole answer, at the stream's end for a stream.
pub fn answer(
    answer: Answer,
    framing: Framing,
    request_id: &str,
    streams_cut: &CancellationToken,
    record: RequestRecord,
) -> Response {
    let mut response = match answer.reply {
        Reply::Complete(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        Reply::Stream(chunks) => {
            let events =
                sse_events(chunks, framing, Arc::from(request_id), streams_cut.clone(), record);
            let keep_alive = match framing.api {
                Api::Messages => KeepAlive::default().event(named(PING.to_owned())),
                Api::Chat | Api::Responses | Api::Embeddings => KeepAlive::default(),
            };
            let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
            // Tells nginx-style proxies in front not to buffer the stream.
            response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    };
    set_provenance(&mut response, &answer.provenance);
    response
}

fn set_provenance(response: &mut Response, provenance: &Provenance) {
    let headers = response.headers_mut();
    if let Some(Ok(provider)) = provenance.provider.as_deref().map(HeaderValue::try_from) {
        headers.insert("x-ballast-provider", provider);
    }
    headers.insert("x-ballast-route", HeaderValue::from_static(provenance.route.as_str()));
    headers.insert("x-ballast-attempts", HeaderValue::from(provenance.attempts));
    headers.insert("x-ballast-cache", HeaderValue::from_static(provenance.cache.as_str()));
    if let Some(age) = provenance.age {
        headers.insert(http::header::AGE, HeaderValue::from(age.as_secs()));
    }
}

/// The client's SSE events: each upstream chunk, then `[DONE]` (chat), or the dialect's error
/// events when the upstream broke off or the shutdown grace ran out.
fn sse_events(
    chunks: ChunkStream,
    framing: Framing,
    request_id: Arc<str>,
    streams_cut: CancellationToken,
    record: RequestRecord,
) -> impl Stream<Item = Result<Event, Infallible>> {
    // One cancellation future for the whole stream, not one per chunk.
    let cut = Box::pin(streams_cut.cancelled_owned());
    let state =
        Relay { chunks, record, tail: StreamTail::default(), closing: Vec::new(), cut, request_id };
    futures_util::stream::unfold(Some(state), move |state| {
        async move {
            let mut state = state?;
            if let Some(event) = state.closing.pop() {
                let more = !state.closing.is_empty();
                return Some((Ok(event), more.then_some(state)));
            }
            let event = loop {
                let next = tokio::select! {
                    biased;
                    () = &mut state.cut => {
                        tracing::warn!(request_id = %state.request_id, "shutdown grace passed; ending an open stream");
                        state.record.ended(StreamEnding::Shutdown);
                        break Err(("gateway_shutting_down",
                            "The gateway is shutting down and ended this stream."));
                    }
                    next = state.chunks.next() => next,
                };
                // The gateway always asks upstreams for the usage chunk; only those who asked get it.
                match next {
                    Some(Ok(data))
                        if framing.api == Api::Chat
                            && !framing.include_usage
                            && is_usage_only(&data) =>
                    {
                        continue;
                    }
                    Some(Ok(data)) => break Ok(Some(data)),
                    None => {
                        state.record.ended(StreamEnding::Complete);
                        break Ok(None);
                    }
                    Some(Err(failure)) => {
                        tracing::warn!(request_id = %state.request_id, failure = %failure, "upstream stream broke off");
                        state.record.ended(StreamEnding::UpstreamError);
                        break Err((
                            "upstream_stream_error",
                            "The upstream provider's stream broke off before it was complete.",
                        ));
                    }
                }
            };
            match event {
                Ok(Some(data)) => {
                    let event = match framing.api {
                        Api::Chat | Api::Embeddings => Event::default().data(data),
                        Api::Messages => named(data),
                        Api::Responses => {
                            state.tail.saw(&data);
                            named(data)
                        }
                    };
                    Some((Ok(event), Some(state)))
                }
                // Messages and Responses streams end with their terminal event.
                Ok(None) if framing.api != Api::Chat => None,
                Ok(None) => Some((Ok(Event::default().data(DONE)), None)),
                Err((code, message)) => {
                    let mut closing = error_events(framing.api, &mut state.tail, code, message);
                    closing.reverse();
                    let first = closing.pop()?;
                    state.closing = closing;
                    let more = !state.closing.is_empty();
                    Some((Ok(first), more.then_some(state)))
                }
            }
        }
    })
}

/// A stream on its way to the client.
struct Relay {
    chunks: ChunkStream,
    /// Told how the stream ended; dropped (and so recorded) when the stream is done.
    record: RequestRecord,
    /// What a Responses stream needs to end well after a break.
    tail: StreamTail,
    /// The events still to send after a break, last first.
    closing: Vec<Event>,
    /// Resolves when the shutdown grace has run out (`Lifecycle::streams_cut`).
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    request_id: Arc<str>,
}

/// The events that end a broken stream: chat's error chunk, Messages' `error` event, or
/// Responses' `error` and `response.failed`.
fn error_events(api: Api, tail: &mut StreamTail, code: &str, message: &str) -> Vec<Event> {
    match api {
        Api::Chat | Api::Embeddings => {
            let body = ErrorBody::new("api_error", Some(code), None, message.to_owned());
            vec![Event::default().data(serde_json::to_string(&body).unwrap_or_default())]
        }
        Api::Messages => {
            let body = AnthropicError::new("api_error", message.to_owned());
            vec![named(serde_json::to_string(&body).unwrap_or_default())]
        }
        Api::Responses => tail.failed(code, message).into_iter().map(named).collect(),
    }
}

/// A Messages or Responses event: named by its data's `type`, as the SDKs dispatch on it.
fn named(data: String) -> Event {
    let event = Event::default();
    // A name with a line break would end the line early (axum refuses one).
    let event = match crate::dialect::event_type(&data) {
        Some(name) if !name.contains(['\r', '\n']) => event.event(name),
        _ => event,
    };
    event.data(data)
}

const PING: &str = r#"{"type": "ping"}"#;
