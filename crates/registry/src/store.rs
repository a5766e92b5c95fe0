//! The storage contract every backend implements: versioned records with atomic version
//! allocation, a reverse index of who uses a schema, and a stream of changes.
//!
//! The store knows nothing about compiling: the registry checks a document before it is put
//! and hands over compact JSON text plus the names of the schemas it uses.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::model::{Change, Kind, Record, Summary};

/// The result of a put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new version was stored.
    Created(u32),
    /// The body equals the newest version's; that version is returned and nothing is stored.
    Unchanged(u32),
}

impl PutOutcome {
    /// The version, new or existing.
    pub fn version(self) -> u32 {
        match self {
            Self::Created(v) | Self::Unchanged(v) => v,
        }
    }
}

/// Failures of the store itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached (Redis down) or is not open.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// Deleting a schema that something still uses.
    #[error("{kind} {name:?} is used by {user}")]
    InUse {
        /// Kind of the resource that cannot be deleted.
        kind: Kind,
        /// Its name.
        name: String,
        /// Who uses it, e.g. `pipeline "trade"`.
        user: String,
    },
    /// A put names a schema among its `uses` that does not exist (any more): it was deleted
    /// between the registry's checks and the put.
    #[error("schema {name:?} does not exist")]
    MissingRef {
        /// The schema's name.
        name: String,
    },
    /// Stored data that cannot be read back.
    #[error("registry data is corrupt: {0}")]
    Corrupt(String),
}

/// Who uses a schema: a pipeline (through its input or output schema) or another schema
/// (through `$ref`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User {
    /// Kind of the user.
    pub kind: Kind,
    /// Name of the user.
    pub name: String,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind, self.name)
    }
}

/// A registry backend. Implementations: `EmbeddedStore` (redb) and `RedisStore`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `body` as the next version of `name`, unless it equals the newest version.
    /// Version numbers are allocated atomically: two concurrent puts, from any instance,
    /// never get the same version. `uses` names the schemas the body refers to; the put
    /// checks that they all exist and records the resource as their user, atomically with
    /// the version, so that a concurrent delete cannot leave a dangling reference
    /// ([`StoreError::MissingRef`]).
    async fn put(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        body: &str,
        uses: &[String],
    ) -> Result<PutOutcome, StoreError>;

    /// One version, or the newest when `version` is `None`.
    async fn get(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<Record>, StoreError>;

    /// Every resource of `kind` that `tenant` owns, sorted by name.
    async fn list(&self, kind: Kind, tenant: &str) -> Result<Vec<Summary>, StoreError>;

    /// Deletes a resource and all its versions; `Ok(false)` when there was none. A schema
    /// that is still used is not deleted: [`StoreError::InUse`] names a user.
    async fn delete(&self, kind: Kind, tenant: &str, name: &str) -> Result<bool, StoreError>;

    /// The newest version of every resource of every tenant, for warming a cache and for
    /// resynchronising after missed changes.
    async fn snapshot(&self) -> Result<Vec<Record>, StoreError>;

    /// Changes made by this instance or any other sharing the store. After a reconnect the
    /// store sends [`Change::Resync`]; a receiver that lags (`RecvError::Lagged`) must
    /// resync too, as `Registry::follow_changes` does.
    fn changes(&self) -> broadcast::Receiver<Change>;

    /// Whether the backend answers now.
    async fn ping(&self) -> Result<(), StoreError>;
}
