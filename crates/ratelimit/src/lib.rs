//! Per-tenant rate limits: whether a tenant's request may go ahead now, and what to tell it
//! (how much is left, when to come back).
//!
//! Every tenant gets a [`Quota`] (a steady rate and a burst, enforced with GCRA) from a
//! [`Quotas`] table, or no limit at all. The [`Limiter`] is what the server holds; it decides
//! with one of three backends:
//!
//! - off: every tenant is unlimited ([`Limiter::off`]);
//! - local: a [`LocalLimiter`] in this process, one `governor` limiter per tenant, which
//!   limits each instance on its own ([`Limiter::local`]);
//! - Redis: a [`RedisLimiter`], one GCRA script call per request against a key per tenant,
//!   so that all instances sharing a Redis and key prefix share each tenant's quota
//!   ([`Limiter::redis`]). When Redis does not answer, [`OnRedisError`] says whether to
//!   decide locally instead (fail open) or to refuse (fail closed).
//!
//! A check takes one request from the tenant's quota (`check`), or `n` at once (`check_n`,
//! for a batch of `n` documents), all or none. An `n` above the quota's burst can never be
//! admitted: callers split larger batches into pieces of at most [`Quota::burst`].
//!
//! A [`Decision`] carries what the IETF `RateLimit` / `RateLimit-Policy` headers and
//! `Retry-After` need; turning it into headers is the front's business.
//!
//! **Architecture Invariant:** `ratelimit` knows nothing about HTTP or gRPC: it takes a
//! tenant name and returns a [`Decision`] or a [`LimitError`]; statuses and headers are
//! chosen by the fronts.
//!
//! **Architecture Invariant:** a refused request is a [`Decision`] with `allowed: false`,
//! not an error; [`LimitError`] means no decision could be made.

mod limiter;
mod local;
mod quota;
mod redis;

use std::time::Duration;

pub use limiter::{Limiter, OnRedisError, PROBE_INTERVAL};
pub use local::LocalLimiter;
pub use quota::{MAX_PER_SECOND, Quota, QuotaError, Quotas};
pub use redis::{DEFAULT_TIMEOUT, RedisLimiter};

/// The outcome of one check of a limited tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go ahead. A refused request took nothing from the quota.
    pub allowed: bool,
    /// The size of the quota: its burst (`RateLimit-Policy` `q`).
    pub limit: u32,
    /// How many more requests would be admitted right now (`RateLimit` `r`), after the ones
    /// this check took; 0 when refused.
    pub remaining: u32,
    /// How long to wait before this request (all `n` of a `check_n`) would be admitted
    /// (`Retry-After`); zero when allowed; [`Duration::MAX`] when it never would be, an `n`
    /// greater than the burst.
    pub retry_after: Duration,
    /// How long until the bucket is full again, `limit` requests available at once
    /// (`RateLimit` `t`).
    pub reset_after: Duration,
}

/// Why no decision could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The shared backend did not answer in time or failed (and the limiter fails closed).
    /// The text is for logs: it may name the Redis error, never the URL.
    #[error("rate limiter unavailable: {0}")]
    Unavailable(String),
    /// The Redis URL cannot be used.
    #[error("invalid Redis URL for the rate limiter: {0}")]
    InvalidUrl(String),
}
