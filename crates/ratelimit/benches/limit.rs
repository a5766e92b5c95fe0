//! What a rate limit check costs: `LocalLimiter::check` on a tenant it already knows (the
//! hot path, which must stay well under a microsecond and allocate nothing), and
//! `check_n` of a batch there, through
//! `Limiter` as the server calls it, and `RedisLimiter::check` as one round trip at a time
//! and as a batch of concurrent checks pipelined on the one connection.
//!
//! The Redis benchmarks use `REDIS_URL` (default `redis://127.0.0.1:6379`) and are skipped,
//! saying so, when nothing answers there. Their keys expire by themselves.

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratelimit::{Limiter, LocalLimiter, MAX_PER_SECOND, Quota, Quotas, RedisLimiter};
use tokio::runtime::Runtime;

/// The service's allocator (`crates/assay/src/main.rs`), so that these figures are the
/// service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tenants in the map besides the one checked, so that the lookup is not in a toy map.
const OTHER_TENANTS: usize = 1000;

fn quotas(per_second: u32, burst: u32) -> Quotas {
    Quotas {
        default: Some(Quota::new(per_second, burst).unwrap()),
        tenants: Default::default(),
    }
}

/// A quota no benchmark run can exhaust: every check is admitted.
fn generous() -> Quotas {
    quotas(MAX_PER_SECOND, u32::MAX)
}

fn populated(quotas: Quotas) -> LocalLimiter {
    let limiter = LocalLimiter::new(quotas);
    for i in 0..OTHER_TENANTS {
        limiter.check(&format!("tenant-{i}"));
    }
    limiter.check("acme");
    limiter
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn local(c: &mut Criterion) {
    let mut group = c.benchmark_group("local");
    let allowed = populated(generous());
    group.bench_function("check, allowed", |b| {
        b.iter(|| allowed.check(black_box("acme")))
    });
    let ten = NonZeroU32::new(10).unwrap();
    group.bench_function("check_n(10), allowed", |b| {
        b.iter(|| allowed.check_n(black_box("acme"), black_box(ten)))
    });
    let limited = populated(quotas(1, 1));
    group.bench_function("check, limited", |b| {
        b.iter(|| limited.check(black_box("acme")))
    });
    let unlimited = LocalLimiter::new(Quotas::default());
    group.bench_function("check, unlimited tenant", |b| {
        b.iter(|| unlimited.check(black_box("acme")))
    });
    // With no metrics recorder installed, the counters are no-ops here.
    let rt = runtime();
    let limiter = Limiter::local(generous());
    group.bench_function("Limiter::check, allowed", |b| {
        b.to_async(&rt).iter(|| limiter.check(black_box("acme")))
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = runtime();
    let prefix = format!("assay-bench:{}:", std::process::id());
    let limiter = rt.block_on(async {
        let limiter = RedisLimiter::new(&url, &prefix, generous()).unwrap();
        limiter.ping().await.map(|()| limiter)
    });
    let limiter = match limiter {
        Ok(limiter) => limiter,
        Err(e) => {
            eprintln!("SKIPPED the Redis benchmarks: {e}");
            return;
        }
    };
    let mut group = c.benchmark_group("redis");
    group.bench_function("check, sequential round trip", |b| {
        b.to_async(&rt).iter(|| limiter.check(black_box("acme")))
    });
    const BATCH: usize = 32;
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("check, 32 concurrent (pipelined)", |b| {
        b.to_async(&rt).iter(|| {
            futures::future::join_all((0..BATCH).map(|_| limiter.check(black_box("acme"))))
        })
    });
    group.finish();
}

criterion_group!(benches, local, redis);
criterion_main!(benches);
