//! The HTTP API: register, read and delete schemas and pipelines, validate documents and run
//! them through pipelines, one at a time or as a streamed NDJSON batch. `GET /openapi.json`
//! describes every route (the document is `openapi.json` beside `Cargo.toml`; a test keeps it
//! and [`api_routes`] in step).
//!
//! This module is the edge: request bodies are handed to the engine and the registry as raw
//! bytes (never through axum's `Json`, whose serde_json parse would accept duplicate keys and
//! round numbers), and every failure leaves as an RFC 9457 `application/problem+json` body
//! built from [`ApiError`]:
//!
//! ```json
//! {"type": "https://assay.dev/problems/not_found", "title": "Not Found", "status": 404,
//!  "detail": "pipeline \"trade\" not found", "code": "not_found"}
//! ```
//!
//! Content types: every endpoint that takes a body requires `Content-Type: application/json`
//! (or any `application/*+json`, such as `application/schema+json`); a missing or different
//! type is 415 rather than a guess, because a client that forgot the header may also have sent
//! something else (curl's `-d` sends a form type). `POST /v1/pipelines/{name}/process` takes
//! `application/x-ndjson` as well: a batch, one document per line, answered line by line while
//! the request is still being read.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, BodyDataStream};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use bytes::{Bytes, BytesMut};
use engine::{Encoding, Finding, Outcome, Pipeline, Rejection, Stage};
use futures::StreamExt;
use registry::{Compiled, Kind, Record, Registered};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OwnedSemaphorePermit;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::state::Processed;
use registry::Role;

/// The OpenAPI 3.1 document served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Where problem types live: `type` is this followed by the problem's `code`.
pub const PROBLEM_TYPE_BASE: &str = "https://assay.dev/problems/";

/// The media type of error bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The media type of a batch, in and out.
pub const NDJSON: &str = "application/x-ndjson";

/// The header that names the version of the schema or pipeline that answered.
pub const VERSION_HEADER: &str = "x-assay-version";

/// Most lines a batch hands to one blocking task. Small enough that a batch holds little
/// memory (a chunk per core), large enough that the hop to the blocking pool is paid once per
/// many lines.
const CHUNK_LINES: usize = 256;
/// Most input bytes in one chunk, for the same reasons.
const CHUNK_BYTES: usize = 1 << 20;

/// The HTTP API's routes, with state, ready to merge with the operational and gRPC routes.
pub fn routes(state: AppState) -> Router {
    let mut guarded = Router::new();
    let mut public = Router::new();
    for e in endpoints() {
        if e.public {
            public = public.route(e.path, e.router);
        } else {
            guarded = guarded.route(e.path, e.router);
        }
    }
    // A path no route matches is answered by the whole service's fallback
    // (`ops::not_found`), which also speaks gRPC.
    guarded
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .merge(public)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every (method, path) the HTTP API serves, as written in the OpenAPI document. The router
/// is built from the same table, so the two cannot drift; a test compares it with the
/// document. (`GET` routes answer `HEAD` too.)
pub fn api_routes() -> Vec<(Method, &'static str)> {
    endpoints()
        .into_iter()
        .map(|e| (e.method, e.path))
        .collect()
}

struct Endpoint {
    method: Method,
    path: &'static str,
    router: MethodRouter<AppState>,
    /// Served without authentication (the API description only).
    public: bool,
}

fn endpoint<H, T>(method: Method, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Endpoint {
        method,
        path,
        router: on(filter, handler),
        public: false,
    }
}

fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        Endpoint {
            public: true,
            ..endpoint(M::GET, "/openapi.json", openapi)
        },
        endpoint(M::GET, "/v1/schemas", list_schemas),
        endpoint(M::PUT, "/v1/schemas/{name}", put_schema),
        endpoint(M::GET, "/v1/schemas/{name}", get_schema),
        endpoint(M::DELETE, "/v1/schemas/{name}", delete_schema),
        endpoint(
            M::GET,
            "/v1/schemas/{name}/versions/{version}",
            get_schema_version,
        ),
        endpoint(M::POST, "/v1/schemas/{name}/validate", validate),
        endpoint(M::GET, "/v1/pipelines", list_pipelines),
        endpoint(M::PUT, "/v1/pipelines/{name}", put_pipeline),
        endpoint(M::GET, "/v1/pipelines/{name}", get_pipeline),
        endpoint(M::DELETE, "/v1/pipelines/{name}", delete_pipeline),
        endpoint(
            M::GET,
            "/v1/pipelines/{name}/versions/{version}",
            get_pipeline_version,
        ),
        endpoint(M::POST, "/v1/pipelines/{name}/process", process),
        endpoint(M::GET, "/v1/keys", list_keys),
        endpoint(M::POST, "/v1/keys", create_key),
        endpoint(M::DELETE, "/v1/keys/{id}", revoke_key),
        endpoint(M::POST, "/v1/echo", echo),
    ]
}

/// `POST /v1/echo`: the body back, untouched. A diagnostic and the reference for the
/// service benchmark: the cost of HTTP, routing and the layers, with no JSON work.
async fn echo(_caller: Caller, body: axum::body::Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

// ---------------------------------------------------------------------------------------
// Errors

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The cause of an internal error was logged where it happened; this records
            // which request it reached.
            tracing::warn!(code = self.code(), status = status.as_u16(), error = %self, "request failed");
        } else {
            tracing::debug!(code = self.code(), status = status.as_u16(), error = %self, "request refused");
        }
        // `Display` of an `ApiError` is written for clients: `Internal` says only
        // "internal error", and registry or engine internals never reach a variant's text.
        let mut response = problem(status, self.code(), &self.to_string());
        if let Some(secs) = self.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, crate::ops::retry_after(secs));
        }
        // A body refused for its size was not read to its end, so the connection cannot
        // carry another request: say so (RFC 9112, 9.6), or a client that reuses it races
        // the close and loses its next request.
        if let ApiError::TooLarge { .. } = self {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        // RFC 9110 (11.6.1): a 401 names the scheme that would be accepted.
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"assay\""),
            );
        }
        response
    }
}

/// An RFC 9457 problem response. `title` is the status's reason phrase, which is the same for
/// every occurrence of a type because each code has one status.
fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("{PROBLEM_TYPE_BASE}{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
        body.to_string(),
    )
        .into_response()
}

/// 405 with the `Allow` header axum adds, as a problem rather than an empty body.
async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("{method} is not allowed on {}", uri.path()),
    )
}

/// An axum extractor's rejection (a path or query that does not parse), as a problem. Its
/// text says what was wrong with the request and nothing about the server.
fn rejected(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
        _ => ApiError::BadRequest {
            code: "invalid_request",
            message: text,
        },
    }
}

// ---------------------------------------------------------------------------------------
// Extractors

/// Path parameters, with a malformed one (a version that is not a number) as a 400 problem.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Params(t)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}

/// The process endpoint's query: `?encoding=jcs` overrides `Accept`.
#[derive(serde::Deserialize, Default)]
struct ProcessQuery {
    encoding: Option<String>,
}

struct QueryParams<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(QueryParams(t)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}

/// A JSON request body as raw bytes, at most `AppState::max_body_bytes` long. The engine or
/// the registry parses it, strictly.
struct JsonBody(Bytes);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match media_type(req.headers()) {
            Some(t) if is_json(&t) => {}
            other => return Err(unsupported(other)),
        }
        Ok(JsonBody(read_body(req, state.max_body_bytes).await?))
    }
}

/// The request's media type, lowercased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    // Clients mostly send it lowercased already: no copy then.
    Some(if essence.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(essence.to_ascii_lowercase())
    } else {
        Cow::Borrowed(essence)
    })
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

fn unsupported(media_type: Option<Cow<'_, str>>) -> ApiError {
    ApiError::UnsupportedMediaType(media_type.map_or_else(|| "(none)".into(), Cow::into_owned))
}

/// Reads a whole body, refusing it as soon as it is known to exceed `limit`: from
/// `Content-Length` before anything is read, else when the bytes read pass the limit.
async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    // The declared length sizes the buffer, but only up to a point: a header is a claim,
    // and a client that declares 16 MiB and sends nothing must not cost 16 MiB.
    let capacity = declared.map_or(0, |n| n.min(1 << 20) as usize);
    // A body that arrives in one frame (most small ones) is kept as it came, without a copy.
    let mut first = None::<Bytes>;
    let mut buf = BytesMut::new();
    let mut stream = req.into_body().into_data_stream();
    while let Some(frame) = stream.next().await {
        let frame = frame.map_err(|_| ApiError::BadRequest {
            code: "invalid_request",
            message: "the request body could not be read to its end".into(),
        })?;
        let read = first.as_ref().map_or(buf.len(), Bytes::len);
        if read + frame.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        if read == 0 {
            first = Some(frame);
            continue;
        }
        if let Some(first) = first.take() {
            buf.reserve(capacity.max(first.len() + frame.len()));
            buf.extend_from_slice(&first);
        }
        buf.extend_from_slice(&frame);
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

// ---------------------------------------------------------------------------------------
// Wire types: the JSON the API sends, kept apart from the engine's and registry's types so
// that a rename there cannot change the API.

#[derive(Serialize)]
struct RegisteredJson<'a> {
    name: &'a str,
    version: u32,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    name: &'a str,
    latest: u32,
}

#[derive(Serialize)]
struct FindingJson<'a> {
    instance_location: &'a str,
    schema_location: &'a str,
    keyword: &'a str,
    message: &'a str,
}

fn findings_json(findings: &[Finding]) -> Vec<FindingJson<'_>> {
    findings
        .iter()
        .map(|f| FindingJson {
            instance_location: &f.instance_location,
            schema_location: &f.schema_location,
            keyword: &f.keyword,
            message: &f.message,
        })
        .collect()
}

fn stage_str(stage: Stage) -> &'static str {
    match stage {
        Stage::Input => "input",
        Stage::Output => "output",
    }
}

#[derive(Serialize)]
struct ValidatedJson<'a> {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FindingJson<'a>>>,
}

#[derive(Serialize)]
struct RejectedJson<'a> {
    accepted: bool,
    stage: &'static str,
    errors: Vec<FindingJson<'a>>,
}

#[derive(Serialize)]
struct RejectedLine<'a> {
    line: u64,
    ok: bool,
    stage: &'static str,
    errors: Vec<FindingJson<'a>>,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    line: u64,
    ok: bool,
    error: LineError<'a>,
}

#[derive(Serialize)]
struct LineError<'a> {
    code: &'a str,
    message: &'a str,
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a response");
            ApiError::Internal.into_response()
        }
    }
}

fn with_version(mut response: Response, version: u32) -> Response {
    // A `HeaderName` made once: a `&str` name is parsed again at every insert.
    const NAME: HeaderName = HeaderName::from_static(VERSION_HEADER);
    response
        .headers_mut()
        .insert(NAME, HeaderValue::from(version));
    response
}

// ---------------------------------------------------------------------------------------
// Handlers: the registry

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// 201 with `Location` for a new version; 200 with the existing version when the document is
/// identical to the newest one (a repeated PUT is harmless and says it changed nothing).
fn registered(kind: Kind, r: Registered) -> Response {
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_response(
        status,
        &RegisteredJson {
            name: &r.name,
            version: r.version,
        },
    );
    let location = format!("/v1/{}s/{}/versions/{}", kind.as_str(), r.name, r.version);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    with_version(response, r.version)
}

async fn list(state: &AppState, caller: &Caller, kind: Kind) -> Result<Response, ApiError> {
    let summaries = state.registry.list(kind, &caller.tenant).await?;
    let body: Vec<SummaryJson<'_>> = summaries
        .iter()
        .map(|s| SummaryJson {
            name: &s.name,
            latest: s.latest,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &body))
}

/// One stored version, exactly as stored (compact JSON, numbers as written), with its version
/// as `ETag` and `X-Assay-Version`. A matching `If-None-Match` gets 304.
async fn get_record(
    state: &AppState,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: Option<u32>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let Record { version, body, .. } = state
        .registry
        .get(kind, &caller.tenant, name, version)
        .await?;
    let etag = HeaderValue::from_str(&format!("\"{version}\"")).map_err(|_| ApiError::Internal)?;
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    response.headers_mut().insert(header::ETAG, etag);
    Ok(with_version(response, version))
}

fn parse_version(v: &str) -> Result<u32, ApiError> {
    v.parse::<u32>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_request",
            message: format!("the version must be a positive integer, not {v:?}"),
        })
}

async fn delete(
    state: &AppState,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<Response, ApiError> {
    state.registry.delete(kind, &caller.tenant, name).await?;
    caller.audit(&format!("{kind}.delete"), name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Registers a schema or pipeline for the caller's tenant.
async fn put(
    state: &AppState,
    caller: &Caller,
    kind: Kind,
    name: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let r = match kind {
        Kind::Schema => {
            state
                .registry
                .put_schema(&caller.tenant, name, body)
                .await?
        }
        Kind::Pipeline => {
            state
                .registry
                .put_pipeline(&caller.tenant, name, body)
                .await?
        }
        Kind::Key => return Err(ApiError::Internal),
    };
    if r.created {
        caller.audit(&format!("{kind}.put"), &format!("{name}@{}", r.version));
    }
    Ok(registered(kind, r))
}

async fn list_schemas(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    list(&state, caller.require(Role::Admin)?, Kind::Schema).await
}

async fn put_schema(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    put(
        &state,
        caller.require(Role::Admin)?,
        Kind::Schema,
        &name,
        &body,
    )
    .await
}

async fn get_schema(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller.require(Role::Admin)?;
    get_record(&state, caller, Kind::Schema, &name, None, &headers).await
}

async fn get_schema_version(
    State(state): State<AppState>,
    caller: Caller,
    Params((name, version)): Params<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller.require(Role::Admin)?;
    let version = parse_version(&version)?;
    get_record(&state, caller, Kind::Schema, &name, Some(version), &headers).await
}

async fn delete_schema(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
) -> Result<Response, ApiError> {
    delete(&state, caller.require(Role::Admin)?, Kind::Schema, &name).await
}

async fn list_pipelines(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    list(&state, caller.require(Role::Admin)?, Kind::Pipeline).await
}

async fn put_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    put(
        &state,
        caller.require(Role::Admin)?,
        Kind::Pipeline,
        &name,
        &body,
    )
    .await
}

async fn get_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller.require(Role::Admin)?;
    get_record(&state, caller, Kind::Pipeline, &name, None, &headers).await
}

async fn get_pipeline_version(
    State(state): State<AppState>,
    caller: Caller,
    Params((name, version)): Params<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = caller.require(Role::Admin)?;
    let version = parse_version(&version)?;
    get_record(
        &state,
        caller,
        Kind::Pipeline,
        &name,
        Some(version),
        &headers,
    )
    .await
}

async fn delete_pipeline(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
) -> Result<Response, ApiError> {
    delete(&state, caller.require(Role::Admin)?, Kind::Pipeline, &name).await
}

// ---------------------------------------------------------------------------------------
// Handlers: API keys

/// `POST /v1/keys`: what a new key may do, for how long, and a note.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyJson {
    role: String,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Serialize)]
struct KeyJson<'a> {
    id: &'a str,
    tenant: &'a str,
    role: &'static str,
    created_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    /// Only in the answer to a creation: the one time the secret is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
}

fn key_json<'a>(info: &'a registry::KeyInfo, key: Option<&'a str>) -> KeyJson<'a> {
    KeyJson {
        id: &info.id,
        tenant: &info.tenant,
        role: info.role.as_str(),
        created_at: info.created_at,
        expires_at: info.expires_at,
        label: info.label.as_deref(),
        key,
    }
}

async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let req: NewKeyJson = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        code: "invalid_request",
        message: format!("a new key is {{\"role\", \"expires_in_seconds\"?, \"label\"?}}: {e}"),
    })?;
    let new = state
        .access
        .create_key(&caller, &req.role, req.expires_in_seconds, req.label)
        .await?;
    let mut response = json_response(StatusCode::CREATED, &key_json(&new.info, Some(&new.token)));
    // The secret must not linger in caches.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn list_keys(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let keys = state.access.list_keys(&caller).await?;
    let body: Vec<KeyJson<'_>> = keys.iter().map(|k| key_json(k, None)).collect();
    Ok(json_response(StatusCode::OK, &body))
}

async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    state.access.revoke_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------
// Handlers: documents

/// 200 `{"valid":true}` or 422 `{"valid":false,"errors":[...]}`: an invalid document is an
/// answer, not a failure, but clients that only look at the status should still see it.
async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let validated = state.validate(&caller.tenant, &name, body).await?;
    let (status, errors) = if validated.findings.is_empty() {
        (StatusCode::OK, None)
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(findings_json(&validated.findings)),
        )
    };
    let valid = errors.is_none();
    Ok(with_version(
        json_response(status, &ValidatedJson { valid, errors }),
        validated.version,
    ))
}

/// One JSON document (`application/json`), or a batch (`application/x-ndjson`).
async fn process(
    State(state): State<AppState>,
    caller: Caller,
    Params(name): Params<String>,
    QueryParams(query): QueryParams<ProcessQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let tenant = caller.tenant;
    let batch = match media_type(req.headers()) {
        Some(t) if t == NDJSON => true,
        Some(t) if is_json(&t) => false,
        other => return Err(unsupported(other)),
    };
    if batch {
        process_batch(state, tenant, name, query, req.into_body()).await
    } else {
        process_one(state, &tenant, name, query, req).await
    }
}

async fn process_one(
    state: AppState,
    tenant: &str,
    name: String,
    query: ProcessQuery,
    req: Request,
) -> Result<Response, ApiError> {
    let requested = query.encoding.as_deref().map(parse_encoding).transpose()?;
    let accept = req.headers().get(header::ACCEPT).cloned();
    let body = read_body(req, state.max_body_bytes).await?;
    // `?encoding=` first; else `Accept`, where the pipeline's own encoding decides what
    // `application/json` and `*/*` mean.
    let encoding = |own| requested.unwrap_or_else(|| negotiate(accept.as_ref(), own));
    // The same deadline the router answers 504 at: the transform stops then too.
    let deadline = Some(Instant::now() + state.request_timeout);
    let response = match state
        .process(tenant, &name, body, encoding, deadline)
        .await?
    {
        Processed::Accepted {
            output,
            encoding,
            version,
        } => {
            // Built directly: through `(headers, body).into_response()` the body's own
            // content type was set, then replaced.
            let mut r = Response::new(Body::from(output));
            let headers = r.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(encoding.content_type()),
            );
            headers.insert(header::VARY, HeaderValue::from_static("accept"));
            with_version(r, version)
        }
        Processed::Rejected { rejection, version } => with_version(
            json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &RejectedJson {
                    accepted: false,
                    stage: stage_str(rejection.stage),
                    errors: findings_json(&rejection.findings),
                },
            ),
            version,
        ),
    };
    Ok(response)
}

fn parse_encoding(name: &str) -> Result<Encoding, ApiError> {
    name.parse()
        .map_err(|e: engine::UnknownEncoding| ApiError::BadRequest {
            code: "unknown_encoding",
            message: e.to_string(),
        })
}

/// The encoding `Accept` asks for: the acceptable media type with the highest `q` (the first
/// of equals), `*/*` and `application/*` meaning the pipeline's own. When nothing listed can
/// be produced the pipeline's own encoding is sent, as RFC 9110 (12.5.1) allows, rather than
/// a 406: the `Content-Type` says what came back.
fn negotiate(accept: Option<&HeaderValue>, own: Encoding) -> Encoding {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return own;
    };
    let mut best: Option<(f32, Encoding)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let encoding = match media.as_str() {
            "*/*" | "application/*" => own,
            // JCS is JSON to a client: a pipeline that writes canonical JSON keeps doing so.
            "application/json" if own == Encoding::Jcs => own,
            "application/json" => Encoding::Json,
            "application/x-ndjson" => Encoding::Ndjson,
            "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
                Encoding::MsgPack
            }
            "application/cbor" => Encoding::Cbor,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, encoding));
        }
    }
    best.map_or(own, |(_, e)| e)
}

// ---------------------------------------------------------------------------------------
// Batches

/// A streamed NDJSON batch. The whole batch runs on the pipeline version that is newest when
/// it starts. Lines are read, processed and answered as they come: the request body is read
/// only as fast as results are written, a bounded number of chunks of lines are processed at
/// once on the blocking pool, and results leave in input order, so memory stays constant
/// however long the batch. Each line may be as long as the body limit of a single request.
///
/// Output, one line per non-blank input line (`line` counts every input line from 1):
/// `{"line":N,"ok":true,"result":<output>}`,
/// `{"line":N,"ok":false,"stage":"input","errors":[...]}` or
/// `{"line":N,"ok":false,"error":{"code":"syntax","message":"..."}}`.
async fn process_batch(
    state: AppState,
    tenant: Arc<str>,
    name: String,
    query: ProcessQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let pipeline = state.registry.pipeline(&tenant, &name).await?;
    // Each result is embedded in a JSON line, so it must be JSON text.
    let encoding = match query.encoding.as_deref().map(parse_encoding).transpose()? {
        Some(Encoding::Jcs) => Encoding::Jcs,
        Some(Encoding::Json | Encoding::Ndjson) => Encoding::Json,
        Some(other) => {
            return Err(ApiError::BadRequest {
                code: "invalid_request",
                message: format!(
                    "a batch answers in JSON lines: encoding must be json or jcs, not {other}"
                ),
            });
        }
        None if pipeline.value.encoding() == Encoding::Jcs => Encoding::Jcs,
        None => Encoding::Json,
    };
    let permits = batch_permits(&state)?;
    let width = permits.len();
    let version = pipeline.version;
    let name: Arc<str> = name.into();
    let mut lines = Lines::new(body.into_data_stream(), state.max_body_bytes);
    // The first lines are read before the answer starts: reading the body is what makes
    // hyper send `100 Continue` to a client that asked for it (curl does for bodies over
    // 1 MiB), and once the final status is out it no longer can, so such a client waited its
    // whole expect timeout (one second for curl) before sending anything.
    let first = lines.next_chunk().await;
    let chunks = futures::stream::iter(first)
        .chain(futures::stream::unfold(lines, |mut lines| async move {
            lines.next_chunk().await.map(|c| (c, lines))
        }));
    let access = state.access.clone();
    let results = chunks
        .map(move |chunk| {
            let pipeline = pipeline.clone();
            let name = name.clone();
            let (access, tenant) = (access.clone(), tenant.clone());
            let numbers: Vec<u64> = chunk.iter().map(Item::line).collect();
            async move {
                // Every document counts against the tenant's rate limit: a batch goes at the
                // tenant's rate instead of around it.
                let documents = chunk
                    .iter()
                    .filter(|i| matches!(i, Item::Doc { .. }))
                    .count();
                if let Err(e) = access.throttle(&tenant, documents).await {
                    let mut out = Vec::new();
                    for line in numbers {
                        error_line(&mut out, line, e.code(), &e.to_string());
                    }
                    return out;
                }
                let joined = tokio::task::spawn_blocking(move || {
                    run_chunk(&pipeline, &name, chunk, encoding)
                })
                .await;
                joined.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a batch chunk failed");
                    let mut out = Vec::new();
                    for line in numbers {
                        error_line(&mut out, line, "internal", "internal error");
                    }
                    out
                })
            }
        })
        .buffered(width)
        .map(move |out| {
            // The permits are held as long as the batch runs: it counts as `width`
            // documents in flight.
            let _held = &permits;
            Ok::<_, std::convert::Infallible>(Bytes::from(out))
        });
    let response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON))],
        Body::from_stream(results),
    )
        .into_response();
    Ok(with_version(response, version))
}

/// One permit of the concurrency limit per chunk a batch processes at once: at least one
/// (else the batch is shed like any request), at most one per core.
fn batch_permits(state: &AppState) -> Result<Vec<OwnedSemaphorePermit>, ApiError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut permits = vec![state.admit()?];
    while permits.len() < cores {
        match state.try_admit() {
            Some(p) => permits.push(p),
            None => break,
        }
    }
    Ok(permits)
}

/// One input line, numbered from 1.
enum Item {
    /// A non-blank line (without its newline).
    Doc { line: u64, bytes: Bytes },
    /// A line longer than the limit; it was skipped without being held.
    TooLong { line: u64, limit: usize },
    /// The request body failed while this line was being read; nothing follows.
    ReadFailed { line: u64 },
}

impl Item {
    fn line(&self) -> u64 {
        match self {
            Item::Doc { line, .. } | Item::TooLong { line, .. } | Item::ReadFailed { line } => {
                *line
            }
        }
    }
}

/// Splits a request body into chunks of lines, holding at most one line's limit of
/// unfinished input.
struct Lines {
    body: BodyDataStream,
    buf: BytesMut,
    /// How much of `buf` is known to hold no newline, so a long line arriving in many small
    /// frames is scanned once, not once per frame.
    scanned: usize,
    /// The number of the line that starts at `buf[0]`.
    next: u64,
    max_line: usize,
    /// Discarding the rest of an overlong line, up to its newline.
    skipping: bool,
    done: bool,
}

impl Lines {
    fn new(body: BodyDataStream, max_line: usize) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            scanned: 0,
            next: 1,
            max_line,
            skipping: false,
            done: false,
        }
    }

    /// The next chunk: the complete lines already read, else waits for more input. It does
    /// not wait to fill a chunk, so a client that sends a line at a time gets each answer
    /// at once.
    async fn next_chunk(&mut self) -> Option<Vec<Item>> {
        loop {
            let mut items = Vec::new();
            self.take_lines(&mut items);
            if !items.is_empty() {
                return Some(items);
            }
            if self.done {
                return None;
            }
            match self.body.next().await {
                Some(Ok(data)) => self.push(data),
                Some(Err(_)) => {
                    self.done = true;
                    return Some(vec![Item::ReadFailed { line: self.next }]);
                }
                None => {
                    self.done = true;
                    // The last line may lack its newline.
                    if !self.skipping && !self.buf.is_empty() {
                        let bytes = std::mem::take(&mut self.buf).freeze();
                        self.scanned = 0;
                        self.emit(bytes, &mut items);
                    }
                    if !items.is_empty() {
                        return Some(items);
                    }
                }
            }
        }
    }

    fn push(&mut self, mut data: Bytes) {
        if self.skipping {
            match data.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    self.skipping = false;
                    self.next += 1;
                    let _ = data.split_to(p + 1);
                }
                None => return,
            }
        }
        self.buf.extend_from_slice(&data);
    }

    fn take_lines(&mut self, items: &mut Vec<Item>) {
        let mut bytes = 0;
        let mut unfinished = false;
        while items.len() < CHUNK_LINES && bytes < CHUNK_BYTES {
            let Some(p) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                unfinished = true;
                break;
            };
            let mut line = self.buf.split_to(self.scanned + p + 1).freeze();
            self.scanned = 0;
            line.truncate(line.len() - 1);
            bytes += line.len();
            self.emit(line, items);
        }
        if unfinished && self.buf.len() > self.max_line {
            // An unfinished line already over the limit: report it now and drop its bytes
            // as they arrive instead of holding them.
            items.push(Item::TooLong {
                line: self.next,
                limit: self.max_line,
            });
            self.buf = BytesMut::new();
            self.scanned = 0;
            self.skipping = true;
        }
    }

    fn emit(&mut self, line: Bytes, items: &mut Vec<Item>) {
        let number = self.next;
        self.next += 1;
        // Blank means JSON whitespace only: a form feed is not blank but a syntax error.
        if line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            return;
        }
        if line.len() > self.max_line {
            items.push(Item::TooLong {
                line: number,
                limit: self.max_line,
            });
        } else {
            items.push(Item::Doc {
                line: number,
                bytes: line,
            });
        }
    }
}

/// Processes one chunk of lines on a blocking thread, writing one result line each.
fn run_chunk(
    pipeline: &Compiled<Pipeline>,
    name: &str,
    items: Vec<Item>,
    encoding: Encoding,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 128);
    for item in items {
        match item {
            Item::Doc { line, bytes } => run_line(pipeline, name, line, &bytes, encoding, &mut out),
            Item::TooLong { line, limit } => error_line(
                &mut out,
                line,
                "too_large",
                &format!("the line is longer than the limit of {limit} bytes"),
            ),
            Item::ReadFailed { line } => error_line(
                &mut out,
                line,
                "invalid_request",
                "the request body could not be read to its end",
            ),
        }
    }
    out
}

fn run_line(
    pipeline: &Compiled<Pipeline>,
    name: &str,
    line: u64,
    bytes: &[u8],
    encoding: Encoding,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    let started = Instant::now();
    let mut prefix = String::new();
    let _ = write!(prefix, "{{\"line\":{line},\"ok\":true,\"result\":");
    out.extend_from_slice(prefix.as_bytes());
    // A panic is this line's internal error; the engine's compiled parts are immutable, so
    // the next line runs on them safely.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        pipeline.value.process(bytes, Some(encoding), out)
    }));
    crate::state::per_document()
        .process_seconds
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(Ok(Outcome::Accepted(()))) => out.extend_from_slice(b"}\n"),
        Ok(Ok(Outcome::Rejected(Rejection { stage, findings }))) => {
            out.truncate(start);
            metrics::counter!("assay_validation_failures_total", "pipeline" => name.to_owned(), "stage" => stage_str(stage)).increment(1);
            let rejected = RejectedLine {
                line,
                ok: false,
                stage: stage_str(stage),
                errors: findings_json(&findings),
            };
            write_line(out, &rejected);
        }
        Ok(Err(e)) => {
            out.truncate(start);
            let e = ApiError::from(e);
            error_line(out, line, e.code(), &e.to_string());
        }
        Err(_) => {
            out.truncate(start);
            tracing::error!(line, pipeline = name, "processing a batch line panicked");
            error_line(out, line, "internal", "internal error");
        }
    }
}

fn error_line(out: &mut Vec<u8>, line: u64, code: &str, message: &str) {
    let e = ErrorLine {
        line,
        ok: false,
        error: LineError { code, message },
    };
    write_line(out, &e);
}

fn write_line(out: &mut Vec<u8>, value: &impl Serialize) {
    // Serialising these small structs of strings and integers cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The routes `ops::routes` serves, which the document describes too.
    const OPS_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if matches!(
                    method.as_str(),
                    "get" | "put" | "post" | "delete" | "patch" | "head" | "options"
                ) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_lists_exactly_the_routes_served() {
        let mut served: BTreeSet<(String, String)> = api_routes()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_owned()))
            .collect();
        served.extend(
            OPS_ROUTES
                .iter()
                .map(|p| ("GET".to_owned(), (*p).to_owned())),
        );
        let documented = documented();
        let missing: Vec<_> = served.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&served).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }

    #[test]
    fn accept_picks_the_best_encoding_it_can_produce() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(negotiate(None, Encoding::Cbor), Encoding::Cbor);
        assert_eq!(negotiate(Some(&h("*/*")), Encoding::Cbor), Encoding::Cbor);
        assert_eq!(
            negotiate(Some(&h("application/json")), Encoding::Cbor),
            Encoding::Json
        );
        assert_eq!(
            negotiate(Some(&h("application/json")), Encoding::Jcs),
            Encoding::Jcs
        );
        assert_eq!(
            negotiate(
                Some(&h("application/json;q=0.5, application/msgpack")),
                Encoding::Json
            ),
            Encoding::MsgPack
        );
        assert_eq!(
            negotiate(Some(&h("application/cbor;q=0, text/html")), Encoding::Json),
            Encoding::Json
        );
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/schema+json"));
        assert!(!is_json("application/x-ndjson"));
        assert!(!is_json("text/json"));
    }

    async fn split(frames: Vec<&'static [u8]>, max_line: usize) -> Vec<(u64, String)> {
        let stream = futures::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<_, std::io::Error>(Bytes::from_static(f))),
        );
        let mut lines = Lines::new(Body::from_stream(stream).into_data_stream(), max_line);
        let mut out = Vec::new();
        while let Some(chunk) = lines.next_chunk().await {
            for item in chunk {
                out.push(match item {
                    Item::Doc { line, bytes } => (line, String::from_utf8(bytes.to_vec()).unwrap()),
                    Item::TooLong { line, .. } => (line, "<too long>".into()),
                    Item::ReadFailed { line } => (line, "<failed>".into()),
                });
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_are_split_across_frames_numbered_and_limited() {
        let got = split(
            vec![
                b"{\"a\"",
                b":1}\n\n  \r\n[2]\r\n",
                b"\"0123456789",
                b"0123456789\"\n[3]\n",
                b"\"abcdefghijklmnopqrst",
                b"uvw\"\n4",
            ],
            16,
        )
        .await;
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".to_owned()),
                (4, "[2]\r".to_owned()),
                (5, "<too long>".to_owned()),
                (6, "[3]".to_owned()),
                (7, "<too long>".to_owned()),
                (8, "4".to_owned()),
            ]
        );
    }
}
