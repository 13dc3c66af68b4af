//! Request ids: keep the client's `x-request-id` when it is well-formed, otherwise make one;
//! either way it is on the request for the handlers and echoed on every response.
//!
//! A plain tower layer rather than `axum::middleware::from_fn`: it runs on every request, and
//! this way it costs no allocation beyond the id itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LEN: usize = 128;

#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestId { inner }
    }
}

#[derive(Clone, Debug)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, A, B> Service<Request<A>> for RequestId<S>
where
    S: Service<Request<A>, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = EchoId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<A>) -> Self::Future {
        let id = request
            .headers()
            .get(&X_REQUEST_ID)
            .filter(|value| is_well_formed(value.as_bytes()))
            .cloned()
            .unwrap_or_else(generate);
        request.headers_mut().insert(X_REQUEST_ID, id.clone());
        EchoId { inner: self.inner.call(request), id: Some(id) }
    }
}

pin_project! {
    /// The inner response with the request id set on it.
    pub struct EchoId<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for EchoId<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(X_REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The id the request-id layer left on the request.
pub fn of(headers: &http::HeaderMap) -> &str {
    headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Printable, without spaces or quotes, at most 128 bytes: safe in logs and headers.
fn is_well_formed(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

fn generate() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"req_00000000000000000000000000000000";
    let random = rand::random::<u128>();
    for (i, digit) in id[4..].iter_mut().enumerate() {
        *digit = HEX[((random >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("req_unavailable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_id_formats_and_refuses_odd_ones() {
        assert!(is_well_formed(b"req_0123abcd"));
        assert!(is_well_formed(b"6f1c0a9e-0d9b-4a43-9d6e-4b0c1d2e3f4a"));
        assert!(!is_well_formed(b""));
        assert!(!is_well_formed(b"has space"));
        assert!(!is_well_formed(b"quote\"d"));
        assert!(!is_well_formed(&[b'a'; 129]));
        let (one, two) = (generate(), generate());
        let id = one.to_str().unwrap();
        assert!(id.starts_with("req_") && id.len() == 36, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        assert_ne!(one, two);
    }
}
