//! The settings every provider kind shares: timeouts, retries, circuit breaker and bulkhead.

use super::values::duration;
use crate::config::defaults::bounds;
use crate::config::defaults::provider as default;
use crate::config::path::YamlPath;
use crate::config::raw::{RawBreaker, RawProviderCommon, RawRetry, RawTimeouts};
use crate::config::{BreakerPolicy, ConfigProblem, RetryPolicy, Timeouts};

/// The shared part of a [`ProviderConfig`](crate::config::ProviderConfig).
pub(super) struct Shared {
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
    pub max_concurrency: Option<usize>,
}

pub(super) fn shared(
    path: &YamlPath,
    raw: RawProviderCommon,
    out: &mut Vec<ConfigProblem>,
) -> Shared {
    let retry = retry_policy(&path.key("retry"), raw.retry.unwrap_or_default(), out);
    let breaker =
        breaker_policy(&path.key("circuit_breaker"), raw.circuit_breaker.unwrap_or_default(), out);
    if raw.max_concurrency == Some(0) {
        out.push(path.key("max_concurrency").problem("must be at least 1 (omit it for no limit)"));
    }
    let max_concurrency = raw.max_concurrency.and_then(|n| usize::try_from(n).ok());
    let timeouts = timeouts(&path.key("timeouts"), raw.timeouts.unwrap_or_default(), out);
    Shared { timeouts, retry, breaker, max_concurrency }
}

fn timeouts(path: &YamlPath, raw: RawTimeouts, out: &mut Vec<ConfigProblem>) -> Timeouts {
    let d = default::TIMEOUTS;
    Timeouts {
        connect: duration(&path.key("connect"), raw.connect, d.connect, bounds::MAX_TIMEOUT, out),
        first_byte: duration(
            &path.key("first_byte"),
            raw.first_byte,
            d.first_byte,
            bounds::MAX_TIMEOUT,
            out,
        ),
        idle: duration(&path.key("idle"), raw.idle, d.idle, bounds::MAX_TIMEOUT, out),
        total: duration(&path.key("total"), raw.total, d.total, bounds::MAX_TIMEOUT, out),
    }
}

fn retry_policy(path: &YamlPath, raw: RawRetry, out: &mut Vec<ConfigProblem>) -> RetryPolicy {
    let d = default::RETRY;
    let base_delay =
        duration(&path.key("base_delay"), raw.base_delay, d.base_delay, bounds::MAX_TIMEOUT, out);
    let max_delay =
        duration(&path.key("max_delay"), raw.max_delay, d.max_delay, bounds::MAX_TIMEOUT, out);
    if base_delay > max_delay {
        out.push(path.key("base_delay").problem("must not be longer than max_delay"));
    }
    RetryPolicy { max_retries: raw.max_retries.unwrap_or(d.max_retries), base_delay, max_delay }
}

fn breaker_policy(path: &YamlPath, raw: RawBreaker, out: &mut Vec<ConfigProblem>) -> BreakerPolicy {
    let d = default::BREAKER;
    let consecutive_failures = raw.consecutive_failures.unwrap_or(d.consecutive_failures);
    if consecutive_failures == 0 {
        out.push(path.key("consecutive_failures").problem("must be at least 1"));
    }
    BreakerPolicy {
        consecutive_failures: consecutive_failures.max(1),
        open_for: duration(
            &path.key("open_for"),
            raw.open_for,
            d.open_for,
            bounds::MAX_TIMEOUT,
            out,
        ),
    }
}
