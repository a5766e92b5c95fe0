//! The Redis store: the registry shared by every instance that points at the same Redis and
//! key prefix, with changes pushed to all of them through pub/sub.
//!
//! Redis is the one place where versions are allocated, so several instances can register
//! at once; each instance keeps only a compiled cache (see `Registry`). Writes are Lua
//! scripts, which Redis runs one at a time: a script reads, allocates, stores and publishes
//! with nothing interleaved, so no two puts get the same version and no change is stored
//! without its notification (a notification can still be lost on the way: see the
//! invalidation protocol below).
//!
//! # Key layout
//!
//! Every key starts with the prefix given to [`RedisStore::connect`] (`P` below), so that
//! tests and deployments sharing one Redis stay apart. Kinds are `schema`, `pipeline` and
//! `key` (an API key record, named by its id, which uses nothing and nothing uses);
//! tenants and names never contain `:` or spaces (`model::check_name`), so keys cannot
//! collide within a prefix. Do not nest prefixes (`assay` and `assay:prod` on one Redis):
//! with a tenant named like a key word below, their keys could meet.
//!
//! | key                               | type   | holds                                        |
//! |-----------------------------------|--------|----------------------------------------------|
//! | `P:latest:{kind}:{tenant}`        | hash   | name -> newest version (listings, lookups)   |
//! | `P:bodies:{kind}:{tenant}:{name}` | hash   | version -> body (compact JSON)               |
//! | `P:owners:{kind}`                 | set    | tenants with at least one resource of kind   |
//! | `P:users:{tenant}:{schema}`       | set    | `"{kind} {name}"` of each user of a schema   |
//! | `P:uses:{kind}:{tenant}:{name}`   | set    | schemas that any version of a resource uses  |
//! | `P:changes`                       | channel| `Change::to_message` text of every change    |
//!
//! `users` and `uses` are the embedded store's reverse index, one set per schema (or user)
//! instead of one table: a put adds, a delete removes what the deleted resource used.
//!
//! # Scripts
//!
//! - `put(kind, tenant, name, body, uses)` returns `{0, v}` when `body` equals the newest
//!   version `v` (nothing written, nothing published), else stores `body` as version
//!   `newest + 1` (1 for a new name), records the resource as a user of each schema in
//!   `uses`, adds the tenant to `owners`, publishes `put {kind} {tenant} {name} {v}` and
//!   returns `{1, v}`.
//! - `delete(kind, tenant, name)` returns `0` when there is no such resource; for a schema
//!   with users, returns the smallest user (`"{kind} {name}"`, the same one the embedded
//!   store names) and changes nothing; else removes every version, the name, the tenant from
//!   `owners` if it was its last resource of that kind, and the resource from the `users`
//!   sets of what it used, publishes `deleted {kind} {tenant} {name}` and returns `1`.
//! - `get` and `snapshot` are read-only scripts, so that "newest version" and its body are
//!   read at one instant. `snapshot` runs once per kind and tenant, so that one big registry
//!   does not hold Redis in a single long script.
//!
//! `delete` builds the `users` keys of the schemas it used from `P:uses:...` inside the
//! script, which standalone Redis (with or without replicas and Sentinel) allows and
//! Redis Cluster does not: Cluster is not supported.
//!
//! # When Redis is unreachable
//!
//! Every operation fails within [`OP_DEADLINE`] (1 s) with [`StoreError::Unavailable`]; the
//! connection is attempted with a 500 ms timeout and retried once (after 50 to 200 ms), and
//! replies are awaited for 1 s. Reads that fail on a dead connection are retried once on a
//! fresh one; writes are not, because a write whose reply was lost may have been applied.
//! `ping` (readiness) reflects the same. The `ConnectionManager` reconnects by itself when
//! Redis is back; no restart is needed. The first write after an outage can still fail on
//! the connection that died with Redis, unless the subscriber (below) has already replaced
//! it, which it does as soon as it has subscribed again.
//!
//! A write that times out may have been applied, even after the error was returned when
//! Redis was hung rather than gone (Redis runs what it received when it resumes). A caller
//! that registers the same document again gets the existing version back.
//!
//! # Invalidation protocol
//!
//! Each instance compiles what it serves into a local cache; Redis pub/sub tells every
//! instance what changed so that it can reload:
//!
//! 1. The `put` and `delete` scripts publish `put {kind} {tenant} {name} {version}` or
//!    `deleted {kind} {tenant} {name}` on `{prefix}:changes` in the same script that writes,
//!    so Redis never holds a change that was not announced.
//! 2. Each `RedisStore` holds one subscription, made before `connect` returns, and turns
//!    every message into a `Change` on a broadcast channel; `Registry::follow_changes`
//!    reloads the named resource (or drops it on `deleted`). An instance receives its own
//!    changes too, which is harmless.
//! 3. Pub/sub is fire-and-forget: a message published while a subscriber is disconnected
//!    is lost. So when the subscription breaks (the connection closes, or a heartbeat PING
//!    every 2 s goes unanswered for 1 s), the store re-subscribes with exponential backoff
//!    (100 ms doubling to 5 s) and, once subscribed again, sends `Change::Resync`: the
//!    registry reloads everything from a snapshot taken after the new subscription, so
//!    nothing changed in between is missed. A message that cannot be parsed, and a
//!    receiver that lags behind the broadcast channel, are also answered with a resync.
//! 4. While Redis is away, instances keep serving what they have compiled; writes fail with
//!    `registry unavailable` and readiness reports not ready.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};
use redis::{Client, FromRedisValue, RedisError, RedisResult, Script, Value};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::model::{Change, Kind, Record, Summary};
use crate::store::{PutOutcome, Store, StoreError, User};

/// The longest any store operation waits for Redis before reporting it unavailable.
pub const OP_DEADLINE: Duration = Duration::from_secs(1);
/// One TCP connection attempt; the manager makes at most two per operation.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a command waits for its reply on an established connection.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the subscription is checked: a half-open connection (Redis hung, or gone
/// without closing it) delivers nothing and reports nothing.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a heartbeat may take before the subscription counts as lost.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// First pause between re-subscription attempts; it doubles after each failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between re-subscription attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

const PUT: &str = r"
-- KEYS: 1 latest hash, 2 bodies hash, 3 owners set, 4 uses set, 5 the tenant's schema latest
--       hash, 6.. users sets of used schemas
-- ARGV: 1 kind, 2 tenant, 3 name, 4 body, 5 channel, 6.. used schemas (same order as KEYS 6..)
-- Returns {0, v} unchanged, {1, v} created, {2, i} when the i-th used schema no longer exists.
for i = 6, #ARGV do
  if redis.call('HEXISTS', KEYS[5], ARGV[i]) == 0 then
    return {2, i - 5}
  end
end
local newest = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0')
if newest > 0 and redis.call('HGET', KEYS[2], newest) == ARGV[4] then
  return {0, newest}
end
local version = newest + 1
redis.call('HSET', KEYS[2], version, ARGV[4])
redis.call('HSET', KEYS[1], ARGV[3], version)
redis.call('SADD', KEYS[3], ARGV[2])
local user = ARGV[1] .. ' ' .. ARGV[3]
for i = 6, #KEYS do
  redis.call('SADD', KEYS[i], user)
  redis.call('SADD', KEYS[4], ARGV[i])
end
-- Change::to_message's form.
redis.call('PUBLISH', ARGV[5], 'put ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. version)
return {1, version}
";

const DELETE: &str = r"
-- KEYS: 1 latest hash, 2 bodies hash, 3 owners set, 4 uses set, 5 users set of this name
-- ARGV: 1 kind, 2 tenant, 3 name, 4 channel, 5 prefix of this tenant's users keys
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 0 then
  return 0
end
if ARGV[1] == 'schema' then
  local users = redis.call('SMEMBERS', KEYS[5])
  if #users > 0 then
    -- The smallest, as the embedded store (ordered by kind, then name) names.
    table.sort(users)
    return users[1]
  end
end
local user = ARGV[1] .. ' ' .. ARGV[3]
for _, schema in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('SREM', ARGV[5] .. schema, user)
end
redis.call('DEL', KEYS[2], KEYS[4])
redis.call('HDEL', KEYS[1], ARGV[3])
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
end
-- Change::to_message's form.
redis.call('PUBLISH', ARGV[4], 'deleted ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
return 1
";

const GET: &str = r"
-- KEYS: 1 latest hash, 2 bodies hash. ARGV: 1 name, 2 version, or '' for the newest
local version = ARGV[2]
if version == '' then
  version = redis.call('HGET', KEYS[1], ARGV[1])
  if not version then
    return false
  end
end
local body = redis.call('HGET', KEYS[2], version)
if not body then
  return false
end
return {tonumber(version), body}
";

const SNAPSHOT: &str = r"
-- KEYS: 1 latest hash of one kind and tenant. ARGV: 1 prefix of its bodies keys
-- Returns {name, version, body or nil} for every name.
local out = {}
local latest = redis.call('HGETALL', KEYS[1])
for i = 1, #latest, 2 do
  local body = redis.call('HGET', ARGV[1] .. latest[i], latest[i + 1])
  out[#out + 1] = {latest[i], tonumber(latest[i + 1]), body}
end
return out
";

/// A registry store in Redis, shared by every instance using the same Redis and prefix.
pub struct RedisStore {
    con: ConnectionManager,
    keys: Keys,
    put: Script,
    delete: Script,
    get: Script,
    snapshot: Script,
    changes: broadcast::Sender<Change>,
    subscriber: JoinHandle<()>,
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host:port[/db]`) and subscribes
    /// to the changes under `prefix`. Fails with [`StoreError::Unavailable`] when Redis does
    /// not answer within about a second.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        // The URL may hold a password: it is never put into a message.
        let client = Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let con = deadline(ConnectionManager::new_with_config(client.clone(), config)).await?;
        let keys = Keys {
            prefix: prefix.to_owned(),
        };
        let channel = keys.channel();
        // Subscribe before returning, so that a change made right after `connect` is seen.
        let subscription = deadline(subscribe(&client, &channel)).await?;
        let changes = broadcast::channel(1024).0;
        let subscriber = tokio::spawn(follow(
            client,
            con.clone(),
            channel,
            changes.clone(),
            subscription,
        ));
        Ok(Self {
            con,
            keys,
            put: Script::new(PUT),
            delete: Script::new(DELETE),
            get: Script::new(GET),
            snapshot: Script::new(SNAPSHOT),
            changes,
            subscriber,
        })
    }

    /// Runs a read, retrying it once on a fresh connection when the one it used was dead
    /// (a Redis restart leaves the manager's connection closed until a command notices).
    async fn read<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        deadline(async {
            match op(self.con.clone()).await {
                Err(e) if e.is_io_error() && !e.is_timeout() => op(self.con.clone()).await,
                other => other,
            }
        })
        .await
    }

    /// The newest versions of one kind and tenant, read at one instant.
    async fn snapshot_of(&self, kind: Kind, tenant: String) -> Result<Vec<Record>, StoreError> {
        let mut inv = self.snapshot.prepare_invoke();
        inv.key(self.keys.latest(kind, &tenant))
            .arg(self.keys.bodies_of(kind, &tenant));
        let inv = &inv;
        let value: Value = self
            .read(|mut con| async move { inv.invoke_async(&mut con).await })
            .await?;
        let rows: Vec<(String, u32, Option<String>)> = decode(value)?;
        rows.into_iter()
            .map(|(name, version, body)| {
                let body = body.ok_or_else(|| {
                    StoreError::Corrupt(format!("{kind} {tenant}/{name} v{version} is missing"))
                })?;
                Ok(Record {
                    kind,
                    tenant: tenant.clone(),
                    name,
                    version,
                    body,
                })
            })
            .collect()
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // The subscriber holds a sender: stopping it closes the channel for followers.
        self.subscriber.abort();
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        body: &str,
        uses: &[String],
    ) -> Result<PutOutcome, StoreError> {
        let mut inv = self.put.prepare_invoke();
        inv.key(self.keys.latest(kind, tenant))
            .key(self.keys.bodies(kind, tenant, name))
            .key(self.keys.owners(kind))
            .key(self.keys.uses(kind, tenant, name))
            .key(self.keys.latest(Kind::Schema, tenant));
        for schema in uses {
            inv.key(self.keys.users(tenant, schema));
        }
        inv.arg(kind.as_str())
            .arg(tenant)
            .arg(name)
            .arg(body)
            .arg(self.keys.channel());
        for schema in uses {
            inv.arg(schema);
        }
        // Not retried: a put whose reply was lost may have been stored (see the module doc).
        let mut con = self.con.clone();
        let value: Value = deadline(inv.invoke_async(&mut con)).await?;
        match decode::<(u8, u32)>(value)? {
            (0, v) => Ok(PutOutcome::Unchanged(v)),
            (1, v) => Ok(PutOutcome::Created(v)),
            (_, i) => Err(StoreError::MissingRef {
                name: uses.get(i as usize - 1).cloned().unwrap_or_default(),
            }),
        }
    }

    async fn get(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Record>, StoreError> {
        let mut inv = self.get.prepare_invoke();
        inv.key(self.keys.latest(kind, tenant))
            .key(self.keys.bodies(kind, tenant, name))
            .arg(name)
            .arg(version.map(|v| v.to_string()).unwrap_or_default());
        let inv = &inv;
        let value: Value = self
            .read(|mut con| async move { inv.invoke_async(&mut con).await })
            .await?;
        Ok(
            decode::<Option<(u32, String)>>(value)?.map(|(version, body)| Record {
                kind,
                tenant: tenant.to_owned(),
                name: name.to_owned(),
                version,
                body,
            }),
        )
    }

    async fn list(&self, kind: Kind, tenant: &str) -> Result<Vec<Summary>, StoreError> {
        let key = self.keys.latest(kind, tenant);
        let key = &key;
        let value: Value = self
            .read(
                |mut con| async move { redis::cmd("HGETALL").arg(key).query_async(&mut con).await },
            )
            .await?;
        // A BTreeMap orders names by their bytes, as the embedded store's keys do.
        let latest: std::collections::BTreeMap<String, u32> = decode(value)?;
        Ok(latest
            .into_iter()
            .map(|(name, latest)| Summary { name, latest })
            .collect())
    }

    async fn delete(&self, kind: Kind, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let mut inv = self.delete.prepare_invoke();
        inv.key(self.keys.latest(kind, tenant))
            .key(self.keys.bodies(kind, tenant, name))
            .key(self.keys.owners(kind))
            .key(self.keys.uses(kind, tenant, name))
            .key(self.keys.users(tenant, name))
            .arg(kind.as_str())
            .arg(tenant)
            .arg(name)
            .arg(self.keys.channel())
            .arg(self.keys.users_of(tenant));
        // Not retried: a repeated delete would report "not found" for what it deleted.
        let mut con = self.con.clone();
        let value: Value = deadline(inv.invoke_async(&mut con)).await?;
        match value {
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => {
                let member: String = decode(other)?;
                Err(StoreError::InUse {
                    kind,
                    name: name.to_owned(),
                    user: parse_user(&member)?.to_string(),
                })
            }
        }
    }

    async fn snapshot(&self) -> Result<Vec<Record>, StoreError> {
        let mut parts = Vec::new();
        for kind in Kind::ALL {
            let key = self.keys.owners(kind);
            let key = &key;
            let value: Value = self
                .read(|mut con| async move {
                    redis::cmd("SMEMBERS").arg(key).query_async(&mut con).await
                })
                .await?;
            let tenants: Vec<String> = decode(value)?;
            // The multiplexed connection pipelines these; each is one short script.
            parts.extend(
                tenants
                    .into_iter()
                    .map(|tenant| self.snapshot_of(kind, tenant)),
            );
        }
        let mut out: Vec<Record> = futures::future::try_join_all(parts)
            .await?
            .into_iter()
            .flatten()
            .collect();
        out.sort_by(|a, b| {
            (a.kind.as_str(), &a.tenant, &a.name).cmp(&(b.kind.as_str(), &b.tenant, &b.name))
        });
        Ok(out)
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(ping).await
    }
}

/// Key names; see the module doc for the layout.
struct Keys {
    prefix: String,
}

impl Keys {
    fn latest(&self, kind: Kind, tenant: &str) -> String {
        format!("{}:latest:{kind}:{tenant}", self.prefix)
    }

    fn bodies(&self, kind: Kind, tenant: &str, name: &str) -> String {
        format!("{}{name}", self.bodies_of(kind, tenant))
    }

    /// What `bodies` keys of one kind and tenant start with.
    fn bodies_of(&self, kind: Kind, tenant: &str) -> String {
        format!("{}:bodies:{kind}:{tenant}:", self.prefix)
    }

    fn owners(&self, kind: Kind) -> String {
        format!("{}:owners:{kind}", self.prefix)
    }

    fn users(&self, tenant: &str, schema: &str) -> String {
        format!("{}{schema}", self.users_of(tenant))
    }

    /// What `users` keys of one tenant start with.
    fn users_of(&self, tenant: &str) -> String {
        format!("{}:users:{tenant}:", self.prefix)
    }

    fn uses(&self, kind: Kind, tenant: &str, name: &str) -> String {
        format!("{}:uses:{kind}:{tenant}:{name}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }
}

/// Bounds a Redis call by [`OP_DEADLINE`] and turns its failures into store errors.
async fn deadline<T>(fut: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
    match tokio::time::timeout(OP_DEADLINE, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(redis_error(e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "Redis did not answer within {} ms",
            OP_DEADLINE.as_millis()
        ))),
    }
}

fn redis_error(e: RedisError) -> StoreError {
    if e.code() == Some("WRONGTYPE") {
        // Something else wrote a key under our prefix.
        StoreError::Corrupt(format!("Redis: {e}"))
    } else {
        StoreError::Unavailable(format!("Redis: {e}"))
    }
}

/// Reads a script's or command's reply; a reply of the wrong shape means the keys under the
/// prefix were written by something else.
fn decode<T: FromRedisValue>(value: Value) -> Result<T, StoreError> {
    redis::from_redis_value(value)
        .map_err(|e| StoreError::Corrupt(format!("unexpected reply from Redis: {e}")))
}

/// A `users` set member, `"{kind} {name}"`.
fn parse_user(member: &str) -> Result<User, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("bad user entry {member:?}"));
    let (kind, name) = member.split_once(' ').ok_or_else(corrupt)?;
    let kind = match kind {
        "schema" => Kind::Schema,
        "pipeline" => Kind::Pipeline,
        _ => return Err(corrupt()),
    };
    Ok(User {
        kind,
        name: name.to_owned(),
    })
}

/// A fresh pub/sub connection subscribed to `channel`.
async fn subscribe(client: &Client, channel: &str) -> RedisResult<(PubSubSink, PubSubStream)> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub.split())
}

/// The subscriber task: forwards changes, and after a lost subscription re-subscribes and
/// asks followers to resynchronise (see "Invalidation protocol" in the module doc).
async fn follow(
    client: Client,
    con: ConnectionManager,
    channel: String,
    tx: broadcast::Sender<Change>,
    mut subscription: (PubSubSink, PubSubStream),
) {
    loop {
        let why = forward(&mut subscription, &tx).await;
        tracing::warn!(reason = %why, %channel, "lost the Redis change subscription; re-subscribing");
        // Commands share the fate of the subscription: make the manager notice now rather
        // than on the next request. Its failure is expected and says nothing new.
        let _ = tokio::time::timeout(OP_DEADLINE, ping(con.clone())).await;
        let mut backoff = BACKOFF_MIN;
        subscription = loop {
            match tokio::time::timeout(OP_DEADLINE, subscribe(&client, &channel)).await {
                Ok(Ok(s)) => break s,
                Ok(Err(e)) => tracing::debug!(error = %e, "re-subscribing failed"),
                Err(_) => tracing::debug!("re-subscribing timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        };
        // Bring the command connection back before followers reload through it: the first
        // command after an outage fails on the connection that died with Redis.
        for _ in 0..3 {
            if let Ok(Ok(())) = tokio::time::timeout(OP_DEADLINE, ping(con.clone())).await {
                break;
            }
            tokio::time::sleep(BACKOFF_MIN).await;
        }
        tracing::info!(%channel, "Redis change subscription restored; resynchronising");
        // No receiver is fine: nobody is following yet.
        let _ = tx.send(Change::Resync);
    }
}

/// Forwards messages until the subscription is lost; returns why.
async fn forward(
    (sink, stream): &mut (PubSubSink, PubSubStream),
    tx: &broadcast::Sender<Change>,
) -> String {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the subscription was just confirmed.
    heartbeat.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return "connection closed".into();
                };
                let text = std::str::from_utf8(msg.get_payload_bytes()).unwrap_or("");
                let change = Change::from_message(text).unwrap_or_else(|| {
                    // Whatever it meant, something changed: reload everything.
                    tracing::warn!(message = %text, "unreadable change message; resynchronising");
                    Change::Resync
                });
                let _ = tx.send(change);
            }
            _ = heartbeat.tick() => {
                match tokio::time::timeout(HEARTBEAT_TIMEOUT, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return e.to_string(),
                    Err(_) => return "heartbeat unanswered".into(),
                }
            }
        }
    }
}

async fn ping(mut con: ConnectionManager) -> RedisResult<()> {
    redis::cmd("PING")
        .query_async::<Value>(&mut con)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse() {
        assert_eq!(
            parse_user("pipeline price").unwrap().to_string(),
            r#"pipeline "price""#
        );
        assert_eq!(parse_user("schema fee").unwrap().kind, Kind::Schema);
        assert!(parse_user("widget x").is_err());
        assert!(parse_user("schema").is_err());
    }

    #[test]
    fn keys_stay_under_the_prefix() {
        let k = Keys { prefix: "p".into() };
        let all = [
            k.latest(Kind::Schema, "t"),
            k.bodies(Kind::Pipeline, "t", "n"),
            k.owners(Kind::Schema),
            k.users("t", "s"),
            k.uses(Kind::Pipeline, "t", "n"),
            k.channel(),
        ];
        assert!(all.iter().all(|key| key.starts_with("p:")), "{all:?}");
        assert_eq!(k.bodies(Kind::Schema, "t", "n"), "p:bodies:schema:t:n");
        assert_eq!(k.users("t", "s"), "p:users:t:s");
    }
}
