//! The shared limiter: GCRA in one Lua script on Redis, so that every instance using the same
//! Redis and key prefix draws from the same per-tenant quota.
//!
//! # Keys
//!
//! One string key per limited tenant, `{prefix}rl:{tenant}` (the prefix is used as given:
//! end it with `:`), holding the tenant's theoretical arrival time (TAT): the instant, in
//! microseconds of Redis's clock, at which its bucket is full again. A key is written only
//! when a request is admitted, with an expiry (`PX`) at that instant: a key that has expired
//! and a key that was never written mean the same thing, a full bucket, so idle tenants
//! cost Redis nothing.
//!
//! # The script
//!
//! `GCRA(key; interval, burst, n)` reads the clock with `TIME` inside the script, so that the
//! one clock every decision uses is Redis's: instances whose own clocks disagree still
//! agree on every tenant's state. Redis runs a script with nothing interleaved, so two
//! instances can never both take a tenant's last token. A check costs `n` tokens (1 for
//! [`RedisLimiter::check`], a batch's size for [`RedisLimiter::check_n`]), all or none: the
//! new TAT is `max(TAT, now) + n * interval`, and the check is admitted when that is at most
//! `burst * interval` ahead of the clock (the bucket, after giving it its tokens, is still
//! within its size). A refused check writes nothing; so does an `n` above the burst, which
//! no bucket can ever hold. The script returns `{allowed, remaining, retry_after µs,
//! reset_after µs}`, with a `retry_after` of -1 for "never". Calls use `EVALSHA`
//! (`redis::Script`), falling back to loading the script after a Redis restart; a check is
//! one script call whatever `n`.
//!
//! Time is kept in whole microseconds (a Lua number holds microseconds since 1970 exactly),
//! so the interval `1 s / per_second` is rounded to the nearest microsecond: exact when the
//! rate divides a million, within 1 % up to 20,000 per second, and the reason
//! [`MAX_PER_SECOND`](crate::MAX_PER_SECOND) is a million. The script needs Redis 5 or later
//! (a script that reads `TIME` and then writes is replicated by its effects). It touches
//! only its one key. The TAT stays within `burst * interval` (at most 2^32 seconds) of the
//! clock and `n` is checked against the burst first, so every sum the script makes stays
//! below 2^53 microseconds, which Lua numbers hold exactly.
//!
//! # Cost and failures
//!
//! Every check is a round trip to Redis. All checks of a `RedisLimiter` share one
//! `ConnectionManager`, a single multiplexed connection: concurrent checks are written to
//! the socket back to back and their replies read in order, so they pipeline instead of
//! queuing for connections, and Redis runs each script in microseconds. A request then
//! costs about one loopback or LAN round trip of latency and a small share of one
//! connection's throughput, not a connection or a lock of its own.
//!
//! Each call is bounded by a timeout ([`DEFAULT_TIMEOUT`], 250 ms, or
//! [`RedisLimiter::with_timeout`]) and fails with [`LimitError::Unavailable`] when Redis
//! does not answer in time or fails; a call that meets a connection that died (Redis
//! restarted) is tried once more on a fresh one within the same timeout. The connection is
//! made lazily and remade after failures by the `ConnectionManager`, so a limiter can be
//! built while Redis is down and starts working when Redis comes back. What to do instead
//! of failing is the [`Limiter`](crate::Limiter)'s business.

use std::num::NonZeroU32;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script, Value};

use crate::{Decision, LimitError, Quota, Quotas};

/// How long a check waits for Redis by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// One TCP connection attempt, made in the background of the calls that wait for it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the connection waits for a reply before it counts as dead and is remade: a
/// hung Redis must not let unanswered requests pile up on it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

const GCRA: &str = r"
-- KEYS[1]: the tenant's theoretical arrival time (TAT), microseconds of Redis's clock.
-- ARGV: 1 emission interval in microseconds (>= 1), 2 burst (>= 1), 3 cost n (>= 1): the
-- tokens this check takes, all or none.
-- Returns {allowed (1 or 0), remaining, retry_after (us, -1: never), reset_after (us)}.
-- A refused check writes nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tau = interval * burst
-- A missing (expired) key is a full bucket; so is a TAT in the past.
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
-- More tokens than the bucket holds: no wait would ever admit them.
if n > burst then
  return {0, 0, -1, tat - now}
end
-- How far ahead of the clock the TAT would be with this check's n tokens taken: the new
-- TAT is max(TAT, now) + n * interval, admitted when it is at most tau ahead of now.
local debt = tat - now + n * interval
if debt > tau then
  return {0, 0, debt - tau, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', now + debt), 'PX', math.ceil(debt / 1000))
return {1, math.floor((tau - debt) / interval), 0, debt}
";

/// Rate limits shared through Redis by every instance using the same Redis and prefix.
pub struct RedisLimiter {
    con: ConnectionManager,
    prefix: String,
    quotas: Quotas,
    script: Script,
    timeout: Duration,
}

impl RedisLimiter {
    /// A limiter on the Redis at `url` (`redis://[:password@]host:port[/db]`), with keys
    /// under `prefix`. It does not wait for Redis: the connection is made on the first check
    /// and remade whenever it fails, so only an unusable URL is an error. Must be called
    /// within a Tokio runtime.
    pub fn new(url: &str, prefix: &str, quotas: Quotas) -> Result<Self, LimitError> {
        // The URL may hold a password: it is never put into a message.
        let client = Client::open(url).map_err(|e| LimitError::InvalidUrl(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // A failed attempt fails the calls waiting for it at once (they fall back or
            // refuse); the next call starts another.
            .set_number_of_retries(0);
        let con = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LimitError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            con,
            prefix: prefix.to_owned(),
            quotas,
            script: Script::new(GCRA),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same limiter with each call bounded by `timeout` instead of [`DEFAULT_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The quotas this limiter applies.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// The longest a call waits for Redis.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Takes one request of `tenant` from its quota if the quota allows it now; `Ok(None)`
    /// when the tenant is unlimited (Redis is not asked). The same as
    /// [`check_n`](Self::check_n) with `n = 1`.
    pub async fn check(&self, tenant: &str) -> Result<Option<Decision>, LimitError> {
        self.check_n(tenant, NonZeroU32::MIN).await
    }

    /// Takes `n` requests of `tenant` from its quota, all of them or none, in one script
    /// call: admitted when the quota allows `n` at once now, refused (taking nothing)
    /// otherwise, with the wait until it would. `Ok(None)` when the tenant is unlimited
    /// (Redis is not asked). An admitted decision's `remaining` counts what is left after
    /// the `n`.
    ///
    /// An `n` greater than the quota's [`burst`](Quota::burst) can never be admitted at once:
    /// it is refused, taking nothing, with `retry_after` [`Duration::MAX`]. Callers split
    /// larger work into pieces of at most `burst`.
    pub async fn check_n(
        &self,
        tenant: &str,
        n: NonZeroU32,
    ) -> Result<Option<Decision>, LimitError> {
        match self.quotas.quota_for(tenant) {
            Some(quota) => self.check_quota(tenant, quota, n).await.map(Some),
            None => Ok(None),
        }
    }

    /// One GCRA step of cost `n` for `tenant` under `quota`.
    pub(crate) async fn check_quota(
        &self,
        tenant: &str,
        quota: Quota,
        n: NonZeroU32,
    ) -> Result<Decision, LimitError> {
        let key = format!("{}rl:{tenant}", self.prefix);
        let mut inv = self.script.key(key);
        inv.arg(interval_micros(quota))
            .arg(quota.burst())
            .arg(n.get());
        let inv = &inv;
        let reply: (u8, u32, i64, u64) = self
            .bounded(|mut con| async move { inv.invoke_async(&mut con).await })
            .await?;
        let (allowed, remaining, retry_after, reset_after) = reply;
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.burst(),
            remaining,
            // Negative: never (more than the burst).
            retry_after: u64::try_from(retry_after).map_or(Duration::MAX, Duration::from_micros),
            reset_after: Duration::from_micros(reset_after),
        })
    }

    /// Whether Redis answers within the timeout.
    pub async fn ping(&self) -> Result<(), LimitError> {
        self.bounded(
            |mut con| async move { redis::cmd("PING").query_async::<Value>(&mut con).await },
        )
        .await
        .map(drop)
    }

    /// Runs `op` within the timeout, once more on a fresh connection when the first attempt
    /// met a dead one.
    async fn bounded<T, F, Fut>(&self, op: F) -> Result<T, LimitError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempts = async {
            match op(self.con.clone()).await {
                // The manager has started a new connection; the retry waits for it. A check
                // whose reply was lost with the connection may have taken its token: a
                // token too many, once per lost connection, is the accepted price.
                Err(e) if e.is_io_error() && !e.is_timeout() => op(self.con.clone()).await,
                other => other,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(LimitError::Unavailable(format!("Redis: {e}"))),
            Err(_) => Err(LimitError::Unavailable(format!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connection: its client would print the URL, password included.
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("quotas", &self.quotas)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The emission interval `1 s / per_second` in whole microseconds, rounded to the nearest
/// (see the module doc); at least 1 because `per_second` is at most a million.
fn interval_micros(quota: Quota) -> u32 {
    let per_second = quota.per_second();
    ((1_000_000 + per_second / 2) / per_second).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_to_the_nearest_microsecond() {
        let us = |per_second| interval_micros(Quota::new(per_second, 1).unwrap());
        assert_eq!(us(1), 1_000_000);
        assert_eq!(us(3), 333_333);
        assert_eq!(us(50), 20_000);
        assert_eq!(us(20_000), 50);
        assert_eq!(us(30_000), 33);
        assert_eq!(us(666_667), 1);
        assert_eq!(us(crate::MAX_PER_SECOND), 1);
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_naming_it() {
        let err = RedisLimiter::new("http://user:secret@host", "p:", Quotas::default())
            .err()
            .unwrap();
        assert!(matches!(err, LimitError::InvalidUrl(_)), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
