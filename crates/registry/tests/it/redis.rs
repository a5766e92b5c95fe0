//! The Redis store: the shared suite, several instances on one Redis, and a Redis outage.
//!
//! Redis is found (or started, or the tests skipped) as `testkit::redis` describes. Each test
//! works under its own key prefix and deletes its keys at the end, so tests run in parallel
//! and leave a shared Redis as they found it. The outage test always runs its own
//! `redis-server`, so that stopping it disturbs nobody.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use engine::Outcome;
use registry::{
    Change, Kind, PutOutcome, Record, RedisStore, RegistryError, Store, StoreError, Summary,
};
use testkit::redis::{RedisServer, free_port, have_redis_server, loud, redis_url, unique_prefix};
use tokio::sync::broadcast;

use crate::suite::{ORDER, RECORD, TENANT, pipeline_body, process, registry};

/// Names this suite in the loud messages of `testkit::redis`.
const SUITE: &str = "registry Redis tests";

/// Deletes every key under a prefix when dropped.
struct Cleanup {
    url: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Blocking, and possibly on an executor thread while a runtime shuts down: fine in a
        // test, and the reason this uses the synchronous client.
        let purge = || -> ::redis::RedisResult<()> {
            let client = ::redis::Client::open(self.url.as_str())?;
            let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = ::redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}:*", self.prefix))
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut con)?;
                if !keys.is_empty() {
                    ::redis::cmd("DEL").arg(keys).query::<()>(&mut con)?;
                }
                if next == 0 {
                    return Ok(());
                }
                cursor = next;
            }
        };
        if let Err(e) = purge() {
            loud(
                SUITE,
                &format!("could not delete the keys under {}: {e}", self.prefix),
            );
        }
    }
}

/// A Redis store that deletes its keys when dropped; the suite only hands out `Arc<dyn
/// Store>`, so the cleanup has to travel with the store.
struct Scoped {
    store: RedisStore,
    _cleanup: Cleanup,
}

#[async_trait]
impl Store for Scoped {
    async fn put(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        body: &str,
        uses: &[String],
    ) -> Result<PutOutcome, StoreError> {
        self.store.put(kind, tenant, name, body, uses).await
    }

    async fn get(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Record>, StoreError> {
        self.store.get(kind, tenant, name, version).await
    }

    async fn list(&self, kind: Kind, tenant: &str) -> Result<Vec<Summary>, StoreError> {
        self.store.list(kind, tenant).await
    }

    async fn delete(&self, kind: Kind, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.store.delete(kind, tenant, name).await
    }

    async fn snapshot(&self) -> Result<Vec<Record>, StoreError> {
        self.store.snapshot().await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.store.changes()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

/// A fresh store under its own prefix on the shared Redis; `None` to skip.
async fn fresh() -> Option<Arc<dyn Store>> {
    let url = redis_url(SUITE).await?;
    let prefix = unique_prefix();
    let store = RedisStore::connect(&url, &prefix).await.unwrap();
    Some(Arc::new(Scoped {
        store,
        _cleanup: Cleanup { url, prefix },
    }))
}

/// Two connections to one fresh prefix, as two instances would have; `None` to skip.
async fn fresh_pair() -> Option<(Arc<dyn Store>, Arc<dyn Store>)> {
    let url = redis_url(SUITE).await?;
    let prefix = unique_prefix();
    let a = RedisStore::connect(&url, &prefix).await.unwrap();
    let b = RedisStore::connect(&url, &prefix).await.unwrap();
    Some((
        Arc::new(Scoped {
            store: a,
            _cleanup: Cleanup { url, prefix },
        }),
        Arc::new(b),
    ))
}

mod suite {
    store_suite!(
        match super::fresh().await {
            Some(store) => store,
            None => return,
        },
        match super::fresh_pair().await {
            Some(pair) => pair,
            None => return,
        }
    );
}

/// Waits up to `within` for `done`, polling.
async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next change on `rx`, if one comes within `within`.
async fn next_change(rx: &mut broadcast::Receiver<Change>, within: Duration) -> Option<Change> {
    tokio::time::timeout(within, rx.recv())
        .await
        .ok()
        .map(|c| c.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_when_redis_is_unreachable() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let err = RedisStore::connect(&url, "assay-test:nothing")
        .await
        .err()
        .expect("connected to nothing");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("registry unavailable"), "{err}");
}

/// The scripts publish exactly `Change::to_message`'s text, to every instance on the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_instance_as_change_messages() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let prefix = unique_prefix();
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let a = RedisStore::connect(&url, &prefix).await.unwrap();
    let b = RedisStore::connect(&url, &prefix).await.unwrap();
    let (mut ra, mut rb) = (a.changes(), b.changes());
    let within = Duration::from_secs(1);
    assert_eq!(
        a.put(Kind::Schema, TENANT, "s", "{}", &[]).await.unwrap(),
        PutOutcome::Created(1)
    );
    let put = Change::Put {
        kind: Kind::Schema,
        tenant: TENANT.into(),
        name: "s".into(),
        version: 1,
    };
    assert_eq!(next_change(&mut ra, within).await, Some(put.clone()));
    assert_eq!(next_change(&mut rb, within).await, Some(put));
    // An unchanged put stores and announces nothing.
    assert_eq!(
        b.put(Kind::Schema, TENANT, "s", "{}", &[]).await.unwrap(),
        PutOutcome::Unchanged(1)
    );
    assert!(b.delete(Kind::Schema, TENANT, "s").await.unwrap());
    let deleted = Change::Deleted {
        kind: Kind::Schema,
        tenant: TENANT.into(),
        name: "s".into(),
    };
    assert_eq!(next_change(&mut ra, within).await, Some(deleted.clone()));
    assert_eq!(next_change(&mut rb, within).await, Some(deleted));
    // Nothing is left behind: the name, its versions, the tenant's entry in the index.
    assert!(a.snapshot().await.unwrap().is_empty());
    assert!(a.list(Kind::Schema, TENANT).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_keep_deployments_apart() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let (p, q) = (unique_prefix(), unique_prefix());
    let _cleanup = [&p, &q].map(|prefix| Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    });
    let a = RedisStore::connect(&url, &p).await.unwrap();
    let b = RedisStore::connect(&url, &q).await.unwrap();
    let mut rb = b.changes();
    a.put(Kind::Pipeline, TENANT, "p", "{}", &[]).await.unwrap();
    assert_eq!(a.snapshot().await.unwrap().len(), 1);
    assert!(b.snapshot().await.unwrap().is_empty());
    assert!(b.list(Kind::Pipeline, TENANT).await.unwrap().is_empty());
    assert_eq!(
        b.get(Kind::Pipeline, TENANT, "p", None).await.unwrap(),
        None
    );
    assert_eq!(next_change(&mut rb, Duration::from_millis(300)).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_versions_and_changes() {
    let Some(url) = redis_url(SUITE).await else {
        return;
    };
    let prefix = unique_prefix();
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let a = Arc::new(registry(Arc::new(
        RedisStore::connect(&url, &prefix).await.unwrap(),
    )));
    let b = Arc::new(registry(Arc::new(
        RedisStore::connect(&url, &prefix).await.unwrap(),
    )));
    b.warm().await.unwrap();
    tokio::spawn(b.clone().follow_changes());

    a.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    a.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    a.put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(1),
        "a pipeline registered on A is compiled on B",
        || b.cached_pipeline(TENANT, "price").is_some(),
    )
    .await;
    assert_eq!(
        process(&b, TENANT, "price", r#"{"qty":3.3,"price":0.1}"#)
            .await
            .unwrap(),
        Outcome::Accepted(r#"{"total":0.33}"#.into())
    );

    // Version allocation is atomic across instances.
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let reg = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let body = format!(r#"{{"type":"object","maxProperties":{i}}}"#);
                reg.put_schema(TENANT, "c", body.as_bytes())
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=32).collect::<Vec<_>>());
    for reg in [&a, &b] {
        let list = reg.list(Kind::Schema, TENANT).await.unwrap();
        let c = list.iter().find(|s| s.name == "c").unwrap();
        assert_eq!(c.latest, 32);
    }
}

/// The arguments of a server whose data survives a restart: every write is in the
/// append-only file before Redis answers it.
fn persistent(dir: &Path) -> Vec<String> {
    [
        "--dir",
        dir.to_str().unwrap(),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_fails_fast_serves_the_cache_and_recovers() {
    if !have_redis_server(
        SUITE,
        "a_redis_outage_fails_fast_serves_the_cache_and_recovers",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = persistent(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = RedisServer::start(free_port(), &args).unwrap();
    assert!(
        server.wait_ready().await,
        "private redis-server did not start"
    );
    let url = server.url();
    let prefix = unique_prefix();
    let store_b = Arc::new(RedisStore::connect(&url, &prefix).await.unwrap());
    let a = registry(Arc::new(RedisStore::connect(&url, &prefix).await.unwrap()));
    let b = Arc::new(registry(store_b.clone()));
    a.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    a.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    a.put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    b.warm().await.unwrap();
    assert!(b.ready().await);
    let mut b_changes = store_b.changes();
    tokio::spawn(b.clone().follow_changes());

    server.stop();

    // What is compiled keeps serving.
    for reg in [&a, &*b] {
        assert_eq!(
            process(reg, TENANT, "price", r#"{"qty":3.3,"price":0.1}"#)
                .await
                .unwrap(),
            Outcome::Accepted(r#"{"total":0.33}"#.into())
        );
    }
    // Writes, and reads the cache cannot answer, fail fast and say why.
    let fast = Duration::from_secs(2);
    let started = Instant::now();
    let err = a
        .put_schema(TENANT, "outage", ORDER.as_bytes())
        .await
        .unwrap_err();
    assert!(started.elapsed() < fast, "{:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err}");
    assert!(err.to_string().starts_with("registry unavailable"), "{err}");
    let started = Instant::now();
    let err = a
        .put_pipeline(TENANT, "price", br#"{"transform":"{total: 0}"}"#)
        .await
        .unwrap_err();
    assert!(started.elapsed() < fast, "{:?}", started.elapsed());
    assert!(matches!(err, RegistryError::Unavailable(_)), "{err}");
    let started = Instant::now();
    assert!(matches!(
        b.get(Kind::Schema, TENANT, "order", None).await,
        Err(RegistryError::Unavailable(_))
    ));
    assert!(matches!(
        a.delete(Kind::Pipeline, TENANT, "price").await,
        Err(RegistryError::Unavailable(_))
    ));
    assert!(!b.ready().await);
    assert!(started.elapsed() < fast * 3, "{:?}", started.elapsed());

    assert!(server.restart());
    assert!(server.wait_ready().await, "redis-server did not restart");

    // Writes work again without restarting anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    let registered = loop {
        match a
            .put_pipeline(TENANT, "price", br#"{"transform":"{total: 0}"}"#)
            .await
        {
            Ok(r) => break r,
            Err(RegistryError::Unavailable(e)) if Instant::now() < deadline => {
                eprintln!("still unavailable: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("writes did not recover: {e}"),
        }
    };
    // Version 1 survived the restart, so this is version 2.
    assert_eq!((registered.version, registered.created), (2, true));

    // The follower re-subscribed and was told to reload.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_change(&mut b_changes, left).await {
            Some(Change::Resync) => break,
            Some(_) => {}
            None => panic!("no resync after Redis came back"),
        }
    }
    eventually(
        Duration::from_secs(5),
        "B converges on the version registered after the restart",
        || {
            b.cached_pipeline(TENANT, "price")
                .is_some_and(|p| p.version == 2)
        },
    )
    .await;
    assert!(b.ready().await);
    // What was registered before the outage is still there; what failed was not stored.
    assert_eq!(
        b.get(Kind::Schema, TENANT, "order", Some(1))
            .await
            .unwrap()
            .version,
        1
    );
    assert!(matches!(
        b.get(Kind::Schema, TENANT, "outage", None).await,
        Err(RegistryError::NotFound { .. })
    ));
    // The server, its data directory and so every key go away with the test.
}
