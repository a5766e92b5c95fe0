//! The local backend: bursts, refusals, refills and per-tenant quotas, through `Limiter` as
//! the server uses it and through `LocalLimiter` directly.

use std::sync::Arc;
use std::time::Duration;

use ratelimit::{Limiter, LocalLimiter};

use crate::support::{Meter, quotas};

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
