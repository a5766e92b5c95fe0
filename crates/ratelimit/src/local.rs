//! The in-process limiter: one `governor` direct limiter per tenant, made on the tenant's
//! first request with its quota and kept in a concurrent map.
//!
//! It limits each process on its own: N instances behind a load balancer admit up to N
//! times a tenant's quota. That is what the local backend promises, and what the Redis
//! backend falls back to when Redis is away.
//!
//! # Several at once
//!
//! [`LocalLimiter::check_n`] takes `n` requests' worth at once, or nothing (governor's
//! `check_n`): a batch of `n` documents is admitted whole when the bucket holds `n` tokens,
//! and refused whole otherwise, with the wait until it would hold them. [`LocalLimiter::check`]
//! is `check_n` with `n = 1`.
//!
//! # Cost
//!
//! A check of a known tenant looks the tenant up by `&str` in a `DashMap` (a read lock on
//! one shard, foldhash), reads the clock twice (quanta: the TSC where it can) and updates
//! the limiter's one atomic timestamp with a compare-and-swap: no allocation, no syscall,
//! well under a microsecond (see `benches/limit.rs`), whatever `n`. Only a tenant's first
//! request allocates (its name and limiter).
//!
//! # Memory
//!
//! Every limited tenant seen keeps an entry. A limiter whose bucket is full again is
//! indistinguishable from a new one, so such entries can be dropped without changing any
//! decision: [`LocalLimiter::forget_idle`] does that, and inserting a tenant runs it by itself
//! whenever the map has doubled since the last sweep, so the map stays within about twice the
//! number of tenants active within their quota's window, whatever names it is asked about.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, QuantaClock, QuantaInstant, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{InsufficientCapacity, RateLimiter};

use crate::{Decision, Quota, Quotas};

/// The map size below which no sweep runs.
const FIRST_SWEEP: usize = 1024;

type Direct = RateLimiter<NotKeyed, InMemoryState, QuantaClock, StateInformationMiddleware>;

/// Rate limits decided in this process alone, per tenant.
pub struct LocalLimiter {
    quotas: Quotas,
    clock: QuantaClock,
    /// What `Bucket::full_at` counts from.
    start: QuantaInstant,
    buckets: DashMap<Box<str>, Bucket, foldhash::fast::RandomState>,
    /// The map size at which the next insertion sweeps idle buckets first.
    next_sweep: AtomicUsize,
}

/// One tenant's limiter.
struct Bucket {
    limiter: Direct,
    burst: u32,
    /// The time one token takes to come back, as governor computes it.
    interval: Duration,
    /// Nanoseconds after `LocalLimiter::start` from which the bucket is full (or later: it is
    /// rounded up, so that a sweep never drops a bucket that is still draining).
    full_at: AtomicU64,
}

impl LocalLimiter {
    /// A limiter for `quotas`; nothing is allocated per tenant until its first request.
    pub fn new(quotas: Quotas) -> Self {
        let clock = QuantaClock::default();
        let start = clock.now();
        Self {
            quotas,
            clock,
            start,
            buckets: DashMap::default(),
            next_sweep: AtomicUsize::new(FIRST_SWEEP),
        }
    }

    /// The quotas this limiter applies.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Takes one request of `tenant` from its quota if the quota allows it now; `None` when
    /// the tenant is unlimited. The same as [`check_n`](Self::check_n) with `n = 1`.
    pub fn check(&self, tenant: &str) -> Option<Decision> {
        self.check_n(tenant, NonZeroU32::MIN)
    }

    /// Takes `n` requests of `tenant` from its quota, all of them or none: admitted when the
    /// quota allows `n` at once now, refused (taking nothing) otherwise, with the wait until
    /// it would. `None` when the tenant is unlimited. An admitted decision's `remaining`
    /// counts what is left after the `n`.
    ///
    /// An `n` greater than the quota's [`burst`](Quota::burst) can never be admitted at once:
    /// it is refused, taking nothing, with `retry_after` [`Duration::MAX`]. Callers split
    /// larger work into pieces of at most `burst`.
    pub fn check_n(&self, tenant: &str, n: NonZeroU32) -> Option<Decision> {
        if let Some(bucket) = self.buckets.get(tenant) {
            return Some(bucket.check_n(&self.clock, self.start, n));
        }
        let quota = self.quotas.quota_for(tenant)?;
        Some(self.first_check(tenant, quota, n))
    }

    /// The cold path: a tenant without a limiter yet (or whose limiter was forgotten).
    #[cold]
    fn first_check(&self, tenant: &str, quota: Quota, n: NonZeroU32) -> Decision {
        if self.buckets.len() >= self.next_sweep.load(Ordering::Relaxed) {
            self.forget_idle();
        }
        // Another request of the same tenant may have inserted it meanwhile: the entry API
        // keeps the first.
        self.buckets
            .entry(tenant.into())
            .or_insert_with(|| Bucket::new(quota, &self.clock))
            .check_n(&self.clock, self.start, n)
    }

    /// Drops the limiters whose bucket is full again (which changes no decision: a tenant
    /// that comes back gets a new, full one) and returns how many it dropped. Runs by itself
    /// as the map grows (see the module doc); a server may also call it now and then.
    pub fn forget_idle(&self) -> usize {
        let now = self.clock.now().duration_since(self.start).as_u64();
        let before = self.buckets.len();
        // `retain` takes each shard's write lock, so no check is half done on a bucket it
        // looks at: `full_at` is written under the read lock the check holds.
        self.buckets
            .retain(|_, bucket| bucket.full_at.load(Ordering::Relaxed) > now);
        let after = self.buckets.len();
        self.next_sweep
            .store(FIRST_SWEEP.max(after.saturating_mul(2)), Ordering::Relaxed);
        before.saturating_sub(after)
    }

    /// How many tenants currently have a limiter.
    pub fn tracked_tenants(&self) -> usize {
        self.buckets.len()
    }
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("quotas", &self.quotas)
            .field("tracked_tenants", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl Bucket {
    fn new(quota: Quota, clock: &QuantaClock) -> Self {
        let nonzero = |n| NonZeroU32::new(n).expect("a Quota holds no zero");
        let quota = governor::Quota::per_second(nonzero(quota.per_second()))
            .allow_burst(nonzero(quota.burst()));
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock.clone())
                .with_middleware::<StateInformationMiddleware>(),
            burst: quota.burst_size().get(),
            interval: quota.replenish_interval(),
            full_at: AtomicU64::new(0),
        }
    }

    fn check_n(&self, clock: &QuantaClock, start: QuantaInstant, n: NonZeroU32) -> Decision {
        let now = clock.now();
        match self.limiter.check_n(n) {
            Ok(Ok(state)) => {
                let remaining = state.remaining_burst_capacity();
                // governor reports whole tokens only. The bucket is full again once the
                // missing ones are back; the one being refilled is counted whole, so this is
                // at most one interval late.
                let reset_after = self
                    .interval
                    .saturating_mul(self.burst.saturating_sub(remaining));
                let full_at = now
                    .duration_since(start)
                    .as_u64()
                    .saturating_add(u64::try_from(reset_after.as_nanos()).unwrap_or(u64::MAX));
                // Concurrent checks only ever push the time the bucket fills further out.
                self.full_at.fetch_max(full_at, Ordering::Relaxed);
                Decision {
                    allowed: true,
                    limit: self.burst,
                    remaining,
                    retry_after: Duration::ZERO,
                    reset_after,
                }
            }
            Ok(Err(not_until)) => {
                let retry_after = not_until.wait_time_from(now);
                // Refused, the bucket lacks some of the `n` tokens; once they are back, it is
                // full after the other `burst - n`.
                let reset_after = retry_after.saturating_add(
                    self.interval
                        .saturating_mul(self.burst.saturating_sub(n.get())),
                );
                Decision {
                    allowed: false,
                    limit: self.burst,
                    remaining: 0,
                    retry_after,
                    reset_after,
                }
            }
            // More than the burst: never admitted, and governor did not look at the bucket.
            // When it is full again is known from `full_at`, rounded up as it is.
            Err(InsufficientCapacity(_)) => {
                let now = now.duration_since(start).as_u64();
                let full_in = self.full_at.load(Ordering::Relaxed).saturating_sub(now);
                Decision {
                    allowed: false,
                    limit: self.burst,
                    remaining: 0,
                    retry_after: Duration::MAX,
                    reset_after: Duration::from_nanos(full_in),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn quotas(per_second: u32, burst: u32) -> Quotas {
        Quotas {
            default: Some(Quota::new(per_second, burst).unwrap()),
            tenants: HashMap::new(),
        }
    }

    #[test]
    fn full_buckets_are_forgotten_and_draining_ones_kept() {
        let mut q = quotas(1, 2);
        // Full again 1 ms after a request.
        q.tenants
            .insert("fast".into(), Quota::new(1000, 1).unwrap());
        let limiter = LocalLimiter::new(q);
        assert!(limiter.check("fast").unwrap().allowed);
        // Full again 1 s after a request.
        assert!(limiter.check("slow").unwrap().allowed);
        assert_eq!(limiter.tracked_tenants(), 2);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(limiter.forget_idle(), 1);
        assert_eq!(limiter.tracked_tenants(), 1);
        // "slow" kept its state: one token left of two.
        let d = limiter.check("slow").unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 0));
        // "fast" starts again with a full bucket, as it would have anyway.
        assert!(limiter.check("fast").unwrap().allowed);
        assert_eq!(limiter.tracked_tenants(), 2);
    }

    #[test]
    fn the_map_sweeps_itself_as_it_grows() {
        // A long refill: nothing becomes idle during the test, so nothing may be dropped...
        let limiter = LocalLimiter::new(quotas(1, 1));
        for i in 0..FIRST_SWEEP + 10 {
            assert!(limiter.check(&format!("t{i}")).unwrap().allowed);
        }
        assert_eq!(limiter.tracked_tenants(), FIRST_SWEEP + 10);
        // ...and the next sweep waits for the map to double.
        assert_eq!(limiter.next_sweep.load(Ordering::Relaxed), 2 * FIRST_SWEEP);

        // A fast refill: everything is idle by the time the sweep runs.
        let limiter = LocalLimiter::new(quotas(MAX_RATE, 1));
        for i in 0..FIRST_SWEEP {
            limiter.check(&format!("t{i}"));
        }
        std::thread::sleep(Duration::from_millis(5));
        limiter.check("last");
        assert_eq!(limiter.tracked_tenants(), 1);
    }

    const MAX_RATE: u32 = crate::MAX_PER_SECOND;

    #[test]
    fn refused_decisions_say_when_to_come_back() {
        // One token a second, five at once; the checks take microseconds.
        let limiter = LocalLimiter::new(quotas(1, 5));
        let second = Duration::from_secs(1);
        for left in (0..5).rev() {
            let d = limiter.check("t").unwrap();
            assert!(d.allowed);
            assert_eq!(
                (d.limit, d.remaining, d.retry_after),
                (5, left, Duration::ZERO)
            );
            // A second per token taken, rounded up to whole tokens.
            assert_eq!(d.reset_after, second * (5 - left), "{d:?}");
        }
        let d = limiter.check("t").unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(d.retry_after > second / 2, "{d:?}");
        assert!(d.retry_after <= second, "{d:?}");
        assert_eq!(d.reset_after, d.retry_after + second * 4);
    }
}
