//! Per-key rate limits: requests and tokens per minute (SPEC §2 `auth.keys[].rate_limit`).
//!
//! Limits count in fixed one-minute windows of wall-clock time, like OpenAI's. A request takes
//! one request and its prompt tokens (counted with the `o200k_base` tokenizer,
//! `crate::tokens::prompt_tokens`) at admission, atomically: if either would exceed its limit,
//! nothing is taken and the request gets 429. A request whose estimate alone is over the whole
//! `tokens_per_minute` can never be admitted, so it is refused as such, without a wait to retry.
//! When the upstream reports its usage, the difference between the estimate and the real
//! prompt + completion tokens is settled into the window that admitted the request (an answer
//! that ends in the next minute must not credit that minute), never below zero. With the Redis cache backend the counts live in
//! Redis (one Lua script per check, so replicas share them exactly); if Redis fails, each
//! replica limits on its own counts in memory until it is back: a Redis outage never turns
//! into errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::Caller;
use crate::config::RedisConfig;
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

/// Atomically: add ARGV[1] (possibly negative) to the count, never below zero, and give the key
/// an expiry (ARGV[2] ms) when it has none. A settlement can arrive after its window's key
/// expired (a long stream): without the floor a refund would leave a negative count that
/// admits more than the limit, and without the expiry that key would live forever.
const SETTLE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0') + tonumber(ARGV[1])
if used < 0 then used = 0 end
redis.call('SET', KEYS[1], used, 'KEEPTTL')
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return used
";

pub struct RateLimiter {
    redis: Option<SharedRedis>,
    script: redis::Script,
    settle: redis::Script,
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
    /// The window that admitted the request: its settlement belongs there.
    pub window: u64,
}

/// Refused: which limit, and when its window resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    pub admission: Admission,
    pub retry_after: Duration,
}

/// Why a request was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A limit is used up until its window resets.
    Limited(Limited),
    /// The request's estimate is over the key's whole `tokens_per_minute`: no window admits it.
    ExceedsLimit { estimated: u64, limit: u64 },
}

impl RateLimiter {
    /// Shares counts through `redis` when given (the cache's Redis).
    pub fn new(redis: Option<&RedisConfig>) -> Result<Self, String> {
        let redis = redis.map(SharedRedis::new).transpose()?;
        Ok(Self {
            redis,
            script: redis::Script::new(CHECK_AND_ADD),
            settle: redis::Script::new(SETTLE),
            local: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request and `estimated_tokens` from the caller's limits, or refuses.
    pub async fn admit(
        &self,
        caller: &Caller,
        estimated_tokens: u64,
    ) -> Result<Admission, Refused> {
        self.admit_in(caller, estimated_tokens, window_now()).await
    }

    /// `admit` in the given window (its number and the time until it ends).
    async fn admit_in(
        &self,
        caller: &Caller,
        estimated_tokens: u64,
        (window, reset): (u64, Duration),
    ) -> Result<Admission, Refused> {
        let Some(limit) = caller.rate_limit else { return Ok(Admission::default()) };
        // Checked before anything is taken: waiting would not help, so nothing is counted.
        if let Some(tpm) = limit.tokens_per_minute.filter(|tpm| estimated_tokens > *tpm) {
            return Err(Refused::ExceedsLimit { estimated: estimated_tokens, limit: tpm });
        }
        let mut admission = Admission { estimated_tokens: 0, window, ..Admission::default() };
        if let Some(rpm) = limit.requests_per_minute {
            let (allowed, used) =
                self.check_and_add(&caller.name, REQUESTS, window, 1, u64::from(rpm)).await;
            admission.requests = Some(limit_state(u64::from(rpm), used, reset));
            if !allowed {
                return Err(Refused::Limited(Limited { admission, retry_after: reset }));
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
                return Err(Refused::Limited(Limited { admission, retry_after: reset }));
            }
            admission.estimated_tokens = estimated_tokens;
        }
        Ok(admission)
    }

    /// Corrects the token count of the admitting window once the upstream reported what the
    /// request really used.
    pub async fn settle(&self, caller: &Caller, admission: &Admission, actual_tokens: u64) {
        if caller.rate_limit.and_then(|limit| limit.tokens_per_minute).is_none() {
            return;
        }
        // Saturating, as every sum here: `actual_tokens` is the upstream's number.
        let delta = i64::try_from(actual_tokens)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(admission.estimated_tokens).unwrap_or(i64::MAX));
        if delta != 0 {
            self.add(&caller.name, TOKENS, admission.window, delta).await;
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
            let expiry = expiry_ms();
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
            let script = &self.settle;
            let added = redis
                .call("rate limit", |mut conn| async move {
                    script.key(key).arg(delta).arg(expiry_ms()).invoke_async::<i64>(&mut conn).await
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

/// How long a window's Redis key lives: the window and a second, so a replica whose clock is a
/// little behind still finds it.
fn expiry_ms() -> u64 {
    u64::try_from(WINDOW.as_millis()).unwrap_or(60_000) + 1_000
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
        let Refused::Limited(refused) = limiter.admit(&caller, 10).await.unwrap_err() else {
            panic!("a used-up limit")
        };
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
    async fn a_request_over_the_whole_token_limit_is_refused_as_such_and_takes_nothing() {
        let limiter = RateLimiter::new(None).unwrap();
        let caller = caller(Some(10), Some(1000));
        let refused = limiter.admit(&caller, 1001).await.unwrap_err();
        assert_eq!(refused, Refused::ExceedsLimit { estimated: 1001, limit: 1000 });
        let admitted = limiter.admit(&caller, 1000).await.unwrap();
        assert_eq!(admitted.requests.unwrap().remaining, 9, "the refused request took nothing");
        assert_eq!(admitted.tokens.unwrap().remaining, 0);
    }

    #[tokio::test]
    async fn a_settlement_after_the_window_ended_credits_the_admitting_window_not_the_next() {
        let limiter = RateLimiter::new(None).unwrap();
        let caller = caller(None, Some(1000));
        let reset = Duration::from_secs(30);
        // An inflated estimate, and an answer that ends in the next minute using far less.
        let inflated = limiter.admit_in(&caller, 900, (7, reset)).await.unwrap();
        let next = limiter.admit_in(&caller, 100, (8, reset)).await.unwrap();
        limiter.settle(&caller, &inflated, 10).await;

        let after = limiter.admit_in(&caller, 100, (8, reset)).await.unwrap();
        assert_eq!(after.tokens.unwrap().remaining, 800, "the next window keeps its own count");
        assert_eq!(next.window, 8);
        let again = limiter.admit_in(&caller, 990, (7, reset)).await.unwrap();
        assert_eq!(again.tokens.unwrap().remaining, 0, "10 settled + 990 in the admitting window");
    }

    #[tokio::test]
    async fn a_refund_never_takes_a_count_below_zero() {
        let limiter = RateLimiter::new(None).unwrap();
        let caller = caller(None, Some(1000));
        let reset = Duration::from_secs(30);
        let admission = limiter.admit_in(&caller, 500, (3, reset)).await.unwrap();
        // The window's count was forgotten meanwhile (as an expired Redis key would be).
        limiter.local.lock().unwrap().clear();
        limiter.settle(&caller, &admission, 0).await;

        assert!(limiter.admit_in(&caller, 1001, (3, reset)).await.is_err(), "no credit");
        let full = limiter.admit_in(&caller, 1000, (3, reset)).await.unwrap();
        assert_eq!(full.tokens.unwrap().remaining, 0);
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
