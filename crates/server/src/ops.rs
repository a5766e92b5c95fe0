//! Operations: liveness (`/healthz`), readiness (`/readyz`), Prometheus metrics (`/metrics`),
//! and the layers every request passes through: request ids, tracing spans, request metrics,
//! panics turned into 500s, and the per-request deadline.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::{AppState, Config};

/// The request id header, taken from the request or added to it, and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        handle
    })
}

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
/// trace span, request metrics, panic catcher.
pub fn with_layers(router: Router) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(span))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(middleware::from_fn(record))
            .layer(CatchPanicLayer::new()),
    )
}

/// The per-request deadline for HTTP routes: 504 when the response has not started in time.
/// (gRPC calls carry their own deadline, `grpc-timeout`, which `grpc` honours.)
pub fn with_deadline(router: Router, config: &Config) -> Router {
    router.layer(TimeoutLayer::with_status_code(
        StatusCode::GATEWAY_TIMEOUT,
        config.request_timeout,
    ))
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
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| req.uri().path().to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let in_flight = InFlight::enter();
    let response = next.run(req).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    metrics::counter!("assay_requests_total", "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("assay_request_seconds", "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Counts a request in flight until dropped, so that a request whose client went away (its
/// future dropped mid-way) is not counted forever.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!("assay_requests_in_flight").increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("assay_requests_in_flight").decrement(1.0);
    }
}

/// A `Retry-After` header value.
pub fn retry_after(secs: u64) -> HeaderValue {
    HeaderValue::from_str(&secs.to_string()).unwrap_or(HeaderValue::from_static("1"))
}

/// How long tests and benchmarks wait for a server to answer `/healthz`.
pub const STARTUP_WAIT: Duration = Duration::from_secs(10);
