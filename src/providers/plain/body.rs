//! A plain upstream answer's body, read from its connection by the task that consumes it: no
//! connection task, no channel between the socket and the stream (hyper's client has both).
//!
//! Each poll hands over what the buffer already holds (one frame per chunk of a chunked body),
//! and reads from the socket only when it is empty. At the body's end a reusable connection
//! goes back to the pool. A body dropped before its end keeps its connection only if nothing but
//! that end was still to come (a stream is done at `[DONE]`, before the chunked coding's last
//! chunk): the end is looked for in what already came, then waited for by a task of its own
//! for at most [`DRAIN_TIME`]. Any more data, and the connection is closed at once, so an
//! upstream whose client hung up mid-stream stops generating as it would without ballast.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http_body::{Body, Frame};

use super::Error;
use super::framing::{Framing, Step};
use super::pool::{Conn, Pool};

/// How long a dropped body's end is waited for, to keep its connection. Short: a stream's last
/// chunk follows its `[DONE]` at once, and a client that hung up mid-stream keeps the upstream
/// generating (and billing) until the connection closes.
const DRAIN_TIME: Duration = Duration::from_millis(50);

/// The smallest read from an upstream; reads double while they fill the buffer.
pub(super) const FIRST_READ: usize = 1 << 10;
const LARGEST_READ: usize = 64 << 10;

/// The body of one answer, with the connection it comes on.
pub struct PlainBody {
    /// `None` once the body ended or broke.
    conn: Option<Conn>,
    framing: Framing,
    /// Where the connection goes at the end, if it can carry another request.
    back: Option<(Pool, Authority)>,
    read: usize,
}

impl PlainBody {
    pub(super) fn new(conn: Conn, framing: Framing, back: Option<(Pool, Authority)>) -> Self {
        let mut body = Self { conn: Some(conn), framing, back, read: FIRST_READ };
        if body.framing.is_done() {
            body.release();
        }
        body
    }

    /// The body ended: its connection goes back to the pool if it can be used again.
    fn release(&mut self) {
        if let (Some(conn), Some(back)) = (self.conn.take(), self.back.take()) {
            park(conn, back);
        }
    }
}

impl Drop for PlainBody {
    fn drop(&mut self) {
        let (Some(mut conn), Some(back)) = (self.conn.take(), self.back.take()) else { return };
        let mut framing = std::mem::replace(&mut self.framing, Framing::Done);
        // Only a chunked body can have nothing but its end to come; a length's end is data.
        if !matches!(framing, Framing::Chunked { .. }) {
            return;
        }
        // What already came, and what the socket holds now.
        let mut read = FIRST_READ;
        match at_end(&mut framing, &mut conn) {
            Some(true) => return park(conn, back),
            Some(false) => {}
            None => return,
        }
        make_room(&mut conn, read);
        let _ = conn.io.try_read_buf(&mut conn.buf);
        // Whatever else is on its way (or never comes), a task waits for, on this worker.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let drained = tokio::time::timeout(DRAIN_TIME, async {
                loop {
                    match at_end(&mut framing, &mut conn) {
                        Some(true) => return true,
                        Some(false) => {}
                        None => return false,
                    }
                    if !matches!(poll_fn(|cx| fill(&mut conn, &mut read, cx)).await, Ok(1..)) {
                        return false;
                    }
                }
            });
            if drained.await == Ok(true) {
                park(conn, back);
            }
        });
    }
}

/// Whether a dropped body's end is in `conn.buf`: `Some(true)` when it is, `Some(false)` when
/// more must be read, `None` when data came instead (or the coding is broken).
fn at_end(framing: &mut Framing, conn: &mut Conn) -> Option<bool> {
    match framing.next(&mut conn.buf) {
        Ok(Step::End) => Some(true),
        Ok(Step::More) => Some(false),
        Ok(Step::Data(_)) | Err(_) => None,
    }
}

/// Parks a connection whose answer was read to its end (and nothing after it).
fn park(conn: Conn, (pool, to): (Pool, Authority)) {
    if conn.buf.is_empty() {
        pool.put(to, conn);
    }
}

impl Body for PlainBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = &mut this.conn else { return Poll::Ready(None) };
            match this.framing.next(&mut conn.buf) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::End) => {
                    this.release();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(malformed) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::Malformed(malformed))));
                }
            }
            match ready!(fill(conn, &mut this.read, cx)) {
                Ok(0) => {
                    // The upstream closed the connection: the end, or a body cut short.
                    this.conn = None;
                    return Poll::Ready(match this.framing.at_close() {
                        Ok(()) => None,
                        Err(malformed) => Some(Err(Error::Malformed(malformed))),
                    });
                }
                Ok(_) => {}
                Err(err) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Error::Io(err))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none()
    }
}

/// Reads what the socket has into `conn.buf` (`Ok(0)`: the upstream closed it), with room for
/// `*read` bytes, doubled (up to [`LARGEST_READ`]) when a read fills it.
///
/// Through `AsyncRead`, not `try_read_buf`: a read shorter than the room clears the socket's
/// readiness, so the pool's check of an idle connection needs no `recv` of its own.
pub(super) fn fill(
    conn: &mut Conn,
    read: &mut usize,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    make_room(conn, *read);
    let room = conn.buf.capacity() - conn.buf.len();
    let n = ready!(tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf))?;
    if n == room {
        *read = (*read * 2).min(LARGEST_READ);
    }
    Poll::Ready(Ok(n))
}

/// Room for a read of `read` bytes in `conn.buf`, unless a quarter of it is there already.
fn make_room(conn: &mut Conn, read: usize) {
    if conn.buf.capacity() - conn.buf.len() < read / 4 {
        conn.buf.reserve(read);
    }
}
