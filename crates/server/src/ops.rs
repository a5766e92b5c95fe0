//! Operations: liveness (`/healthz`), readiness (`/readyz`), Prometheus metrics (`/metrics`),
//! and the layers every request passes through: request ids, tracing spans, request metrics,
//! panics turned into 500s, the per-request deadline, and the answer for paths nothing serves.
//!
//! Every answer these layers make themselves (504, 500, 404) is a problem+json body like the
//! API's own errors, or a gRPC status for a gRPC call, never axum's or tower's plain text.
//!
//! Metrics: HTTP requests by route and status (`assay_requests_total`,
//! `assay_request_seconds`); gRPC calls by method and gRPC status code
//! (`assay_grpc_requests_total`, `assay_grpc_request_seconds`), the code read from the
//! response's trailers when the call ends, so that a stream that fails half way counts as
//! failed; requests in flight (`assay_requests_in_flight`).

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::{AppState, Config};

/// The request id header, taken from the request or added to it, and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes the id of a request that came without one: a UUID (version 8, RFC 9562) of a random
/// number drawn once per process and a counter. Ids are unique within a process and, with the
/// odds of a 60-bit collision, across processes. A version 4 UUID would cost a `getrandom`
/// system call on every request (about 1 µs here, a few percent of a small request).
#[derive(Clone, Copy)]
struct RequestIds;

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        static PROCESS: OnceLock<u64> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let process = *PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let count = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&process.to_be_bytes());
        bytes[8..].copy_from_slice(&count.to_be_bytes());
        let id = uuid::Builder::from_custom_bytes(bytes).into_uuid();
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

/// The process-wide Prometheus recorder (metrics recorders are global).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ])
            .expect("static buckets are valid");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding process); ours still
        // renders what it records.
        let _ = metrics::set_global_recorder(recorder);
        // Histogram samples are kept one by one until upkeep folds them into the buckets.
        // Without it they piled up between scrapes (about 70 bytes a request: 5 MB per five
        // seconds under load, without bound if nothing scrapes). A thread of its own keeps
        // the folding off the async workers.
        let upkeep = handle.clone();
        let started = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(METRICS_UPKEEP);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start metrics upkeep; histograms grow until scraped");
        }
        handle
    })
}

/// How often histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(1);

/// `/healthz`, `/readyz`, `/metrics`.
pub fn routes(state: AppState) -> Router {
    metrics_handle();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(|| async { metrics_handle().render() }))
        .with_state(state)
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.registry.ready().await {
        "ready".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: registry unreachable or cache cold",
        )
            .into_response()
    }
}

/// Wraps `router` in the layers every route passes through, outermost first: request id,
/// trace span, request metrics, panic catcher; and gives it the fallback for unknown paths.
pub fn with_layers(router: Router) -> Router {
    router.fallback(not_found).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, RequestIds))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(middleware::from_fn(record))
            .layer(CatchPanicLayer::custom(http_panic)),
    )
}

/// The per-request deadline for HTTP routes: 504 when the response has not started in time.
/// (gRPC calls carry their own deadline, `grpc-timeout`, which `grpc` honours.) The handler
/// passes the same deadline to the transform, so the work stops too.
pub fn with_deadline(router: Router, config: &Config) -> Router {
    let timeout = config.request_timeout;
    router.layer(middleware::from_fn(
        move |req: Request, next: Next| async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(response) => response,
                Err(_) => ApiError::DeadlineExceeded.into_response(),
            }
        },
    ))
}

/// A panic while serving an HTTP request: logged, and a 500 problem for that request only.
fn http_panic(payload: Box<dyn Any + Send>) -> Response {
    tracing::error!(
        panic = panic_message(&payload),
        "a request handler panicked"
    );
    ApiError::Internal.into_response()
}

/// A panic while serving a gRPC call: logged, and INTERNAL (not UNKNOWN) for that call only.
pub fn grpc_panic(payload: Box<dyn Any + Send>) -> Response {
    tracing::error!(panic = panic_message(&payload), "a gRPC handler panicked");
    tonic::Status::internal("internal error").into_http()
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

/// What answers a path no route serves: a gRPC call to an unknown service gets
/// UNIMPLEMENTED as a gRPC status; anything else a 404 problem.
async fn not_found(req: Request) -> Response {
    if is_grpc(&req) {
        return tonic::Status::unimplemented(format!("no service at {}", req.uri().path()))
            .into_http();
    }
    ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

pub(crate) fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The span of one request, carrying its id so that every event logged while serving it
/// can be traced back to it.
fn span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

/// Counts requests and records their latency by route and status, and the number in flight.
async fn record(req: Request, next: Next) -> Response {
    if is_grpc(&req) {
        return record_grpc(req, next).await;
    }
    // A path no route matched is `unmatched`: a client choosing paths must not choose labels.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let started = Instant::now();
    let in_flight = InFlight::enter();
    let response = next.run(req).await;
    drop(in_flight);
    record_http(route, response.status(), started.elapsed());
    response
}

/// A gRPC call's metrics are recorded when its response body ends (or is dropped, when the
/// client goes away), with the status code from its trailers or, for a trailers-only answer,
/// its headers.
async fn record_grpc(req: Request, next: Next) -> Response {
    let mut call = GrpcCall {
        method: crate::grpc::method_label(req.uri().path()),
        started: Instant::now(),
        code: None,
        _in_flight: InFlight::enter(),
    };
    let response = next.run(req).await;
    call.code = grpc_status(response.headers());
    response.map(|body| {
        axum::body::Body::new(Observed {
            inner: body,
            call: Some(call),
        })
    })
}

/// The names of gRPC status codes, by number, as the gRPC specification spells them.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn grpc_status(headers: &http::HeaderMap) -> Option<&'static str> {
    let n: usize = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    Some(GRPC_CODES.get(n).copied().unwrap_or("UNKNOWN"))
}

struct GrpcCall {
    method: &'static str,
    started: Instant,
    code: Option<&'static str>,
    _in_flight: InFlight,
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        // No status at all: the body was dropped before it ended (the client went away).
        let code = self.code.unwrap_or("CANCELLED");
        record_grpc_call(self.method, code, self.started.elapsed());
    }
}

/// A response body that records its call's metrics when it ends.
struct Observed {
    inner: axum::body::Body,
    call: Option<GrpcCall>,
}

impl http_body::Body for Observed {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(call) = &mut self.call
                {
                    call.code = Some(code);
                }
            }
            std::task::Poll::Ready(None | Some(Err(_))) => {
                // Ended: record now rather than when hyper gets round to dropping the body.
                self.call.take();
            }
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a request in flight until dropped, so that a request whose client went away (its
/// future dropped mid-way) is not counted forever.
struct InFlight;

impl InFlight {
    fn gauge() -> &'static metrics::Gauge {
        static GAUGE: OnceLock<metrics::Gauge> = OnceLock::new();
        GAUGE.get_or_init(|| {
            metrics_handle();
            metrics::gauge!("assay_requests_in_flight")
        })
    }

    fn enter() -> Self {
        Self::gauge().increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        Self::gauge().decrement(1.0);
    }
}

/// A request's counter and latency histogram, by their labels' values.
type Handles = (metrics::Counter, metrics::Histogram);

thread_local! {
    /// The handles each thread has used, kept so that a request does not look its metrics up
    /// in the recorder (`counter!` and `histogram!` hash the name and labels and take the
    /// registry's lock on every call). Bounded: routes and statuses, methods and codes are
    /// the server's own, never a client's text.
    static HTTP_METRICS: RefCell<HashMap<Box<str>, HashMap<u16, Handles>>> =
        RefCell::new(HashMap::new());
    static GRPC_METRICS: RefCell<HashMap<(&'static str, &'static str), Handles>> =
        RefCell::new(HashMap::new());
}

/// Counts a request in `assay_requests_total` and its latency in `assay_request_seconds`.
fn record_http(route: &str, status: StatusCode, took: Duration) {
    HTTP_METRICS.with_borrow_mut(|routes| {
        if !routes.contains_key(route) {
            routes.insert(route.into(), HashMap::new());
        }
        let by_status = routes.get_mut(route).expect("inserted above");
        let (requests, seconds) = by_status.entry(status.as_u16()).or_insert_with(|| {
            let labels = [
                ("route", route.to_owned()),
                ("status", status.as_str().to_owned()),
            ];
            (
                metrics::counter!("assay_requests_total", &labels),
                metrics::histogram!("assay_request_seconds", &labels),
            )
        });
        requests.increment(1);
        seconds.record(took.as_secs_f64());
    })
}

/// Counts a gRPC call in `assay_grpc_requests_total` and its latency in
/// `assay_grpc_request_seconds`.
fn record_grpc_call(method: &'static str, code: &'static str, took: Duration) {
    GRPC_METRICS.with_borrow_mut(|calls| {
        let (count, seconds) = calls.entry((method, code)).or_insert_with(|| {
            (
                metrics::counter!("assay_grpc_requests_total", "method" => method, "code" => code),
                metrics::histogram!("assay_grpc_request_seconds", "method" => method, "code" => code),
            )
        });
        count.increment(1);
        seconds.record(took.as_secs_f64());
    })
}

/// A `Retry-After` header value.
pub fn retry_after(secs: u64) -> HeaderValue {
    HeaderValue::from_str(&secs.to_string()).unwrap_or(HeaderValue::from_static("1"))
}

/// How long tests and benchmarks wait for a server to answer `/healthz`.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);
