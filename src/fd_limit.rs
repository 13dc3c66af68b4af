//! The file-descriptor limit: raised at `serve` start-up from the soft limit to the hard one,
//! and logged, with a warning when it is too low for `server.max_connections`.
//!
//! Every client connection, upstream connection and listener is a file descriptor. Many
//! systems start a process with a soft limit of 1024 (systemd's default, and many shells')
//! under a much higher hard limit; a process may raise its own soft limit up to the hard one,
//! and that is all this does (raising the hard limit needs privileges and is the operator's
//! choice: `LimitNOFILE=` in a unit, `--ulimit nofile=` for Docker, see docs/deployment.md).

/// Descriptors needed beside two per connection: listeners, Redis, the runtime, logs.
const RESERVED: u64 = 256;

/// The soft limit tried when the hard one is unlimited and the system refuses that as a soft one.
#[cfg(unix)]
const UNLIMITED_FALLBACK: u64 = 10_240;

/// The soft limit before and after [`raise`], `None` for unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub before: Option<u64>,
    pub after: Option<u64>,
}

/// The descriptors `max_connections` clients may need: each may have a request in flight,
/// which holds an upstream connection beside the client's own, plus [`RESERVED`].
pub fn needed(max_connections: usize) -> u64 {
    u64::try_from(max_connections).unwrap_or(u64::MAX).saturating_mul(2).saturating_add(RESERVED)
}

/// Raises the soft limit on open files to the hard limit (unix; elsewhere it does nothing and
/// returns `None`). An error leaves the limit as it was.
#[cfg(unix)]
pub fn raise() -> std::io::Result<Limits> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return Ok(Limits { before, after: before });
    }
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {}
        // macOS refuses an unlimited soft limit under an unlimited hard one; it takes OPEN_MAX.
        Err(_) if limit.maximum.is_none() && limit.current < Some(UNLIMITED_FALLBACK) => {
            let raised = Rlimit { current: Some(UNLIMITED_FALLBACK), maximum: None };
            setrlimit(Resource::Nofile, raised)?;
        }
        Err(err) => return Err(err.into()),
    }
    Ok(Limits { before, after: getrlimit(Resource::Nofile).current })
}

/// [`raise`], then an info line with the limit and a warning when it is below what
/// `max_connections` needs.
pub fn raise_and_log(max_connections: usize) {
    #[cfg(unix)]
    {
        let needed = needed(max_connections);
        match raise() {
            Ok(limits) => log(limits, max_connections, needed),
            Err(err) => {
                let current = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
                tracing::warn!(error = %err, limit = ?current, "cannot raise the open-file limit");
                let limits = Limits { before: current, after: current };
                log(limits, max_connections, needed);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}

#[cfg(unix)]
fn log(limits: Limits, max_connections: usize, needed: u64) {
    let shown =
        |limit: Option<u64>| limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    tracing::info!(
        limit = %shown(limits.after),
        before = %shown(limits.before),
        "open-file limit"
    );
    if let Some(limit) = limits.after.filter(|&limit| limit < needed) {
        tracing::warn!(
            limit,
            needed,
            max_connections,
            "the open-file limit is below what server.max_connections needs (two per connection \
             and some); raise the hard limit (ulimit -n, LimitNOFILE=, docker --ulimit nofile=) \
             or lower server.max_connections"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_descriptors_per_connection_and_a_reserve_are_needed() {
        assert_eq!(needed(10_000), 20_256);
        assert_eq!(needed(usize::MAX), u64::MAX);
    }

    #[cfg(unix)]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        // Raising our own soft limit to the hard one is harmless for the other tests.
        let limits = raise().unwrap();
        let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        assert_eq!(limits.after, now.current);
        assert_eq!(now.current, now.maximum);
        assert!(limits.after >= limits.before || limits.after.is_none());
    }
}
