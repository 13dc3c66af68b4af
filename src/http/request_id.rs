//! Request ids: keep the client's `x-request-id` when it is well-formed, otherwise make one;
//! either way it is on the request for the handlers and echoed on every response.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LEN: usize = 128;

pub async fn set_request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .filter(|value| is_well_formed(value.as_bytes()))
        .cloned()
        .unwrap_or_else(generate);
    request.headers_mut().insert(X_REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
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
    let id = format!("req_{:032x}", rand::random::<u128>());
    HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("req_unavailable"))
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
        assert!(generate().to_str().unwrap().starts_with("req_"));
    }
}
