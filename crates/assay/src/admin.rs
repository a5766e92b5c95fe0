//! `assay schema ...`, `assay pipeline ...` and `assay keys ...`: registry and API key
//! administration on the embedded store in a data directory or on Redis. Each call opens the
//! store, does one thing and closes it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use registry::{
    EmbeddedStore, KeyError, KeyInfo, Keys, Kind, RedisStore, Registry, RegistryError,
    RegistryOptions, Role, Store,
};

/// Where the registry lives.
#[derive(Debug, Clone)]
pub enum Location<'a> {
    /// The embedded store in this directory.
    DataDir(&'a Path),
    /// A Redis server, with the key prefix every instance of a deployment shares.
    Redis {
        /// `redis://...`
        url: &'a str,
        /// Key prefix.
        prefix: &'a str,
    },
}

/// One registry operation.
#[derive(Debug, Clone)]
pub enum Operation {
    /// Register a document (raw bytes, JSON) as the next version.
    Put {
        /// The name.
        name: String,
        /// The document.
        body: Vec<u8>,
    },
    /// Print one version (or the newest).
    Get {
        /// The name.
        name: String,
        /// The version, newest when `None`.
        version: Option<u32>,
    },
    /// Print every name and its newest version.
    List,
    /// Delete a name and all its versions.
    Delete {
        /// The name.
        name: String,
    },
}

/// Opens the store at `location`.
pub async fn open(location: &Location<'_>) -> Result<Arc<dyn Store>, RegistryError> {
    Ok(match location {
        Location::DataDir(dir) => Arc::new(EmbeddedStore::open(dir)?),
        Location::Redis { url, prefix } => Arc::new(RedisStore::connect(url, prefix).await?),
    })
}

/// Runs `op` on resources of `kind` owned by `tenant`, returning what to print (one JSON
/// value per line).
pub async fn execute(
    store: Arc<dyn Store>,
    kind: Kind,
    tenant: &str,
    op: Operation,
) -> Result<Vec<String>, RegistryError> {
    let registry = Registry::new(store, RegistryOptions::default());
    Ok(match op {
        Operation::Put { name, body } => {
            let registered = match kind {
                Kind::Schema => registry.put_schema(tenant, &name, &body).await?,
                Kind::Pipeline => registry.put_pipeline(tenant, &name, &body).await?,
                Kind::Key => {
                    return Err(RegistryError::Invalid(
                        "keys are managed with `assay keys`".into(),
                    ));
                }
            };
            vec![serde_json::to_string(&registered).expect("a Registered serialises")]
        }
        Operation::Get { name, version } => {
            vec![registry.get(kind, tenant, &name, version).await?.body]
        }
        Operation::List => registry
            .list(kind, tenant)
            .await?
            .into_iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                m.insert("name".into(), s.name.into());
                m.insert("latest".into(), s.latest.into());
                serde_json::Value::Object(m).to_string()
            })
            .collect(),
        Operation::Delete { name } => {
            registry.delete(kind, tenant, &name).await?;
            Vec::new()
        }
    })
}

/// One API key operation.
#[derive(Debug, Clone)]
pub enum KeyOperation {
    /// Create a key.
    Create {
        /// `admin` or `client`.
        role: String,
        /// How long until it expires, if ever.
        expires_in: Option<Duration>,
        /// A note.
        label: Option<String>,
    },
    /// List the tenant's keys.
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// What a key operation prints: lines for standard output, and a note for standard error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Printed {
    /// Standard output, one line each.
    pub lines: Vec<String>,
    /// Standard error.
    pub note: Option<String>,
}

/// Runs `op` on `tenant`'s API keys in `store`. A new key's token is the one line printed,
/// so that `KEY=$(assay keys create ...)` captures it.
pub async fn keys(
    store: Arc<dyn Store>,
    tenant: &str,
    op: KeyOperation,
) -> Result<Printed, KeyError> {
    let keys = Keys::new(store);
    Ok(match op {
        KeyOperation::Create {
            role,
            expires_in,
            label,
        } => {
            let role: Role = role.parse()?;
            let expires_at = expires_in.map(|d| unix_now().saturating_add(d.as_secs().max(1)));
            let new = keys.create(tenant, role, expires_at, label).await?;
            Printed {
                note: Some(created_note(&new.info)),
                lines: vec![new.token],
            }
        }
        KeyOperation::List => Printed {
            lines: keys
                .list(tenant)
                .await?
                .iter()
                .map(|k| serde_json::to_string(k).expect("a KeyInfo serialises"))
                .collect(),
            note: None,
        },
        KeyOperation::Revoke { id } => {
            keys.revoke(tenant, &id).await?;
            Printed::default()
        }
    })
}

/// What `keys create` says on standard error about the key it printed.
pub fn created_note(info: &KeyInfo) -> String {
    let expiry = match info.expires_at {
        Some(at) => format!(", expires at unix time {at}"),
        None => String::new(),
    };
    format!(
        "created {} key {} for tenant {}{expiry}. It is shown only this once: store it now.",
        info.role, info.id, info.tenant
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_created_listed_and_revoked_on_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&Location::DataDir(dir.path())).await.unwrap();
        let created = keys(
            store.clone(),
            "acme",
            KeyOperation::Create {
                role: "client".into(),
                expires_in: Some(Duration::from_secs(3600)),
                label: Some("ci".into()),
            },
        )
        .await
        .unwrap();
        let token = &created.lines[0];
        assert!(token.starts_with("ak1.acme."), "{token}");
        assert!(created.note.unwrap().contains("shown only this once"));
        let listed = keys(store.clone(), "acme", KeyOperation::List)
            .await
            .unwrap();
        assert_eq!(listed.lines.len(), 1);
        let info: serde_json::Value = serde_json::from_str(&listed.lines[0]).unwrap();
        assert_eq!(info["role"], "client");
        assert!(!listed.lines[0].contains(token.rsplit('.').next().unwrap()));
        let id = info["id"].as_str().unwrap().to_owned();
        // Another tenant cannot see or revoke it.
        assert!(
            keys(store.clone(), "other", KeyOperation::List)
                .await
                .unwrap()
                .lines
                .is_empty()
        );
        let e = keys(
            store.clone(),
            "other",
            KeyOperation::Revoke { id: id.clone() },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, KeyError::NotFound(_)), "{e:?}");
        keys(store.clone(), "acme", KeyOperation::Revoke { id })
            .await
            .unwrap();
        assert!(
            keys(store, "acme", KeyOperation::List)
                .await
                .unwrap()
                .lines
                .is_empty()
        );
    }

    #[tokio::test]
    async fn put_get_list_delete_on_the_embedded_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let run = |kind, op| {
            let path = path.clone();
            async move {
                let store = open(&Location::DataDir(&path)).await.unwrap();
                execute(store, kind, "default", op).await
            }
        };
        let put = |name: &str, body: &str| Operation::Put {
            name: name.into(),
            body: body.as_bytes().to_vec(),
        };
        let out = run(Kind::Schema, put("s", r#"{"type":"number","maximum":0.3}"#))
            .await
            .unwrap();
        assert_eq!(out, [r#"{"name":"s","version":1,"created":true}"#]);
        let out = run(Kind::Pipeline, put("p", r#"{"input_schema":"s"}"#))
            .await
            .unwrap();
        assert_eq!(out, [r#"{"name":"p","version":1,"created":true}"#]);
        let out = run(
            Kind::Pipeline,
            Operation::Get {
                name: "p".into(),
                version: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(out, [r#"{"input_schema":"s@1","output":"json"}"#]);
        let out = run(Kind::Schema, Operation::List).await.unwrap();
        assert_eq!(out, [r#"{"name":"s","latest":1}"#]);
        let err = run(Kind::Schema, Operation::Delete { name: "s".into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), "in_use");
    }
}
