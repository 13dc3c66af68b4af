//! The `server` section: listeners, connection and request limits, timeouts, serving threads.

use std::net::SocketAddr;

use yaml_serde::Value;

use super::values::{duration, size};
use crate::config::defaults::bounds;
use crate::config::defaults::server as default;
use crate::config::path::YamlPath;
use crate::config::raw::RawServer;
use crate::config::{ConfigProblem, ServerConfig};

/// `server.workers` above this is a typo, not a machine.
const MAX_WORKERS: u32 = 1024;
/// `server.max_connections` above this is a typo: Linux lets no process hold more file
/// descriptors than `fs.nr_open`, 1048576 by default, and each connection is one.
const MAX_CONNECTIONS: u64 = 1_000_000;

pub(super) fn server_config(
    path: &YamlPath,
    value: Option<Value>,
    out: &mut Vec<ConfigProblem>,
) -> ServerConfig {
    let raw: RawServer = super::section(path, value, out);
    let listen = match raw.listen {
        None => default::LISTEN,
        Some(text) => text.parse::<SocketAddr>().unwrap_or_else(|_| {
            out.push(path.key("listen").problem(format!(
                "`{text}` is not an IP address and port such as 127.0.0.1:8080 or 0.0.0.0:8080"
            )));
            default::LISTEN
        }),
    };
    let metrics_listen =
        raw.metrics_listen.and_then(|text| match text.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                out.push(path.key("metrics_listen").problem(format!(
                    "`{text}` is not an IP address and port such as 0.0.0.0:9091"
                )));
                None
            }
        });
    let max_body_size =
        size(&path.key("max_body_size"), raw.max_body_size, default::MAX_BODY_SIZE, out);
    let in_flight = size(
        &path.key("max_body_bytes_in_flight"),
        raw.max_body_bytes_in_flight,
        default::MAX_BODY_BYTES_IN_FLIGHT,
        out,
    );
    if in_flight < max_body_size {
        out.push(path.key("max_body_bytes_in_flight").problem(format!(
            "{in_flight} bytes is less than max_body_size ({max_body_size} bytes): no body of the \
             largest size could ever be read"
        )));
    }
    let workers = match raw.workers {
        None => default::workers(),
        Some(count @ 1..=MAX_WORKERS) => count as usize,
        Some(count) => {
            out.push(path.key("workers").problem(format!(
                "{count} workers: must be from 1 to {MAX_WORKERS} (omit it for one per core)"
            )));
            1
        }
    };
    let max_connections = match raw.max_connections {
        None => default::MAX_CONNECTIONS,
        Some(count @ 1..=MAX_CONNECTIONS) => usize::try_from(count).unwrap_or(usize::MAX),
        Some(count) => {
            out.push(
                path.key("max_connections")
                    .problem(format!("{count} connections: must be from 1 to {MAX_CONNECTIONS}")),
            );
            default::MAX_CONNECTIONS
        }
    };
    ServerConfig {
        listen,
        metrics_listen,
        max_body_size: usize::try_from(max_body_size).unwrap_or(usize::MAX),
        request_timeout: duration(
            &path.key("request_timeout"),
            raw.request_timeout,
            default::REQUEST_TIMEOUT,
            bounds::MAX_TIMEOUT,
            out,
        ),
        shutdown_grace: duration(
            &path.key("shutdown_grace"),
            raw.shutdown_grace,
            default::SHUTDOWN_GRACE,
            bounds::MAX_TIMEOUT,
            out,
        ),
        header_timeout: duration(
            &path.key("header_timeout"),
            raw.header_timeout,
            default::HEADER_TIMEOUT,
            bounds::MAX_TIMEOUT,
            out,
        ),
        body_timeout: duration(
            &path.key("body_timeout"),
            raw.body_timeout,
            default::BODY_TIMEOUT,
            bounds::MAX_TIMEOUT,
            out,
        ),
        // A tokio semaphore holds at most `usize::MAX >> 3` permits.
        max_body_bytes_in_flight: usize::try_from(in_flight)
            .unwrap_or(usize::MAX)
            .min(usize::MAX >> 3),
        max_connections,
        workers,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{MINIMAL, config, problems};

    #[test]
    fn max_connections_defaults_to_specs_value_and_zero_or_absurd_values_are_refused() {
        assert_eq!(config(MINIMAL).server.max_connections, 10_000);
        let set = config(&format!("server: {{ max_connections: 4 }}\n{MINIMAL}"));
        assert_eq!(set.server.max_connections, 4);
        for (count, expected) in [
            ("0", "server.max_connections: 0 connections: must be from 1 to 1000000"),
            ("1000001", "server.max_connections: 1000001 connections: must be from 1 to 1000000"),
        ] {
            let found = problems(&format!("server: {{ max_connections: {count} }}\n{MINIMAL}"));
            assert_eq!(found, [expected], "{count}");
        }
        let found = problems(&format!("server: {{ max_connections: -1 }}\n{MINIMAL}"));
        assert!(found.iter().any(|p| p.starts_with("server.max_connections")), "{found:?}");
    }

    /// SPEC §2's `server` section, as written there, is a valid one.
    #[test]
    fn specs_example_server_section_is_accepted() {
        let spec = "
server:
  listen: 127.0.0.1:8080
  metrics_listen: null
  max_connections: 10000
  max_body_size: 10MiB
  request_timeout: 300s
  shutdown_grace: 30s
";
        let server = config(&format!("{spec}{MINIMAL}")).server;
        assert_eq!(server.max_connections, 10_000);
        assert_eq!(server.metrics_listen, None);
    }
}
