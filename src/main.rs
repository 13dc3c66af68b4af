//! The `ballast` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = ballast::cli::Cli::parse();
    ballast::telemetry::init(cli.log_format);
    match ballast::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "ballast stopped with an error");
            ExitCode::FAILURE
        }
    }
}
