//! The embedded store: one redb database file in a data directory, for a single instance.
//!
//! redb is a crash-safe embedded database (copy-on-write B-trees, checksummed commits,
//! fsync on every commit): a process killed at any instant loses at most the transaction
//! in flight. Version allocation is atomic because redb has one writer at a time. redb locks
//! its file, so two processes cannot open the same data directory at once; run several
//! instances on Redis instead.
//!
//! Tables (keys are tuples, ordered element by element; kinds are `schema`, `pipeline` and
//! `key`, an API key record named by its id):
//! - `versions`: (kind, tenant, name, version) -> body
//! - `latest`:   (kind, tenant, name) -> newest version
//! - `users`:    (tenant, schema, user kind, user name) -> ()   who uses a schema
//! - `uses`:     (tenant, user kind, user name, schema) -> ()   the same, from the user's side

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use crate::model::{Change, Kind, Record, Summary};
use crate::store::{PutOutcome, Store, StoreError, User};

type K3<'a> = (&'a str, &'a str, &'a str);
type K4<'a> = (&'a str, &'a str, &'a str, &'a str);

const VERSIONS: TableDefinition<(&str, &str, &str, u32), &str> = TableDefinition::new("versions");
const LATEST: TableDefinition<K3, u32> = TableDefinition::new("latest");
const USERS: TableDefinition<K4, ()> = TableDefinition::new("users");
const USES: TableDefinition<K4, ()> = TableDefinition::new("uses");

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "registry.redb";

/// A registry store in a local redb file.
pub struct EmbeddedStore {
    db: Arc<Database>,
    changes: broadcast::Sender<Change>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DB_FILE);
        let db = Database::create(&path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        // Create the tables once so that readers never find them missing.
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(VERSIONS).map_err(err)?;
        txn.open_table(LATEST).map_err(err)?;
        txn.open_table(USERS).map_err(err)?;
        txn.open_table(USES).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Self {
            db: Arc::new(db),
            changes: broadcast::channel(1024).0,
        })
    }

    /// Runs blocking database work off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    fn notify(&self, change: Change) {
        // No receiver is fine: nobody is listening yet.
        let _ = self.changes.send(change);
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

/// The smallest string greater than `s`: a range from `(.., s, "")` to `(.., after(s), "")`
/// holds exactly the tuples whose element equals `s`.
fn after(s: &str) -> String {
    format!("{s}\0")
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn put(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        body: &str,
        uses: &[String],
    ) -> Result<PutOutcome, StoreError> {
        let (tenant, name, body, uses) = (
            tenant.to_owned(),
            name.to_owned(),
            body.to_owned(),
            uses.to_vec(),
        );
        let (t, n) = (tenant.clone(), name.clone());
        let outcome = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(err)?;
                let outcome = {
                    let mut latest = txn.open_table(LATEST).map_err(err)?;
                    let mut versions = txn.open_table(VERSIONS).map_err(err)?;
                    let k = kind.as_str();
                    for schema in &uses {
                        if latest
                            .get(("schema", tenant.as_str(), schema.as_str()))
                            .map_err(err)?
                            .is_none()
                        {
                            return Err(StoreError::MissingRef {
                                name: schema.clone(),
                            });
                        }
                    }
                    let current = latest
                        .get((k, tenant.as_str(), name.as_str()))
                        .map_err(err)?
                        .map(|v| v.value());
                    if let Some(v) = current {
                        let same = versions
                            .get((k, tenant.as_str(), name.as_str(), v))
                            .map_err(err)?
                            .is_some_and(|b| b.value() == body);
                        if same {
                            return Ok(PutOutcome::Unchanged(v));
                        }
                    }
                    let version = current.unwrap_or(0) + 1;
                    versions
                        .insert((k, tenant.as_str(), name.as_str(), version), body.as_str())
                        .map_err(err)?;
                    latest
                        .insert((k, tenant.as_str(), name.as_str()), version)
                        .map_err(err)?;
                    let mut users = txn.open_table(USERS).map_err(err)?;
                    let mut used = txn.open_table(USES).map_err(err)?;
                    for schema in &uses {
                        users
                            .insert((tenant.as_str(), schema.as_str(), k, name.as_str()), ())
                            .map_err(err)?;
                        used.insert((tenant.as_str(), k, name.as_str(), schema.as_str()), ())
                            .map_err(err)?;
                    }
                    PutOutcome::Created(version)
                };
                txn.commit().map_err(err)?;
                Ok(outcome)
            })
            .await?;
        if let PutOutcome::Created(version) = outcome {
            self.notify(Change::Put {
                kind,
                tenant: t,
                name: n,
                version,
            });
        }
        Ok(outcome)
    }

    async fn get(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Record>, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let k = kind.as_str();
            let version = match version {
                Some(v) => v,
                None => {
                    let latest = txn.open_table(LATEST).map_err(err)?;
                    match latest
                        .get((k, tenant.as_str(), name.as_str()))
                        .map_err(err)?
                    {
                        Some(v) => v.value(),
                        None => return Ok(None),
                    }
                }
            };
            let versions = txn.open_table(VERSIONS).map_err(err)?;
            let body = versions
                .get((k, tenant.as_str(), name.as_str(), version))
                .map_err(err)?
                .map(|b| b.value().to_owned());
            Ok(body.map(|body| Record {
                kind,
                tenant,
                name,
                version,
                body,
            }))
        })
        .await
    }

    async fn list(&self, kind: Kind, tenant: &str) -> Result<Vec<Summary>, StoreError> {
        let tenant = tenant.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let latest = txn.open_table(LATEST).map_err(err)?;
            let k = kind.as_str();
            let end = after(&tenant);
            let range = latest
                .range((k, tenant.as_str(), "")..(k, end.as_str(), ""))
                .map_err(err)?;
            range
                .map(|entry| {
                    let (key, v) = entry.map_err(err)?;
                    Ok(Summary {
                        name: key.value().2.to_owned(),
                        latest: v.value(),
                    })
                })
                .collect()
        })
        .await
    }

    async fn delete(&self, kind: Kind, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let (tenant, name) = (tenant.to_owned(), name.to_owned());
        let (t, n) = (tenant.clone(), name.clone());
        let existed = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(err)?;
                let k = kind.as_str();
                let existed = {
                    let mut latest = txn.open_table(LATEST).map_err(err)?;
                    let Some(newest) = latest
                        .get((k, tenant.as_str(), name.as_str()))
                        .map_err(err)?
                        .map(|v| v.value())
                    else {
                        return Ok(false);
                    };
                    let mut users = txn.open_table(USERS).map_err(err)?;
                    if kind == Kind::Schema {
                        let end = after(&name);
                        let first = users
                            .range(
                                (tenant.as_str(), name.as_str(), "", "")
                                    ..(tenant.as_str(), end.as_str(), "", ""),
                            )
                            .map_err(err)?
                            .next()
                            .transpose()
                            .map_err(err)?
                            .map(|(key, _)| {
                                let (_, _, uk, un) = key.value();
                                User {
                                    kind: if uk == "schema" {
                                        Kind::Schema
                                    } else {
                                        Kind::Pipeline
                                    },
                                    name: un.to_owned(),
                                }
                            });
                        if let Some(user) = first {
                            return Err(StoreError::InUse {
                                kind,
                                name: name.clone(),
                                user: user.to_string(),
                            });
                        }
                    }
                    latest
                        .remove((k, tenant.as_str(), name.as_str()))
                        .map_err(err)?;
                    let mut versions = txn.open_table(VERSIONS).map_err(err)?;
                    for v in 1..=newest {
                        versions
                            .remove((k, tenant.as_str(), name.as_str(), v))
                            .map_err(err)?;
                    }
                    // Forget what this resource used, so those schemas can be deleted.
                    let mut uses = txn.open_table(USES).map_err(err)?;
                    let end = after(&name);
                    let used: Vec<String> = uses
                        .range(
                            (tenant.as_str(), k, name.as_str(), "")
                                ..(tenant.as_str(), k, end.as_str(), ""),
                        )
                        .map_err(err)?
                        .map(|e| e.map(|(key, _)| key.value().3.to_owned()).map_err(err))
                        .collect::<Result<_, _>>()?;
                    for schema in used {
                        uses.remove((tenant.as_str(), k, name.as_str(), schema.as_str()))
                            .map_err(err)?;
                        users
                            .remove((tenant.as_str(), schema.as_str(), k, name.as_str()))
                            .map_err(err)?;
                    }
                    true
                };
                txn.commit().map_err(err)?;
                Ok(existed)
            })
            .await?;
        if existed {
            self.notify(Change::Deleted {
                kind,
                tenant: t,
                name: n,
            });
        }
        Ok(existed)
    }

    async fn snapshot(&self) -> Result<Vec<Record>, StoreError> {
        self.blocking(|db| {
            let txn = db.begin_read().map_err(err)?;
            let latest = txn.open_table(LATEST).map_err(err)?;
            let versions = txn.open_table(VERSIONS).map_err(err)?;
            let mut out = Vec::new();
            for entry in latest.iter().map_err(err)? {
                let (key, v) = entry.map_err(err)?;
                let (k, tenant, name) = key.value();
                let version = v.value();
                let Some(kind) = Kind::parse(k) else {
                    return Err(StoreError::Corrupt(format!("unknown kind {k:?}")));
                };
                let body = versions
                    .get((k, tenant, name, version))
                    .map_err(err)?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("{k} {tenant}/{name} v{version} is missing"))
                    })?
                    .value()
                    .to_owned();
                out.push(Record {
                    kind,
                    tenant: tenant.to_owned(),
                    name: name.to_owned(),
                    version,
                    body,
                });
            }
            Ok(out)
        })
        .await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
