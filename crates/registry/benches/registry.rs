//! Registry benchmarks: the hot-path lookup of a compiled pipeline, API key authentication
//! on a cached key, and the cold start of an instance over 1,000 schemas and 1,000
//! pipelines on the embedded store.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use registry::{AuthError, EmbeddedStore, Keys, Registry, RegistryOptions, Role, Store};

/// The service's allocator (`crates/assay/src/main.rs`), so that these figures are the
/// service's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn schema(i: usize) -> String {
    format!(
        r#"{{"type":"object","required":["id","amount"],"properties":{{"id":{{"type":"string","pattern":"^T-[0-9]+$"}},"amount":{{"type":"number","maximum":{i}.5}},"date":{{"type":"string","format":"date"}}}}}}"#
    )
}

fn pipeline(i: usize) -> String {
    format!(
        r#"{{"input_schema":"s{i}","transform":"{{id, total: (.amount * 2), n: {i}}}","output":"json"}}"#
    )
}

/// Fills `store` with `n` schemas and `n` pipelines.
fn fill(rt: &tokio::runtime::Runtime, store: &Arc<dyn Store>, n: usize) {
    let reg = Registry::new(store.clone(), RegistryOptions::default());
    rt.block_on(async {
        for i in 0..n {
            reg.put_schema("bench", &format!("s{i}"), schema(i).as_bytes())
                .await
                .unwrap();
            reg.put_pipeline("bench", &format!("p{i}"), pipeline(i).as_bytes())
                .await
                .unwrap();
        }
    });
}

/// An embedded store with `n` schemas and `n` pipelines.
fn populated(rt: &tokio::runtime::Runtime, n: usize) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    fill(rt, &store, n);
    (dir, store)
}

fn lookup(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = populated(&rt, 100);
    let reg = Registry::new(store, RegistryOptions::default());
    rt.block_on(reg.warm()).unwrap();
    c.bench_function("cached_pipeline lookup (hit)", |b| {
        b.iter(|| reg.cached_pipeline(black_box("bench"), black_box("p57")))
    });
    c.bench_function("cached_pipeline lookup (miss)", |b| {
        b.iter(|| reg.cached_pipeline(black_box("bench"), black_box("nope")))
    });
}

/// Runs `fut`, which must finish without waiting (as `Keys::authenticate` does on a cached
/// key), so that the figure holds no executor.
fn ready<F: Future>(fut: F) -> F::Output {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit waited"),
    }
}

fn authenticate(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let keys = Keys::new(store);
    // 200 keys over 20 tenants in the cache.
    let created = rt.block_on(async {
        let mut created = Vec::new();
        for i in 0..200 {
            let tenant = format!("tenant-{}", i % 20);
            created.push(
                keys.create(&tenant, Role::Client, None, None)
                    .await
                    .unwrap(),
            );
        }
        created
    });
    let token = created[137].token.clone();
    let mut wrong = token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ready(keys.authenticate(&token, now)).is_ok());
    c.bench_function("authenticate (cache hit)", |b| {
        b.iter(|| ready(keys.authenticate(black_box(&token), black_box(now))).unwrap())
    });
    c.bench_function("authenticate (cache hit, wrong secret)", |b| {
        b.iter(|| {
            let r = ready(keys.authenticate(black_box(&wrong), black_box(now)));
            assert_eq!(r, Err(AuthError::Invalid));
        })
    });
}

fn cold_start(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, embedded) = populated(&rt, 1_000);
    let mut stores = vec![("embedded", embedded)];
    // Redis too, when one answers at REDIS_URL (a fresh key prefix, removed afterwards).
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("assay-bench:{}", std::process::id());
    match rt.block_on(registry::RedisStore::connect(&url, &prefix)) {
        Ok(redis) => {
            let redis: Arc<dyn Store> = Arc::new(redis);
            fill(&rt, &redis, 1_000);
            stores.push(("redis", redis));
        }
        Err(e) => eprintln!("SKIPPED the Redis cold start: {e}"),
    }
    let mut group = c.benchmark_group("cold start");
    group.sample_size(10);
    for (name, store) in &stores {
        group.bench_function(
            format!("{name}: warm 1,000 schemas + 1,000 pipelines"),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let reg = Registry::new(store.clone(), RegistryOptions::default());
                        let report = rt.block_on(reg.warm()).unwrap();
                        assert_eq!((report.schemas, report.pipelines), (1_000, 1_000));
                    }
                    start.elapsed()
                })
            },
        );
    }
    group.finish();
    if stores.len() > 1 {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query(&mut con)
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query(&mut con).unwrap();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = lookup, authenticate, cold_start
}
criterion_main!(benches);
