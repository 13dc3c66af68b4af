//! `Answer` → HTTP response: JSON or SSE in the route's dialect, with the `x-ballast-*` headers.
//!
//! A stream's body and its framing are in [`super::sse_body`].

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::record::RequestRecord;
pub use super::sse_body::Framing;
use super::sse_body::SseBody;
use crate::pipeline::{Answer, Provenance};
use crate::providers::Reply;

// The `x-ballast-*` headers (SPEC §4), named once: a name made from a `&str` would be
// allocated on every response.
pub const X_BALLAST_PROVIDER: HeaderName = HeaderName::from_static("x-ballast-provider");
pub const X_BALLAST_ROUTE: HeaderName = HeaderName::from_static("x-ballast-route");
pub const X_BALLAST_ATTEMPTS: HeaderName = HeaderName::from_static("x-ballast-attempts");
pub const X_BALLAST_CACHE: HeaderName = HeaderName::from_static("x-ballast-cache");
pub const X_BALLAST_DROPPED: HeaderName = HeaderName::from_static("x-ballast-dropped");
pub const X_BALLAST_HEDGED: HeaderName = HeaderName::from_static("x-ballast-hedged");
pub const X_BALLAST_ESTIMATE: HeaderName = HeaderName::from_static("x-ballast-estimate");
const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

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
        Reply::Complete(body) => {
            let mut response = Response::new(Body::from(body));
            // Room for every header this response gets (ours, the request id, the length):
            // the map is allocated once, never regrown.
            *response.headers_mut() = HeaderMap::with_capacity(12);
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Reply::Stream(chunks) => {
            let cut = streams_cut.clone().cancelled_owned();
            let body = SseBody::new(chunks, framing, Arc::from(request_id), cut, record);
            let body = body.gathered().await;
            let headers = [
                (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                // Tells nginx-style proxies in front not to buffer the stream.
                (X_ACCEL_BUFFERING, HeaderValue::from_static("no")),
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
        headers.insert(X_BALLAST_PROVIDER, provider);
    }
    headers.insert(X_BALLAST_ROUTE, HeaderValue::from_static(provenance.route.as_str()));
    headers.insert(X_BALLAST_ATTEMPTS, HeaderValue::from(provenance.attempts));
    headers.insert(X_BALLAST_CACHE, HeaderValue::from_static(provenance.cache.as_str()));
    if let Some(age) = provenance.age {
        headers.insert(http::header::AGE, HeaderValue::from(age.as_secs()));
    }
}
