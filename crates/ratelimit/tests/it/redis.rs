//! The Redis backend against a real Redis: one quota shared by several instances, the rate
//! it keeps, the key it writes, several requests at once, and what happens when Redis is
//! unreachable, hung, or back.
//!
//! Redis is found (or started, or the tests skipped) as `testkit::redis` describes. Each test
//! uses its own key prefix, so tests run in parallel; the limiter's keys expire by themselves
//! once a bucket is full again (seconds here), so nothing is left behind to clean.

use std::net::TcpListener;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratelimit::{LimitError, Limiter, OnRedisError, RedisLimiter};
use testkit::redis::{NOTHING_ON_DISK, RedisServer, free_port, have_redis_server, redis_url};
use tokio::task::JoinSet;

use crate::support::{Logs, Meter, n, quotas};

/// Names this suite in the loud messages of `testkit::redis`.
const SUITE: &str = "ratelimit Redis tests";

const SECOND: Duration = Duration::from_secs(1);
/// Nothing listens on port 1: connections are refused at once.
const UNREACHABLE: &str = "redis://127.0.0.1:1";

/// A fresh key prefix. `RedisLimiter` uses its prefix as given, so the separator is ours.
fn unique_prefix() -> String {
    format!("{}:", testkit::redis::unique_prefix())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_separate_connections_share_one_burst() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let prefix = unique_prefix();
    // One token a second, ten at once: the whole test takes far less than a second.
    let q = quotas(Some((1, 10)), &[]);
    let a = Arc::new(RedisLimiter::new(&url, &prefix, q.clone()).unwrap());
    let b = Arc::new(RedisLimiter::new(&url, &prefix, q).unwrap());
    let mut checks = JoinSet::new();
    for i in 0..40 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        checks.spawn(async move { limiter.check("acme").await.unwrap().unwrap() });
    }
    let mut remaining: Vec<u32> = Vec::new();
    while let Some(d) = checks.join_next().await {
        let d = d.unwrap();
        assert_eq!(d.limit, 10);
        if d.allowed {
            remaining.push(d.remaining);
        } else {
            assert!(
                d.retry_after > Duration::ZERO && d.retry_after <= SECOND,
                "{d:?}"
            );
        }
    }
    // Exactly the burst, not twice it, and each token taken once.
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_count_down_and_the_key_expires_when_full() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let prefix = unique_prefix();
    let limiter = RedisLimiter::new(&url, &prefix, quotas(Some((1, 3)), &[])).unwrap();
    for remaining in [2, 1, 0] {
        let d = limiter.check("acme").await.unwrap().unwrap();
        assert_eq!(
            (d.allowed, d.limit, d.remaining),
            (true, 3, remaining),
            "{d:?}"
        );
        assert_eq!(d.retry_after, Duration::ZERO);
        // Redis's clock moves on between checks; a token a second.
        let taken = SECOND * (3 - remaining);
        assert!(
            d.reset_after <= taken && d.reset_after > taken - SECOND / 2,
            "{d:?}"
        );
    }
    let d = limiter.check("acme").await.unwrap().unwrap();
    assert_eq!((d.allowed, d.remaining), (false, 0), "{d:?}");
    assert!(
        d.retry_after > SECOND / 2 && d.retry_after <= SECOND,
        "{d:?}"
    );
    assert_eq!(d.reset_after, d.retry_after + 2 * SECOND);

    // One key for the tenant, holding when its bucket is full again in microseconds of
    // Redis's clock, and expiring then.
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{prefix}rl:acme");
    let (tat, pttl, (secs, micros)): (u64, i64, (u64, u64)) = ::redis::pipe()
        .get(&key)
        .pttl(&key)
        .cmd("TIME")
        .query_async(&mut con)
        .await
        .unwrap();
    let now = secs * 1_000_000 + micros;
    assert!(tat > now && tat - now <= 3_000_000, "tat {tat}, now {now}");
    assert!(pttl > 2000 && pttl <= 3000, "{pttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_over_two_seconds_is_the_quota() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let limiter = RedisLimiter::new(&url, &unique_prefix(), quotas(Some((50, 5)), &[])).unwrap();
    let started = Instant::now();
    let mut admitted = 0u32;
    while started.elapsed() < 2 * SECOND {
        if limiter.check("acme").await.unwrap().unwrap().allowed {
            admitted += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The burst, then 50 a second.
    let expected = 5.0 + 50.0 * started.elapsed().as_secs_f64();
    let error = (f64::from(admitted) - expected).abs() / expected;
    assert!(
        error < 0.1,
        "admitted {admitted}, expected about {expected:.0}"
    );
}

#[tokio::test]
async fn unlimited_tenants_never_need_redis() {
    let limiter = Limiter::redis(
        UNREACHABLE,
        "p:",
        quotas(None, &[("acme", 1, 1)]),
        OnRedisError::Closed,
    )
    .await
    .unwrap();
    assert_eq!(limiter.check("other").await.unwrap(), None);
    let alone = RedisLimiter::new(UNREACHABLE, "p:", quotas(None, &[])).unwrap();
    assert_eq!(alone.check("other").await.unwrap(), None);
}

#[tokio::test]
async fn failing_open_limits_in_process_and_counts_errors() {
    let meter = Meter::new();
    let started = Instant::now();
    let limiter = meter
        .recording(Limiter::redis(
            UNREACHABLE,
            "p:",
            quotas(Some((1, 3)), &[]),
            OnRedisError::Open,
        ))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let d = limiter.check("acme").await.unwrap().unwrap();
        outcomes.push(d.allowed);
    }
    // Each instance still holds the tenant to its quota.
    assert_eq!(outcomes, [true, true, true, false, false]);
    assert!(started.elapsed() < SECOND, "{:?}", started.elapsed());
    assert_eq!(meter.decisions("fallback", "allowed"), 3);
    assert_eq!(meter.decisions("fallback", "limited"), 2);
    assert_eq!(meter.decisions("redis", "allowed"), 0);
    assert!(meter.backend_errors() >= 1);
}

#[tokio::test]
async fn failing_closed_refuses_limited_tenants() {
    let meter = Meter::new();
    let limiter = meter
        .recording(Limiter::redis(
            UNREACHABLE,
            "p:",
            quotas(None, &[("acme", 1, 3)]),
            OnRedisError::Closed,
        ))
        .await
        .unwrap();
    for _ in 0..3 {
        let err = limiter.check("acme").await.unwrap_err();
        assert!(matches!(err, LimitError::Unavailable(_)), "{err}");
        assert!(
            err.to_string().starts_with("rate limiter unavailable"),
            "{err}"
        );
    }
    // Tenants without a quota are not refused.
    assert_eq!(limiter.check("other").await.unwrap(), None);
    assert!(meter.backend_errors() >= 1);
    assert_eq!(meter.decisions("fallback", "allowed"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_costs_at_most_the_timeout() {
    // Connections to a listener that never accepts are made by the kernel, and then
    // nothing ever answers.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", hung.local_addr().unwrap());
    let timeout = Duration::from_millis(100);
    let q = quotas(Some((1, 2)), &[]);

    let alone = RedisLimiter::new(&url, "p:", q.clone())
        .unwrap()
        .with_timeout(timeout);
    let started = Instant::now();
    let err = alone.check("acme").await.unwrap_err();
    assert!(started.elapsed() < 5 * timeout, "{:?}", started.elapsed());
    assert_eq!(
        err,
        LimitError::Unavailable("Redis did not answer within 100 ms".into())
    );

    // Behind a limiter, one check per probe interval waits; the others do not.
    let redis = RedisLimiter::new(&url, "p:", q)
        .unwrap()
        .with_timeout(timeout);
    let limiter = Limiter::from_redis(redis, OnRedisError::Open).await;
    let started = Instant::now();
    let mut admitted = 0;
    for _ in 0..50 {
        if limiter.check("acme").await.unwrap().unwrap().allowed {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 2);
    assert!(started.elapsed() < 5 * timeout, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_shares_limits_again_when_redis_comes_back() {
    if !have_redis_server(
        SUITE,
        "the_limiter_shares_limits_again_when_redis_comes_back",
    ) {
        return;
    }
    let (logs, _guard) = Logs::capture();
    let started = Instant::now();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let meter = Meter::new();
    // Built while nothing listens: not an error.
    let limiter = meter
        .recording(Limiter::redis(
            &url,
            &unique_prefix(),
            quotas(Some((1000, 1000)), &[]),
            OnRedisError::Open,
        ))
        .await
        .unwrap();
    assert!(limiter.check("acme").await.unwrap().unwrap().allowed);
    assert_eq!(meter.decisions("fallback", "allowed"), 1);
    assert!(meter.backend_errors() >= 1);

    let mut server = RedisServer::start(port, NOTHING_ON_DISK).expect("redis-server runs");
    assert!(server.wait_ready().await, "redis-server did not start");
    let shared_again = |meter: &Meter| meter.decisions("redis", "allowed") > 0;
    eventually(&limiter, &meter, shared_again).await;

    // A restart kills the connection; the limiter falls back, then reconnects by itself.
    server.stop();
    let errors = meter.backend_errors();
    let fallbacks = meter.decisions("fallback", "allowed");
    assert!(limiter.check("acme").await.unwrap().unwrap().allowed);
    assert!(meter.backend_errors() > errors);
    assert!(meter.decisions("fallback", "allowed") > fallbacks);
    assert!(server.restart());
    assert!(server.wait_ready().await, "redis-server did not restart");
    let answered = meter.decisions("redis", "allowed");
    eventually(&limiter, &meter, |m| {
        m.decisions("redis", "allowed") > answered
    })
    .await;

    // Warned about, at most once a second, and the recovery told.
    let warnings = logs.lines("WARN");
    assert!(!warnings.is_empty());
    assert!(
        warnings
            .iter()
            .all(|l| l.contains("error=") && l.contains("fail open")),
        "{warnings:#?}"
    );
    let seconds = started.elapsed().as_secs() as usize;
    assert!(warnings.len() <= seconds + 1, "{warnings:#?}");
    let recoveries = logs.lines("INFO");
    assert!(
        recoveries.iter().any(|l| l.contains("Redis answers again")),
        "{recoveries:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_at_once_is_admitted_when_it_fits_and_refused_whole_when_not() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    // One token a second, five at once: the checks take far less than a second.
    let limiter = RedisLimiter::new(&url, &unique_prefix(), quotas(Some((1, 5)), &[])).unwrap();
    let d = limiter.check_n("acme", n(3)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 5, 2), "{d:?}");
    assert_eq!((d.retry_after, d.reset_after), (Duration::ZERO, 3 * SECOND));

    // Two left: three more are refused, and take nothing.
    let refused = limiter.check_n("acme", n(3)).await.unwrap().unwrap();
    assert_eq!(
        (refused.allowed, refused.remaining),
        (false, 0),
        "{refused:?}"
    );
    assert!(
        refused.retry_after > SECOND / 2 && refused.retry_after <= SECOND,
        "{refused:?}"
    );
    assert_eq!(refused.reset_after, refused.retry_after + 2 * SECOND);
    let d = limiter.check_n("acme", n(2)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0), "{d:?}");
    assert!(
        d.reset_after <= 5 * SECOND && d.reset_after > 4 * SECOND,
        "{d:?}"
    );
    assert!(!limiter.check("acme").await.unwrap().unwrap().allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_refused_is_admitted_after_waiting_its_retry_after() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    // A token every 50 ms, four at once.
    let limiter = RedisLimiter::new(&url, &unique_prefix(), quotas(Some((20, 4)), &[])).unwrap();
    let d = limiter.check_n("t", n(4)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0), "{d:?}");
    let refused = limiter.check_n("t", n(3)).await.unwrap().unwrap();
    assert!(!refused.allowed, "{refused:?}");
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(150),
        "{refused:?}"
    );
    tokio::time::sleep(refused.retry_after + Duration::from_millis(5)).await;
    let d = limiter.check_n("t", n(3)).await.unwrap().unwrap();
    assert!(d.allowed, "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_n_of_the_burst_empties_a_full_bucket() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let limiter = RedisLimiter::new(&url, &unique_prefix(), quotas(Some((1, 5)), &[])).unwrap();
    let d = limiter.check_n("acme", n(5)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0), "{d:?}");
    assert_eq!((d.retry_after, d.reset_after), (Duration::ZERO, 5 * SECOND));
    let d = limiter.check("acme").await.unwrap().unwrap();
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.reset_after, d.retry_after + 4 * SECOND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_the_burst_is_never_admitted_and_takes_nothing() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let prefix = unique_prefix();
    let limiter = RedisLimiter::new(&url, &prefix, quotas(Some((1, 5)), &[])).unwrap();
    let never = async || {
        let d = limiter.check_n("acme", n(6)).await.unwrap().unwrap();
        assert_eq!((d.allowed, d.limit, d.remaining), (false, 5, 0), "{d:?}");
        assert_eq!(d.retry_after, Duration::MAX, "{d:?}");
        d
    };
    // On a full bucket, which stays full: no key is written.
    assert_eq!(never().await.reset_after, Duration::ZERO);
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let exists: bool = ::redis::cmd("EXISTS")
        .arg(format!("{prefix}rl:acme"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!exists);
    // The whole burst is still there.
    assert!(
        limiter
            .check_n("acme", n(5))
            .await
            .unwrap()
            .unwrap()
            .allowed
    );
    // On an empty bucket, which is full again in five seconds.
    let d = never().await;
    assert!(
        d.reset_after > 4 * SECOND && d.reset_after <= 5 * SECOND,
        "{d:?}"
    );
    let d = limiter
        .check_n("acme", NonZeroU32::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.allowed, d.retry_after), (false, Duration::MAX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_checking_several_at_once_share_one_burst() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let prefix = unique_prefix();
    // One token a second, twenty at once: the whole test takes far less than a second.
    let q = quotas(Some((1, 20)), &[]);
    let a = Arc::new(RedisLimiter::new(&url, &prefix, q.clone()).unwrap());
    let b = Arc::new(RedisLimiter::new(&url, &prefix, q).unwrap());
    let mut checks = JoinSet::new();
    for i in 0..40u32 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        let cost = 1 + i % 4;
        checks.spawn(async move {
            (
                cost,
                limiter.check_n("acme", n(cost)).await.unwrap().unwrap(),
            )
        });
    }
    let mut admitted: Vec<(u32, u32)> = Vec::new();
    let mut refused = 0;
    while let Some(outcome) = checks.join_next().await {
        let (cost, d) = outcome.unwrap();
        if d.allowed {
            admitted.push((d.remaining, cost));
        } else {
            refused += 1;
            // Waiting for at most `cost` tokens, a second each.
            assert!(
                d.retry_after > Duration::ZERO && d.retry_after <= cost * SECOND,
                "{d:?}"
            );
        }
    }
    // A hundred tokens asked for, twenty to give.
    assert!(refused > 0 && !admitted.is_empty(), "{admitted:?}");
    // Redis ran the checks one after the other: in that order (the most remaining first),
    // each admitted one took its cost from what the one before left, starting from a full
    // bucket. Together they took at most the burst, each token once.
    admitted.sort_unstable_by(|x, y| y.cmp(x));
    let mut left = 20;
    for &(remaining, cost) in &admitted {
        assert_eq!(remaining + cost, left, "{admitted:?}");
        left = remaining;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_of_n_is_one_decision_shared_or_not() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let meter = Meter::new();
    let limiter = meter
        .recording(Limiter::redis(
            &url,
            &unique_prefix(),
            quotas(Some((1, 4)), &[]),
            OnRedisError::Closed,
        ))
        .await
        .unwrap();
    assert!(
        limiter
            .check_n("acme", n(3))
            .await
            .unwrap()
            .unwrap()
            .allowed
    );
    assert!(
        !limiter
            .check_n("acme", n(3))
            .await
            .unwrap()
            .unwrap()
            .allowed
    );
    let d = limiter.check_n("acme", n(5)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.retry_after), (false, Duration::MAX));
    assert_eq!(meter.decisions("redis", "allowed"), 1);
    assert_eq!(meter.decisions("redis", "limited"), 2);
    assert_eq!(meter.backend_errors(), 0);

    // Failing open, the n are taken in process; failing closed, nothing is decided.
    let open = meter
        .recording(Limiter::redis(
            UNREACHABLE,
            "p:",
            quotas(Some((1, 4)), &[]),
            OnRedisError::Open,
        ))
        .await
        .unwrap();
    assert!(open.check_n("acme", n(3)).await.unwrap().unwrap().allowed);
    assert!(!open.check_n("acme", n(3)).await.unwrap().unwrap().allowed);
    let d = open.check_n("acme", n(5)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.retry_after), (false, Duration::MAX));
    assert_eq!(meter.decisions("fallback", "allowed"), 1);
    assert_eq!(meter.decisions("fallback", "limited"), 2);
    let closed = Limiter::redis(
        UNREACHABLE,
        "p:",
        quotas(Some((1, 4)), &[]),
        OnRedisError::Closed,
    )
    .await
    .unwrap();
    let err = closed.check_n("acme", n(3)).await.unwrap_err();
    assert!(matches!(err, LimitError::Unavailable(_)), "{err}");
}

/// Checks every 20 ms until `done`, for at most 5 s.
async fn eventually(limiter: &Limiter, meter: &Meter, done: impl Fn(&Meter) -> bool) {
    let deadline = Instant::now() + 5 * SECOND;
    loop {
        assert!(limiter.check("acme").await.unwrap().unwrap().allowed);
        if done(meter) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis was not used again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
