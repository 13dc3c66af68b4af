//! Reading a request body within the gateway's limits, before anything parses it.
//!
//! - `server.max_body_size`: a larger body is refused (413) as soon as that shows: from its
//!   `Content-Length` before a byte is read, or while it is read.
//! - `server.body_timeout`: the whole body must arrive within it, counted from when reading
//!   starts (right after the head); beyond it 408. A client trickling its body a byte at a time
//!   cannot hold a connection and a growing buffer for ever.
//! - `server.max_body_bytes_in_flight`: the bytes of every body being read or answered, all
//!   requests together. A body that would take the total beyond it is refused at once (503 with
//!   `Retry-After: 1`) rather than made to wait: waiting bodies would each hold part of what the
//!   others wait for. A body's share is held by its [`BodyHold`] and given back when that is
//!   dropped, at the end of the handler (a stream's first byte), when the request's bytes and
//!   whatever was parsed from them are gone.
//!
//! The budget is counted in KiB (a body's share rounded up), so that one acquisition covers any
//! body a `u32` of permits can: 4 TiB.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::GatewayError;

/// The unit of the budget: 1 KiB.
const UNIT: usize = 1024;

/// The limits a body is read within; built once from `server`.
pub struct BodyLimits {
    max_size: usize,
    timeout: Duration,
    budget: Arc<Semaphore>,
}

/// A body's share of `max_body_bytes_in_flight`, given back when dropped.
#[must_use = "the body's share of the budget is given back when this is dropped"]
pub struct BodyHold(Option<OwnedSemaphorePermit>);

impl BodyLimits {
    pub fn new(max_size: usize, timeout: Duration, max_in_flight: usize) -> Self {
        let permits = (max_in_flight / UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self { max_size, timeout, budget: Arc::new(Semaphore::new(permits)) }
    }

    /// The whole body, and its share of the budget. A body of declared length (hyper's exact
    /// size hint: its checked `Content-Length`) is judged and reserved before it is read.
    pub async fn read(&self, body: Body) -> Result<(Bytes, BodyHold), GatewayError> {
        let deadline = Instant::now() + self.timeout;
        let declared = body.size_hint().exact();
        if declared.is_some_and(|length| length > self.max_size as u64) {
            return Err(self.too_large());
        }
        let declared = declared.and_then(|length| usize::try_from(length).ok());
        let mut hold = BodyHold(None);
        // A declared length is taken at once: one acquisition for the whole body.
        let mut held = 0;
        if let Some(length) = declared {
            held = self.take(&mut hold, 0, length)?;
        }
        let mut body = body;
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        let mut size = 0usize;
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => return Err(GatewayError::BodyTimeout { after: self.timeout }),
                Ok(None) => break,
                Ok(Some(Err(err))) => return Err(unreadable(&err)),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else { continue };
            size = size.saturating_add(data.len());
            if size > self.max_size {
                return Err(self.too_large());
            }
            if size > held {
                held = self.take(&mut hold, held, size)?;
            }
            match (&mut first, &mut rest) {
                (None, _) => first = Some(data),
                (Some(first), None) => {
                    let capacity = declared.unwrap_or(0).max(first.len() + data.len());
                    let mut joined = BytesMut::with_capacity(capacity);
                    joined.extend_from_slice(first);
                    joined.extend_from_slice(&data);
                    rest = Some(joined);
                }
                (Some(_), Some(joined)) => joined.extend_from_slice(&data),
            }
        }
        let bytes = match (first, rest) {
            (_, Some(joined)) => joined.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        };
        Ok((bytes, hold))
    }

    /// Grows `hold` from covering `held` bytes to covering `size`; the bytes it now covers.
    fn take(&self, hold: &mut BodyHold, held: usize, size: usize) -> Result<usize, GatewayError> {
        let (now, wanted) = (held.div_ceil(UNIT), size.div_ceil(UNIT));
        let Ok(more) = u32::try_from(wanted - now) else { return Err(GatewayError::Overloaded) };
        if more == 0 {
            return Ok(wanted * UNIT);
        }
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(more)
            .map_err(|_| GatewayError::Overloaded)?;
        match &mut hold.0 {
            Some(held) => held.merge(permit),
            None => hold.0 = Some(permit),
        }
        Ok(wanted * UNIT)
    }

    fn too_large(&self) -> GatewayError {
        GatewayError::RequestTooLarge { limit: self.max_size }
    }

    /// Bytes of the budget not held by any body now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.budget.available_permits().saturating_mul(UNIT)
    }
}

fn unreadable(err: &axum::Error) -> GatewayError {
    GatewayError::InvalidRequest {
        message: format!("The request body could not be read: {err}."),
        param: None,
        code: "invalid_body",
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{StreamExt, stream};

    use super::*;

    fn limits(max_size: usize, in_flight: usize) -> BodyLimits {
        BodyLimits::new(max_size, Duration::from_secs(5), in_flight)
    }

    fn chunked(parts: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            parts.iter().map(|part| Ok(Bytes::from_static(part))).collect();
        Body::from_stream(stream::iter(frames))
    }

    /// A body of undeclared length (no exact size hint), in one frame.
    fn undeclared(bytes: Vec<u8>) -> Body {
        Body::from_stream(stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]))
    }

    #[tokio::test]
    async fn a_body_in_several_frames_is_read_whole_and_its_share_given_back_on_drop() {
        let limits = limits(1 << 20, 8 * UNIT);
        let (bytes, hold) = limits.read(chunked(&[b"{\"a\":", b"1", b"}"])).await.unwrap();
        assert_eq!(&bytes[..], b"{\"a\":1}");
        assert_eq!(limits.available(), 7 * UNIT, "a 7-byte body holds one unit");
        drop(hold);
        assert_eq!(limits.available(), 8 * UNIT);
    }

    #[tokio::test]
    async fn bodies_beyond_the_budget_are_refused_until_a_share_comes_back() {
        let limits = limits(4 * UNIT, 4 * UNIT);
        let body = vec![b'x'; 3 * UNIT];
        let (_, hold) = limits.read(Body::from(body.clone())).await.unwrap();
        let refused = limits.read(Body::from(body.clone())).await;
        assert!(matches!(refused, Err(GatewayError::Overloaded)));
        let chunked_refused = limits.read(undeclared(body.clone())).await;
        assert!(matches!(chunked_refused, Err(GatewayError::Overloaded)));
        assert_eq!(limits.available(), UNIT, "refused bodies hold nothing");
        drop(hold);
        assert!(limits.read(Body::from(body)).await.is_ok());
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let limits = limits(10, 4 * UNIT);
        let refused = limits.read(Body::from(vec![b'x'; 11])).await;
        assert!(matches!(refused, Err(GatewayError::RequestTooLarge { limit: 10 })));
        let undeclared = limits.read(chunked(&[b"123456", b"78901"])).await;
        assert!(matches!(undeclared, Err(GatewayError::RequestTooLarge { limit: 10 })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_cut_off_at_the_timeout() {
        let limits = limits(1 << 20, 1 << 20);
        let frames = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"{"))])
            .chain(stream::pending());
        let started = Instant::now();
        let refused = limits.read(Body::from_stream(frames)).await;
        assert!(matches!(refused, Err(GatewayError::BodyTimeout { .. })));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert_eq!(limits.available(), 1 << 20, "its share came back");
    }
}
