//! API key behaviours every store must show, written once and instantiated per backend by
//! [`store_suite!`], plus the revocation race, tested once on the embedded store.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use registry::{
    AuthError, Change, KeyError, Keys, Kind, NewKey, PutOutcome, Record, RegistryError, Role,
    Store, StoreError, Summary,
};
use tokio::sync::{Notify, broadcast};

use crate::suite::{ORDER, RECORD, TENANT, pipeline_body, registry};

const OTHER: &str = "globex";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The parts of a token: tenant, id, secret.
fn parts(token: &str) -> (&str, &str, &str) {
    let mut p = token.rsplitn(3, '.');
    let (secret, id, rest) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    (rest.strip_prefix("ak1.").unwrap(), id, secret)
}

/// `key`'s token with another tenant.
fn with_tenant(key: &NewKey, tenant: &str) -> String {
    let (_, id, secret) = parts(&key.token);
    format!("ak1.{tenant}.{id}.{secret}")
}

/// `key`'s token with the last character of its secret changed.
fn with_wrong_secret(key: &NewKey) -> String {
    let mut token = key.token.clone();
    let last = token.pop().unwrap();
    token.push(if last == 'A' { 'B' } else { 'A' });
    token
}

/// Runs `fut` to its first await: `Some` if it finished without waiting.
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    match pin!(fut).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Waits up to 1 s for `done`, polling.
async fn within_a_second<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} within 1 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) async fn keys_authenticate_their_tenant_and_role(store: Arc<dyn Store>) {
    let keys = Keys::new(store);
    assert!(keys.is_empty());
    let key = keys
        .create(TENANT, Role::Client, None, Some("ci runner".into()))
        .await
        .unwrap();
    let info = &key.info;
    assert_eq!(
        (info.tenant.as_str(), info.role, info.label.as_deref()),
        (TENANT, Role::Client, Some("ci runner"))
    );
    assert!(info.created_at.abs_diff(now()) <= 2, "{info:?}");
    let (tenant, id, secret) = parts(&key.token);
    assert_eq!((tenant, id), (TENANT, info.id.as_str()));
    assert!(
        id.len() == 16
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    assert_eq!(secret.len(), 43);
    assert!(!keys.is_empty());

    let p = keys.authenticate(&key.token, now()).await.unwrap();
    assert_eq!((&*p.tenant, p.role, &*p.key_id), (TENANT, Role::Client, id));
    // The hot path: a cached key is checked without waiting on anything.
    let hit = poll_once(keys.authenticate(&key.token, now())).expect("a cache hit awaited");
    assert_eq!(hit.unwrap(), p);

    // Tenants may hold dots; tokens are split from the right.
    let dotted = keys
        .create("acme.eu.prod", Role::Admin, None, None)
        .await
        .unwrap();
    let p = keys.authenticate(&dotted.token, now()).await.unwrap();
    assert_eq!((&*p.tenant, p.role), ("acme.eu.prod", Role::Admin));

    assert_eq!(
        keys.authenticate(&with_wrong_secret(&key), now()).await,
        Err(AuthError::Invalid)
    );
    // Another tenant's name on the token: cached under the real one, or not in the store
    // under the forged one; refused either way.
    for tenant in [OTHER, "acme.eu.prod"] {
        assert_eq!(
            keys.authenticate(&with_tenant(&key, tenant), now()).await,
            Err(AuthError::Invalid),
            "{tenant}"
        );
    }
    assert_eq!(
        keys.authenticate(&with_tenant(&dotted, TENANT), now())
            .await,
        Err(AuthError::Invalid)
    );
    let unknown = format!("ak1.{TENANT}.0123456789abcdef.{secret}");
    assert_eq!(
        keys.authenticate(&unknown, now()).await,
        Err(AuthError::Invalid)
    );

    let malformed = [
        String::new(),
        "ak1".into(),
        format!("ak1.{TENANT}"),
        format!("ak1.{TENANT}.{id}"),
        format!("ak1.{id}.{secret}"),
        format!("Bearer {}", key.token),
        format!("ak1.{TENANT}.{}.{secret}", id.to_uppercase()),
        format!("ak1.{TENANT}.{}.{secret}", &id[1..]),
        format!("ak1.{TENANT}.{id}x.{secret}"),
        format!("ak1.{TENANT}.{id}.{}", &secret[1..]),
        format!("{}\n", key.token),
    ];
    for token in &malformed {
        let err = keys.authenticate(token, now()).await.unwrap_err();
        assert_eq!(err, AuthError::Malformed, "{token:?}");
        assert!(!err.to_string().contains(secret), "{err}");
    }
}

pub(crate) async fn keys_expire(store: Arc<dyn Store>) {
    let keys = Keys::new(store);
    let t = now();
    let key = keys
        .create(TENANT, Role::Client, Some(t + 10), None)
        .await
        .unwrap();
    assert_eq!(key.info.expires_at, Some(t + 10));
    assert!(keys.authenticate(&key.token, t + 9).await.is_ok());
    for at in [t + 10, t + 11] {
        assert_eq!(
            keys.authenticate(&key.token, at).await,
            Err(AuthError::Expired),
            "{at}"
        );
    }
    // Only the key's holder learns that it expired.
    assert_eq!(
        keys.authenticate(&with_wrong_secret(&key), t + 11).await,
        Err(AuthError::Invalid)
    );
    // What creation refuses.
    let refused = [
        keys.create(TENANT, Role::Client, Some(t - 1), None).await,
        keys.create(TENANT, Role::Client, None, Some("x".repeat(201)))
            .await,
        keys.create("bad/tenant", Role::Client, None, None).await,
        keys.create("", Role::Admin, None, None).await,
    ];
    for r in refused {
        let err = r.unwrap_err();
        assert!(matches!(err, KeyError::Invalid(_)), "{err}");
        assert_eq!(err.code(), "invalid_request");
    }
    assert!(
        keys.create(TENANT, Role::Client, None, Some("é".repeat(200)))
            .await
            .is_ok()
    );
}

pub(crate) async fn listings_show_one_tenant_and_no_secret(store: Arc<dyn Store>) {
    let keys = Keys::new(store.clone());
    let a1 = keys
        .create(TENANT, Role::Admin, Some(now() + 3600), Some("ops".into()))
        .await
        .unwrap();
    let a2 = keys.create(TENANT, Role::Client, None, None).await.unwrap();
    let b1 = keys.create(OTHER, Role::Client, None, None).await.unwrap();

    let list = keys.list(TENANT).await.unwrap();
    let mut expected = vec![a1.info.clone(), a2.info.clone()];
    expected.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    assert_eq!(list, expected);
    assert_eq!(keys.list(OTHER).await.unwrap(), vec![b1.info.clone()]);
    assert!(keys.list("nobody").await.unwrap().is_empty());
    assert!(matches!(
        keys.list("bad/tenant").await,
        Err(KeyError::Invalid(_))
    ));

    // The store keeps the hash, never the secret; a listing shows neither.
    let json = serde_json::to_string(&list).unwrap();
    for key in [&a1, &a2] {
        let (_, id, secret) = parts(&key.token);
        let record = store
            .get(Kind::Key, TENANT, id, None)
            .await
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_str(&record.body).unwrap();
        let hash = body["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64, "{hash}");
        assert!(!record.body.contains(secret), "{}", record.body);
        assert!(!json.contains(hash), "{json}");
        assert!(!json.contains(secret), "{json}");
    }
    assert!(!json.contains("hash"), "{json}");

    // Stores hand key records to whoever takes a snapshot.
    let snapshot = store.snapshot().await.unwrap();
    let mut ids: Vec<_> = snapshot
        .iter()
        .filter(|r| r.kind == Kind::Key)
        .map(|r| r.name.clone())
        .collect();
    ids.sort();
    let mut want = vec![a1.info.id, a2.info.id, b1.info.id];
    want.sort();
    assert_eq!(ids, want);
}

pub(crate) async fn revocation_is_immediate_and_per_tenant(store: Arc<dyn Store>) {
    let keys = Keys::new(store);
    let a = keys.create(TENANT, Role::Admin, None, None).await.unwrap();
    let b = keys.create(OTHER, Role::Client, None, None).await.unwrap();

    // Another tenant's key id is simply not found, and that key keeps working.
    let err = keys.revoke(OTHER, &a.info.id).await.unwrap_err();
    assert!(matches!(err, KeyError::NotFound(_)), "{err}");
    assert_eq!(err.code(), "not_found");
    assert!(keys.authenticate(&a.token, now()).await.is_ok());

    keys.revoke(TENANT, &a.info.id).await.unwrap();
    assert_eq!(
        keys.authenticate(&a.token, now()).await,
        Err(AuthError::Invalid)
    );
    assert!(matches!(
        keys.revoke(TENANT, &a.info.id).await,
        Err(KeyError::NotFound(_))
    ));
    assert!(keys.list(TENANT).await.unwrap().is_empty());
    // Whatever is passed as an id, a message never repeats a token.
    for id in ["nope", a.token.as_str(), ""] {
        let err = keys.revoke(TENANT, id).await.unwrap_err();
        assert!(matches!(err, KeyError::NotFound(_)), "{err}");
        assert!(!err.to_string().contains(parts(&a.token).2), "{err}");
    }

    assert!(keys.authenticate(&b.token, now()).await.is_ok());
    assert_eq!(keys.len(), 1);
    keys.revoke(OTHER, &b.info.id).await.unwrap();
    assert!(keys.is_empty());
}

/// `a` and `b` are two connections to one store (for the embedded store, the same one).
pub(crate) async fn a_second_instance_sees_keys_and_revocations(
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
) {
    let first = Keys::new(a);
    let second = Arc::new(Keys::new(b.clone()));
    assert_eq!(second.warm().await.unwrap(), 0);
    assert!(second.is_empty());

    // Not following changes yet: the second instance reads the key on its first use.
    let k1 = first
        .create(TENANT, Role::Client, None, None)
        .await
        .unwrap();
    let p = second.authenticate(&k1.token, now()).await.unwrap();
    assert_eq!(&*p.key_id, k1.info.id.as_str());

    tokio::spawn(second.clone().follow_changes());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let k2 = first.create(TENANT, Role::Admin, None, None).await.unwrap();
    within_a_second("a new key reaches the second instance's cache", || {
        let n = second.len();
        async move { n == 2 }
    })
    .await;

    first.revoke(TENANT, &k1.info.id).await.unwrap();
    within_a_second("a revocation reaches the second instance", || {
        let second = second.clone();
        let token = k1.token.clone();
        async move { second.authenticate(&token, now()).await == Err(AuthError::Invalid) }
    })
    .await;
    assert!(second.authenticate(&k2.token, now()).await.is_ok());

    // A third instance starts from what is left.
    let third = Keys::new(b);
    assert_eq!(third.warm().await.unwrap(), 1);
    assert!(
        poll_once(third.authenticate(&k2.token, now()))
            .expect("warmed keys are cached")
            .is_ok()
    );
}

pub(crate) async fn the_registry_ignores_keys(store: Arc<dyn Store>) {
    let keys = Keys::new(store.clone());
    let key = keys.create(TENANT, Role::Admin, None, None).await.unwrap();
    keys.create(OTHER, Role::Client, None, None).await.unwrap();
    let a = registry(store.clone());
    a.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();

    let b = Arc::new(registry(store.clone()));
    let report = b.warm().await.unwrap();
    assert_eq!((report.schemas, report.pipelines, report.failed), (1, 0, 0));
    let names: Vec<_> = b
        .list(Kind::Schema, TENANT)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["order"]);
    assert!(b.list(Kind::Pipeline, TENANT).await.unwrap().is_empty());
    // Key records are not resources: the registry neither shows nor deletes them.
    let id = key.info.id.as_str();
    assert!(matches!(
        b.get(Kind::Key, TENANT, id, None).await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        b.list(Kind::Key, TENANT).await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        b.delete(Kind::Key, TENANT, id).await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(keys.authenticate(&key.token, now()).await.is_ok());

    // Key changes pass a following registry by, and it keeps following.
    tokio::spawn(b.clone().follow_changes());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let extra = keys.create(TENANT, Role::Client, None, None).await.unwrap();
    keys.revoke(TENANT, &extra.info.id).await.unwrap();
    a.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    a.put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    within_a_second("a pipeline reaches the following registry", || {
        let found = b.cached_pipeline(TENANT, "price").is_some();
        async move { found }
    })
    .await;
    assert_eq!(keys.warm().await.unwrap(), 2);
}

/// Regression: a cache miss that read a key just before it was revoked must not cache it
/// after the revocation, which would bring the key back on this instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_in_flight_does_not_undo_a_revocation() {
    let slow = KeyReads::new(0);
    let creator = Keys::new(slow.clone());
    let key = creator
        .create(TENANT, Role::Admin, None, None)
        .await
        .unwrap();

    let keys = Arc::new(Keys::new(slow.clone()));
    slow.hold.store(1, SeqCst);
    let in_flight = tokio::spawn({
        let (keys, token) = (keys.clone(), key.token.clone());
        async move { keys.authenticate(&token, now()).await }
    });
    slow.read.notified().await;
    // The miss has read the record; revoke before it answers.
    keys.revoke(TENANT, &key.info.id).await.unwrap();
    slow.gate.add_permits(1);
    // That request began before the revocation and may pass; nothing after it may.
    assert!(in_flight.await.unwrap().is_ok());
    assert!(keys.is_empty());
    assert_eq!(
        keys.authenticate(&key.token, now()).await,
        Err(AuthError::Invalid)
    );
}

/// A store that counts its reads of keys and can hold reads in flight: each of the next
/// `hold` reads fetches the record, signals `read`, then waits for a permit of `gate` before
/// answering (a read in flight while something else happens).
struct KeyReads {
    inner: Arc<dyn Store>,
    reads: AtomicUsize,
    hold: AtomicUsize,
    read: Notify,
    gate: tokio::sync::Semaphore,
}

impl KeyReads {
    /// A fresh embedded store whose next `hold` key reads are held.
    fn new(hold: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: crate::embedded::fresh(),
            reads: AtomicUsize::new(0),
            hold: AtomicUsize::new(hold),
            read: Notify::new(),
            gate: tokio::sync::Semaphore::new(0),
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(SeqCst)
    }
}

#[async_trait]
impl Store for KeyReads {
    async fn put(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        body: &str,
        uses: &[String],
    ) -> Result<PutOutcome, StoreError> {
        self.inner.put(kind, tenant, name, body, uses).await
    }

    async fn get(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Record>, StoreError> {
        let got = self.inner.get(kind, tenant, name, version).await;
        if kind == Kind::Key {
            self.reads.fetch_add(1, SeqCst);
            if self
                .hold
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                self.read.notify_one();
                self.gate.acquire().await.unwrap().forget();
            }
        }
        got
    }

    async fn list(&self, kind: Kind, tenant: &str) -> Result<Vec<Summary>, StoreError> {
        self.inner.list(kind, tenant).await
    }

    async fn delete(&self, kind: Kind, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.inner.delete(kind, tenant, name).await
    }

    async fn snapshot(&self) -> Result<Vec<Record>, StoreError> {
        self.inner.snapshot().await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}

/// A well-formed token for a key that does not exist.
fn bogus(i: usize) -> String {
    format!("ak1.{TENANT}.{i:016x}.{}", "A".repeat(43))
}

/// Repeating a made-up (or revoked) key must not cost a store read each time.
#[tokio::test]
async fn an_unknown_id_is_read_from_the_store_once() {
    let store = KeyReads::new(0);
    let keys = Keys::new(store.clone());
    for _ in 0..3 {
        assert_eq!(
            keys.authenticate(&bogus(7), now()).await,
            Err(AuthError::Invalid)
        );
    }
    assert_eq!(store.reads(), 1);
    // A revoked key is as unknown as a made-up one after its first miss.
    let key = keys.create(TENANT, Role::Client, None, None).await.unwrap();
    keys.revoke(TENANT, &key.info.id).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            keys.authenticate(&key.token, now()).await,
            Err(AuthError::Invalid)
        );
    }
    assert_eq!(store.reads(), 2);
    // A real key made by another instance is read (and then cached) as before.
    let other = Keys::new(store.clone());
    let fresh = other
        .create(TENANT, Role::Client, None, None)
        .await
        .unwrap();
    assert!(keys.authenticate(&fresh.token, now()).await.is_ok());
    assert!(keys.authenticate(&fresh.token, now()).await.is_ok());
    assert_eq!(store.reads(), 3);
}

/// A flood of made-up ids reaches the store a bounded number at a time: beyond that an
/// uncached id is answered "unavailable" without a read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reads_for_unknown_ids_are_bounded() {
    let store = KeyReads::new(usize::MAX);
    let keys = Arc::new(Keys::new(store.clone()));
    let waiting: Vec<_> = (0..32)
        .map(|i| {
            let keys = keys.clone();
            tokio::spawn(async move { keys.authenticate(&bogus(i), now()).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.reads() < 32 {
        assert!(
            Instant::now() < deadline,
            "only {} reads started",
            store.reads()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        keys.authenticate(&bogus(99), now()).await,
        Err(AuthError::Unavailable(_))
    ));
    assert_eq!(store.reads(), 32, "the refused one did not read");
    store.gate.add_permits(64);
    for w in waiting {
        assert_eq!(w.await.unwrap(), Err(AuthError::Invalid));
    }
}
