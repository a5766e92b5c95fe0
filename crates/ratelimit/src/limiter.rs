//! The limiter the server holds: one of the backends, what to do when Redis fails, and the
//! metrics and logs that make either visible.
//!
//! # When Redis fails
//!
//! A check whose Redis call fails or times out is decided by [`OnRedisError`]: `Open` asks a
//! [`LocalLimiter`] with the same quotas (each instance then limits a tenant to its quota on
//! its own, so N instances admit up to N times the quota, starting from full buckets);
//! `Closed` returns [`LimitError::Unavailable`]. Tenants without a quota never need Redis
//! and are never refused.
//!
//! While Redis is failing, it is asked again at most every [`PROBE_INTERVAL`] (one check
//! at a time goes through to it); the checks in between are decided as above without
//! waiting, so a hung Redis costs each request nothing rather than the timeout. The first
//! check that gets an answer ends the outage.
//!
//! # Telemetry
//!
//! - counter `assay_rate_limit_decisions_total{backend, outcome}`: every decision, with
//!   `backend` one of `local` (the local backend), `redis` (Redis answered) or `fallback`
//!   (Redis failed and the limiter fails open), and `outcome` `allowed` or `limited`. A
//!   decision is one call: [`Limiter::check_n`] counts one, whatever its `n`;
//! - counter `assay_rate_limit_backend_errors_total`: Redis calls that failed or timed out;
//! - a `warn` with `error = %e` at most once a second while Redis fails (with the number of
//!   failures since the previous warning), and an `info` when Redis answers again.
//!
//! Counter handles are registered when the limiter is built, with the metrics recorder in
//! force then (the global one, or a test's local one): install the recorder first.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metrics::Counter;
use serde::Deserialize;

use crate::{Decision, LimitError, LocalLimiter, Quota, Quotas, RedisLimiter};

/// While Redis is failing, the shortest time between two attempts to reach it.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// The shortest time between two warnings about failing Redis calls.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

const DECISIONS: &str = "assay_rate_limit_decisions_total";
const BACKEND_ERRORS: &str = "assay_rate_limit_backend_errors_total";

/// What a Redis-backed [`Limiter`] does when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisError {
    /// Decide in this process with the same quotas: requests keep flowing, each instance
    /// limiting on its own.
    Open,
    /// Refuse to decide ([`LimitError::Unavailable`]): no tenant exceeds its quota, at the
    /// cost of refusing limited tenants' requests while Redis is away.
    Closed,
}

/// Per-tenant rate limits as the server applies them: off, in-process, or shared through
/// Redis. Cheap to clone; clones share their state.
#[derive(Clone)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[expect(
    clippy::large_enum_variant,
    reason = "one value per limiter, behind an Arc: its size costs nothing"
)]
enum Inner {
    Off,
    Local {
        local: LocalLimiter,
        counters: Counters,
    },
    Redis(Shared),
}

struct Shared {
    redis: RedisLimiter,
    fallback: LocalLimiter,
    on_error: OnRedisError,
    health: Health,
    counters: Counters,
}

impl Limiter {
    /// No limits: every check returns `Ok(None)`.
    pub fn off() -> Self {
        Self {
            inner: Arc::new(Inner::Off),
        }
    }

    /// Limits decided in this process alone (see [`LocalLimiter`]).
    pub fn local(quotas: Quotas) -> Self {
        Self {
            inner: Arc::new(Inner::Local {
                local: LocalLimiter::new(quotas),
                counters: Counters::register(&[Backend::Local]),
            }),
        }
    }

    /// Limits shared through the Redis at `url`, with keys under `prefix` (see
    /// [`RedisLimiter`]), and `on_error` applied when Redis does not answer. Redis being
    /// down is no error here: it is pinged once (within the timeout, and logged when it does
    /// not answer), and `on_error` applies from the first check. Only an unusable URL fails.
    /// Must be called within a Tokio runtime.
    pub async fn redis(
        url: &str,
        prefix: &str,
        quotas: Quotas,
        on_error: OnRedisError,
    ) -> Result<Self, LimitError> {
        Ok(Self::from_redis(RedisLimiter::new(url, prefix, quotas)?, on_error).await)
    }

    /// [`Limiter::redis`] over a limiter already set up (another timeout, say); the fallback
    /// uses its quotas.
    pub async fn from_redis(redis: RedisLimiter, on_error: OnRedisError) -> Self {
        let shared = Shared {
            fallback: LocalLimiter::new(redis.quotas().clone()),
            redis,
            on_error,
            health: Health::new(),
            counters: Counters::register(&[Backend::Redis, Backend::Fallback]),
        };
        if let Err(e) = shared.redis.ping().await {
            shared.failed(&e);
        }
        Self {
            inner: Arc::new(Inner::Redis(shared)),
        }
    }

    /// The quota of `tenant`, or `None` when it is unlimited (always, when off).
    pub fn quota_for(&self, tenant: &str) -> Option<Quota> {
        match &*self.inner {
            Inner::Off => None,
            Inner::Local { local, .. } => local.quotas().quota_for(tenant),
            Inner::Redis(shared) => shared.redis.quotas().quota_for(tenant),
        }
    }

    /// Takes one request of `tenant` from its quota if the quota allows it now. `Ok(None)`:
    /// the tenant is unlimited. `Err`: Redis did not answer and the limiter fails closed.
    /// The same as [`check_n`](Self::check_n) with `n = 1`.
    pub async fn check(&self, tenant: &str) -> Result<Option<Decision>, LimitError> {
        self.check_n(tenant, NonZeroU32::MIN).await
    }

    /// Takes `n` requests of `tenant` from its quota (a batch of `n` documents, say), all of
    /// them or none: admitted when the quota allows `n` at once now, refused (taking nothing)
    /// otherwise, with the wait until it would. `Ok(None)`: the tenant is unlimited. `Err`:
    /// Redis did not answer and the limiter fails closed; failing open, the `n` are taken
    /// from this process's limiter instead. An admitted decision's `remaining` counts what
    /// is left after the `n`. One call is one decision in the metrics, whatever `n`.
    ///
    /// An `n` greater than the tenant's [`Quota::burst`] can never be admitted at once: it is
    /// refused, taking nothing, with `retry_after` [`Duration::MAX`]. Callers split larger
    /// work into pieces of at most `burst` (see [`Limiter::quota_for`]) and check each.
    pub async fn check_n(
        &self,
        tenant: &str,
        n: NonZeroU32,
    ) -> Result<Option<Decision>, LimitError> {
        match &*self.inner {
            Inner::Off => Ok(None),
            Inner::Local { local, counters } => Ok(local
                .check_n(tenant, n)
                .inspect(|d| counters.count(Backend::Local, d))),
            Inner::Redis(shared) => shared.check_n(tenant, n).await,
        }
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Inner::Off => f.write_str("Limiter::Off"),
            Inner::Local { local, .. } => f.debug_tuple("Limiter::Local").field(local).finish(),
            Inner::Redis(shared) => f
                .debug_struct("Limiter::Redis")
                .field("redis", &shared.redis)
                .field("on_error", &shared.on_error)
                .finish_non_exhaustive(),
        }
    }
}

impl Shared {
    async fn check_n(&self, tenant: &str, n: NonZeroU32) -> Result<Option<Decision>, LimitError> {
        let Some(quota) = self.redis.quotas().quota_for(tenant) else {
            return Ok(None);
        };
        if !self.health.may_ask(self.health.now()) {
            return self.instead(tenant, n, || {
                LimitError::Unavailable("Redis failed moments ago; not asked again yet".into())
            });
        }
        match self.redis.check_quota(tenant, quota, n).await {
            Ok(decision) => {
                self.health.answered();
                self.counters.count(Backend::Redis, &decision);
                Ok(Some(decision))
            }
            Err(e) => {
                self.failed(&e);
                self.instead(tenant, n, || e)
            }
        }
    }

    /// The outcome of a check that Redis could not decide.
    fn instead(
        &self,
        tenant: &str,
        n: NonZeroU32,
        error: impl FnOnce() -> LimitError,
    ) -> Result<Option<Decision>, LimitError> {
        match self.on_error {
            OnRedisError::Open => Ok(self
                .fallback
                .check_n(tenant, n)
                .inspect(|d| self.counters.count(Backend::Fallback, d))),
            OnRedisError::Closed => Err(error()),
        }
    }

    fn failed(&self, e: &LimitError) {
        self.counters.backend_errors.increment(1);
        let Some(failures) = self.health.failed(self.health.now()) else {
            return;
        };
        match self.on_error {
            OnRedisError::Open => tracing::warn!(
                error = %e,
                failures,
                "rate limiting through Redis failed; deciding in this process (fail open)"
            ),
            OnRedisError::Closed => tracing::warn!(
                error = %e,
                failures,
                "rate limiting through Redis failed; refusing limited requests (fail closed)"
            ),
        }
    }
}

/// Whether Redis is failing, when to ask it again, and when to say so: lock-free, read by
/// every check. Times are milliseconds since `epoch`.
struct Health {
    epoch: Instant,
    /// 0 while Redis answers; else the earliest time to ask it again.
    retry_at: AtomicU64,
    /// When the last warning was logged, plus one (0: never).
    warned_at: AtomicU64,
    /// Failures since the last warning.
    failures: AtomicU64,
    /// A warning was logged and no recovery since: the next answer is worth an `info`.
    warned: AtomicBool,
}

impl Health {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            retry_at: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a check may ask Redis at `now`: always while it answers; while it fails, one
    /// check per [`PROBE_INTERVAL`].
    fn may_ask(&self, now: u64) -> bool {
        let retry_at = self.retry_at.load(Ordering::Relaxed);
        retry_at == 0
            || (now >= retry_at
                && self
                    .retry_at
                    .compare_exchange(
                        retry_at,
                        now + millis(PROBE_INTERVAL),
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_ok())
    }

    /// Records a failure at `now`; returns the failures to report when it is time to warn.
    fn failed(&self, now: u64) -> Option<u64> {
        self.retry_at
            .store((now + millis(PROBE_INTERVAL)).max(1), Ordering::Relaxed);
        self.failures.fetch_add(1, Ordering::Relaxed);
        let warned_at = self.warned_at.load(Ordering::Relaxed);
        let due = warned_at == 0 || now + 1 >= warned_at + millis(WARN_INTERVAL);
        if due
            && self
                .warned_at
                .compare_exchange(warned_at, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.warned.store(true, Ordering::Relaxed);
            Some(self.failures.swap(0, Ordering::Relaxed))
        } else {
            None
        }
    }

    /// Records an answer; logs the recovery when a failure was reported.
    fn answered(&self) {
        if self.retry_at.load(Ordering::Relaxed) != 0 {
            self.retry_at.store(0, Ordering::Relaxed);
        }
        if self.warned.load(Ordering::Relaxed) && self.warned.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; rate limits are shared again");
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Clone, Copy)]
enum Backend {
    Local,
    Redis,
    Fallback,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Redis => "redis",
            Backend::Fallback => "fallback",
        }
    }
}

/// `allowed` and `limited` counters of one backend.
struct Outcomes {
    allowed: Counter,
    limited: Counter,
}

/// The limiter's counter handles, registered once so that a check only increments.
struct Counters {
    /// Indexed by `Backend as usize`; backends a limiter cannot use get no-op counters, so
    /// that their series are not exported.
    decisions: [Outcomes; 3],
    backend_errors: Counter,
}

impl Counters {
    fn register(backends: &[Backend]) -> Self {
        metrics::describe_counter!(
            DECISIONS,
            "Rate limit decisions, by backend (local, redis, fallback) and outcome"
        );
        let outcomes = |backend: Backend| {
            if !backends.iter().any(|b| *b as usize == backend as usize) {
                return Outcomes {
                    allowed: Counter::noop(),
                    limited: Counter::noop(),
                };
            }
            let label = backend.label();
            Outcomes {
                allowed: metrics::counter!(DECISIONS, "backend" => label, "outcome" => "allowed"),
                limited: metrics::counter!(DECISIONS, "backend" => label, "outcome" => "limited"),
            }
        };
        let uses_redis = backends.iter().any(|b| matches!(b, Backend::Redis));
        let backend_errors = if uses_redis {
            metrics::describe_counter!(
                BACKEND_ERRORS,
                "Rate limit calls to Redis that failed or timed out"
            );
            metrics::counter!(BACKEND_ERRORS)
        } else {
            Counter::noop()
        };
        Self {
            decisions: [
                outcomes(Backend::Local),
                outcomes(Backend::Redis),
                outcomes(Backend::Fallback),
            ],
            backend_errors,
        }
    }

    fn count(&self, backend: Backend, decision: &Decision) {
        let outcomes = &self.decisions[backend as usize];
        if decision.allowed {
            outcomes.allowed.increment(1);
        } else {
            outcomes.limited.increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server holds a limiter in shared state and awaits checks in request handlers.
    #[test]
    fn limiters_and_their_checks_can_cross_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let limiter = Limiter::off();
        send_sync(&limiter);
        send(limiter.check("t"));
        send(limiter.check_n("t", NonZeroU32::MIN));
        send(Limiter::redis(
            "redis://127.0.0.1:1",
            "p:",
            Quotas::default(),
            OnRedisError::Open,
        ));
    }

    #[test]
    fn redis_is_probed_once_per_interval_while_failing() {
        let h = Health::new();
        assert!(h.may_ask(0) && h.may_ask(0), "healthy: every check asks");
        h.failed(1000);
        assert!(!h.may_ask(1000));
        assert!(!h.may_ask(1099));
        assert!(h.may_ask(1100), "one probe...");
        assert!(!h.may_ask(1100), "...at a time");
        assert!(!h.may_ask(1150));
        h.answered();
        assert!(h.may_ask(1150) && h.may_ask(1150));
    }

    #[test]
    fn warnings_come_at_most_once_a_second_and_count_failures() {
        let h = Health::new();
        assert_eq!(h.failed(0), Some(1), "the first failure warns at once");
        assert_eq!(h.failed(10), None);
        assert_eq!(h.failed(500), None);
        assert_eq!(h.failed(999), None);
        assert_eq!(h.failed(1000), Some(4), "three suppressed, and this one");
        assert_eq!(h.failed(1500), None);
        assert!(h.warned.load(Ordering::Relaxed));
        h.answered();
        assert!(!h.warned.load(Ordering::Relaxed), "the recovery was logged");
        h.answered();
        assert_eq!(h.failed(2100), Some(2));
    }
}
