//! The listeners: binding, the accept loop of each worker (hyper-util) under
//! `server.max_connections`, graceful shutdown. One connection's life, its protocol settings
//! and timers, is `connection`; the router it serves, with its edge layers, is `http::router`,
//! built per config generation and taken per request through `live`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, TryAcquireError, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::state::AppState;
use crate::throttle::Throttle;
use crate::workers;

mod connection;
pub mod live;

use self::live::{Live, Routed};

/// Reload requests waiting for the reload task (it handles one at a time).
const RELOAD_QUEUE: usize = 8;

/// Connections held at once on `server.metrics_listen`, apart from `server.max_connections`,
/// so that a flood of the public listener never locks the operator out of `/metrics`.
const OPERATOR_MAX_CONNECTIONS: usize = 64;
/// Connections the kernel completes and queues for `accept` while `server.max_connections` are
/// open (or between two accepts); Linux caps it at `net.core.somaxconn` (4096 by default).
const LISTEN_BACKLOG: u32 = 1024;
/// After a failed `accept` (out of file descriptors, most often), the next try waits this long.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// While every connection permit is taken, a warning at most this often (per worker)...
const FULL_WARNING_EVERY: Duration = Duration::from_secs(60);
/// ...and while `accept` fails, at most this often.
const ACCEPT_WARNING_EVERY: Duration = Duration::from_secs(1);
/// After the shutdown grace, open streams get their error event; this long to flush it.
const CUT_FLUSH: Duration = Duration::from_secs(1);

/// A bound, not yet serving, gateway.
pub struct Gateway {
    listener: TcpListener,
    /// `server.metrics_listen`: `/metrics` and `/status` apart from the public listener.
    operator_listener: Option<TcpListener>,
    state: AppState,
    /// The file SIGHUP and `POST /admin/reload` re-read; none for an embedded gateway.
    config_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("{0}")]
    Setup(String),
}

impl Gateway {
    /// Builds the state and binds `listen` (or the config's `server.listen`), and
    /// `server.metrics_listen` when set.
    pub async fn bind(config: Config, listen: Option<SocketAddr>) -> Result<Self, StartError> {
        let addr = listen.unwrap_or(config.server.listen);
        let operator_addr = config.server.metrics_listen;
        let state = AppState::new(config).map_err(StartError::Setup)?;
        let listener = bind(addr)?;
        let operator_listener = match operator_addr {
            Some(addr) => Some(bind(addr)?),
            None => None,
        };
        Ok(Self { listener, operator_listener, state, config_path: None })
    }

    /// Reloads from `path` on SIGHUP and `POST /admin/reload` (the file the config came from).
    #[must_use]
    pub fn reloading_from(mut self, path: PathBuf) -> Self {
        self.config_path = Some(path);
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of `server.metrics_listen`, when set.
    pub fn operator_addr(&self) -> Option<SocketAddr> {
        self.operator_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `signal` resolves, then drains: no new connections, in-flight requests and
    /// streams finish within `shutdown_grace`; streams still open then end with an error event.
    ///
    /// The calling thread is worker 0; `server.workers - 1` more threads accept on the same
    /// socket, each with its own runtime (see `crate::workers`). This returns once every worker
    /// has drained.
    pub async fn serve(self, signal: impl Future<Output = ()> + Send) {
        let Self { listener, operator_listener, state, config_path } = self;
        let stop = CancellationToken::new();
        // Dropping this future (e.g. with the runtime that polls it) stops the other workers.
        let _stop_workers = stop.clone().drop_guard();
        let live = Live::new(state.clone());
        let app = live.service(false);
        // One limit for every worker's accept loop on `listen`; the operator listener has its own.
        let limit =
            ConnectionLimit::new(state.config().server.max_connections, "server.max_connections");
        let (listener, workers) = spawn_workers(listener, &app, &limit, &state, &stop);
        let main = async {
            if let Some(listener) = listener {
                serve_listener(listener, app, limit, &state, &stop).await;
            }
        };
        let reloads = async {
            if let Some(path) = config_path {
                let (requests, receiver) = mpsc::channel(RELOAD_QUEUE);
                state.accept_reloads(requests);
                crate::reload::serve(live.clone(), path, receiver, stop.clone()).await;
            }
        };
        let operator = async {
            if let Some(listener) = operator_listener {
                let app = live.service(true);
                let limit = ConnectionLimit::new(OPERATOR_MAX_CONNECTIONS, "operator listener");
                serve_listener(listener, app, limit, &state, &stop).await;
            }
        };
        let stopper = async {
            signal.await;
            stop.cancel();
        };
        tokio::join!(main, operator, reloads, stopper);
        for worker in workers {
            // An error only means the thread ended without saying so: it is done either way.
            let _ = worker.await;
        }
    }
}

/// Starts workers 1.. on threads of their own, each accepting on a clone of `listener`, and
/// gives `listener` back for worker 0 (none if it could not be handed back, which is logged).
/// A worker whose socket cannot be cloned is left out, with an error in the log.
fn spawn_workers(
    listener: TcpListener,
    app: &Routed,
    limit: &ConnectionLimit,
    state: &AppState,
    stop: &CancellationToken,
) -> (Option<TcpListener>, Vec<oneshot::Receiver<()>>) {
    let count = state.config().server.workers;
    if count <= 1 {
        return (Some(listener), Vec::new());
    }
    let socket = match listener.into_std() {
        Ok(socket) => socket,
        Err(err) => {
            tracing::error!(error = %err, "cannot share the listening socket between workers");
            return (None, Vec::new());
        }
    };
    let mut workers = Vec::with_capacity(count - 1);
    for index in 1..count {
        let started = socket.try_clone().and_then(|socket| {
            let (app, state, stop) = (app.clone(), state.clone(), stop.clone());
            let limit = limit.clone();
            workers::spawn(index, move || async move {
                match TcpListener::from_std(socket) {
                    Ok(listener) => serve_listener(listener, app, limit, &state, &stop).await,
                    Err(err) => tracing::error!(worker = index, error = %err, "cannot accept"),
                }
            })
        });
        match started {
            Ok(done) => workers.push(done),
            Err(err) => tracing::error!(worker = index, error = %err, "cannot start a worker"),
        }
    }
    let listener = TcpListener::from_std(socket)
        .inspect_err(|err| tracing::error!(error = %err, "worker 0 cannot accept"))
        .ok();
    (listener, workers)
}

/// Binds `addr` with a listen backlog of [`LISTEN_BACKLOG`] (std's and tokio's is 128).
fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() };
    socket
        .and_then(|socket| {
            // As std and tokio do: a restarted gateway can bind while old connections linger.
            #[cfg(unix)]
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(LISTEN_BACKLOG)
        })
        .map_err(|source| StartError::Bind { addr, source })
}

/// The connections a listener may hold at once, shared by the workers that accept on it.
#[derive(Clone)]
struct ConnectionLimit {
    permits: Arc<Semaphore>,
    /// What sets it, for the log.
    setting: &'static str,
}

impl ConnectionLimit {
    fn new(count: usize, setting: &'static str) -> Self {
        Self { permits: Arc::new(Semaphore::new(count)), setting }
    }
}

/// One listener's accept loop until `stop`, then its drain.
///
/// A connection is accepted only with a permit of `limit`, held until the connection closes:
/// while all are taken, new connections wait in the kernel's backlog.
async fn serve_listener(
    listener: TcpListener,
    app: Routed,
    limit: ConnectionLimit,
    state: &AppState,
    stop: &CancellationToken,
) {
    let grace = state.config().server.shutdown_grace;
    let header_timeout = state.config().server.header_timeout;
    let builder = connection::builder(header_timeout);
    // This listener's connections: drained on `stop`, after the loop.
    let connections = TaskTracker::new();
    let drain = CancellationToken::new();
    let mut full_warning = Throttle::new(FULL_WARNING_EVERY);
    let mut accept_warning = Throttle::new(ACCEPT_WARNING_EVERY);
    loop {
        let permit = match Arc::clone(&limit.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                if full_warning.due() {
                    tracing::warn!(
                        limit = limit.setting,
                        "connection limit reached: new connections wait in the backlog \
                         (logged at most once a minute per worker)"
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&limit.permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_closed) => break,
                    },
                    () = stop.cancelled() => break,
                }
            }
            Err(TryAcquireError::Closed) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    drop(permit);
                    // Out of file descriptors and the like: back off instead of spinning.
                    if accept_warning.due() {
                        tracing::warn!(
                            error = %err,
                            "accepting a connection failed; retrying every 50 ms \
                             (logged at most once a second per worker)"
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        () = stop.cancelled() => break,
                    }
                }
            },
            () = stop.cancelled() => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let activity = Arc::new(connection::Activity::default());
        let service = connection::Service::new(app.clone(), Arc::clone(&activity));
        let served = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let drain = drain.clone();
        connections.spawn(async move {
            connection::serve(served, activity, header_timeout, drain).await;
            drop(permit);
        });
    }
    drop(listener);
    state.start_draining();
    let worker = workers::current();
    tracing::info!(worker, grace = ?grace, "shutting down: draining in-flight requests");
    connections.close();
    drain.cancel();
    let mut drained = std::pin::pin!(connections.wait());
    tokio::select! {
        () = &mut drained => tracing::info!(worker, "all requests finished"),
        () = tokio::time::sleep(grace) => {
            tracing::warn!(worker, "shutdown grace passed; ending the streams still open");
            state.streams_cut().cancel();
            if tokio::time::timeout(CUT_FLUSH, drained).await.is_err() {
                tracing::warn!(worker, "connections still open after the grace; closing them");
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives right after start-up is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {},
                        _ = interrupt.recv() => {},
                    }
                }
                (Err(err), _) | (_, Err(err)) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM/SIGINT; stop with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
