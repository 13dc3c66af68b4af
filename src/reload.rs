//! Reloading the config file: on SIGHUP and `POST /admin/reload` (SPEC §4 "Reload").
//!
//! One task owns reloading, so two never interleave. A reload reads and validates the file
//! exactly as `check` does; a config with any problem is refused whole (each problem logged as
//! `check` prints it, `ballast_config_reloads_total{result="error"}`) and the running one
//! stays. A valid one becomes the next `AppState` generation (`AppState::next`: unchanged
//! providers keep their pools, circuit and health; the cache stays when its settings did) and
//! is swapped in for new requests; requests in flight finish on theirs. Settings only a
//! restart can apply (the listeners, workers, connection limits, `telemetry`) keep their running values,
//! and the log says which changed.

use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::{self, ServerConfig};
use crate::server::live::Live;

/// A reload asked for, and where its outcome goes.
pub type ReloadRequest = oneshot::Sender<ReloadOutcome>;

/// What a reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Serving the new config: the route table `check` prints for it, and the settings that
    /// changed but wait for a restart.
    Applied { route_table: String, restart_needed: Vec<&'static str> },
    /// Refused: every problem, as `path: message`; the running config stays.
    Refused { problems: Vec<String> },
}

/// Serves reload requests (`requests`, from `/admin/reload`) and SIGHUP until `stop`.
pub async fn serve(
    live: Live,
    path: PathBuf,
    mut requests: mpsc::Receiver<ReloadRequest>,
    stop: CancellationToken,
) {
    let mut hangups = hangups();
    loop {
        let reply = tokio::select! {
            request = requests.recv() => match request {
                Some(reply) => Some(reply),
                None => break,
            },
            () = next_hangup(&mut hangups) => {
                tracing::info!("SIGHUP: reloading the config");
                None
            }
            () = stop.cancelled() => break,
        };
        let outcome = reload(&live, &path);
        if let Some(reply) = reply {
            // The caller may have gone (its connection closed): the reload stands either way.
            let _ = reply.send(outcome);
        }
    }
}

/// Reads `path` and, when it is valid, serves it from now on.
pub fn reload(live: &Live, path: &Path) -> ReloadOutcome {
    let current = live.state();
    let metrics = std::sync::Arc::clone(current.metrics());
    let refuse = |problems: Vec<String>| {
        for problem in &problems {
            tracing::error!(config = %path.display(), problem = %problem, "config reload refused");
        }
        metrics.record_reload_refused();
        ReloadOutcome::Refused { problems }
    };
    let mut next = match config::load(path) {
        Ok(config) => config,
        Err(problems) => return refuse(problems.iter().map(ToString::to_string).collect()),
    };
    let mut restart_needed = keep_restart_only(&current.config().server, &mut next.server);
    // The span exporter is the process's, started with the subscriber.
    if next.telemetry != current.config().telemetry {
        restart_needed.push("telemetry");
        next.telemetry = current.config().telemetry.clone();
    }
    let route_table = crate::cli::route_table(path, &next);
    let state = match current.next(next) {
        Ok(state) => state,
        Err(problem) => return refuse(vec![problem]),
    };
    let loaded_at = state.loaded_at();
    live.swap(state);
    metrics.record_reload_applied(loaded_at);
    for setting in &restart_needed {
        tracing::warn!(setting, "changed in the config file; it applies at the next restart");
    }
    tracing::info!(config = %path.display(), "config reloaded: new requests use it");
    ReloadOutcome::Applied { route_table, restart_needed }
}

/// Gives `next` the running values of what only a restart can change (the listeners and what
/// they were started with), and names those that differ.
fn keep_restart_only(running: &ServerConfig, next: &mut ServerConfig) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident),*) => {$(
            if next.$field != running.$field {
                changed.push(concat!("server.", stringify!($field)));
                next.$field = running.$field;
            }
        )*};
    }
    keep!(listen, metrics_listen, workers, max_connections, header_timeout, shutdown_grace);
    changed
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = ();

#[cfg(unix)]
fn hangups() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|err| tracing::warn!(error = %err, "cannot listen for SIGHUP; reload with POST /admin/reload"))
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Hangups {}

#[cfg(unix)]
async fn next_hangup(hangups: &mut Hangups) {
    let received = match hangups {
        Some(signal) => signal.recv().await.is_some(),
        None => false,
    };
    if !received {
        // No SIGHUP handler (or its stream ended): only `/admin/reload` reloads.
        *hangups = None;
        std::future::pending::<()>().await;
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangups) {
    std::future::pending().await
}
