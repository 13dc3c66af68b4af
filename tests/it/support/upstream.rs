//! `FakeUpstream`: a raw HTTP/1.1 server that plays scripted replies and records requests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Reply, StreamEnd};

/// One request as the fake upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When the request arrived.
    pub at: tokio::time::Instant,
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub body: Value,
    /// The body byte for byte as it arrived, for tests of what a passthrough leaves untouched.
    pub bytes: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    /// Played when the script is empty; `None` means a short well-formed answer.
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    hang_ups: Mutex<usize>,
    hung_up: Notify,
    /// Connections accepted.
    connections: Mutex<usize>,
}

/// A scripted upstream on a free port.
///
/// It is a raw HTTP/1.1 server on a TCP socket rather than an axum app, so that it can do what
/// real upstreams do on bad days: hang, reset the connection, cut a stream after K chunks, stall
/// mid-stream. It records every request it receives and notices when the gateway hangs up on it.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts on a free port. With an empty script it answers `Reply::completion("fake answer")`
    /// (or a short well-formed stream when the request asks for one).
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                // Head and body go out in separate writes: without this, Nagle's algorithm and
                // delayed ACKs add ~40 ms to every answer.
                let _ = stream.set_nodelay(true);
                *accept_shared.connections.lock().unwrap() += 1;
                connections.spawn(serve_connection(stream, Arc::clone(&accept_shared)));
            }
        });
        Self { addr, shared, task }
    }

    /// Starts with `replies` queued.
    pub async fn scripted(replies: impl IntoIterator<Item = Reply>) -> Self {
        let upstream = Self::start().await;
        for reply in replies {
            upstream.push(reply);
        }
        upstream
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`, the base URL of an `anthropic` or `azure` provider.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    /// What to answer once the script is used up (e.g. a 503 for an outage).
    pub fn fallback(&self, reply: Reply) {
        *self.shared.fallback.lock().unwrap() = Some(reply);
    }

    /// Back to healthy answers once the script is used up.
    pub fn heal(&self) {
        *self.shared.fallback.lock().unwrap() = None;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// How many connections the gateway opened to it.
    pub fn connections(&self) -> usize {
        *self.shared.connections.lock().unwrap()
    }

    pub fn hits(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Waits (at most `limit`) until the gateway has closed a connection during a reply.
    pub async fn wait_for_hang_up(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.shared.hung_up.notified();
            if *self.shared.hang_ups.lock().unwrap() > 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let wants_stream = request.body["stream"] == json!(true);
        shared.requests.lock().unwrap().push(request);
        let scripted = shared.script.lock().unwrap().pop_front();
        let fallback = shared.fallback.lock().unwrap().clone();
        let reply = scripted.or(fallback).unwrap_or_else(|| {
            if wants_stream {
                Reply::chunks(&["fake", " answer"])
            } else {
                Reply::completion("fake answer")
            }
        });
        if !play(reply, &mut stream, &shared).await {
            return;
        }
    }
}

/// Plays one reply; false when the connection is finished with.
async fn play(mut reply: Reply, stream: &mut TcpStream, shared: &Shared) -> bool {
    let mut close = false;
    loop {
        match reply {
            Reply::Delay(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
            Reply::ThenClose(inner) => {
                close = true;
                reply = *inner;
            }
            _ => break,
        }
    }
    let open = match reply {
        Reply::Respond { status, headers, body } => {
            let mut head = format!(
                "HTTP/1.1 {status} Fake\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.is_ok()
                && stream.write_all(body.as_bytes()).await.is_ok()
        }
        Reply::Stream { events, gap, end } => {
            let events: Vec<String> = events.iter().map(|data| format!("data: {data}")).collect();
            play_stream(stream, &events, gap, end, shared).await
        }
        Reply::Events { events, gap, end } => play_stream(stream, &events, gap, end, shared).await,
        Reply::Hang => {
            wait_for_close(stream, Duration::from_secs(60), shared).await;
            false
        }
        Reply::Reset => {
            let _ = stream.set_zero_linger();
            false
        }
        Reply::Delay(..) | Reply::ThenClose(..) => unreachable!("unwrapped above"),
    };
    open && !close
}

async fn play_stream(
    stream: &mut TcpStream,
    events: &[String],
    gap: Duration,
    end: StreamEnd,
    shared: &Shared,
) -> bool {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    for (index, data) in events.iter().enumerate() {
        if index > 0 && !gap.is_zero() && wait_for_close(stream, gap, shared).await {
            return false;
        }
        let event = format!("{data}\n\n");
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            note_hang_up(shared);
            return false;
        }
    }
    match end {
        StreamEnd::Finish => stream.write_all(b"0\r\n\r\n").await.is_ok(),
        StreamEnd::Close => {
            let _ = stream.shutdown().await;
            false
        }
        StreamEnd::Reset => {
            let _ = stream.set_zero_linger();
            false
        }
        StreamEnd::Stall => {
            wait_for_close(stream, Duration::from_secs(60), shared).await;
            false
        }
    }
}

/// Waits `wait` while watching the socket; true (and noted) when the peer closed it meanwhile.
async fn wait_for_close(stream: &mut TcpStream, wait: Duration, shared: &Shared) -> bool {
    let mut byte = [0u8; 1];
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        read = stream.read(&mut byte) => {
            if matches!(read, Ok(0) | Err(_)) {
                note_hang_up(shared);
                true
            } else {
                false
            }
        }
    }
}

fn note_hang_up(shared: &Shared) {
    *shared.hang_ups.lock().unwrap() += 1;
    shared.hung_up.notify_waiters();
}

/// Reads one request (head and `content-length` body); None at end of connection.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Recorded> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let bytes = buffer[body_start..body_start + length].to_vec();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    buffer.drain(..body_start + length);
    let at = tokio::time::Instant::now();
    Some(Recorded { at, method, path, headers, body, bytes })
}
