//! `assay schema ...` and `assay pipeline ...`: registry administration on the embedded store
//! in a data directory or on Redis. Each call opens the store, does one thing and closes it.

use std::path::Path;
use std::sync::Arc;

use registry::{EmbeddedStore, Kind, RedisStore, Registry, RegistryError, RegistryOptions, Store};

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

#[cfg(test)]
mod tests {
    use super::*;

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
