//! API keys: the credentials of tenants, stored as records in the registry's [`Store`] and
//! checked on every request from an in-memory cache.
//!
//! # Tokens
//!
//! A client sends `Authorization: Bearer ak1.{tenant}.{id}.{secret}`:
//! - `ak1` names the format, so that a later one can be told apart;
//! - `tenant` owns the key (a name as `model::check_name` allows, so it may contain `.`:
//!   tokens are split from the right, where the other parts never hold a `.`);
//! - `id` is 16 lowercase hex digits (8 random bytes): the key's name in the store. It is not
//!   secret; listings and logs show it;
//! - `secret` is 32 random bytes in base64url without padding (43 characters).
//!
//! [`Keys::create`] returns the token once; the store keeps only the lowercase hex SHA-256
//! of the secret (of its 43 characters, as sent).
//!
//! # Why a fast hash is enough
//!
//! Passwords are stored with slow hashes (argon2, bcrypt) because people choose guessable
//! ones: slowing every guess is what protects a leaked hash. A secret here is 256 bits from
//! the operating system's random source, so there is nothing to guess from: finding a secret
//! from its SHA-256 means searching 2^256 candidates, out of reach however fast each hash is.
//! A key derivation function would add nothing but tens of milliseconds of CPU to every
//! request. The digest is compared in constant time (`subtle`), so that timing says nothing
//! about how much of a wrong secret matched.
//!
//! # Records
//!
//! A key is the record `Kind::Key`, tenant, id, stored with `Store::put(Kind::Key, tenant,
//! id, body, &[])`; its body is JSON: `id`, `tenant`, `role` (`admin` or `client`), `hash`,
//! `created_at` and optionally `expires_at` (unix seconds) and `label`. Revoking a key
//! deletes the record. Ids are 64 random bits and creation does not check for a clash (a
//! tenant would need billions of keys before one became likely).
//!
//! # The cache
//!
//! Every key of every tenant is kept in memory, by id, in an immutable map behind `ArcSwap`
//! (as `cache` does for compiled resources). [`Keys::authenticate`] on a cached key parses the
//! token, hashes the secret, probes the map and compares: no lock, no await, no allocation.
//! A key that is not cached is read from the store once and cached, so a key created on
//! another instance works before its change arrives.
//!
//! # Unknown ids
//!
//! An id the store does not hold is remembered as missing (up to 10,000 of them; the memory
//! is cleared when full), so repeating a bogus or revoked key costs no store read. That hides
//! no real key: a key's token exists only once its record is stored, so no id can be missing
//! when first asked about and exist later, short of a 64-bit collision (and a key stored or
//! loaded here is forgotten as missing anyway). A flood of made-up ids still reaches the
//! store, but at most 32 reads at a time: beyond that an uncached id is answered
//! `Unavailable` (503, retry) without a read, so the store is not overwhelmed.
//!
//! [`Keys::follow_changes`] keeps the cache in step with the store as `Registry` does: a
//! `Put` loads the key, a `Deleted` drops it at once, a resync (or a lagging receiver) reloads
//! everything. Revoking on this instance drops the key from its cache before returning.
//!
//! A revocation must never be undone by a read that started before it (a cache miss or a
//! reload that read the key, then cached it after the key was dropped). So every removal
//! bumps a counter, under the mutex that serialises cache writers; a load notes the counter
//! before reading the store and caches what it read only if no removal happened since.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::RecvError;

use crate::model::{self, Change, Kind, Record};
use crate::store::{Store, StoreError};

/// What every token starts with: the format's name and a dot.
const TOKEN_PREFIX: &str = "ak1.";
/// Random bytes in an id, and its length in hex digits.
const ID_BYTES: usize = 8;
const ID_LEN: usize = 2 * ID_BYTES;
/// Random bytes in a secret, and its length in unpadded base64.
const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43;
/// The longest token: a 128-character tenant and the fixed-size parts.
const MAX_TOKEN_LEN: usize = TOKEN_PREFIX.len() + 128 + 1 + ID_LEN + 1 + SECRET_LEN;
/// The longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 200;
/// How often [`Keys::warm`] tries again when revocations land while it reads the store.
const WARM_ATTEMPTS: usize = 5;
/// Most ids remembered as not existing; the memory is cleared when it is full.
const MAX_MISSING: usize = 10_000;
/// Most store reads for uncached ids at once; more are answered "unavailable" at once.
const MAX_LOOKUPS: usize = 32;

/// What a key may do; the server decides what each role is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Administers its tenant.
    Admin,
    /// Uses its tenant's pipelines and schemas.
    Client,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Admin, Role::Client];

    /// The lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| KeyError::Invalid(format!("unknown role {s:?}: use admin or client")))
    }
}

/// What a listing shows of a key: never its hash, never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// 16 lowercase hex digits; not secret.
    pub id: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// What the key may do.
    pub role: Role,
    /// When it was created, in unix seconds.
    pub created_at: u64,
    /// When it stops working, in unix seconds, if ever.
    pub expires_at: Option<u64>,
    /// A note for people, up to [`MAX_LABEL_CHARS`] characters.
    pub label: Option<String>,
}

/// A key just created: its description and its token, which is shown this once and never
/// stored. `Debug` does not print the token.
#[derive(Clone)]
pub struct NewKey {
    /// What listings will show of it.
    pub info: KeyInfo,
    /// `ak1.{tenant}.{id}.{secret}`, for `Authorization: Bearer`.
    pub token: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("info", &self.info)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Who a request authenticated as. The strings are shared with the cache, so that
/// authenticating allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The tenant the request acts for.
    pub tenant: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// The id of the key it used (for logs and audits).
    pub key_id: Arc<str>,
}

/// Errors of key management, each meant to be shown to the caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A bad tenant, role, label or expiry.
    #[error("{0}")]
    Invalid(String),
    /// The tenant has no key with that id.
    #[error("{0}")]
    NotFound(String),
    /// The store cannot be reached (or gives no randomness).
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The store holds a key record that cannot be read.
    #[error("registry data is corrupt: {0}")]
    Corrupt(String),
}

impl KeyError {
    /// A stable machine-readable code (the same codes as `RegistryError::code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::NotFound(_) => "not_found",
            Self::Unavailable(_) => "registry_unavailable",
            Self::Corrupt(_) => "registry_corrupt",
        }
    }
}

impl From<StoreError> for KeyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Corrupt(m) => Self::Corrupt(m),
            // Keys use nothing and nothing uses them: the store found something else
            // under a key's name.
            e @ (StoreError::InUse { .. } | StoreError::MissingRef { .. }) => {
                Self::Corrupt(e.to_string())
            }
        }
    }
}

/// Why a token was refused. `Malformed`, `Invalid` and `Expired` mean "not authenticated"
/// (HTTP 401); `Unavailable` means the answer is unknown for now (503). No message holds any
/// part of the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Not of the form `ak1.{tenant}.{id}.{secret}`.
    #[error("malformed API key: expected ak1.{{tenant}}.{{id}}.{{secret}}")]
    Malformed,
    /// No such key, a wrong secret, or a key of another tenant.
    #[error("invalid API key")]
    Invalid,
    /// The key (with the right secret) has expired.
    #[error("API key expired")]
    Expired,
    /// The key is not cached and the store cannot be read.
    #[error("cannot check the API key now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "key_malformed",
            Self::Invalid => "key_invalid",
            Self::Expired => "key_expired",
            Self::Unavailable(_) => "registry_unavailable",
        }
    }
}

/// A key record as stored (see "Records" in the module doc).
#[derive(Serialize, Deserialize)]
struct StoredKey {
    id: String,
    tenant: String,
    role: Role,
    hash: String,
    created_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

impl StoredKey {
    /// Reads a record, checking that it is filed under its own tenant and id.
    fn from_record(r: &Record) -> Result<Self, KeyError> {
        let corrupt =
            |why: String| KeyError::Corrupt(format!("key record {}/{}: {why}", r.tenant, r.name));
        let k: Self = serde_json::from_str(&r.body).map_err(|e| corrupt(e.to_string()))?;
        if k.id != r.name || k.tenant != r.tenant {
            return Err(corrupt("filed under another tenant or id".into()));
        }
        Ok(k)
    }

    fn info(&self) -> KeyInfo {
        KeyInfo {
            id: self.id.clone(),
            tenant: self.tenant.clone(),
            role: self.role,
            created_at: self.created_at,
            expires_at: self.expires_at,
            label: self.label.clone(),
        }
    }

    fn entry(&self) -> Result<Entry, KeyError> {
        let hash = from_hex32(&self.hash).ok_or_else(|| {
            KeyError::Corrupt(format!(
                "key record {}/{}: the hash is not 64 hex digits",
                self.tenant, self.id
            ))
        })?;
        Ok(Entry {
            id: self.id.as_str().into(),
            tenant: self.tenant.as_str().into(),
            role: self.role,
            hash,
            expires_at: self.expires_at,
        })
    }
}

/// What the cache keeps of a key: what authentication needs.
#[derive(Clone)]
struct Entry {
    id: Arc<str>,
    tenant: Arc<str>,
    role: Role,
    hash: [u8; 32],
    expires_at: Option<u64>,
}

impl Entry {
    fn from_record(r: &Record) -> Result<Self, KeyError> {
        StoredKey::from_record(r)?.entry()
    }

    /// Checks a token against this key.
    fn admit(
        &self,
        token: &Token<'_>,
        digest: &[u8; 32],
        now: u64,
    ) -> Result<Principal, AuthError> {
        let secret_ok: bool = digest[..].ct_eq(&self.hash[..]).into();
        // The id is not secret, so neither is whether the tenant matches.
        if !secret_ok || *self.tenant != *token.tenant {
            return Err(AuthError::Invalid);
        }
        // Only after the secret matched: expiry is told to the key's holder alone.
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        Ok(Principal {
            tenant: self.tenant.clone(),
            role: self.role,
            key_id: self.id.clone(),
        })
    }
}

// foldhash, as in `cache`: ids are random and a lookup is on every request.
type Entries = HashMap<Arc<str>, Entry, foldhash::fast::RandomState>;

/// The parts of a well-formed token, borrowed from it.
struct Token<'a> {
    tenant: &'a str,
    id: &'a str,
    secret: &'a str,
}

impl<'a> Token<'a> {
    fn parse(token: &'a str) -> Result<Self, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let rest = token
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(AuthError::Malformed)?;
        // From the right: the tenant is the only part that may hold a dot.
        let mut parts = rest.rsplitn(3, '.');
        let (Some(secret), Some(id), Some(tenant)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        if !is_id(id) || !is_secret(secret) || !model::is_name(tenant) {
            return Err(AuthError::Malformed);
        }
        Ok(Self { tenant, id, secret })
    }
}

fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_secret(s: &str) -> bool {
    s.len() == SECRET_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// The API keys of every tenant, over a store, with the cache described in the module doc.
pub struct Keys {
    store: Arc<dyn Store>,
    cache: ArcSwap<Entries>,
    /// Serialises cache writers, and counts removals (see "The cache" in the module doc).
    /// Readers never take it.
    removals: Mutex<u64>,
    /// Ids the store was asked about and did not hold (see "Unknown ids" in the module doc).
    missing: Mutex<HashSet<Box<str>>>,
    /// Bounds the store reads for uncached ids in flight.
    lookups: tokio::sync::Semaphore,
}

impl Keys {
    /// Keys over `store`, with an empty cache: call [`Keys::warm`] to fill it.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: ArcSwap::from_pointee(Entries::default()),
            removals: Mutex::new(0),
            missing: Mutex::new(HashSet::new()),
            lookups: tokio::sync::Semaphore::new(MAX_LOOKUPS),
        }
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.cache.load().len()
    }

    /// Whether no key is cached: after [`Keys::warm`], whether there are no keys at all.
    pub fn is_empty(&self) -> bool {
        self.cache.load().is_empty()
    }

    /// Loads every key record from the store into the cache, replacing what it held;
    /// returns how many were loaded. A record that cannot be read is logged and left out
    /// (that key does not work until it is fixed or revoked).
    pub async fn warm(&self) -> Result<usize, KeyError> {
        for _ in 0..WARM_ATTEMPTS {
            let seen = self.removal_count();
            let records = self.store.snapshot().await?;
            let mut entries = Entries::default();
            for r in &records {
                match r.kind {
                    Kind::Key => match Entry::from_record(r) {
                        Ok(e) => {
                            entries.insert(e.id.clone(), e);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, tenant = %r.tenant, key_id = %r.name, "unreadable API key record left out");
                        }
                    },
                    Kind::Schema | Kind::Pipeline => {}
                }
            }
            let n = entries.len();
            let mut removals = self.lock();
            // A key revoked while the snapshot was read may be in it: read again.
            if *removals == seen {
                self.cache.store(Arc::new(entries));
                // Replacing is not a removal, but a load that started before it must not
                // bring back a key the snapshot no longer holds.
                *removals += 1;
                return Ok(n);
            }
        }
        Err(KeyError::Unavailable(
            "API keys kept being revoked while they were reloaded".into(),
        ))
    }

    /// Keeps the cache in step with the store's changes until the store's channel closes.
    /// A missed change (a lagging receiver, a reconnect) reloads every key; while the store
    /// is down, the reload is tried every 500 ms.
    pub async fn follow_changes(self: Arc<Self>) {
        let mut rx = self.store.changes();
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => Change::Resync,
                Err(RecvError::Closed) => return,
            };
            if let Err(e) = self.apply(&change).await {
                tracing::warn!(error = %e, change = ?change, "could not apply an API key change; reloading the keys");
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if self.warm().await.is_ok() {
                        break;
                    }
                }
            }
        }
    }

    async fn apply(&self, change: &Change) -> Result<(), KeyError> {
        match change {
            Change::Put {
                kind: Kind::Key,
                tenant,
                name,
                ..
            } => {
                // None: deleted again since; the deletion's own change follows.
                self.load(tenant, name).await?;
            }
            Change::Deleted {
                kind: Kind::Key,
                tenant,
                name,
            } => self.remove(tenant, name),
            Change::Put {
                kind: Kind::Schema | Kind::Pipeline,
                ..
            }
            | Change::Deleted {
                kind: Kind::Schema | Kind::Pipeline,
                ..
            } => {}
            Change::Resync => {
                self.warm().await?;
            }
        }
        Ok(())
    }

    /// Creates a key for `tenant` and caches it at once. `expires_at` (unix seconds) must be
    /// in the future; `label` is at most [`MAX_LABEL_CHARS`] characters, without control
    /// characters. The returned token is the only copy of the secret.
    pub async fn create(
        &self,
        tenant: &str,
        role: Role,
        expires_at: Option<u64>,
        label: Option<String>,
    ) -> Result<NewKey, KeyError> {
        model::check_tenant(tenant).map_err(|e| KeyError::Invalid(e.to_string()))?;
        if let Some(label) = &label {
            check_label(label)?;
        }
        let created_at = unix_now();
        if let Some(at) = expires_at
            && at <= created_at
        {
            return Err(KeyError::Invalid(format!(
                "expires_at {at} is not in the future (now is {created_at})"
            )));
        }
        let id = to_hex(&random::<ID_BYTES>()?);
        let secret = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);
        let stored = StoredKey {
            hash: to_hex(&Sha256::digest(secret.as_bytes())),
            id,
            tenant: tenant.to_owned(),
            role,
            created_at,
            expires_at,
            label,
        };
        let body = serde_json::to_string(&stored)
            .map_err(|e| KeyError::Invalid(format!("cannot store the key: {e}")))?;
        self.store
            .put(Kind::Key, tenant, &stored.id, &body, &[])
            .await?;
        let entry = stored.entry()?;
        self.missing().remove(stored.id.as_str());
        {
            let _writer = self.lock();
            self.insert(entry);
        }
        tracing::info!(tenant, key_id = %stored.id, role = role.as_str(), "API key created");
        Ok(NewKey {
            token: format!("{TOKEN_PREFIX}{tenant}.{}.{secret}", stored.id),
            info: stored.info(),
        })
    }

    /// The keys of `tenant`, read from the store, oldest first (then by id).
    pub async fn list(&self, tenant: &str) -> Result<Vec<KeyInfo>, KeyError> {
        model::check_tenant(tenant).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let ids = self.store.list(Kind::Key, tenant).await?;
        let records = futures::future::try_join_all(
            ids.iter()
                .map(|s| self.store.get(Kind::Key, tenant, &s.name, None)),
        )
        .await?;
        // A key revoked between the two reads is simply not listed.
        let mut infos = records
            .iter()
            .flatten()
            .map(|r| StoredKey::from_record(r).map(|k| k.info()))
            .collect::<Result<Vec<_>, _>>()?;
        infos.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(infos)
    }

    /// Revokes `tenant`'s key `id`: it stops working on this instance before this returns,
    /// and on the others when the change reaches them. [`KeyError::NotFound`] when the
    /// tenant has no such key, whoever else may have one with that id.
    pub async fn revoke(&self, tenant: &str, id: &str) -> Result<(), KeyError> {
        model::check_tenant(tenant).map_err(|e| KeyError::Invalid(e.to_string()))?;
        // Not echoed unless it looks like an id: a whole token pasted here by mistake must
        // not end up in a message.
        if !is_id(id) {
            return Err(KeyError::NotFound(
                "no API key has that id (an id is 16 lowercase hex digits)".into(),
            ));
        }
        if !self.store.delete(Kind::Key, tenant, id).await? {
            return Err(KeyError::NotFound(format!("API key {id:?} not found")));
        }
        self.remove(tenant, id);
        tracing::info!(tenant, key_id = id, "API key revoked");
        Ok(())
    }

    /// Checks a token (`ak1.{tenant}.{id}.{secret}`, without `Bearer `) at `now_unix_secs`.
    /// On a cached key this neither waits nor allocates; otherwise the key is read from the
    /// store once and cached.
    pub async fn authenticate(
        &self,
        token: &str,
        now_unix_secs: u64,
    ) -> Result<Principal, AuthError> {
        let token = Token::parse(token)?;
        let digest: [u8; 32] = Sha256::digest(token.secret.as_bytes()).into();
        if let Some(entry) = self.cache.load().get(token.id) {
            return entry.admit(&token, &digest, now_unix_secs);
        }
        if self.missing().contains(token.id) {
            return Err(AuthError::Invalid);
        }
        let Ok(_lookup) = self.lookups.try_acquire() else {
            return Err(AuthError::Unavailable(
                "too many unknown API keys are being checked at once; retry".into(),
            ));
        };
        match self.load(token.tenant, token.id).await {
            Ok(Some(entry)) => entry.admit(&token, &digest, now_unix_secs),
            Ok(None) => {
                let mut missing = self.missing();
                if missing.len() >= MAX_MISSING {
                    missing.clear();
                }
                missing.insert(token.id.into());
                Err(AuthError::Invalid)
            }
            Err(e) => {
                if let KeyError::Corrupt(_) = e {
                    tracing::warn!(error = %e, "unreadable API key record");
                }
                Err(AuthError::Unavailable(e.to_string()))
            }
        }
    }

    /// Reads one key from the store and caches it, unless a removal happened meanwhile.
    async fn load(&self, tenant: &str, id: &str) -> Result<Option<Entry>, KeyError> {
        let seen = self.removal_count();
        let Some(record) = self.store.get(Kind::Key, tenant, id, None).await? else {
            return Ok(None);
        };
        let entry = Entry::from_record(&record)?;
        self.missing().remove(id);
        let removals = self.lock();
        if *removals == seen {
            self.insert(entry.clone());
        }
        Ok(Some(entry))
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        self.removals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn missing(&self) -> MutexGuard<'_, HashSet<Box<str>>> {
        self.missing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn removal_count(&self) -> u64 {
        *self.lock()
    }

    /// Copies the map with `entry` in it. The caller holds the writer lock.
    fn insert(&self, entry: Entry) {
        let mut next = Entries::clone(&self.cache.load());
        next.insert(entry.id.clone(), entry);
        self.cache.store(Arc::new(next));
    }

    /// Drops `tenant`'s key `id` from the cache, and counts a removal even when it was not
    /// cached (a load of it may be under way).
    fn remove(&self, tenant: &str, id: &str) {
        let mut removals = self.lock();
        *removals += 1;
        let current = self.cache.load_full();
        if current.get(id).is_some_and(|e| *e.tenant == *tenant) {
            let mut next = Entries::clone(&current);
            next.remove(id);
            self.cache.store(Arc::new(next));
        }
    }
}

fn check_label(label: &str) -> Result<(), KeyError> {
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(KeyError::Invalid(format!(
            "the label is longer than {MAX_LABEL_CHARS} characters"
        )));
    }
    // Labels are shown in listings and logs, where a newline could forge a line.
    if label.chars().any(char::is_control) {
        return Err(KeyError::Invalid(
            "the label holds control characters".into(),
        ));
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `N` bytes from the operating system's random source.
fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| KeyError::Unavailable(format!("no system randomness: {e}")))?;
    Ok(bytes)
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)].into());
        s.push(DIGITS[usize::from(b & 15)].into());
    }
    s
}

/// 32 bytes from 64 lowercase hex digits.
fn from_hex32(s: &str) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-";

    #[test]
    fn tokens_are_split_from_the_right() {
        let token = format!("ak1.acme.eu.prod.0123456789abcdef.{SECRET}");
        let t = Token::parse(&token).ok().unwrap();
        assert_eq!(
            (t.tenant, t.id, t.secret),
            ("acme.eu.prod", "0123456789abcdef", SECRET)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let id = "0123456789abcdef";
        let bad = [
            String::new(),
            "ak1.".into(),
            format!("ak1.{id}.{SECRET}"),
            format!("ak2.acme.{id}.{SECRET}"),
            format!("acme.{id}.{SECRET}"),
            format!("ak1.acme.0123456789ABCDEF.{SECRET}"),
            format!("ak1.acme.0123456789abcde.{SECRET}"),
            format!("ak1.acme.{id}.{}", &SECRET[1..]),
            format!("ak1.acme.{id}.{SECRET}A"),
            format!("ak1.acme.{id}.{}+", &SECRET[1..]),
            format!("ak1.ac/me.{id}.{SECRET}"),
            format!("ak1..{id}.{SECRET}"),
            format!("ak1.{}.{id}.{SECRET}", "a".repeat(129)),
            format!(" ak1.acme.{id}.{SECRET}"),
        ];
        for token in bad {
            assert!(
                matches!(Token::parse(&token), Err(AuthError::Malformed)),
                "{token:?}"
            );
        }
    }

    #[test]
    fn hex_round_trips() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        let hex = to_hex(&bytes);
        assert_eq!(hex.len(), 64);
        assert_eq!(from_hex32(&hex), Some(bytes));
        assert_eq!(from_hex32(&hex.to_uppercase()), None);
        assert_eq!(from_hex32(&hex[2..]), None);
        assert_eq!(to_hex(&[0x0f, 0xa0]), "0fa0");
    }

    #[test]
    fn roles_parse_and_name_the_valid_ones() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
            assert_eq!(r.to_string(), r.as_str());
        }
        let err = "root".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("admin") && err.contains("client"), "{err}");
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), r#""admin""#);
    }

    #[test]
    fn secrets_stay_out_of_debug_and_messages() {
        let key = NewKey {
            info: KeyInfo {
                id: "0123456789abcdef".into(),
                tenant: "acme".into(),
                role: Role::Client,
                created_at: 1,
                expires_at: None,
                label: None,
            },
            token: format!("ak1.acme.0123456789abcdef.{SECRET}"),
        };
        assert!(!format!("{key:?}").contains(SECRET));
        for e in [AuthError::Malformed, AuthError::Invalid, AuthError::Expired] {
            assert!(!e.to_string().contains(SECRET));
        }
    }

    #[test]
    fn labels_are_checked() {
        assert!(check_label(&"é".repeat(MAX_LABEL_CHARS)).is_ok());
        assert!(check_label(&"a".repeat(MAX_LABEL_CHARS + 1)).is_err());
        assert!(check_label("two\nlines").is_err());
    }

    #[test]
    fn the_secret_length_matches_the_encoding() {
        assert_eq!(
            URL_SAFE_NO_PAD.encode([0u8; SECRET_BYTES]).len(),
            SECRET_LEN
        );
    }
}
