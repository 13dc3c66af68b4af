//! ballast's own HTTP/1.1 client for plain-HTTP upstreams (`http://`, no proxy): a local model
//! server, a sidecar, an OpenAI-compatible server on the same network.
//!
//! The request is written and its answer read by the task that sends it, with no connection
//! task and no channel in between; the body is read off the socket as it is consumed
//! ([`PlainBody`]). hyper's client spawns a task per connection and hands the request and every
//! chunk of the body over channels, which for a stream of small chunks is most of the
//! client's cost, and at 512 held streams about 29 KiB per stream (its dispatch channel and
//! connection task). TLS, proxies and HTTP/2 stay with hyper-util's client (see
//! `transport.rs`); connections are made by the same [`Connector`] (its `connect` timeout,
//! no Nagle, keep-alive probes).
//!
//! One [`Plain`] per worker (like the pooled clients), so a connection is always read by the
//! thread whose reactor it is registered with.

mod body;
pub mod framing;
pub mod head;
mod pool;

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use http::{Response, Uri};

pub use body::PlainBody;
use framing::Malformed;
use pool::{Conn, Pool};

use super::connect::Connector;

/// Why a plain exchange failed.
#[derive(Debug)]
pub enum Error {
    /// No connection (whatever the cause, the `connect` timeout included).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    Io(io::Error),
    /// The upstream closed the connection before its answer's head.
    Closed,
    Malformed(Malformed),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(err) => err.fmt(f),
            Self::Io(err) => err.fmt(f),
            Self::Closed => f.write_str("the connection closed before an answer"),
            Self::Malformed(malformed) => malformed.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(err) => err.source(),
            Self::Io(err) => err.source(),
            Self::Closed | Self::Malformed(_) => None,
        }
    }
}

/// One worker's plain-HTTP client: its pool of idle connections.
pub struct Plain {
    pool: Pool,
}

impl Plain {
    /// A client whose connections are closed after `idle` unused.
    pub fn new(idle: Duration) -> Self {
        Self { pool: Pool::new(idle) }
    }

    /// Sends a request (`head`, as [`head::request`] wrote it, then `body`) to `uri`'s host
    /// and reads its answer's head; the body is read as it is consumed.
    ///
    /// A request that cannot be written on an idle connection (the upstream reset it as it was
    /// taken) goes once more, on a new connection. One written and then answered by a close is
    /// a failure, as with hyper's client and Go's for a POST: the upstream may have acted on it.
    pub async fn send(
        &self,
        connector: &Connector,
        uri: &Uri,
        head: &[u8],
        body: &[u8],
    ) -> Result<Response<PlainBody>, Error> {
        let to = uri
            .authority()
            .cloned()
            .ok_or_else(|| Error::Connect("the URL names no host".into()))?;
        let mut parked = self.pool.take(&to);
        let (mut conn, written) = loop {
            let reused = parked.is_some();
            let mut conn = match parked.take() {
                Some(conn) => conn,
                None => {
                    let io = connector.plain(uri).await.map_err(Error::Connect)?;
                    tracing::debug!(upstream = %to, "new upstream connection");
                    Conn { io, buf: BytesMut::new() }
                }
            };
            match write(&mut conn, head, body).await {
                Ok(written) => break (conn, written),
                Err(err) if reused => {
                    tracing::debug!(upstream = %to, error = %err, "an idle upstream connection was reset; the request goes on a new one");
                }
                Err(err) => return Err(Error::Io(err)),
            }
        };
        let head = read_head(&mut conn).await?;
        // A connection whose request was cut short by its answer carries no other.
        let reusable = head.reusable && written == Written::All;
        let back = reusable.then(|| (self.pool.clone(), to));
        let mut response = Response::new(PlainBody::new(conn, head.framing, back));
        *response.status_mut() = head.status;
        *response.version_mut() = head.version;
        *response.headers_mut() = head.headers;
        Ok(response)
    }
}

/// Reads the answer's head (with whatever of its body came along).
async fn read_head(conn: &mut Conn) -> Result<head::Head, Error> {
    let mut read = body::FIRST_READ;
    loop {
        if let Some(head) = head::parse(&mut conn.buf).map_err(Error::Malformed)? {
            return Ok(head);
        }
        match poll_fn(|cx| body::fill(conn, &mut read, cx)).await {
            Ok(0) => return Err(Error::Closed),
            Ok(_) => {}
            Err(err) => return Err(Error::Io(err)),
        }
    }
}

/// How much of a request went out before its answer began.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    All,
    /// The upstream answered (say, a 413 for a body too large) before it took the whole
    /// request, and stopped reading it.
    Answered,
}

/// Writes the head and the body (in one `writev` when the socket takes them at once). While
/// the socket takes no more, it watches for an answer that comes before the whole request, as
/// hyper's client does: waiting to finish writing would wait for the attempt's timeout.
async fn write(conn: &mut Conn, head: &[u8], body: &[u8]) -> io::Result<Written> {
    let mut both = bytes::Buf::chain(head, body);
    let mut read = body::FIRST_READ;
    poll_fn(|cx| {
        while both.has_remaining() {
            match tokio_util::io::poll_write_buf(Pin::new(&mut conn.io), cx, &mut both) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    return match ready!(body::fill(conn, &mut read, cx)) {
                        Ok(0) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                        Ok(_) => Poll::Ready(Ok(Written::Answered)),
                        Err(err) => Poll::Ready(Err(err)),
                    };
                }
            }
        }
        Poll::Ready(Ok(Written::All))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// What the test server does with the request it has read.
    #[derive(Clone, Copy)]
    enum Then {
        Answer(&'static str),
        /// Answers, then closes the connection (without saying so).
        AnswerAndClose(&'static str),
        /// Closes the connection without answering.
        Close,
        /// Answers in two writes, 20 ms apart.
        AnswerInTwo(&'static str, &'static str),
    }

    struct Server {
        uri: Uri,
        connections: Arc<AtomicUsize>,
        requests: Arc<AtomicUsize>,
    }

    /// A server whose `n`th request overall gets `script[n]` (the last one after the script).
    async fn server(script: &[Then]) -> Server {
        let script: Arc<[Then]> = script.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
        let (connections, requests) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (accepted, seen) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(stream, Arc::clone(&script), Arc::clone(&seen)));
            }
        });
        Server { uri: uri.parse().unwrap(), connections, requests }
    }

    async fn connection(mut stream: TcpStream, script: Arc<[Then]>, seen: Arc<AtomicUsize>) {
        let mut buf = Vec::new();
        loop {
            // A request: its head, then `content-length` bytes.
            let end = loop {
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                let mut more = [0u8; 4096];
                match stream.read(&mut more).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&more[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .split("content-length: ")
                .nth(1)
                .unwrap()
                .split("\r\n")
                .next()
                .unwrap()
                .parse()
                .unwrap();
            while buf.len() < end + length {
                let mut more = [0u8; 4096];
                let n = stream.read(&mut more).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&more[..n]);
            }
            buf.drain(..end + length);
            let n = seen.fetch_add(1, Ordering::SeqCst);
            match script[n.min(script.len() - 1)] {
                Then::Answer(answer) => stream.write_all(answer.as_bytes()).await.unwrap(),
                Then::AnswerAndClose(answer) => {
                    stream.write_all(answer.as_bytes()).await.unwrap();
                    return;
                }
                Then::Close => return,
                Then::AnswerInTwo(first, second) => {
                    stream.write_all(first.as_bytes()).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    stream.write_all(second.as_bytes()).await.unwrap();
                }
            }
        }
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                           5\r\ndata:\r\n3\r\n 1\n\r\n0\r\n\r\n";

    fn connector() -> Connector {
        Connector::new(Duration::from_secs(5)).unwrap()
    }

    /// Sends a request and reads the whole answer: its status and body.
    async fn exchange(client: &Plain, server: &Server) -> Result<(u16, Bytes), Error> {
        let head = head::request("/v1/chat/completions", &http::HeaderMap::new(), 2);
        let answer = client.send(&connector(), &server.uri, &head, b"{}").await?;
        let status = answer.status().as_u16();
        Ok((status, answer.into_body().collect().await?.to_bytes()))
    }

    /// Sends a request and returns its answer's body, unread.
    async fn open(client: &Plain, server: &Server) -> PlainBody {
        let head = head::request("/", &http::HeaderMap::new(), 0);
        let answer = client.send(&connector(), &server.uri, &head, &[]).await.unwrap();
        answer.into_body()
    }

    #[tokio::test]
    async fn a_connection_carries_the_next_request_once_its_answer_is_read() {
        let server = server(&[Then::Answer(OK), Then::Answer(CHUNKED)]).await;
        let client = Plain::new(Duration::from_secs(60));
        assert_eq!(exchange(&client, &server).await.unwrap(), (200, Bytes::from_static(b"{}")));
        assert_eq!(client.pool.len(), 1);
        assert_eq!(
            exchange(&client, &server).await.unwrap(),
            (200, Bytes::from_static(b"data: 1\n"))
        );
        assert_eq!(exchange(&client, &server).await.unwrap().1, "data: 1\n");
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
        assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_that_closes_its_connection_leaves_none_behind() {
        let close = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
        let server =
            server(&[Then::Answer(close), Then::Answer("HTTP/1.1 200 OK\r\n\r\nuntil close")])
                .await;
        let client = Plain::new(Duration::from_secs(60));
        assert_eq!(exchange(&client, &server).await.unwrap().1, "{}");
        assert_eq!(client.pool.len(), 0);
        // Server side, the second connection stays open: the body's end is unknown until then.
        let mut body = open(&client, &server).await;
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "until close");
        drop(body);
        assert_eq!((client.pool.len(), server.connections.load(Ordering::SeqCst)), (0, 2));
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_used_again() {
        let server = server(&[Then::AnswerAndClose(OK), Then::Answer(OK)]).await;
        let client = Plain::new(Duration::from_secs(60));
        exchange(&client, &server).await.unwrap();
        assert_eq!(client.pool.len(), 1, "the answer did not say it closes");
        // The close reaches this side's reactor.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(exchange(&client, &server).await.unwrap(), (200, Bytes::from_static(b"{}")));
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
        assert_eq!(server.requests.load(Ordering::SeqCst), 2, "nothing was sent twice");
    }

    #[tokio::test]
    async fn a_connection_closed_without_an_answer_is_a_failure_and_not_sent_again() {
        let server = server(&[Then::Close]).await;
        let client = Plain::new(Duration::from_secs(60));
        let err = exchange(&client, &server).await.unwrap_err();
        assert_eq!(err.to_string(), "the connection closed before an answer");
        assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_and_its_connection_is_not_reused() {
        let cut = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort";
        let server = server(&[Then::AnswerAndClose(cut), Then::Answer(OK)]).await;
        let client = Plain::new(Duration::from_secs(60));
        let err = exchange(&client, &server).await.unwrap_err();
        assert_eq!(err.to_string(), "the connection closed before the answer's end");
        assert_eq!(client.pool.len(), 0);
        exchange(&client, &server).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let long = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n";
        let server = server(&[Then::Answer(long), Then::Answer(OK)]).await;
        let client = Plain::new(Duration::from_secs(60));
        let mut body = open(&client, &server).await;
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "a");
        drop(body);
        assert_eq!(client.pool.len(), 0);
        exchange(&client, &server).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_when_only_its_end_was_to_come_keeps_its_connection() {
        let stream = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                      e\r\ndata: [DONE]\n\n\r\n";
        let server = server(&[Then::AnswerInTwo(stream, "0\r\n\r\n"), Then::Answer(OK)]).await;
        let client = Plain::new(Duration::from_secs(60));
        let mut body = open(&client, &server).await;
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "data: [DONE]\n\n");
        // Done at `[DONE]`: the last chunk comes 20 ms later, and the connection is kept.
        drop(body);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(client.pool.len(), 1);
        exchange(&client, &server).await.unwrap();
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_before_the_whole_request_is_read_without_waiting_for_the_rest() {
        // An upstream that reads the head alone, answers 413 and takes no more of the body.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/v1", listener.local_addr().unwrap()).parse().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut more = [0u8; 1024];
                let n = stream.read(&mut more).await.unwrap();
                seen.extend_from_slice(&more[..n]);
            }
            let answer = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\n{}";
            stream.write_all(answer.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let client = Plain::new(Duration::from_secs(60));
        let body = vec![b'x'; 64 << 20];
        let head = head::request("/v1", &http::HeaderMap::new(), body.len());
        let connector = connector();
        let sent = client.send(&connector, &uri, &head, &body);
        let answer = tokio::time::timeout(Duration::from_secs(10), sent).await.unwrap().unwrap();
        assert_eq!(answer.status(), 413);
        assert_eq!(answer.into_body().collect().await.unwrap().to_bytes(), "{}");
        assert_eq!(client.pool.len(), 0, "a connection with half a request on it is not kept");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let uri: Uri = format!("http://{closed}/v1").parse().unwrap();
        let client = Plain::new(Duration::from_secs(60));
        let head = head::request("/v1", &http::HeaderMap::new(), 0);
        let err = client.send(&connector(), &uri, &head, &[]).await.err().unwrap();
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
    }

    #[tokio::test]
    async fn idle_connections_are_closed_after_the_pools_idle_time() {
        let server = server(&[Then::Answer(OK)]).await;
        let client = Plain::new(Duration::from_secs(60));
        exchange(&client, &server).await.unwrap();
        assert_eq!(client.pool.len(), 1);
        // The sweep task starts its wait.
        tokio::task::yield_now().await;
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(client.pool.len(), 1);
        // The sweep task runs at 60 s and closes it.
        tokio::time::advance(Duration::from_secs(2)).await;
        tokio::task::yield_now().await;
        assert_eq!(client.pool.len(), 0);
    }
}
