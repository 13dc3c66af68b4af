//! Extractors (their rejections are `GatewayError`s, OpenAI-shaped unless a route shapes them):
//! `Authenticated` (the gateway key → 401), and `json_body`, which takes a request apart into its
//! headers and its JSON body read within the limits of `http::body` (→ 415/413/408/503).

use axum::extract::{FromRequestParts, Request};
use bytes::Bytes;
use http::HeaderMap;
use http::request::Parts;

use super::body::BodyHold;
use crate::auth::Caller;
use crate::error::GatewayError;
use crate::state::AppState;

/// The calling gateway key; `None` when the gateway is open (no `auth` configured).
pub struct Authenticated(pub Option<Caller>);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = GatewayError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(auth) = state.auth() else { return Ok(Self(None)) };
        let caller = auth.authenticate(&parts.headers).map_err(GatewayError::Unauthorized)?;
        tracing::Span::current().record("key", &*caller.name);
        Ok(Self(Some(caller)))
    }
}

/// A request's headers (taken, not copied), its JSON body read within the limits of
/// `http::body`, and the body's share of the gateway-wide budget (keep it for as long as the
/// request's bytes are needed). A body that says it is not JSON is a 415 before it is read.
pub async fn json_body(
    req: Request,
    state: &AppState,
) -> Result<(HeaderMap, Bytes, BodyHold), GatewayError> {
    if let Some(content_type) = req.headers().get(http::header::CONTENT_TYPE)
        && !is_json(content_type.to_str().unwrap_or(""))
    {
        return Err(GatewayError::UnsupportedMediaType);
    }
    let (parts, body) = req.into_parts();
    let (bytes, hold) = state.body_limits().read(body).await?;
    Ok((parts.headers, bytes, hold))
}

/// `application/json` or any `+json` type, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim().as_bytes();
    let (kind, subtype) = essence.split_at(essence.len().min(b"application/".len()));
    kind.eq_ignore_ascii_case(b"application/")
        && (subtype.eq_ignore_ascii_case(b"json")
            || (subtype.len() >= b"+json".len()
                && subtype[subtype.len() - b"+json".len()..].eq_ignore_ascii_case(b"+json")))
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_media_types_are_recognised_in_any_case_and_with_parameters() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
            "application/vnd.api+json",
            "APPLICATION/LD+JSON;q=1",
        ] {
            assert!(is_json(yes), "{yes}");
        }
        for no in ["text/plain", "application/x-www-form-urlencoded", "json", "", "application/"] {
            assert!(!is_json(no), "{no}");
        }
    }
}
