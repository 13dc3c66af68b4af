//! The listeners: binding, the accept loop of each worker (hyper-util), graceful shutdown. The
//! router they serve, with its edge layers, is `http::router`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::http::router::{self, App};
use crate::state::AppState;
use crate::workers;

/// The most a client's request head may take (hyper answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 64 << 10;
/// After the shutdown grace, open streams get their error event; this long to flush it.
const CUT_FLUSH: Duration = Duration::from_secs(1);

/// A bound, not yet serving, gateway.
pub struct Gateway {
    listener: TcpListener,
    /// `server.metrics_listen`: `/metrics` and `/status` apart from the public listener.
    operator_listener: Option<TcpListener>,
    state: AppState,
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
        let listener = bind(addr).await?;
        let operator_listener = match operator_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self { listener, operator_listener, state })
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
        let Self { listener, operator_listener, state } = self;
        let stop = CancellationToken::new();
        // Dropping this future (e.g. with the runtime that polls it) stops the other workers.
        let _stop_workers = stop.clone().drop_guard();
        let app = router::app(state.clone());
        let (listener, workers) = spawn_workers(listener, &app, &state, &stop);
        let main = async {
            if let Some(listener) = listener {
                serve_listener(listener, app, &state, &stop).await;
            }
        };
        let operator = async {
            if let Some(listener) = operator_listener {
                serve_listener(listener, router::operator_app(state.clone()), &state, &stop).await;
            }
        };
        let stopper = async {
            signal.await;
            stop.cancel();
        };
        tokio::join!(main, operator, stopper);
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
    app: &App,
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
            workers::spawn(index, move || async move {
                match TcpListener::from_std(socket) {
                    Ok(listener) => serve_listener(listener, app, &state, &stop).await,
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

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })
}

/// One listener's accept loop until `stop`, then its drain.
async fn serve_listener(
    listener: TcpListener,
    app: App,
    state: &AppState,
    stop: &CancellationToken,
) {
    let grace = state.config().server.shutdown_grace;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let header_timeout = state.config().server.header_timeout;
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder.http2().timer(TokioTimer::new());
    let connections = GracefulShutdown::new();
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    state.start_draining();
    let worker = workers::current();
    tracing::info!(worker, grace = ?grace, "shutting down: draining in-flight requests");
    let drained = connections.shutdown();
    let mut drained = std::pin::pin!(drained);
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
