//! The `ballast` binary: parse the command line, run the command (which starts logging, once
//! it knows whether traces go anywhere).
//!
//! The main thread runs a single-threaded runtime: it is worker 0, and `serve` starts the other
//! workers, one runtime per thread (see `ballast::workers`).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = ballast::cli::Cli::parse();
    let code = match ballast::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "ballast stopped with an error");
            ExitCode::FAILURE
        }
    };
    // JSON log lines are written by a thread of their own: out with the last ones.
    ballast::telemetry::json_log::flush();
    code
}
