//! The local backend: bursts, refusals, refills and per-tenant quotas, one request or several
//! at once, through `Limiter` as the server uses it and through `LocalLimiter` directly.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ratelimit::{Limiter, LocalLimiter};

use crate::support::{Meter, n, quotas};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_burst_is_admitted_then_refused_with_a_sensible_retry_after() {
    // One token a second, three at once: the checks take microseconds, so no token comes
    // back during the test.
    let limiter = Limiter::local(quotas(Some((1, 3)), &[]));
    for remaining in [2, 1, 0] {
        let d = limiter.check("acme").await.unwrap().unwrap();
        assert!(d.allowed, "{d:?}");
        assert_eq!((d.limit, d.remaining), (3, remaining));
        assert_eq!(d.retry_after, Duration::ZERO);
        assert_eq!(d.reset_after, SECOND * (3 - remaining));
    }
    for _ in 0..3 {
        let d = limiter.check("acme").await.unwrap().unwrap();
        assert!(!d.allowed, "{d:?}");
        assert_eq!((d.limit, d.remaining), (3, 0));
        // The next token is due a second after the first was taken.
        assert!(
            d.retry_after > SECOND / 2 && d.retry_after <= SECOND,
            "{d:?}"
        );
        // Then two more seconds for the other two.
        assert_eq!(d.reset_after, d.retry_after + 2 * SECOND);
    }
}

#[tokio::test]
async fn tokens_come_back_after_waiting() {
    // A token every 50 ms, two at once.
    let limiter = Limiter::local(quotas(Some((20, 2)), &[]));
    assert!(limiter.check("t").await.unwrap().unwrap().allowed);
    assert!(limiter.check("t").await.unwrap().unwrap().allowed);
    let refused = limiter.check("t").await.unwrap().unwrap();
    assert!(!refused.allowed);
    assert!(
        refused.retry_after <= Duration::from_millis(50),
        "{refused:?}"
    );
    tokio::time::sleep(refused.retry_after + Duration::from_millis(5)).await;
    let d = limiter.check("t").await.unwrap().unwrap();
    assert!(d.allowed, "{d:?}");
    // Long enough for the whole bucket: both tokens are back.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let d = limiter.check("t").await.unwrap().unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 1), "{d:?}");
}

#[tokio::test]
async fn tenants_without_a_quota_are_unlimited() {
    let limiter = Limiter::local(quotas(None, &[("acme", 1, 1)]));
    for _ in 0..1000 {
        assert_eq!(limiter.check("other").await.unwrap(), None);
    }
    assert!(limiter.quota_for("other").is_none());
    assert!(limiter.check("acme").await.unwrap().unwrap().allowed);
    assert!(!limiter.check("acme").await.unwrap().unwrap().allowed);

    let off = Limiter::off();
    for _ in 0..10 {
        assert_eq!(off.check("acme").await.unwrap(), None);
    }
    assert!(off.quota_for("acme").is_none());
}

#[tokio::test]
async fn each_tenant_has_its_own_quota_and_bucket() {
    let limiter = Limiter::local(quotas(Some((1, 5)), &[("acme", 1, 2)]));
    let admitted = |tenant: &'static str| {
        let limiter = limiter.clone();
        async move {
            let mut n = 0;
            for _ in 0..10 {
                if limiter.check(tenant).await.unwrap().unwrap().allowed {
                    n += 1;
                }
            }
            n
        }
    };
    assert_eq!(admitted("acme").await, 2);
    assert_eq!(admitted("globex").await, 5);
    // Another tenant under the default has a bucket of its own.
    assert_eq!(admitted("initech").await, 5);
    assert_eq!(limiter.quota_for("acme").unwrap().burst(), 2);
    assert_eq!(limiter.quota_for("globex").unwrap().burst(), 5);
}

#[test]
fn threads_checking_one_tenant_share_its_burst_exactly() {
    let limiter = Arc::new(LocalLimiter::new(quotas(Some((1, 50)), &[])));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| limiter.check("acme").unwrap().allowed)
                    .count()
            })
        })
        .collect();
    let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(admitted, 50);
    assert_eq!(limiter.tracked_tenants(), 1);
}

#[tokio::test]
async fn local_decisions_are_counted() {
    let meter = Meter::new();
    let limiter = meter
        .recording(async { Limiter::local(quotas(None, &[("acme", 1, 2)])) })
        .await;
    for _ in 0..5 {
        limiter.check("acme").await.unwrap();
        limiter.check("unlimited").await.unwrap();
    }
    assert_eq!(meter.decisions("local", "allowed"), 2);
    assert_eq!(meter.decisions("local", "limited"), 3);
    // Unlimited tenants are not decisions; a local limiter has no backend to fail.
    assert_eq!(meter.decisions("redis", "allowed"), 0);
    assert_eq!(meter.backend_errors(), 0);
}

#[test]
fn n_at_once_is_admitted_when_it_fits_and_refused_whole_when_not() {
    // One token a second, five at once: no token comes back during the checks.
    let limiter = LocalLimiter::new(quotas(Some((1, 5)), &[]));
    let d = limiter.check_n("acme", n(3)).unwrap();
    assert_eq!((d.allowed, d.limit, d.remaining), (true, 5, 2), "{d:?}");
    assert_eq!((d.retry_after, d.reset_after), (Duration::ZERO, 3 * SECOND));

    // Two left: three more are refused, and take nothing.
    let refused = limiter.check_n("acme", n(3)).unwrap();
    assert_eq!(
        (refused.allowed, refused.remaining),
        (false, 0),
        "{refused:?}"
    );
    // The third token is due a second after the first was taken...
    assert!(
        refused.retry_after > SECOND / 2 && refused.retry_after <= SECOND,
        "{refused:?}"
    );
    // ...and then the bucket is full after the other two.
    assert_eq!(refused.reset_after, refused.retry_after + 2 * SECOND);
    let d = limiter.check_n("acme", n(2)).unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0), "{d:?}");
    assert_eq!(d.reset_after, 5 * SECOND);
    assert!(!limiter.check("acme").unwrap().allowed);
}

#[tokio::test]
async fn n_refused_is_admitted_after_waiting_its_retry_after() {
    // A token every 50 ms, four at once.
    let limiter = Limiter::local(quotas(Some((20, 4)), &[]));
    let d = limiter.check_n("t", n(4)).await.unwrap().unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0), "{d:?}");
    let refused = limiter.check_n("t", n(3)).await.unwrap().unwrap();
    assert!(!refused.allowed, "{refused:?}");
    // Three tokens to come back.
    assert!(
        refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_millis(150),
        "{refused:?}"
    );
    tokio::time::sleep(refused.retry_after + Duration::from_millis(5)).await;
    let d = limiter.check_n("t", n(3)).await.unwrap().unwrap();
    assert!(d.allowed, "{d:?}");
}

#[test]
fn check_n_of_the_burst_empties_a_full_bucket() {
    let limiter = LocalLimiter::new(quotas(Some((1, 5)), &[]));
    let d = limiter.check_n("acme", n(5)).unwrap();
    assert_eq!((d.allowed, d.remaining), (true, 0), "{d:?}");
    assert_eq!((d.retry_after, d.reset_after), (Duration::ZERO, 5 * SECOND));
    let d = limiter.check("acme").unwrap();
    assert!(!d.allowed, "{d:?}");
    assert_eq!(d.reset_after, d.retry_after + 4 * SECOND);
}

#[test]
fn more_than_the_burst_is_never_admitted_and_takes_nothing() {
    let limiter = LocalLimiter::new(quotas(Some((1, 5)), &[]));
    let never = |limiter: &LocalLimiter| {
        let d = limiter.check_n("acme", n(6)).unwrap();
        assert_eq!((d.allowed, d.limit, d.remaining), (false, 5, 0), "{d:?}");
        assert_eq!(d.retry_after, Duration::MAX, "{d:?}");
        d
    };
    // On a bucket it has not seen, and on a full one: full now.
    assert_eq!(never(&limiter).reset_after, Duration::ZERO);
    assert_eq!(never(&limiter).reset_after, Duration::ZERO);
    // The refusals took nothing: the whole burst is still there.
    assert!(limiter.check_n("acme", n(5)).unwrap().allowed);
    // On an empty bucket, which is full again in five seconds.
    let d = never(&limiter);
    assert!(
        d.reset_after > 4 * SECOND && d.reset_after <= 5 * SECOND,
        "{d:?}"
    );
    assert_eq!(
        limiter
            .check_n("acme", NonZeroU32::MAX)
            .unwrap()
            .retry_after,
        Duration::MAX
    );
}

#[test]
fn threads_checking_several_at_once_stay_within_the_burst() {
    let limiter = Arc::new(LocalLimiter::new(quotas(Some((1, 50)), &[])));
    let threads: Vec<_> = (1..=4)
        .map(|cost| {
            let limiter = limiter.clone();
            std::thread::spawn(move || {
                (0..50)
                    .filter(|_| limiter.check_n("acme", n(cost)).unwrap().allowed)
                    .map(|_| cost)
                    .sum::<u32>()
            })
        })
        .collect();
    let taken: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    // Never more than the burst; and exactly the burst, since the thread taking one at a
    // time is refused only once none is left, and takes all fifty if it never is.
    assert_eq!(taken, 50);
}

#[tokio::test]
async fn a_check_of_n_is_one_decision() {
    let meter = Meter::new();
    let limiter = meter
        .recording(async { Limiter::local(quotas(None, &[("acme", 1, 4)])) })
        .await;
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
    assert!(
        !limiter
            .check_n("acme", n(5))
            .await
            .unwrap()
            .unwrap()
            .allowed
    );
    assert!(
        limiter
            .check_n("acme", n(1))
            .await
            .unwrap()
            .unwrap()
            .allowed
    );
    assert_eq!(limiter.check_n("other", n(100)).await.unwrap(), None);
    assert_eq!(Limiter::off().check_n("acme", n(100)).await.unwrap(), None);
    assert_eq!(meter.decisions("local", "allowed"), 2);
    assert_eq!(meter.decisions("local", "limited"), 2);
}
