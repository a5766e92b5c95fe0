//! What authentication and rate limiting cost one request in process: `Access::authenticate`
//! (bearer header, cached key, SHA-256, constant-time compare, expiry) plus
//! `Access::limit` on the local limiter, against open mode (no key, no limit) in the same run.
//! Both complete without waiting (a cached key, an in-process limiter), so each is polled
//! once. The Prometheus recorder is installed, as in the server.

use std::hint::black_box;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use ratelimit::{Limiter, Quota, Quotas};
use registry::{EmbeddedStore, Keys, Role, Store};
use server::auth::Access;
use server::config::AuthConfig;

/// The service's allocator (`crates/assay/src/main.rs`), so that these figures are the
/// service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    // As in the server: metrics are recorded (the limiter counts its decisions).
    server::ops::metrics_handle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let keys = Arc::new(Keys::new(store));
    let token = rt.block_on(async {
        // A realistic cache: many tenants' keys, the caller's among them.
        for i in 0..200 {
            keys.create(&format!("t{i}"), Role::Client, None, None)
                .await
                .unwrap();
        }
        keys.create("acme", Role::Client, None, None)
            .await
            .unwrap()
            .token
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    // A quota no benchmark exhausts, so every check takes the admitting path.
    let quotas = Quotas {
        default: Some(Quota::new(1_000_000, 1_000_000).unwrap()),
        ..Quotas::default()
    };
    let keyed = Access::new(&AuthConfig::Keys, keys.clone(), Limiter::local(quotas));
    let open = Access::new(&AuthConfig::None, keys, Limiter::off());

    let mut group = c.benchmark_group("auth");
    for (name, access) in [("open_mode", &open), ("key_and_local_limit", &keyed)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let caller = access
                    .authenticate(black_box(&headers), "POST", "/v1/pipelines/trade/process")
                    .now_or_never()
                    .expect("a cached key answers at once")
                    .unwrap();
                let decision = access
                    .limit(&caller.tenant)
                    .now_or_never()
                    .expect("the local limiter answers at once")
                    .unwrap();
                black_box((caller, decision))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
