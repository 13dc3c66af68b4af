//! `SharedRedis`: a Redis connection for state shared by replicas (the cache, rate limits),
//! which must never fail or stall a request.
//!
//! The connection manager is lazy (the gateway starts while Redis is down) with a short
//! reconnect policy; every call is bounded by `CALL_TIMEOUT`; after `TRIP_AFTER` consecutive
//! errors Redis is skipped for `TRIP_FOR`, so while it is down or hung no request waits on it.
//! Failures are logged at most once per `LOG_EVERY`; callers fall back (uncached, per-replica).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

use crate::throttle::Throttle;

/// The most a Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
const TRIP_AFTER: u32 = 5;
const TRIP_FOR: Duration = Duration::from_secs(2);
const LOG_EVERY: Duration = Duration::from_secs(10);

pub struct SharedRedis {
    manager: ConnectionManager,
    health: Mutex<Health>,
    reachable: AtomicBool,
}

/// A failed (or skipped) Redis call.
#[derive(Debug)]
pub struct RedisUnavailable;

struct Health {
    consecutive_errors: u32,
    skip_until: Option<Instant>,
    failure_log: Throttle,
}

impl SharedRedis {
    /// Connects lazily to `url`; never blocks.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|err| format!("invalid redis_url: {err}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(Duration::from_millis(200)))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|err| format!("cannot set up the Redis connection: {err}"))?;
        Ok(Self {
            manager,
            health: Mutex::new(Health {
                consecutive_errors: 0,
                skip_until: None,
                failure_log: Throttle::new(LOG_EVERY),
            }),
            reachable: AtomicBool::new(true),
        })
    }

    /// False after a failed call, until one succeeds.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Runs one bounded command.
    pub async fn call<T, F, Fut>(&self, what: &str, command: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.lock().skip_until.is_some_and(|until| Instant::now() < until) {
            return Err(RedisUnavailable);
        }
        let outcome = tokio::time::timeout(CALL_TIMEOUT, command(self.manager.clone())).await;
        let mut health = self.lock();
        match outcome {
            Ok(Ok(value)) => {
                if !self.reachable.swap(true, Ordering::Relaxed) {
                    tracing::info!("Redis is reachable again");
                }
                health.consecutive_errors = 0;
                health.skip_until = None;
                Ok(value)
            }
            failed => {
                self.reachable.store(false, Ordering::Relaxed);
                health.consecutive_errors += 1;
                if health.consecutive_errors >= TRIP_AFTER {
                    health.skip_until = Some(Instant::now() + TRIP_FOR);
                }
                if health.failure_log.due() {
                    let error = match failed {
                        Ok(Err(err)) => err.to_string(),
                        _ => format!("no answer within {CALL_TIMEOUT:?}"),
                    };
                    tracing::warn!(command = what, error = %error, "Redis call failed; carrying on without it (logged at most every 10 s)");
                }
                Err(RedisUnavailable)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
