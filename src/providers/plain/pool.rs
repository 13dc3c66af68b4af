//! Idle plain-HTTP upstream connections of one worker, most recently used first.
//!
//! A connection comes back only when its last answer was read to the end and both sides left
//! it open; it is handed out again only if the upstream has not closed it meanwhile (checked
//! without waiting: the socket's readiness, and one non-blocking read when it is readable).
//! Connections idle for longer than the pool's `idle` are closed: on the next use of the pool,
//! and by a sweep task that runs while the pool holds any.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::BytesMut;
use http::uri::Authority;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// An open connection and what was read from it past the last answer (nothing, when pooled).
#[derive(Debug)]
pub struct Conn {
    pub io: TcpStream,
    pub buf: BytesMut,
}

/// The idle connections of one worker, to any of a provider's hosts.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    idle: Mutex<Idle>,
    timeout: Duration,
}

#[derive(Default)]
struct Idle {
    /// Oldest first.
    conns: VecDeque<Parked>,
    /// A sweep task is running.
    sweeping: bool,
}

struct Parked {
    to: Authority,
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// A pool that closes connections idle for longer than `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { shared: Arc::new(Shared { idle: Mutex::default(), timeout }) }
    }

    /// The most recently parked open connection to `to`, if any.
    pub fn take(&self, to: &Authority) -> Option<Conn> {
        loop {
            let parked = {
                let mut idle = self.shared.lock();
                let expired = idle.expire(self.shared.timeout);
                let found = idle.conns.iter().rposition(|parked| parked.to == *to);
                let conn = found.and_then(|at| idle.conns.remove(at));
                drop(idle);
                drop(expired);
                conn?
            };
            if is_open(&parked.conn.io) {
                tracing::trace!(upstream = %to, "reusing an idle upstream connection");
                return Some(parked.conn);
            }
            tracing::debug!(upstream = %to, "the upstream closed an idle connection");
        }
    }

    /// Parks `conn` (its last answer read to the end) for the next request to `to`.
    pub fn put(&self, to: Authority, conn: Conn) {
        let mut idle = self.shared.lock();
        let expired = idle.expire(self.shared.timeout);
        idle.conns.push_back(Parked { to, conn, since: Instant::now() });
        let sweep = !idle.sweeping;
        idle.sweeping = true;
        drop(idle);
        drop(expired);
        if sweep {
            self.sweep();
        }
    }

    /// How many connections are parked.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.shared.lock().conns.len()
    }

    /// Starts the task that closes expired connections while any are parked (on this worker's
    /// runtime, whose reactor drives them).
    fn sweep(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime (not expected): expiry then happens on the pool's next use.
            self.shared.lock().sweeping = false;
            return;
        };
        let shared: Weak<Shared> = Arc::downgrade(&self.shared);
        let timeout = self.shared.timeout;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(timeout).await;
                let Some(shared) = shared.upgrade() else { return };
                let mut idle = shared.lock();
                let expired = idle.expire(timeout);
                let done = idle.conns.is_empty();
                idle.sweeping = !done;
                drop(idle);
                drop(expired);
                if done {
                    return;
                }
            }
        });
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        // The lists stay consistent whatever panicked while holding the lock.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Idle {
    /// Takes out the connections idle for longer than `timeout` (closed when the caller drops
    /// them, after the lock).
    fn expire(&mut self, timeout: Duration) -> Vec<Parked> {
        let now = Instant::now();
        let stale = self.conns.iter().take_while(|parked| now - parked.since >= timeout).count();
        self.conns.drain(..stale).collect()
    }
}

/// Whether an idle connection is still open: nothing to read (an upstream's close would be).
fn is_open(io: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    // Anything read (the close, or bytes no request asked for) makes the connection unusable.
    matches!(io.try_read(&mut byte), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
}
