//! Operations over real sockets: health, readiness, metrics and request ids; load shedding;
//! the per-request deadline; a panic costing only its own request; graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use server::{Application, RawSettings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server, shut down by sending on `stop`.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    done: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(settings: RawSettings) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let settings = RawSettings {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().to_owned()),
        auth: Some("none".into()),
        ..RawSettings::default()
    }
    .overlaid_by(settings);
    let app = Application::build(settings.validate().unwrap())
        .await
        .unwrap();
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel();
    let done = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop,
        done,
        _dir: dir,
    }
}

/// Registers a pipeline whose transform burns CPU for a while (a slow request on demand).
async fn register_slow(client: &reqwest::Client, addr: SocketAddr, work: u32) {
    let def = format!(
        r#"{{"transform":"[range({work})] | length","options":{{"transform_timeout_ms":60000}}}}"#
    );
    let r = client
        .put(format!("http://{addr}/v1/pipelines/slow"))
        .header("content-type", "application/json")
        .body(def)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn process_slow(client: &reqwest::Client, addr: SocketAddr) -> reqwest::Response {
    client
        .post(format!("http://{addr}/v1/pipelines/slow/process"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_and_request_ids() {
    let s = start(RawSettings::default()).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", s.addr);
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A request id given is echoed; one is made up when none is given.
    let r = client
        .get(format!("{base}/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let mut made = std::collections::HashSet::new();
    for _ in 0..3 {
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        let uuid = uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(uuid.get_version_num(), 8, "{id}");
        assert!(made.insert(id), "request ids repeat: {made:?}");
    }
    let metrics = crate::common::metrics(s.addr).await;
    assert!(
        metrics.contains("assay_requests_total{route=\"/healthz\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("assay_request_seconds_bucket"),
        "{metrics}"
    );
    s.stop.send(()).unwrap();
    s.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_retry_after() {
    let s = start(RawSettings {
        max_in_flight: Some(1),
        ..RawSettings::default()
    })
    .await;
    let client = reqwest::Client::new();
    register_slow(&client, s.addr, 2_000_000).await;
    let requests: Vec<_> = (0..6).map(|_| process_slow(&client, s.addr)).collect();
    let responses = futures::future::join_all(requests).await;
    let shed: Vec<_> = responses.iter().filter(|r| r.status() == 503).collect();
    assert!(
        !shed.is_empty(),
        "nothing was shed: {:?}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert!(
        responses.iter().any(|r| r.status() == 200),
        "nothing was served"
    );
    assert_eq!(shed[0].headers()["retry-after"], "1");
    let metrics = crate::common::metrics(s.addr).await;
    assert!(metrics.contains("assay_requests_shed_total"), "{metrics}");
    assert!(
        metrics.contains("assay_cache_hits_total{kind=\"pipeline\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("assay_process_seconds_bucket"),
        "{metrics}"
    );
    s.stop.send(()).unwrap();
    s.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_longer_than_the_inline_budget_finishes_on_the_pool() {
    let s = start(RawSettings::default()).await;
    let client = reqwest::Client::new();
    // Far more than the 2 ms a small document may take on the thread that read it.
    register_slow(&client, s.addr, 2_000_000).await;
    let started = std::time::Instant::now();
    let slow = {
        let (client, addr) = (client.clone(), s.addr);
        tokio::spawn(async move { process_slow(&client, addr).await })
    };
    // While it runs, the server's threads keep answering other requests.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let health = client
        .get(format!("http://{}/healthz", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health_answered = started.elapsed();
    let r = slow.await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap().trim(), "2000000");
    assert!(
        health_answered < took,
        "/healthz ({health_answered:?}) waited for the transform ({took:?})"
    );
    s.stop.send(()).unwrap();
    s.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_deadline_answers_504() {
    let s = start(RawSettings {
        request_timeout_ms: Some(100),
        max_in_flight: Some(1),
        ..RawSettings::default()
    })
    .await;
    let client = reqwest::Client::new();
    // Work for far longer than the test: only the request's deadline can stop it.
    register_slow(&client, s.addr, 1_000_000_000).await;
    let r = process_slow(&client, s.addr).await;
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "deadline_exceeded");
    // The transform stopped at the deadline too: the only admission slot is free again, so
    // the same request is admitted (and times out) instead of being shed with 503.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = process_slow(&client, s.addr).await;
    assert_eq!(r.status(), 504, "{}", r.text().await.unwrap());
    s.stop.send(()).unwrap();
    s.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_costs_only_its_own_request() {
    async fn boom() -> &'static str {
        panic!("boom")
    }
    let routes = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }));
    let app = server::ops::with_layers(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(format!("http://{addr}/boom"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 500);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "internal");
        assert!(
            !problem.to_string().contains("boom"),
            "the panic stays in the log"
        );
    }
    let r = client
        .get(format!("http://{addr}/fine"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_grpc_call_is_internal() {
    async fn boom() -> &'static str {
        panic!("boom")
    }
    let routes = Router::new()
        .route("/assay.v1.Engine/Process", get(boom))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            server::ops::grpc_panic,
        ));
    let app = server::ops::with_layers(routes);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = reqwest::get(format!("http://{addr}/assay.v1.Engine/Process"))
        .await
        .unwrap();
    // 13 is INTERNAL; a panic caught by the HTTP layer alone reaches gRPC clients as UNKNOWN.
    assert_eq!(r.headers()["grpc-status"], "13");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_nothing_serves_is_a_404_problem() {
    let s = start(RawSettings::default()).await;
    for path in ["/nope", "/v1/nope", "/v1/schemas/a/b/c"] {
        let r = reqwest::get(format!("http://{}{path}", s.addr))
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["code"], "not_found");
    }
    // Counted under one label, not one per made-up path.
    let metrics = crate::common::metrics(s.addr).await;
    assert!(
        metrics.contains(r#"assay_requests_total{route="unmatched",status="404"}"#),
        "{metrics}"
    );
    assert!(!metrics.contains("/v1/schemas/a/b/c"), "{metrics}");
    s.stop.send(()).unwrap();
    s.done.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_requests_in_flight() {
    let s = start(RawSettings::default()).await;
    let client = reqwest::Client::new();
    register_slow(&client, s.addr, 3_000_000).await;
    let in_flight = tokio::spawn({
        let client = client.clone();
        let addr = s.addr;
        async move { process_slow(&client, addr).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.stop.send(()).unwrap();
    let r = in_flight.await.unwrap();
    assert_eq!(r.status(), 200, "the request in flight was not completed");
    assert_eq!(r.text().await.unwrap(), "3000000");
    s.done.await.unwrap().unwrap();
    // Stopped: the port no longer accepts.
    assert!(tokio::net::TcpStream::connect(s.addr).await.is_err());
}
