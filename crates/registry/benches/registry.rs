//! Registry benchmarks: the hot-path lookup of a compiled pipeline, and the cold start of an
//! instance over 1,000 schemas and 1,000 pipelines on the embedded store.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use registry::{EmbeddedStore, Registry, RegistryOptions, Store};

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

/// A store with `n` schemas and `n` pipelines.
fn populated(rt: &tokio::runtime::Runtime, n: usize) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
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

fn cold_start(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = populated(&rt, 1_000);
    let mut group = c.benchmark_group("cold start");
    group.sample_size(10);
    group.bench_function("warm 1,000 schemas + 1,000 pipelines", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let reg = Registry::new(store.clone(), RegistryOptions::default());
                let report = rt.block_on(reg.warm()).unwrap();
                assert_eq!((report.schemas, report.pipelines), (1_000, 1_000));
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = lookup, cold_start
}
criterion_main!(benches);
