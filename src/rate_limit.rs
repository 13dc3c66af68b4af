//! Per-key rate limits: requests and tokens per minute (SPEC §2 `auth.keys[].rate_limit`).
//!
//! Limits count in fixed one-minute windows of wall-clock time, like OpenAI's. A request takes
//! one request and its estimated prompt tokens (a quarter of its body's bytes) at admission,
//! atomically: if either would exceed its limit, nothing is taken and the request gets 429.
//! When the upstream reports its usage, the difference between the estimate and the real
//! prompt + completion tokens is settled. With the Redis cache backend the counts live in
//! Redis (one Lua script per check, so replicas share them exactly); if Redis fails, each
//! replica limits on its own counts in memory until it is back: a Redis outage never turns
//! into errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::Caller;
use crate::shared_redis::SharedRedis;

const WINDOW: Duration = Duration::from_secs(60);
const REQUESTS: &str = "requests";
const TOKENS: &str = "tokens";

/// Atomically: if used + amount <= limit, add amount (setting the window's expiry on first use)
/// and return {1, used}; else return {0, used}.
const CHECK_AND_ADD: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
if used + amount > tonumber(ARGV[2]) then return {0, used} end
used = redis.call('INCRBY', KEYS[1], amount)
if used == amount then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, used}
";

pub struct RateLimiter {
    redis: Option<SharedRedis>,
    script: redis::Script,
    /// The per-replica counts.
    local: Mutex<HashMap<WindowKey, u64>>,
}

/// Key name, kind (requests or tokens), window number.
type WindowKey = (Arc<str>, &'static str, u64);

/// One limit's state, for the `x-ratelimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitState {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

/// Admission: the state of each configured limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    pub requests: Option<LimitState>,
    pub tokens: Option<LimitState>,
    /// Tokens taken on admission, to settle against the real usage.
    pub estimated_tokens: u64,
}

/// Refused: which limit, and when its window resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub admission: Admission,
    pub retry_after: Duration,
}

impl RateLimiter {
    /// Shares counts through `redis_url` when given (the cache's Redis).
    pub fn new(redis_url: Option<&str>) -> Result<Self, String> {
        let redis = redis_url.map(SharedRedis::new).transpose()?;
        Ok(Self {
            redis,
            script: redis::Script::new(CHECK_AND_ADD),
            local: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request and `estimated_tokens` from the caller's limits, or refuses.
    pub async fn admit(
        &self,
        caller: &Caller,
        estimated_tokens: u64,
    ) -> Result<Admission, Limited> {
        let Some(limit) = caller.rate_limit else { return Ok(Admission::default()) };
        let (window, reset) = window_now();
        let mut admission = Admission { estimated_tokens: 0, ..Admission::default() };
        if let Some(rpm) = limit.requests_per_minute {
            let (allowed, used) =
                self.check_and_add(&caller.name, REQUESTS, window, 1, u64::from(rpm)).await;
            admission.requests = Some(limit_state(u64::from(rpm), used, reset));
            if !allowed {
                return Err(Limited { admission, retry_after: reset });
            }
        }
        if let Some(tpm) = limit.tokens_per_minute {
            let (allowed, used) =
                self.check_and_add(&caller.name, TOKENS, window, estimated_tokens, tpm).await;
            admission.tokens = Some(limit_state(tpm, used, reset));
            if !allowed {
                // The request was counted above; give it back, since it will not run.
                if limit.requests_per_minute.is_some() {
                    self.add(&caller.name, REQUESTS, window, -1).await;
                }
                return Err(Limited { admission, retry_after: reset });
            }
            admission.estimated_tokens = estimated_tokens;
        }
        Ok(admission)
    }

    /// Corrects the token count once the upstream reported what the request really used.
    pub async fn settle(&self, caller: &Caller, admission: &Admission, actual_tokens: u64) {
        if caller.rate_limit.and_then(|limit| limit.tokens_per_minute).is_none() {
            return;
        }
        // Saturating, as every sum here: `actual_tokens` is the upstream's number.
        let delta = i64::try_from(actual_tokens)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(admission.estimated_tokens).unwrap_or(i64::MAX));
        if delta != 0 {
            self.add(&caller.name, TOKENS, window_now().0, delta).await;
        }
    }

    async fn check_and_add(
        &self,
        name: &Arc<str>,
        kind: &'static str,
        window: u64,
        amount: u64,
        limit: u64,
    ) -> (bool, u64) {
        if let Some(redis) = &self.redis {
            let key = redis_key(name, kind, window);
            let expiry = u64::try_from(WINDOW.as_millis()).unwrap_or(60_000) + 1_000;
            let script = &self.script;
            let outcome = redis
                .call("rate limit", |mut conn| async move {
                    script
                        .key(key)
                        .arg(amount)
                        .arg(limit)
                        .arg(expiry)
                        .invoke_async::<(u8, u64)>(&mut conn)
                        .await
                })
                .await;
            if let Ok((allowed, used)) = outcome {
                return (allowed == 1, used);
            }
        }
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        local.retain(|(_, _, w), _| *w + 1 >= window);
        let used = local.entry((Arc::clone(name), kind, window)).or_insert(0);
        // A count settled near `u64::MAX` (a hostile upstream's usage) must refuse, not wrap.
        if used.saturating_add(amount) > limit {
            return (false, *used);
        }
        *used = used.saturating_add(amount);
        (true, *used)
    }

    async fn add(&self, name: &Arc<str>, kind: &'static str, window: u64, delta: i64) {
        if let Some(redis) = &self.redis {
            let key = redis_key(name, kind, window);
            let added = redis
                .call("rate limit", |mut conn| async move {
                    redis::cmd("INCRBY").arg(key).arg(delta).query_async::<i64>(&mut conn).await
                })
                .await;
            if added.is_ok() {
                return;
            }
        }
        let mut local = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let used = local.entry((Arc::clone(name), kind, window)).or_insert(0);
        *used = used.saturating_add_signed(delta);
    }
}

fn limit_state(limit: u64, used: u64, reset: Duration) -> LimitState {
    LimitState { limit, remaining: limit.saturating_sub(used), reset }
}

fn redis_key(name: &str, kind: &str, window: u64) -> String {
    format!("ballast:rl:v1:{name}:{kind}:{window}")
}

/// The current window's number and the time until it ends.
fn window_now() -> (u64, Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let window = now.as_secs() / WINDOW.as_secs();
    let ends = Duration::from_secs((window + 1) * WINDOW.as_secs());
    (window, ends.saturating_sub(now))
}

/// Prompt tokens estimated from a request body: about four bytes per token.
pub fn estimate_tokens(body_bytes: usize) -> u64 {
    (body_bytes as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimit;

    fn caller(rpm: Option<u32>, tpm: Option<u64>) -> Caller {
        let limit = RateLimit { requests_per_minute: rpm, tokens_per_minute: tpm };
        crate::auth::Caller::for_tests("k", Some(limit))
    }

    #[tokio::test]
    async fn requests_per_minute_admit_up_to_the_limit() {
        let limiter = RateLimiter::new(None).unwrap();
        let caller = caller(Some(2), None);
        assert!(limiter.admit(&caller, 10).await.is_ok());
        let second = limiter.admit(&caller, 10).await.unwrap();
        assert_eq!(second.requests.unwrap().remaining, 0);
        let refused = limiter.admit(&caller, 10).await.unwrap_err();
        assert!(refused.retry_after <= WINDOW);
    }

    #[tokio::test]
    async fn tokens_are_reserved_then_settled_and_a_refusal_takes_nothing() {
        let limiter = RateLimiter::new(None).unwrap();
        let caller = caller(Some(100), Some(1000));
        let first = limiter.admit(&caller, 600).await.unwrap();
        assert!(limiter.admit(&caller, 600).await.is_err(), "600 + 600 > 1000");
        limiter.settle(&caller, &first, 100).await;
        let second = limiter.admit(&caller, 600).await.unwrap();
        assert_eq!(second.tokens.unwrap().remaining, 300, "100 used + 600 reserved");
        assert_eq!(second.requests.unwrap().remaining, 98, "the refused request was given back");
    }

    #[tokio::test]
    async fn a_hostile_usage_saturates_the_count_and_refuses_instead_of_wrapping() {
        let limiter = RateLimiter::new(None).unwrap();
        let caller = caller(None, Some(1000));
        let first = limiter.admit(&caller, 10).await.unwrap();
        limiter.settle(&caller, &first, u64::MAX).await;
        limiter.settle(&caller, &first, u64::MAX).await;

        let refused = limiter.admit(&caller, 600).await;

        assert!(refused.is_err(), "a count near u64::MAX plus 600 must not wrap below the limit");
    }
}
