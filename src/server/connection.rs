//! One client connection from accept to close: the protocol settings, the timer that bounds
//! its first request and its idle HTTP/2 time, and its part in a graceful drain.
//!
//! hyper-util's auto builder first reads, with no timer of its own, enough bytes to tell
//! HTTP/1 from HTTP/2, and hyper's HTTP/2 side has no idle timeout. So each connection has one
//! timer here, armed at accept:
//!
//! - **First request.** A connection whose first request has not reached the service within
//!   `server.header_timeout` of its accept is closed, whether it sent nothing, part of the
//!   HTTP/2 preface, the preface and SETTINGS but no request, or part of an HTTP/1 head.
//! - **Then, HTTP/1**: the timer is off. hyper's own `header_read_timeout` bounds every later
//!   head, and the wait for it on an idle keep-alive connection (hyper 1.x starts it when the
//!   connection goes idle: `proto/h1/conn.rs`, `State::idle`).
//! - **Then, HTTP/2**: the timer checks every `header_timeout` whether a stream started or
//!   ended since the last check; when none did and none is open, the connection is sent GOAWAY
//!   (a graceful close, so a request racing it is not lost), and closed outright if it is
//!   still open one `header_timeout` later. An idle HTTP/2 connection is so closed between one
//!   and two `header_timeout`s after its last stream ended.
//!
//! The request path pays one relaxed atomic add per HTTP/1 request and a few per HTTP/2 stream
//! (its guard: a reference count and two counters), and no allocation: the per-connection
//! state ([`Activity`]) is allocated once, at accept.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, Version};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tower::util::Oneshot;

/// The most a client's request head may take (hyper answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 64 << 10;
/// HTTP/2: a PING this often on a connection (hyper sends it only while the connection is
/// otherwise silent)...
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// ...and the connection is closed when its acknowledgement takes longer than this: a client
/// that vanished without a FIN (a dead NAT entry, a pulled cable) frees its socket in 40 s.
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The connection builder of every listener: HTTP/1 and HTTP/2 (prior knowledge, `h2c`).
pub(super) fn builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// What the service saw of one connection, for its timer: shared by the connection task and
/// the service (and each open HTTP/2 stream's response body).
#[derive(Debug, Default)]
pub(super) struct Activity {
    /// Bumped when a request reaches the service and when an HTTP/2 stream ends; wraps.
    events: AtomicUsize,
    /// HTTP/2 streams whose request reached the service and whose response is not done.
    open_streams: AtomicUsize,
    /// A request came as HTTP/2.
    http2: AtomicBool,
}

impl Activity {
    fn request(self: &Arc<Self>, version: Version) -> Option<StreamGuard> {
        self.events.fetch_add(1, Ordering::Relaxed);
        if version != Version::HTTP_2 {
            return None;
        }
        self.http2.store(true, Ordering::Relaxed);
        self.open_streams.fetch_add(1, Ordering::Relaxed);
        Some(StreamGuard(Arc::clone(self)))
    }
}

/// An open HTTP/2 stream, from its request reaching the service to its response body's drop.
#[derive(Debug)]
struct StreamGuard(Arc<Activity>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
        self.0.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// The hyper service of one connection: `inner` (the router) that tells [`Activity`] of
/// every request.
#[derive(Debug)]
pub(super) struct Service<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Service<S> {
    pub(super) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Service<S>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let stream = self.activity.request(request.version());
        ResponseFuture { inner: self.inner.clone().oneshot(request), stream }
    }
}

pin_project! {
    /// The router's response future, carrying the stream's guard into the response body.
    pub(super) struct ResponseFuture<S, B>
    where
        S: tower::Service<Request<Incoming>, Response = Response<B>>,
    {
        #[pin]
        inner: Oneshot<S, Request<Incoming>>,
        stream: Option<StreamGuard>,
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>>,
{
    type Output = Result<Response<TrackedBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let stream = this.stream.take();
        Poll::Ready(Ok(response.map(|body| TrackedBody { body, _stream: stream })))
    }
}

pin_project! {
    /// A response body that holds its HTTP/2 stream open (for the idle check) until dropped.
    pub(super) struct TrackedBody<B> {
        #[pin]
        body: B,
        _stream: Option<StreamGuard>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// What the connection's timer watches for next.
#[derive(Clone, Copy, Debug)]
enum Watch {
    /// The first request: without one by the deadline, the connection is closed.
    FirstRequest,
    /// HTTP/2 after its first request; `seen` is `Activity::events` at the last check.
    Idle { seen: usize },
    /// GOAWAY sent to an idle HTTP/2 connection: closed at the deadline if still open.
    GoingAway,
    /// HTTP/1 after its first request (hyper bounds every later head), or draining.
    Off,
}

/// Serves `connection` to its end: closes it when its first request is late or, on HTTP/2,
/// when it is idle (see the module doc), and shuts it down gracefully on `drain`.
pub(super) async fn serve<S, B>(
    connection: auto::Connection<'static, TokioIo<TcpStream>, Service<S>, TokioExecutor>,
    activity: Arc<Activity>,
    header_timeout: Duration,
    drain: CancellationToken,
) where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = pin!(connection);
    let mut timer = pin!(tokio::time::sleep(header_timeout));
    let mut watch = Watch::FirstRequest;
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            ended = connection.as_mut() => {
                if let Err(err) = ended {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = drain.cancelled(), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
                if let Watch::Idle { .. } = watch {
                    watch = Watch::Off;
                }
            }
            () = timer.as_mut(), if !matches!(watch, Watch::Off) => {
                watch = match watch {
                    Watch::FirstRequest if activity.events.load(Ordering::Relaxed) == 0 => {
                        tracing::debug!(
                            timeout = ?header_timeout,
                            "closing a connection that sent no request within header_timeout"
                        );
                        return;
                    }
                    Watch::FirstRequest if activity.http2.load(Ordering::Relaxed) => {
                        Watch::Idle { seen: activity.events.load(Ordering::Relaxed) }
                    }
                    Watch::FirstRequest | Watch::Off => Watch::Off,
                    Watch::Idle { seen } => {
                        let now = activity.events.load(Ordering::Relaxed);
                        if now == seen && activity.open_streams.load(Ordering::Relaxed) == 0 {
                            tracing::debug!("closing an idle HTTP/2 connection (GOAWAY)");
                            connection.as_mut().graceful_shutdown();
                            Watch::GoingAway
                        } else {
                            Watch::Idle { seen: now }
                        }
                    }
                    Watch::GoingAway => {
                        tracing::debug!("closing an HTTP/2 connection still open after GOAWAY");
                        return;
                    }
                };
                timer.as_mut().reset(Instant::now() + header_timeout);
            }
        }
    }
}
