//! The gRPC front: `assay.v1.Engine` (process and validate documents), `assay.v1.Registry`
//! (schemas and pipelines), `assay.v1.Keys` (the tenant's API keys), `grpc.health.v1.Health`
//! and server reflection (v1 and v1alpha),
//! mounted as routes of the shared axum router so that gRPC (h2c) and HTTP share one listener.
//!
//! This module is the edge: protobuf messages are converted here to the engine's and the
//! registry's own types and back, and every failure leaves as a `tonic::Status` built from
//! [`ApiError`], with a `google.rpc.ErrorInfo` detail whose `reason` is the same stable code
//! the HTTP API sends (and a `RetryInfo` when a retry is invited).
//!
//! tonic's own `Server` honours the client's `grpc-timeout`; mounted on axum it does not, so
//! each service is wrapped in `with_deadline`, which turns the header into a `Deadline`
//! request extension that the handlers race their work against.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use engine::{Encoding, Finding};
use futures::{FutureExt, Stream, StreamExt};
use http::HeaderMap;
use prost::Message as _;
use registry::{Kind, Role};
use tokio::time::Instant;
use tonic::server::NamedService;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::ServingStatus;
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Service, ServiceExt};

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::{Processed, Validated};

use proto::engine_server::{Engine, EngineServer};
use proto::keys_server::KeysServer;
use proto::process_response::Result as Outcome;
use proto::registry_server::RegistryServer;

/// The code generated from `proto/assay/v1/*.proto`, servers and clients both, so that tests
/// and benchmarks talk to the service through the same types.
pub mod proto {
    tonic::include_proto!("assay.v1");
}

/// The encoded `FileDescriptorSet` of `assay.v1`, written by `build.rs`, that reflection serves.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/assay_descriptor.bin"));

/// The `domain` of every `ErrorInfo` this service sends.
pub const ERROR_DOMAIN: &str = "assay";

/// Room for a request's other fields (pipeline name, encoding, sequence) beside its document,
/// so that the largest document HTTP accepts fits in a gRPC message too. Names are short, so
/// this is generous.
const ENVELOPE_BYTES: usize = 4096;

/// The client's deadline, from its `grpc-timeout` header, measured from the moment the request
/// reached the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline(Instant);

/// The gRPC services as routes of the shared router.
///
/// Each service gets its own `/{package.Service}/{method}` route. tonic's `Routes` would add a
/// catch-all fallback, and axum refuses to merge two routers that both have one, which would
/// leave the HTTP API unable to have its own; a call to an unknown service falls through to
/// the HTTP 404, which gRPC clients read as UNIMPLEMENTED.
pub fn routes(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes;
    let limit = max_body_bytes.saturating_add(ENVELOPE_BYTES);
    let engine = EngineServer::new(EngineService {
        state: state.clone(),
    })
    .max_decoding_message_size(limit);
    let guard_state = state.clone();
    let keys = KeysServer::new(KeysService {
        state: state.clone(),
    });
    let registry = RegistryServer::new(RegistryService { state }).max_decoding_message_size(limit);

    let (reporter, health) = tonic_health::server::health_reporter();
    for name in [
        <EngineServer<EngineService> as NamedService>::NAME,
        <RegistryServer<RegistryService> as NamedService>::NAME,
        <KeysServer<KeysService> as NamedService>::NAME,
    ] {
        // The reporter's lock is fresh and uncontended, so this completes at once; doing it
        // without awaiting keeps `routes` callable outside a runtime.
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .now_or_never()
            .expect("a fresh health reporter is never locked");
    }

    // Both reflection versions know every service here, health included, so that any client
    // (grpcurl asks v1 first, grpcio's reflection database only v1alpha) can list and call
    // them all.
    let reflection = || {
        DESCRIPTOR_SETS.iter().fold(
            tonic_reflection::server::Builder::configure().include_reflection_service(false),
            |b, set| b.register_encoded_file_descriptor_set(set),
        )
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the descriptor sets compiled into the binary decode");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the descriptor sets compiled into the binary decode");

    let ours = Some(max_body_bytes);
    // Engine, Registry and Keys need a caller (see `auth`); health and reflection are open,
    // as load balancers and tools expect.
    let guarded = mount(Router::new(), engine, ours);
    let guarded = mount(guarded, keys, ours);
    let guarded = mount(guarded, registry, ours).route_layer(axum::middleware::from_fn_with_state(
        guard_state,
        crate::auth::guard,
    ));
    let router = mount(guarded, health, None);
    let router = mount(router, reflection_v1, None);
    mount(router, reflection_v1alpha, None)
        // Inside the service-wide panic catcher, so that a gRPC client gets a gRPC status.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::ops::grpc_panic,
        ))
}

/// The descriptor sets of every service served here.
const DESCRIPTOR_SETS: [&[u8]; 4] = [
    FILE_DESCRIPTOR_SET,
    tonic_health::pb::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
];

/// `path` as a metrics label: the `/package.Service/Method` path of a method served here,
/// else `unknown` (a client choosing the path must not choose the labels).
pub fn method_label(path: &str) -> &'static str {
    static METHODS: OnceLock<HashSet<String>> = OnceLock::new();
    let methods = METHODS.get_or_init(|| {
        let mut methods = HashSet::new();
        for set in DESCRIPTOR_SETS {
            let set = prost_types::FileDescriptorSet::decode(set)
                .expect("the descriptor sets compiled into the binary decode");
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        methods.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        methods
    });
    methods.get(path).map_or("unknown", String::as_str)
}

type GrpcResponse = http::Response<tonic::body::Body>;

/// Adds `svc` under `/{its name}/*`, as tonic's `Routes::add_service` does, with the client's
/// deadline attached to each request and, for a service whose messages are limited to
/// `max_body_bytes`, the answer to an oversize message made the one HTTP gives.
fn mount<S>(router: Router, svc: S, max_body_bytes: Option<usize>) -> Router
where
    S: Service<http::Request<tonic::body::Body>, Response = GrpcResponse, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    router.route_service(
        &format!("/{}/{{*rest}}", S::NAME),
        svc.map_request(with_deadline)
            .map_response(move |r| match max_body_bytes {
                Some(limit) => oversize_as_too_large(r, limit),
                None => r,
            }),
    )
}

/// tonic refuses a message over the decoding limit with OUT_OF_RANGE; gRPC's own
/// implementations, and this service's HTTP API, call that RESOURCE_EXHAUSTED (`too_large`).
/// Nothing else in these services answers OUT_OF_RANGE, so the code alone identifies it. A
/// unary call fails before its handler runs, with the status in the response headers; in a
/// stream the handler sees the error (see [`from_decoder`]).
fn oversize_as_too_large(response: GrpcResponse, max_body_bytes: usize) -> GrpcResponse {
    let out_of_range = (Code::OutOfRange as i32).to_string();
    if response
        .headers()
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        return status(&ApiError::TooLarge {
            limit: max_body_bytes,
        })
        .into_http();
    }
    response
}

/// A request stream's error, with an oversize message reported as for unary calls.
fn from_decoder(s: Status, max_body_bytes: usize) -> Status {
    if s.code() == Code::OutOfRange {
        status(&ApiError::TooLarge {
            limit: max_body_bytes,
        })
    } else {
        s
    }
}

/// Reads `grpc-timeout` into a [`Deadline`] extension, and adapts the body to tonic's.
fn with_deadline(mut req: http::Request<axum::body::Body>) -> http::Request<tonic::body::Body> {
    if let Some(at) = grpc_timeout(req.headers()).and_then(|d| Instant::now().checked_add(d)) {
        req.extensions_mut().insert(Deadline(at));
    }
    req.map(tonic::body::Body::new)
}

/// Parses `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit, `H M S m u n`). A
/// value that does not parse is ignored, as tonic's own server ignores it.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let unit_at = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at(unit_at);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        tracing::debug!(value, "ignoring a malformed grpc-timeout");
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => {
            tracing::debug!(value, "ignoring a malformed grpc-timeout");
            return None;
        }
    })
}

/// The caller `auth::guard` found, if its role includes `role`.
fn caller<T>(request: &Request<T>, role: Role) -> Result<Caller, Status> {
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("a gRPC service without the auth guard");
            status(&ApiError::Internal)
        })?;
    caller.require(role).map_err(|e| status(&e))?;
    Ok(caller)
}

fn deadline_of<T>(request: &Request<T>) -> Option<Deadline> {
    request.extensions().get::<Deadline>().copied()
}

/// Runs `work` until the deadline, if any. Work already handed to the blocking pool finishes
/// on its own (a transform run is bounded by its time budget); the client gets its answer now.
async fn within<T>(
    deadline: Option<Deadline>,
    work: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match deadline {
        None => work.await,
        Some(Deadline(at)) => tokio::time::timeout_at(at, work)
            .await
            .unwrap_or(Err(ApiError::DeadlineExceeded)),
    }
}

/// The status a client sees for `e`: its gRPC code, its message, and the stable code as
/// `ErrorInfo.reason` (with `RetryInfo` when a retry is invited).
pub(crate) fn status(e: &ApiError) -> Status {
    let mut metadata = HashMap::new();
    if let ApiError::TooLarge { limit } = e {
        metadata.insert("limit".to_owned(), limit.to_string());
    }
    let mut details = ErrorDetails::with_error_info(e.code(), ERROR_DOMAIN, metadata);
    if let Some(secs) = e.retry_after_secs() {
        details.set_retry_info(Some(Duration::from_secs(secs)));
    }
    tracing::debug!(code = e.code(), error = %e, "gRPC call failed");
    Status::with_error_details(e.grpc_code(), e.to_string(), details)
}

/// The same refusal HTTP gives a body over the limit; the message limit itself is a little
/// larger (see [`ENVELOPE_BYTES`]).
fn check_size(state: &AppState, body: &[u8]) -> Result<(), ApiError> {
    if body.len() > state.max_body_bytes {
        return Err(ApiError::TooLarge {
            limit: state.max_body_bytes,
        });
    }
    Ok(())
}

/// An empty `encoding` means the pipeline's own.
fn encoding(name: &str) -> Result<Option<Encoding>, ApiError> {
    if name.is_empty() {
        return Ok(None);
    }
    name.parse()
        .map(Some)
        .map_err(|e: engine::UnknownEncoding| ApiError::BadRequest {
            code: "unknown_encoding",
            message: e.to_string(),
        })
}

fn finding(f: Finding) -> proto::Finding {
    proto::Finding {
        instance_location: f.instance_location,
        schema_location: f.schema_location,
        keyword: f.keyword,
        message: f.message,
    }
}

fn process_response(sequence: u64, processed: Processed) -> proto::ProcessResponse {
    let (pipeline_version, result) = match processed {
        Processed::Accepted {
            output,
            encoding,
            version,
        } => (
            version,
            Outcome::Accepted(proto::Accepted {
                output,
                encoding: encoding.as_str().to_owned(),
            }),
        ),
        Processed::Rejected { rejection, version } => (
            version,
            Outcome::Rejected(proto::Rejected {
                stage: rejection.stage.to_string(),
                findings: rejection.findings.into_iter().map(finding).collect(),
            }),
        ),
    };
    proto::ProcessResponse {
        sequence,
        pipeline_version,
        result: Some(result),
    }
}

/// `assay.v1.Engine` over [`AppState::process`] and [`AppState::validate`].
#[derive(Clone)]
struct EngineService {
    state: AppState,
}

impl EngineService {
    async fn process_one(
        &self,
        tenant: &str,
        req: proto::ProcessRequest,
        deadline: Option<Deadline>,
    ) -> Result<Processed, ApiError> {
        let encoding = encoding(&req.encoding)?;
        check_size(&self.state, &req.document)?;
        let deadline = deadline.map(|Deadline(at)| at.into_std());
        self.state
            .process(
                tenant,
                &req.pipeline,
                Bytes::from(req.document),
                |own| encoding.unwrap_or(own),
                deadline,
            )
            .await
    }
}

/// The most stream messages, and document bytes, taken together as one chunk.
const STREAM_CHUNK: usize = 256;
const STREAM_CHUNK_BYTES: usize = 1 << 20;

/// The next message of a stream (waited for), with those after it that have already arrived,
/// up to [`STREAM_CHUNK`] messages or [`STREAM_CHUNK_BYTES`] of documents; `None` at the end.
/// A broken message ends the chunk.
async fn received(
    messages: &mut Streaming<proto::ProcessRequest>,
) -> Option<Vec<Result<proto::ProcessRequest, Status>>> {
    let first = messages.next().await?;
    let mut bytes = first.as_ref().map_or(0, |m| m.document.len());
    let mut chunk = vec![first];
    while chunk.len() < STREAM_CHUNK && bytes < STREAM_CHUNK_BYTES && chunk[chunk.len() - 1].is_ok()
    {
        match messages.next().now_or_never() {
            Some(Some(item)) => {
                bytes += item.as_ref().map_or(0, |m| m.document.len());
                chunk.push(item);
            }
            // Nothing more has arrived yet, or the stream has ended.
            _ => break,
        }
    }
    Some(chunk)
}

/// How many documents of one stream are processed at once (one per core). Responses still
/// leave in request order; the window lets the other cores work on the next documents while
/// one is written out, and bounds what a stream holds in memory.
fn stream_window() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<proto::ProcessResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Engine for EngineService {
    async fn process(
        &self,
        request: Request<proto::ProcessRequest>,
    ) -> Result<Response<proto::ProcessResponse>, Status> {
        let tenant = caller(&request, Role::Client)?.tenant;
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let sequence = req.sequence;
        let processed = within(deadline, self.process_one(&tenant, req, deadline))
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(process_response(sequence, processed)))
    }

    async fn validate(
        &self,
        request: Request<proto::ValidateRequest>,
    ) -> Result<Response<proto::ValidateResponse>, Status> {
        let tenant = caller(&request, Role::Client)?.tenant;
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let work = async {
            check_size(&self.state, &req.document)?;
            self.state
                .validate(&tenant, &req.schema, Bytes::from(req.document))
                .await
        };
        let Validated { findings, version } =
            within(deadline, work).await.map_err(|e| status(&e))?;
        Ok(Response::new(proto::ValidateResponse {
            valid: findings.is_empty(),
            findings: findings.into_iter().map(finding).collect(),
            schema_version: version,
        }))
    }

    async fn echo(
        &self,
        request: Request<proto::EchoRequest>,
    ) -> Result<Response<proto::EchoResponse>, Status> {
        caller(&request, Role::Client)?;
        Ok(Response::new(proto::EchoResponse {
            document: request.into_inner().document,
        }))
    }

    type ProcessStreamStream = ResponseStream;

    async fn process_stream(
        &self,
        request: Request<Streaming<proto::ProcessRequest>>,
    ) -> Result<Response<Self::ProcessStreamStream>, Status> {
        let tenant = caller(&request, Role::Client)?.tenant;
        let tenant_of_stream = tenant.clone();
        let deadline = deadline_of(&request);
        let service = self.clone();
        let access = self.state.access.clone();
        // The messages already received, up to a chunk: the rate limit is asked once per
        // chunk (a Redis round trip when limits are shared), as for an NDJSON batch.
        let chunks = futures::stream::unfold(request.into_inner(), |mut messages| async move {
            let chunk = received(&mut messages).await?;
            Some((chunk, messages))
        });
        let responses = chunks
            .then(move |items| {
                let (access, tenant) = (access.clone(), tenant.clone());
                async move {
                    // Every document of a stream counts against the tenant's rate limit.
                    let documents = items.iter().filter(|i| i.is_ok()).count();
                    let admitted = match documents {
                        0 => Ok(()),
                        n => access.throttle(&tenant, n).await.map_err(Arc::new),
                    };
                    futures::stream::iter(items.into_iter().map(move |i| (i, admitted.clone())))
                }
            })
            .flatten()
            .map(move |(item, admitted)| {
                let service = service.clone();
                let tenant = tenant_of_stream.clone();
                let sequence = item.as_ref().map_or(0, |r| r.sequence);
                // Each message is a task of its own: a small document is processed on
                // whichever worker runs the task, several at once across the cores, without a
                // trip to the blocking pool per message (two thread switches, which cost more
                // than the engine's work on a trade: docs/benchmarks.md).
                let task = tokio::spawn(async move {
                    let req = item.map_err(|s| from_decoder(s, service.state.max_body_bytes))?;
                    if let Err(e) = admitted {
                        return Ok(failure_response(sequence, &e));
                    }
                    Ok(match service.process_one(&tenant, req, deadline).await {
                        Ok(processed) => process_response(sequence, processed),
                        // A failing document is data in a stream: the batch goes on.
                        Err(e) => failure_response(sequence, &e),
                    })
                });
                // The task ends on its own if the stream is dropped; at most a window of
                // them run at once.
                async move {
                    task.await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "a stream message's task failed");
                        Ok(failure_response(sequence, &ApiError::Internal))
                    })
                }
            })
            .buffered(stream_window())
            // A broken request stream (a message over the limit, a reset) ends the call with
            // its status; nothing after it can be trusted to be in order.
            .scan(false, |failed, item| {
                let out = (!*failed).then_some(item);
                *failed = matches!(out, Some(Err(_)));
                std::future::ready(out)
            });
        Ok(Response::new(until_deadline(Box::pin(responses), deadline)))
    }
}

/// Ends `responses` with DEADLINE_EXCEEDED once the client's deadline passes.
fn until_deadline(responses: ResponseStream, deadline: Option<Deadline>) -> ResponseStream {
    let Some(Deadline(at)) = deadline else {
        return responses;
    };
    let sleep = Box::pin(tokio::time::sleep_until(at));
    Box::pin(futures::stream::unfold(
        Some((responses, sleep)),
        |state| async move {
            let (mut responses, mut sleep) = state?;
            tokio::select! {
                biased;
                item = responses.next() => item.map(|item| (item, Some((responses, sleep)))),
                () = &mut sleep => Some((Err(status(&ApiError::DeadlineExceeded)), None)),
            }
        },
    ))
}

/// A stream's answer for a document that failed: data, not the end of the stream.
fn failure_response(sequence: u64, e: &ApiError) -> proto::ProcessResponse {
    proto::ProcessResponse {
        sequence,
        pipeline_version: 0,
        result: Some(Outcome::Error(proto::Failure {
            code: e.code().to_owned(),
            message: e.to_string(),
        })),
    }
}

/// `assay.v1.Registry` over [`registry::Registry`], for the caller's tenant.
struct RegistryService {
    state: AppState,
}

impl RegistryService {
    async fn put(
        &self,
        kind: Kind,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        let caller = caller(&request, Role::Admin)?;
        let tenant = &*caller.tenant;
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let registry = &self.state.registry;
        let work = async {
            check_size(&self.state, &req.body)?;
            Ok(match kind {
                Kind::Schema => registry.put_schema(tenant, &req.name, &req.body).await?,
                Kind::Pipeline => registry.put_pipeline(tenant, &req.name, &req.body).await?,
                // Never called so: keys are not documents of this service.
                Kind::Key => return Err(ApiError::Internal),
            })
        };
        let registered = within(deadline, work).await.map_err(|e| status(&e))?;
        if registered.created {
            caller.audit(
                &format!("{kind}.put"),
                &format!("{}@{}", registered.name, registered.version),
            );
        }
        Ok(Response::new(proto::PutResponse {
            name: registered.name,
            version: registered.version,
            created: registered.created,
        }))
    }

    async fn get(
        &self,
        kind: Kind,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        let tenant = caller(&request, Role::Admin)?.tenant;
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let version = (req.version != 0).then_some(req.version);
        let work = async {
            Ok(self
                .state
                .registry
                .get(kind, &tenant, &req.name, version)
                .await?)
        };
        let record = within(deadline, work).await.map_err(|e| status(&e))?;
        Ok(Response::new(proto::Record {
            name: record.name,
            version: record.version,
            body: record.body.into_bytes(),
        }))
    }

    async fn list(
        &self,
        kind: Kind,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        let tenant = caller(&request, Role::Admin)?.tenant;
        let deadline = deadline_of(&request);
        let work = async { Ok(self.state.registry.list(kind, &tenant).await?) };
        let items = within(deadline, work).await.map_err(|e| status(&e))?;
        Ok(Response::new(proto::ListResponse {
            items: items
                .into_iter()
                .map(|s| proto::Summary {
                    name: s.name,
                    latest: s.latest,
                })
                .collect(),
        }))
    }

    async fn delete(
        &self,
        kind: Kind,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, Status> {
        let caller = caller(&request, Role::Admin)?;
        let deadline = deadline_of(&request);
        let name = request.into_inner().name;
        let work = async {
            Ok(self
                .state
                .registry
                .delete(kind, &caller.tenant, &name)
                .await?)
        };
        within(deadline, work).await.map_err(|e| status(&e))?;
        caller.audit(&format!("{kind}.delete"), &name);
        Ok(Response::new(proto::DeleteResponse {}))
    }
}

#[tonic::async_trait]
impl proto::registry_server::Registry for RegistryService {
    async fn put_schema(
        &self,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.put(Kind::Schema, request).await
    }

    async fn get_schema(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        self.get(Kind::Schema, request).await
    }

    async fn list_schemas(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        self.list(Kind::Schema, request).await
    }

    async fn delete_schema(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, Status> {
        self.delete(Kind::Schema, request).await
    }

    async fn put_pipeline(
        &self,
        request: Request<proto::PutRequest>,
    ) -> Result<Response<proto::PutResponse>, Status> {
        self.put(Kind::Pipeline, request).await
    }

    async fn get_pipeline(
        &self,
        request: Request<proto::GetRequest>,
    ) -> Result<Response<proto::Record>, Status> {
        self.get(Kind::Pipeline, request).await
    }

    async fn list_pipelines(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, Status> {
        self.list(Kind::Pipeline, request).await
    }

    async fn delete_pipeline(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, Status> {
        self.delete(Kind::Pipeline, request).await
    }
}

/// `assay.v1.Keys` over [`crate::auth::Access`]'s key operations, for the caller's tenant.
struct KeysService {
    state: AppState,
}

fn key(info: &registry::KeyInfo, token: Option<String>) -> proto::Key {
    proto::Key {
        id: info.id.clone(),
        tenant: info.tenant.clone(),
        role: info.role.as_str().to_owned(),
        created_at: info.created_at,
        expires_at: info.expires_at.unwrap_or(0),
        label: info.label.clone().unwrap_or_default(),
        key: token.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl proto::keys_server::Keys for KeysService {
    async fn create_key(
        &self,
        request: Request<proto::CreateKeyRequest>,
    ) -> Result<Response<proto::Key>, Status> {
        let caller = caller(&request, Role::Admin)?;
        let deadline = deadline_of(&request);
        let req = request.into_inner();
        let work = self.state.access.create_key(
            &caller,
            &req.role,
            (req.expires_in_seconds != 0).then_some(req.expires_in_seconds),
            (!req.label.is_empty()).then_some(req.label),
        );
        let new = within(deadline, work).await.map_err(|e| status(&e))?;
        Ok(Response::new(key(&new.info, Some(new.token))))
    }

    async fn list_keys(
        &self,
        request: Request<proto::ListKeysRequest>,
    ) -> Result<Response<proto::ListKeysResponse>, Status> {
        let caller = caller(&request, Role::Admin)?;
        let deadline = deadline_of(&request);
        let keys = within(deadline, self.state.access.list_keys(&caller))
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(proto::ListKeysResponse {
            keys: keys.iter().map(|k| key(k, None)).collect(),
        }))
    }

    async fn revoke_key(
        &self,
        request: Request<proto::RevokeKeyRequest>,
    ) -> Result<Response<proto::RevokeKeyResponse>, Status> {
        let caller = caller(&request, Role::Admin)?;
        let deadline = deadline_of(&request);
        let id = request.into_inner().id;
        within(deadline, self.state.access.revoke_key(&caller, &id))
            .await
            .map_err(|e| status(&e))?;
        Ok(Response::new(proto::RevokeKeyResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(v: &str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", v.parse().unwrap());
        grpc_timeout(&h)
    }

    #[test]
    fn grpc_timeout_units_follow_the_spec() {
        assert_eq!(timeout("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(timeout("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn malformed_grpc_timeouts_are_ignored() {
        for v in ["", "S", "5", "5x", "123456789S", "-1S", "+1S", "1.5S"] {
            assert_eq!(timeout(v), None, "{v:?}");
        }
    }

    #[test]
    fn errors_carry_their_stable_code_and_retry_hint() {
        let s = status(&ApiError::Overloaded {
            retry_after_secs: 2,
        });
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.reason, "overloaded");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(
            s.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(2))
        );
        let s = status(&ApiError::TooLarge { limit: 10 });
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert_eq!(s.get_details_error_info().unwrap().metadata["limit"], "10");
        assert!(s.get_details_retry_info().is_none());
    }
}
