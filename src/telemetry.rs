//! Logging: tracing-subscriber with the filter from `$BALLAST_LOG` (or `$RUST_LOG`), as JSON
//! or pretty text, on stderr (stdout stays for command output such as `ballast check`).

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Installs the global subscriber. `format` defaults to pretty on a terminal, JSON otherwise.
pub fn init(format: Option<LogFormat>) {
    let filter = ["BALLAST_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let is_terminal = std::io::stderr().is_terminal();
    let format = format.unwrap_or(if is_terminal { LogFormat::Pretty } else { LogFormat::Json });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // JSON logs never carry ANSI escapes (RUSTSEC-2025-0055 is about injected ones).
    let installed = match format {
        LogFormat::Json => builder.json().with_ansi(false).with_current_span(true).try_init(),
        LogFormat::Pretty => builder.with_ansi(is_terminal).try_init(),
    };
    // A subscriber already installed (tests) is fine.
    drop(installed);
}
