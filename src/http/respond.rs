//! `Answer` → HTTP response: JSON or SSE, with the `x-ballast-*` headers.
//!
//! A stream is forwarded chunk by chunk as the upstream sends it. It ends with `data: [DONE]`
//! only when the upstream reached its terminal event; a stream that breaks ends with an OpenAI
//! error event and no `[DONE]`, so SDKs raise instead of accepting a truncated answer. Dropping
//! the response (client gone) drops the upstream stream, which cancels the upstream request.

use std::convert::Infallible;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use tokio_util::sync::CancellationToken;

use super::record::RequestRecord;
use crate::openai::error::ErrorBody;
use crate::openai::stream::{DONE, is_usage_only};
use crate::pipeline::{Answer, Provenance};
use crate::providers::{ChunkStream, Reply};

/// The response for `answer`. `record` is dropped (and so recorded) when the answer is done:
/// here for a whole answer, at the stream's end for a stream.
pub fn answer(
    answer: Answer,
    include_usage: bool,
    request_id: &str,
    streams_cut: &CancellationToken,
    record: RequestRecord,
) -> Response {
    let mut response = match answer.reply {
        Reply::Complete(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        Reply::Stream(chunks) => {
            let events = sse_events(
                chunks,
                include_usage,
                Arc::from(request_id),
                streams_cut.clone(),
                record,
            );
            let mut response = Sse::new(events).keep_alive(KeepAlive::default()).into_response();
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

/// The client's SSE events: each upstream chunk, then `[DONE]`, or an error event when the
/// upstream broke off or the shutdown grace ran out.
fn sse_events(
    chunks: ChunkStream,
    include_usage: bool,
    request_id: Arc<str>,
    streams_cut: CancellationToken,
    record: RequestRecord,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some((chunks, record)), move |state| {
        let request_id = Arc::clone(&request_id);
        let streams_cut = streams_cut.clone();
        async move {
            let (mut chunks, record) = state?;
            let event = loop {
                let next = tokio::select! {
                    biased;
                    () = streams_cut.cancelled() => {
                        tracing::warn!(request_id = %request_id, "shutdown grace passed; ending an open stream");
                        return Some((Ok(error_event("gateway_shutting_down",
                            "The gateway is shutting down and ended this stream.")), None));
                    }
                    next = chunks.next() => next,
                };
                // The gateway always asks upstreams for the usage chunk; only those who asked get it.
                match next {
                    Some(Ok(data)) if !include_usage && is_usage_only(&data) => continue,
                    other => break other,
                }
            };
            match event {
                Some(Ok(data)) => Some((Ok(Event::default().data(data)), Some((chunks, record)))),
                None => Some((Ok(Event::default().data(DONE)), None)),
                Some(Err(failure)) => {
                    tracing::warn!(request_id = %request_id, failure = %failure, "upstream stream broke off");
                    let message =
                        "The upstream provider's stream broke off before it was complete.";
                    Some((Ok(error_event("upstream_stream_error", message)), None))
                }
            }
        }
    })
}

fn error_event(code: &str, message: &str) -> Event {
    let body = ErrorBody::new("api_error", Some(code), None, message.to_owned());
    Event::default().data(serde_json::to_string(&body).unwrap_or_default())
}
