//! `Answer` → HTTP response: JSON or SSE in the route's dialect, with the `x-ballast-*` headers.
//!
//! A stream's body and its framing are in [`super::sse_body`].

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;

use super::record::RequestRecord;
pub use super::sse_body::Framing;
use super::sse_body::SseBody;
use crate::pipeline::{Answer, Provenance};
use crate::providers::Reply;

/// The response for `answer`. `record` is dropped (and so recorded) when the answer is done:
/// here for a whole answer, at the stream's end for a stream.
pub async fn answer(
    answer: Answer,
    framing: Framing,
    request_id: &str,
    streams_cut: &CancellationToken,
    record: RequestRecord,
) -> Response {
    let mut response = match answer.reply {
        Reply::Complete(body) => ([(CONTENT_TYPE, "application/json")], body).into_response(),
        Reply::Stream(chunks) => {
            let cut = streams_cut.clone().cancelled_owned();
            let body = SseBody::new(chunks, framing, Arc::from(request_id), cut, record);
            let body = body.gathered().await;
            let headers = [
                (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                // Tells nginx-style proxies in front not to buffer the stream.
                (
                    http::header::HeaderName::from_static("x-accel-buffering"),
                    HeaderValue::from_static("no"),
                ),
            ];
            (headers, Body::new(body)).into_response()
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
