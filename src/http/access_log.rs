//! The request span and the one line per request (`finished processing request`, with status and
//! latency): a tower layer of ballast's own, in place of tower-http's `TraceLayer`, which also
//! wrapped every response body (entering the span on each of its frames), cloned the span into
//! it and ran a failure classifier per request; at 38k requests per second on one core that was
//! a measurable share of each request (benches/README, "Logging").
//!
//! The line keeps `TraceLayer`'s target (`tower_http::trace::on_response`), message and fields,
//! so log filters and pipelines see what they saw. The span is entered while the handler runs
//! (its fields are the line's `span`); events a stream's body logs name their request id
//! themselves. With traces on, the span is also the request's OpenTelemetry server span, and the
//! body enters it on each of its frames (as `TraceLayer` did): tracing-opentelemetry ends a span
//! at its last exit, so a stream's server span lasts as long as the stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::Span;

use super::request_id;
use crate::telemetry::traces;

#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S, A> Service<Request<A>> for AccessLog<S>
where
    S: Service<Request<A>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<A>) -> Self::Future {
        let span = request_span(&request);
        let started = Instant::now();
        let inner = span.in_scope(|| self.inner.call(request));
        Logged { inner, span, started }
    }
}

/// The request's span: its id, method and path now; the handler records the rest (key, model,
/// provider, route, cache result, attempts). Never a body or a header's value.
fn request_span<A>(request: &Request<A>) -> Span {
    macro_rules! request_span {
        ($($otel:tt)*) => {
            tracing::info_span!(
                "request",
                request_id = %request_id::of(request.headers()),
                method = %request.method(),
                path = %request.uri().path(),
                key = tracing::field::Empty,
                model = tracing::field::Empty,
                provider = tracing::field::Empty,
                route = tracing::field::Empty,
                cache = tracing::field::Empty,
                attempts = tracing::field::Empty,
                $($otel)*
            )
        };
    }
    if !traces::on() {
        return request_span!();
    }
    // An OpenTelemetry span's name and kind are fixed when it starts.
    let name = traces::server_span_name(request.method(), request.uri().path());
    let span = request_span!(otel.name = %name, otel.kind = "server");
    traces::continue_trace(&span, request.headers());
    span
}

pin_project! {
    /// The inner response, logged when it is ready.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        span: Span,
        started: Instant,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let response = ready!(this.inner.poll(cx))?;
        tracing::info!(
            target: "tower_http::trace::on_response",
            latency = %Millis(this.started.elapsed().as_millis()),
            status = response.status().as_u16(),
            "finished processing request"
        );
        if !traces::on() {
            return Poll::Ready(Ok(response));
        }
        let span = this.span.clone();
        Poll::Ready(Ok(response.map(|body| Body::new(InSpan { body, span }))))
    }
}

/// A latency as `TraceLayer` wrote it: whole milliseconds, `"3 ms"`.
struct Millis(u128);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

pin_project! {
    /// A body polled inside the request's span (traces on only).
    struct InSpan {
        #[pin]
        body: Body,
        span: Span,
    }
}

impl http_body::Body for InSpan {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let _entered = this.span.enter();
        this.body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
