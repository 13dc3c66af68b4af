//! `RawConnection`: a TCP client that writes exactly the bytes a test gives it (an idle
//! socket, half an HTTP/2 preface, an HTTP/1.1 request by hand, HTTP/2 frames), for the tests of
//! what the gateway does with a connection rather than with a request.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Reads of a socket in one wait, at most (each loop here is bounded in count and in time).
const MAX_READS: usize = 10_000;

/// Where an HTTP/1 head ends (its blank line), once it has.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|window| window == b"\r\n\r\n")
}

/// The `content-length` of an HTTP/1 head (0 without one).
fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

pub struct RawConnection {
    stream: TcpStream,
    opened: Instant,
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self { stream, opened: Instant::now() }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// How long after `open` the gateway closed the connection, if it did within `bound` from
    /// now; whatever it sends meanwhile is read and dropped.
    pub async fn closed_within(&mut self, bound: Duration) -> Option<Duration> {
        let deadline = Instant::now() + bound;
        let mut buffer = [0u8; 4096];
        for _ in 0..MAX_READS {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(self.opened.elapsed()),
                Ok(Ok(_)) => {}
            }
        }
        None
    }

    /// Sends `GET path` as HTTP/1.1 (kept alive) and reads the response head: its status line,
    /// or `None` if no whole head came within `bound`.
    pub async fn http1_get(&mut self, path: &str, bound: Duration) -> Option<String> {
        self.send(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes()).await;
        self.response_head(bound).await
    }

    /// The status line of the response head that arrives within `bound`.
    pub async fn response_head(&mut self, bound: Duration) -> Option<String> {
        let bytes = self.read_until(bound, |bytes| head_end(bytes).is_some()).await?;
        let text = String::from_utf8_lossy(&bytes[..head_end(&bytes)?]).into_owned();
        text.lines().next().map(str::to_owned)
    }

    /// The whole HTTP/1 response that arrives within `bound`: its head and its body (as long as
    /// its `content-length` says).
    pub async fn response(&mut self, bound: Duration) -> Option<(String, String)> {
        let whole = |bytes: &[u8]| {
            head_end(bytes)
                .is_some_and(|end| bytes.len() >= end + 4 + content_length(&bytes[..end]))
        };
        let bytes = self.read_until(bound, whole).await?;
        let end = head_end(&bytes)?;
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let body = String::from_utf8_lossy(&bytes[end + 4..]).into_owned();
        Some((head, body))
    }

    /// Reads until `done` holds for all read so far; none if the connection closed or `bound`
    /// passed first.
    async fn read_until(
        &mut self,
        bound: Duration,
        done: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + bound;
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        for _ in 0..MAX_READS {
            if done(&bytes) {
                return Some(bytes);
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Ok(Ok(read @ 1..)) => bytes.extend_from_slice(&buffer[..read]),
                Err(_) | Ok(Ok(0) | Err(_)) => return None,
            }
        }
        None
    }

    /// Reads HTTP/2 frames until the gateway closes the connection or `bound` passes,
    /// acknowledging its SETTINGS and PINGs as a client must. The types of the frames read,
    /// in order, and how long after `open` the connection closed (if it did).
    pub async fn h2_frames_until_closed(&mut self, bound: Duration) -> (Vec<u8>, Option<Duration>) {
        let deadline = Instant::now() + bound;
        let mut types = Vec::new();
        for _ in 0..MAX_READS {
            let mut header = [0u8; 9];
            match tokio::time::timeout_at(deadline, self.stream.read_exact(&mut header)).await {
                Err(_) => return (types, None),
                Ok(Err(_)) => return (types, Some(self.opened.elapsed())),
                Ok(Ok(_)) => {}
            }
            let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let mut payload = vec![0u8; length];
            match tokio::time::timeout_at(deadline, self.stream.read_exact(&mut payload)).await {
                Err(_) => return (types, None),
                Ok(Err(_)) => return (types, Some(self.opened.elapsed())),
                Ok(Ok(_)) => {}
            }
            types.push(kind);
            let ack = match (kind, flags & 1) {
                (h2::SETTINGS, 0) => Some(h2::frame(h2::SETTINGS, 1, 0, &[])),
                (h2::PING, 0) => Some(h2::frame(h2::PING, 1, 0, &payload)),
                _ => None,
            };
            if let Some(ack) = ack {
                // The gateway may have closed its side already; the next read tells.
                let _ = self.stream.write_all(&ack).await;
            }
        }
        (types, None)
    }
}

/// HTTP/2 frames, written by hand (RFC 9113 §4.1, HPACK from its static table).
pub mod h2 {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    pub const HEADERS: u8 = 0x1;
    pub const SETTINGS: u8 = 0x4;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut frame = vec![length[1], length[2], length[3], kind, flags];
        frame.extend_from_slice(&stream.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// The client preface and an empty SETTINGS frame: a connection ready for requests.
    pub fn handshake() -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(SETTINGS, 0, 0, &[]));
        bytes
    }

    /// `GET path` on stream 1, with no body (END_STREAM | END_HEADERS).
    pub fn get(path: &str) -> Vec<u8> {
        // :method GET and :scheme http are indexed (2, 6); :path (4) and :authority (1) are
        // literals with an indexed name, not added to the table.
        let mut block = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
        block.extend_from_slice(path.as_bytes());
        block.extend_from_slice(&[0x01, 1, b'x']);
        frame(HEADERS, 0x5, 1, &block)
    }
}
