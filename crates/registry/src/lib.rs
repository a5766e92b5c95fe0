//! The registry: named, immutable, numbered versions of JSON Schemas and pipelines per
//! tenant, kept in a [`Store`] (embedded redb by default, Redis to share them between
//! instances), checked before they are stored, and served compiled from a per-instance cache.
//!
//! Rules (see ARCHITECTURE.md and README):
//! - A write is refused, and nothing stored, unless the schema compiles, the transform
//!   compiles and every reference resolves. Registering a document identical to the newest
//!   version returns that version.
//! - A pipeline's schema references are pinned when it is registered: `trade-input` means the
//!   newest version at that moment and is stored as `trade-input@3`, so a pipeline version
//!   means the same thing forever.
//! - A schema `$ref`s another registered schema as `assay://schemas/{name}/{version}`.
//! - A schema in use (by a pipeline or another schema) cannot be deleted.
//!
//! The store also holds API key records (`Kind::Key`), served by [`keys::Keys`]; the
//! registry ignores them and refuses to read, list or delete them as resources.

pub mod cache;
pub mod embedded;
pub mod keys;
pub mod model;
pub mod redis;
pub mod store;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use engine::{
    Limits, Part, Pipeline, PipelineSpec, Resolved, Schema, SchemaOptions, Value, parse_document,
};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

pub use cache::{Cache, Compiled};
pub use embedded::EmbeddedStore;
pub use keys::{AuthError, KeyError, KeyInfo, Keys, NewKey, Principal, Role};
pub use model::{
    Change, DEFAULT_TENANT, Kind, PipelineDef, Record, SCHEMA_URI_PREFIX, SchemaRef, Summary,
};
pub use redis::RedisStore;
pub use store::{PutOutcome, Store, StoreError};

/// Errors of registry operations, each meant to be shown to the caller as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The request is malformed: a bad name, a document that is not JSON, an unknown field.
    #[error("{0}")]
    Invalid(String),
    /// The document sent for registration is not acceptable JSON (its parse error keeps its
    /// own code: `syntax`, `duplicate_key`, `too_deep`, ...).
    #[error("the document is not acceptable JSON: {0}")]
    Parse(engine::ParseError),
    /// A schema or transform does not compile, or a reference does not resolve.
    #[error("{0}")]
    Rejected(String),
    /// No such resource (or version).
    #[error("{kind} {name:?}{} not found", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// Schema or pipeline.
        kind: Kind,
        /// Its name.
        name: String,
        /// The version asked for, if any.
        version: Option<u32>,
    },
    /// A schema still in use cannot be deleted.
    #[error("cannot delete {kind} {name:?}: it is used by {user}")]
    InUse {
        /// Schema.
        kind: Kind,
        /// Its name.
        name: String,
        /// Who uses it.
        user: String,
    },
    /// The store cannot be reached.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The store holds something unreadable.
    #[error("registry data is corrupt: {0}")]
    Corrupt(String),
}

impl RegistryError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid_request",
            Self::Parse(e) => e.code(),
            Self::Rejected(_) => "rejected",
            Self::NotFound { .. } => "not_found",
            Self::InUse { .. } => "in_use",
            Self::Unavailable(_) => "registry_unavailable",
            Self::Corrupt(_) => "registry_corrupt",
        }
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::InUse { kind, name, user } => Self::InUse { kind, name, user },
            StoreError::Corrupt(m) => Self::Corrupt(m),
            StoreError::MissingRef { name } => Self::Rejected(format!(
                "unknown schema reference {name}: it was just deleted"
            )),
        }
    }
}

/// The answer to a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registered {
    /// The resource's name.
    pub name: String,
    /// Its version, new or (for an identical document) existing.
    pub version: u32,
    /// Whether a new version was stored.
    pub created: bool,
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Most compiled pipelines kept in memory (schemas likewise).
    pub cache_capacity: usize,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 10_000,
        }
    }
}

/// The registry of one instance: a store plus its compiled caches.
pub struct Registry {
    store: Arc<dyn Store>,
    pipelines: Cache<Pipeline>,
    schemas: Cache<Schema>,
    warm: AtomicBool,
}

impl Registry {
    /// A registry on `store`; call [`Registry::warm`] to fill the cache.
    pub fn new(store: Arc<dyn Store>, opts: RegistryOptions) -> Self {
        Self {
            store,
            pipelines: Cache::new(opts.cache_capacity),
            schemas: Cache::new(opts.cache_capacity),
            warm: AtomicBool::new(false),
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Whether the cache has been filled and the store answers: the service's readiness.
    pub async fn ready(&self) -> bool {
        self.warm.load(Ordering::Acquire) && self.store.ping().await.is_ok()
    }

    /// Compiles the newest version of every schema and pipeline into the caches.
    pub async fn warm(&self) -> Result<WarmReport, RegistryError> {
        let mut records = self.store.snapshot().await?;
        records.retain(|r| is_resource(r.kind));
        let mut bodies: Bodies = records
            .iter()
            .filter(|r| r.kind == Kind::Schema)
            .map(|r| {
                (
                    (r.tenant.clone(), r.name.clone(), r.version),
                    r.body.clone(),
                )
            })
            .collect();
        // Pipelines pin schema versions that may be older than the newest, and schemas
        // `$ref` pinned versions: fetch whatever the snapshot does not hold.
        for r in &records {
            let roots = match r.kind {
                Kind::Schema => parse_stored(&r.body).and_then(|d| schema_refs(&d)),
                Kind::Pipeline => serde_json::from_str::<PipelineDef>(&r.body)
                    .map_err(|e| RegistryError::Corrupt(e.to_string()))
                    .and_then(|def| pinned_refs(&def)),
                // Filtered out above.
                Kind::Key => continue,
            };
            // A record that cannot be read is reported when it is compiled.
            if let Ok(roots) = roots {
                self.fetch_closure(&r.tenant, roots, &mut bodies).await?;
            }
        }
        let bodies = Arc::new(bodies);
        let records = Arc::new(records);
        // Compiling is CPU work: spread it over the cores, off the async executor.
        let compiled = tokio::task::spawn_blocking(move || compile_all(&records, &bodies))
            .await
            .map_err(|e| RegistryError::Unavailable(format!("warm-up failed: {e}")))?;
        let report = WarmReport {
            schemas: compiled.schemas.len(),
            pipelines: compiled.pipelines.len(),
            failed: compiled.failed,
        };
        self.schemas.replace_all(compiled.schemas);
        self.pipelines.replace_all(compiled.pipelines);
        self.warm.store(true, Ordering::Release);
        Ok(report)
    }

    /// Keeps the cache in step with the store's changes until the store's channel closes.
    /// A missed change (a lagging receiver, a reconnect) triggers a full resync.
    pub async fn follow_changes(self: Arc<Self>) {
        let mut rx = self.store.changes();
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => Change::Resync,
                Err(RecvError::Closed) => return,
            };
            if let Err(e) = self.apply(&change).await {
                tracing::warn!(error = %e, change = ?change, "could not apply a registry change; resyncing");
                // Retry with a pause until the store answers again.
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if self.warm().await.is_ok() {
                        break;
                    }
                }
            }
        }
    }

    async fn apply(&self, change: &Change) -> Result<(), RegistryError> {
        match change {
            Change::Put {
                kind, tenant, name, ..
            } => {
                let loaded = match kind {
                    Kind::Pipeline => self.load_pipeline(tenant, name).await.map(drop),
                    Kind::Schema => self.load_schema(tenant, name).await.map(drop),
                    // `keys::Keys` follows key changes itself.
                    Kind::Key => Ok(()),
                };
                match loaded {
                    // Deleted again since; the deletion's own change follows.
                    Err(RegistryError::NotFound { .. }) => self.forget(*kind, tenant, name),
                    other => other?,
                }
            }
            Change::Deleted { kind, tenant, name } => self.forget(*kind, tenant, name),
            Change::Resync => {
                self.warm().await?;
            }
        }
        Ok(())
    }

    /// Drops a resource from this instance's cache.
    fn forget(&self, kind: Kind, tenant: &str, name: &str) {
        match kind {
            Kind::Schema => self.schemas.remove(tenant, name),
            Kind::Pipeline => self.pipelines.remove(tenant, name),
            Kind::Key => {}
        }
    }

    /// The hot path: the newest compiled version of a pipeline, if cached. No lock, no
    /// allocation.
    #[inline]
    pub fn cached_pipeline(&self, tenant: &str, name: &str) -> Option<Arc<Compiled<Pipeline>>> {
        self.pipelines.get(tenant, name)
    }

    /// The newest compiled version of a pipeline: from the cache, else loaded and compiled.
    pub async fn pipeline(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<Compiled<Pipeline>>, RegistryError> {
        match self.pipelines.get(tenant, name) {
            Some(p) => Ok(p),
            None => self.load_pipeline(tenant, name).await,
        }
    }

    /// The newest compiled version of a schema: from the cache, else loaded and compiled.
    pub async fn schema(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<Compiled<Schema>>, RegistryError> {
        match self.schemas.get(tenant, name) {
            Some(s) => Ok(s),
            None => self.load_schema(tenant, name).await,
        }
    }

    async fn load_pipeline(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<Compiled<Pipeline>>, RegistryError> {
        let rec = self.record(Kind::Pipeline, tenant, name, None).await?;
        let def: PipelineDef = serde_json::from_str(&rec.body)
            .map_err(|e| RegistryError::Corrupt(format!("pipeline {name:?}: {e}")))?;
        let pipeline = self.compile_pipeline(tenant, &def).await?;
        self.pipelines.insert(
            tenant,
            name,
            Compiled {
                version: rec.version,
                value: pipeline,
            },
        );
        self.pipelines
            .get(tenant, name)
            .ok_or_else(|| RegistryError::Unavailable("cache refused the entry".into()))
    }

    async fn load_schema(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Arc<Compiled<Schema>>, RegistryError> {
        let rec = self.record(Kind::Schema, tenant, name, None).await?;
        let doc = parse_stored(&rec.body)?;
        let schema = self.compile_schema(tenant, &doc).await?;
        self.schemas.insert(
            tenant,
            name,
            Compiled {
                version: rec.version,
                value: schema,
            },
        );
        self.schemas
            .get(tenant, name)
            .ok_or_else(|| RegistryError::Unavailable("cache refused the entry".into()))
    }

    async fn record(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Record, RegistryError> {
        self.store
            .get(kind, tenant, name, version)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind,
                name: name.to_owned(),
                version,
            })
    }

    /// Registers a schema document as the next version of `name`.
    pub async fn put_schema(
        &self,
        tenant: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Registered, RegistryError> {
        model::check_tenant(tenant)?;
        model::check_name(Kind::Schema, name)?;
        let doc = parse_document(body, &Limits::default()).map_err(RegistryError::Parse)?;
        if !doc.is_object() && !doc.is_boolean() {
            return Err(RegistryError::Invalid(
                "a schema must be a JSON object or a boolean".into(),
            ));
        }
        let schema = self.compile_schema(tenant, &doc).await?;
        // A schema may `$ref` an older version of itself; that must not make it its own user.
        let uses: Vec<String> = schema_refs(&doc)?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n != name)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let body = doc.to_string();
        self.store_and_cache(
            Kind::Schema,
            &self.schemas,
            tenant,
            name,
            &body,
            &uses,
            schema,
        )
        .await
    }

    /// Registers a pipeline definition (`{input_schema, transform, output_schema, output,
    /// options}`) as the next version of `name`, pinning its schema references.
    pub async fn put_pipeline(
        &self,
        tenant: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Registered, RegistryError> {
        model::check_tenant(tenant)?;
        model::check_name(Kind::Pipeline, name)?;
        let doc = parse_document(body, &Limits::default()).map_err(RegistryError::Parse)?;
        let mut def: PipelineDef = serde_json::from_value(doc)
            .map_err(|e| RegistryError::Invalid(format!("invalid pipeline definition: {e}")))?;
        let mut uses = BTreeSet::new();
        for slot in [&mut def.input_schema, &mut def.output_schema] {
            if let Some(r) = slot {
                let r = SchemaRef::parse(r)?;
                let rec = self
                    .store
                    .get(Kind::Schema, tenant, &r.name, r.version)
                    .await?
                    .ok_or_else(|| {
                        RegistryError::Rejected(format!("unknown schema reference {r}"))
                    })?;
                *slot = Some(format!("{}@{}", r.name, rec.version));
                uses.insert(r.name);
            }
        }
        let pipeline = self.compile_pipeline(tenant, &def).await?;
        let body = serde_json::to_string(&def)
            .map_err(|e| RegistryError::Invalid(format!("cannot store the definition: {e}")))?;
        let uses: Vec<String> = uses.into_iter().collect();
        self.store_and_cache(
            Kind::Pipeline,
            &self.pipelines,
            tenant,
            name,
            &body,
            &uses,
            pipeline,
        )
        .await
    }

    /// Stores a checked body and caches what it compiled to, so that this instance serves
    /// the new version at once (other instances learn of it through `follow_changes`).
    #[allow(clippy::too_many_arguments)]
    async fn store_and_cache<T>(
        &self,
        kind: Kind,
        cache: &Cache<T>,
        tenant: &str,
        name: &str,
        body: &str,
        uses: &[String],
        value: T,
    ) -> Result<Registered, RegistryError> {
        let outcome = self.store.put(kind, tenant, name, body, uses).await?;
        cache.insert(
            tenant,
            name,
            Compiled {
                version: outcome.version(),
                value,
            },
        );
        let registered = Registered {
            name: name.to_owned(),
            version: outcome.version(),
            created: matches!(outcome, PutOutcome::Created(_)),
        };
        tracing::info!(
            tenant,
            kind = kind.as_str(),
            name,
            version = registered.version,
            created = registered.created,
            "registered"
        );
        Ok(registered)
    }

    /// One version (or the newest) of a resource, as stored.
    pub async fn get(
        &self,
        kind: Kind,
        tenant: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Record, RegistryError> {
        resource_kind(kind)?;
        self.record(kind, tenant, name, version).await
    }

    /// The resources of `kind` that `tenant` owns.
    pub async fn list(&self, kind: Kind, tenant: &str) -> Result<Vec<Summary>, RegistryError> {
        resource_kind(kind)?;
        Ok(self.store.list(kind, tenant).await?)
    }

    /// Deletes a resource with all its versions; refused for a schema still in use.
    pub async fn delete(&self, kind: Kind, tenant: &str, name: &str) -> Result<(), RegistryError> {
        resource_kind(kind)?;
        if !self.store.delete(kind, tenant, name).await? {
            return Err(RegistryError::NotFound {
                kind,
                name: name.to_owned(),
                version: None,
            });
        }
        self.forget(kind, tenant, name);
        tracing::info!(tenant, kind = kind.as_str(), name, "deleted");
        Ok(())
    }

    /// Compiles a schema with the registered schemas it `$ref`s (transitively) as resources.
    async fn compile_schema(&self, tenant: &str, doc: &Value) -> Result<Schema, RegistryError> {
        let mut bodies = Bodies::new();
        self.fetch_closure(tenant, schema_refs(doc)?, &mut bodies)
            .await?;
        schema_from(tenant, doc, &bodies)
    }

    async fn compile_pipeline(
        &self,
        tenant: &str,
        def: &PipelineDef,
    ) -> Result<Pipeline, RegistryError> {
        let mut bodies = Bodies::new();
        self.fetch_closure(tenant, pinned_refs(def)?, &mut bodies)
            .await?;
        pipeline_from(tenant, def, &bodies)
    }

    /// Adds to `bodies` the schema versions `roots` name and everything they `$ref`,
    /// transitively, fetching only what is missing.
    async fn fetch_closure(
        &self,
        tenant: &str,
        roots: Vec<(String, u32)>,
        bodies: &mut Bodies,
    ) -> Result<(), RegistryError> {
        let mut todo = roots;
        while let Some((name, version)) = todo.pop() {
            let key = (tenant.to_owned(), name, version);
            let body = match bodies.get(&key) {
                Some(b) => b.clone(),
                None => {
                    let rec = self
                        .store
                        .get(Kind::Schema, tenant, &key.1, Some(version))
                        .await?
                        .ok_or_else(|| {
                            RegistryError::Rejected(format!(
                                "unknown schema reference {}@{version}",
                                key.1
                            ))
                        })?;
                    bodies.insert(key, rec.body.clone());
                    rec.body
                }
            };
            todo.extend(
                schema_refs(&parse_stored(&body)?)?
                    .into_iter()
                    .filter(|(n, v)| !bodies.contains_key(&(tenant.to_owned(), n.clone(), *v))),
            );
        }
        Ok(())
    }
}

/// Schema texts by (tenant, name, version).
type Bodies = HashMap<(String, String, u32), String>;

/// Whether records of `kind` are registry resources (compiled and served by `Registry`).
fn is_resource(kind: Kind) -> bool {
    match kind {
        Kind::Schema | Kind::Pipeline => true,
        Kind::Key => false,
    }
}

/// Refuses key records where a resource is expected: a key record holds a secret's hash, so
/// the generic `get` / `list` / `delete` must not hand it out or bypass `keys::Keys` (whose
/// cache a deletion here would leave stale on this instance until the change arrives).
fn resource_kind(kind: Kind) -> Result<(), RegistryError> {
    if is_resource(kind) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{kind} records are not registry resources; use registry::Keys"
        )))
    }
}

/// The `name@version` references of a stored (pinned) pipeline definition.
fn pinned_refs(def: &PipelineDef) -> Result<Vec<(String, u32)>, RegistryError> {
    [&def.input_schema, &def.output_schema]
        .into_iter()
        .flatten()
        .map(|s| match SchemaRef::parse(s)? {
            SchemaRef {
                name,
                version: Some(v),
            } => Ok((name, v)),
            r => Err(RegistryError::Corrupt(format!(
                "stored reference {r} is not pinned"
            ))),
        })
        .collect()
}

/// The registered schemas `doc` reaches, as `SchemaOptions::resources`; `bodies` must hold
/// them (see `Registry::fetch_closure`).
fn resources_from(
    tenant: &str,
    doc: &Value,
    bodies: &Bodies,
) -> Result<Vec<(String, Value)>, RegistryError> {
    let mut seen = BTreeSet::new();
    let mut todo = schema_refs(doc)?;
    let mut out = Vec::new();
    while let Some((name, version)) = todo.pop() {
        if !seen.insert((name.clone(), version)) {
            continue;
        }
        let body = bodies
            .get(&(tenant.to_owned(), name.clone(), version))
            .ok_or_else(|| RegistryError::Rejected(format!("unknown schema {name}@{version}")))?;
        let body = parse_stored(body)?;
        todo.extend(schema_refs(&body)?);
        out.push((format!("{SCHEMA_URI_PREFIX}{name}/{version}"), body));
    }
    Ok(out)
}

fn schema_from(tenant: &str, doc: &Value, bodies: &Bodies) -> Result<Schema, RegistryError> {
    let opts = SchemaOptions {
        resources: resources_from(tenant, doc, bodies)?,
        ..SchemaOptions::default()
    };
    Schema::compile(doc, &opts)
        .map_err(|e| RegistryError::Rejected(format!("schema does not compile: {e}")))
}

fn pipeline_from(
    tenant: &str,
    def: &PipelineDef,
    bodies: &Bodies,
) -> Result<Pipeline, RegistryError> {
    let mut schemas = HashMap::new();
    let mut resources = Vec::new();
    for (s, (name, version)) in [&def.input_schema, &def.output_schema]
        .into_iter()
        .flatten()
        .zip(pinned_refs(def)?)
    {
        let body = bodies
            .get(&(tenant.to_owned(), name.clone(), version))
            .ok_or_else(|| RegistryError::Rejected(format!("unknown schema reference {s}")))?;
        let doc = parse_stored(body)?;
        resources.extend(resources_from(tenant, &doc, bodies)?);
        schemas.insert(s.clone(), doc);
    }
    build_pipeline(def, &schemas, resources)
}

/// What [`Registry::warm`] compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmReport {
    /// Schemas compiled.
    pub schemas: usize,
    /// Pipelines compiled.
    pub pipelines: usize,
    /// Resources that no longer compile (logged and skipped).
    pub failed: usize,
}

fn parse_stored(body: &str) -> Result<Value, RegistryError> {
    parse_document(body.as_bytes(), &Limits::default())
        .map_err(|e| RegistryError::Corrupt(format!("stored document does not parse: {e}")))
}

/// Every `assay://schemas/{name}/{version}` that `doc` references with `$ref`. An unpinned
/// `assay://schemas/{name}` is refused: a stored schema must mean the same thing forever.
fn schema_refs(doc: &Value) -> Result<Vec<(String, u32)>, RegistryError> {
    let mut out = Vec::new();
    let mut stack = vec![doc];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref"
                        && let Some(uri) =
                            v.as_str().and_then(|s| s.strip_prefix(SCHEMA_URI_PREFIX))
                    {
                        let path = uri.split('#').next().unwrap_or("");
                        let pinned = path.split_once('/').and_then(|(name, version)| {
                            Some((name, version.parse::<u32>().ok().filter(|v| *v > 0)?))
                        });
                        let Some((name, version)) = pinned else {
                            return Err(RegistryError::Rejected(format!(
                                "$ref {SCHEMA_URI_PREFIX}{uri} must name a version: {SCHEMA_URI_PREFIX}{{name}}/{{version}}"
                            )));
                        };
                        model::check_name(Kind::Schema, name)?;
                        out.push((name.to_owned(), version));
                    }
                    stack.push(v);
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    Ok(out)
}

/// Builds an engine pipeline from a stored definition and its (pinned) schemas.
fn build_pipeline(
    def: &PipelineDef,
    schemas: &HashMap<String, Value>,
    resources: Vec<(String, Value)>,
) -> Result<Pipeline, RegistryError> {
    let mut doc = serde_json::Map::new();
    if let Some(s) = &def.input_schema {
        doc.insert("input_schema".into(), Value::String(s.clone()));
    }
    if let Some(s) = &def.output_schema {
        doc.insert("output_schema".into(), Value::String(s.clone()));
    }
    if let Some(code) = &def.transform {
        let mut t = serde_json::Map::new();
        t.insert("code".into(), Value::String(code.clone()));
        doc.insert("transform".into(), Value::Object(t));
    }
    doc.insert("output".into(), Value::String(def.output.clone()));
    if let Some(o) = &def.options {
        doc.insert("options".into(), o.clone());
    }
    let mut spec = PipelineSpec::from_document(&Value::Object(doc), |part, r| match part {
        Part::Schema => schemas
            .get(r)
            .cloned()
            .map(Resolved::Schema)
            .ok_or_else(|| format!("unknown schema reference {r}")),
        Part::Transform => Err("transforms are inline".into()),
    })
    .map_err(|e| RegistryError::Rejected(e.to_string()))?;
    spec.options.schema.resources = resources;
    Pipeline::compile(&spec).map_err(|e| RegistryError::Rejected(e.to_string()))
}

struct AllCompiled {
    schemas: Vec<(String, String, Compiled<Schema>)>,
    pipelines: Vec<(String, String, Compiled<Pipeline>)>,
    failed: usize,
}

/// Compiles every record on all cores. Schema `$ref`s resolve against `bodies` (the newest
/// versions, plus older versions that pipelines pin).
fn compile_all(records: &[Record], bodies: &Bodies) -> AllCompiled {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = records.len().div_ceil(threads).max(1);
    let parts: Vec<AllCompiled> = std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| s.spawn(move || compile_some(part, bodies)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut all = AllCompiled {
        schemas: Vec::new(),
        pipelines: Vec::new(),
        failed: 0,
    };
    for p in parts {
        all.schemas.extend(p.schemas);
        all.pipelines.extend(p.pipelines);
        all.failed += p.failed;
    }
    all
}

fn compile_some(records: &[Record], bodies: &Bodies) -> AllCompiled {
    let mut out = AllCompiled {
        schemas: Vec::new(),
        pipelines: Vec::new(),
        failed: 0,
    };
    for r in records {
        let (tenant, name) = (r.tenant.clone(), r.name.clone());
        let result = match r.kind {
            Kind::Schema => parse_stored(&r.body)
                .and_then(|doc| schema_from(&r.tenant, &doc, bodies))
                .map(|value| {
                    out.schemas.push((
                        tenant,
                        name,
                        Compiled {
                            version: r.version,
                            value,
                        },
                    ))
                }),
            Kind::Pipeline => serde_json::from_str::<PipelineDef>(&r.body)
                .map_err(|e| RegistryError::Corrupt(e.to_string()))
                .and_then(|def| pipeline_from(&r.tenant, &def, bodies))
                .map(|value| {
                    out.pipelines.push((
                        tenant,
                        name,
                        Compiled {
                            version: r.version,
                            value,
                        },
                    ))
                }),
            // `Registry::warm` keeps only resources.
            Kind::Key => continue,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, kind = r.kind.as_str(), tenant = %r.tenant, name = %r.name, "stored resource no longer compiles");
            out.failed += 1;
        }
    }
    out
}
