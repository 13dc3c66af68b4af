//! Logging: tracing-subscriber with the filter from `$BALLAST_LOG` (or `$RUST_LOG`), as JSON
//! (`json_log`, written by a thread of its own) or pretty text, on stderr (stdout stays for
//! command output such as `ballast check`); and, with `telemetry.otlp_endpoint`, traces
//! (`traces`).

pub mod json_log;
pub mod traces;

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber. `format` defaults to pretty on a terminal, JSON otherwise.
/// With a `tracer`, ballast's spans (info and above, whatever the log filter says) also go to
/// it.
pub fn init(format: Option<LogFormat>, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let filter = ["BALLAST_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let is_terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if is_terminal { LogFormat::Pretty } else { LogFormat::Json });
    let Some(tracer) = tracer else {
        // Logs alone: the filter is the subscriber's own, so a disabled callsite is never asked
        // again and an enabled span costs no per-layer filter bookkeeping on each enter, exit
        // and record (benches/README, "Logging").
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(format, is_terminal))
            .try_init();
        drop(installed);
        return;
    };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(Targets::new().with_target("ballast", Level::INFO))
        .boxed();
    // With traces, each of the two layers filters on its own.
    let logs = log_layer(format, is_terminal).with_filter(filter).boxed();
    let installed = tracing_subscriber::registry().with(vec![spans, logs]).try_init();
    // A subscriber already installed (tests) is fine.
    drop(installed);
}

/// The log layer of `format`, unfiltered.
fn log_layer<S>(format: LogFormat, is_terminal: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    // JSON logs never carry ANSI escapes (RUSTSEC-2025-0055 is about injected ones): strings
    // are escaped by `json_log`, control characters included.
    match format {
        LogFormat::Json => json_log::JsonLog::new().boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(is_terminal)
            .boxed(),
    }
}
