//! The HTTP API end to end: reqwest (and curl, a client nobody here wrote) over real sockets
//! against a server on port 0. Every route, the trade workload registered and processed with
//! exact numbers, every error as an RFC 9457 problem with its status and code, and NDJSON
//! batches streamed in order in constant memory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use bigdecimal::BigDecimal;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use reqwest::header::{ACCEPT, CONNECTION, CONTENT_TYPE};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::Value;
use server::RawSettings;

use crate::common::{read_repo_file, repo_file, spawn_server};

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";
const PROBLEM: &str = "application/problem+json";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a client")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn send(
    c: &Client,
    method: Method,
    addr: SocketAddr,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Response {
    let mut req = c.request(method, url(addr, path)).body(body);
    if let Some(t) = content_type {
        req = req.header(CONTENT_TYPE, t);
    }
    req.send().await.expect("the server answers")
}

async fn put_json(
    c: &Client,
    addr: SocketAddr,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> Response {
    send(c, Method::PUT, addr, path, Some(JSON), body).await
}

async fn post_json(
    c: &Client,
    addr: SocketAddr,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> Response {
    send(c, Method::POST, addr, path, Some(JSON), body).await
}

fn content_type(r: &Response) -> String {
    r.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The body as JSON (numbers keep their text: serde_json has `arbitrary_precision` here).
async fn json_of(r: Response) -> Value {
    let bytes = r.bytes().await.expect("a body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Checks that `r` is an RFC 9457 problem with `status` and `code`, and returns its body.
async fn assert_problem(r: Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status of {}", r.url());
    assert_eq!(content_type(&r), PROBLEM, "content type of {}", r.url());
    let p = json_of(r).await;
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(
        p["type"],
        format!("https://assay.dev/problems/{code}"),
        "{p}"
    );
    assert_eq!(p["status"].as_u64(), Some(u64::from(status)), "{p}");
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    p
}

/// Equal as JSON values, numbers compared by value as exact decimals: `2718350.0000000`
/// equals `2718350`, and `12345678901234567890` equals only itself.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let d = |n: &serde_json::Number| {
                BigDecimal::from_str(n.as_str()).expect("a JSON number is a decimal")
            };
            d(x) == d(y)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn assert_same_json(actual: &[u8], expected: &[u8]) {
    let a: Value = serde_json::from_slice(actual).expect("the result is JSON");
    let e: Value = serde_json::from_slice(expected).expect("the expectation is JSON");
    assert!(
        same_json(&a, &e),
        "\n  actual: {}\nexpected: {}",
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn number_aware_comparison_is_exact() {
    let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
    assert!(same_json(&v("[2718350.0000000]"), &v("[2718350]")));
    assert!(same_json(
        &v("{\"a\":1E3,\"b\":2}"),
        &v("{\"b\":2,\"a\":1000}")
    ));
    assert!(!same_json(
        &v("12345678901234567890"),
        &v("12345678901234567891")
    ));
    assert!(!same_json(&v("0.1"), &v("0.10000000000000001")));
}

/// Registers the trade example: `trade-input`, `trade-output` and the pipeline `trade`.
async fn register_trade(c: &Client, addr: SocketAddr) {
    for (name, file) in [
        ("trade-input", "examples/trade/input.schema.json"),
        ("trade-output", "examples/trade/output.schema.json"),
    ] {
        let r = put_json(
            c,
            addr,
            &format!("/v1/schemas/{name}"),
            read_repo_file(file),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
    }
    let transform = String::from_utf8(read_repo_file("examples/trade/transform.jq")).unwrap();
    let def = serde_json::json!({
        "input_schema": "trade-input",
        "transform": transform,
        "output_schema": "trade-output",
        "output": "json",
    });
    let r = put_json(c, addr, "/v1/pipelines/trade", def.to_string()).await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    let r = c.get(url(addr, "/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(content_type(&r).starts_with(JSON));
    let doc = json_of(r).await;
    assert_eq!(doc["openapi"], "3.1.0");

    // Real names, so that a 404 can only mean a route is missing.
    assert_eq!(
        put_json(&c, addr, "/v1/schemas/doc-schema", "{\"type\":\"object\"}")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        put_json(
            &c,
            addr,
            "/v1/pipelines/doc-pipeline",
            "{\"input_schema\":\"doc-schema\"}"
        )
        .await
        .status(),
        StatusCode::CREATED
    );

    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    assert_eq!(routes.len(), 20, "{routes:?}");
    // A key to revoke (open mode acts for the default tenant as an admin).
    let r = send(
        &c,
        Method::POST,
        addr,
        "/v1/keys",
        Some(JSON),
        r#"{"role":"client"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let key_id = json_of(r).await["id"].as_str().unwrap().to_owned();
    // Deletions last, pipelines before the schema they use.
    routes.sort_by_key(|(m, p)| (m == "DELETE", p.contains("schemas")));
    for (method, path) in routes {
        let kind_name = if path.contains("/pipelines") {
            "doc-pipeline"
        } else {
            "doc-schema"
        };
        let concrete = path
            .replace("{name}", kind_name)
            .replace("{version}", "1")
            .replace("{id}", &key_id);
        let body = match (method.as_str(), path.as_str()) {
            ("PUT", p) if p.contains("pipelines") => "{\"input_schema\":\"doc-schema\"}",
            ("PUT", _) => "{\"type\":\"object\"}",
            ("POST", "/v1/keys") => "{\"role\":\"client\"}",
            _ => "{}",
        };
        let method = Method::from_str(&method).unwrap();
        let r = send(&c, method.clone(), addr, &concrete, Some(JSON), body).await;
        assert!(
            !matches!(r.status().as_u16(), 404 | 405),
            "{method} {concrete}: {}",
            r.status()
        );
        assert!(
            r.status().is_success(),
            "{method} {concrete}: {}",
            r.status()
        );
    }
}

/// Small documents are validated on the thread that read them, large ones (over 64 KiB) on
/// the blocking pool: both give the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_and_large_documents_validate_alike() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    let schema = r#"{"type":"array","items":{"type":"integer"}}"#;
    assert_eq!(
        put_json(&c, addr, "/v1/schemas/ints", schema)
            .await
            .status(),
        StatusCode::CREATED
    );
    for n in [3, 40_000] {
        let valid = format!("[{}1]", "1,".repeat(n));
        assert!((valid.len() > 64 * 1024) == (n > 1000), "{}", valid.len());
        let r = post_json(&c, addr, "/v1/schemas/ints/validate", valid).await;
        assert_eq!(r.status(), StatusCode::OK, "{n} items");
        assert_eq!(json_of(r).await, serde_json::json!({"valid":true}));

        let invalid = format!("[{}\"x\"]", "1,".repeat(n));
        let r = post_json(&c, addr, "/v1/schemas/ints/validate", invalid).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{n} items");
        let body = json_of(r).await;
        assert_eq!(body["errors"][0]["instance_location"], format!("/{n}"));

        let broken = format!("[{}", "1,".repeat(n));
        assert_problem(
            post_json(&c, addr, "/v1/schemas/ints/validate", broken).await,
            400,
            "syntax",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_are_registered_read_validated_and_deleted() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    let v1 = r#"{"type":"object","properties":{"n":{"maximum":10}},"required":["n"]}"#;
    let r = put_json(&c, addr, "/v1/schemas/limit", v1).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        header(&r, "location").as_deref(),
        Some("/v1/schemas/limit/versions/1")
    );
    assert_eq!(
        json_of(r).await,
        serde_json::json!({"name":"limit","version":1})
    );
    // The same document again changes nothing and says so.
    let r = put_json(&c, addr, "/v1/schemas/limit", v1).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["version"], 1);
    let v2 = r#"{"type":"object","properties":{"n":{"maximum":100.50}},"required":["n"]}"#;
    let r = put_json(&c, addr, "/v1/schemas/limit", v2).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(json_of(r).await["version"], 2);

    let r = c.get(url(addr, "/v1/schemas")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        json_of(r).await,
        serde_json::json!([{"name":"limit","latest":2}])
    );

    let r = c.get(url(addr, "/v1/schemas/limit")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "etag").as_deref(), Some("\"2\""));
    assert_eq!(header(&r, "x-assay-version").as_deref(), Some("2"));
    assert!(content_type(&r).starts_with(JSON));
    // Stored as given: the number keeps its trailing zero.
    assert_eq!(r.text().await.unwrap(), v2);
    let r = c
        .get(url(addr, "/v1/schemas/limit"))
        .header("if-none-match", "\"2\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = c
        .get(url(addr, "/v1/schemas/limit/versions/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-assay-version").as_deref(), Some("1"));
    assert_eq!(r.text().await.unwrap(), v1);

    let r = post_json(&c, addr, "/v1/schemas/limit/validate", "{\"n\":100.50}").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await, serde_json::json!({"valid":true}));
    // One digit past the limit, beyond what a double can tell apart.
    let r = post_json(
        &c,
        addr,
        "/v1/schemas/limit/validate",
        "{\"n\":100.500000000000000001}",
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(header(&r, "x-assay-version").as_deref(), Some("2"));
    let body = json_of(r).await;
    assert_eq!(body["valid"], false);
    assert_eq!(body["errors"][0]["instance_location"], "/n");
    assert_eq!(body["errors"][0]["keyword"], "maximum");
    assert_eq!(
        body["errors"][0]["schema_location"],
        "/properties/n/maximum"
    );

    let r = c
        .delete(url(addr, "/v1/schemas/limit"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(
        c.get(url(addr, "/v1/schemas/limit")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(
        c.delete(url(addr, "/v1/schemas/limit"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_registered_read_and_deleted() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    let r = c.get(url(addr, "/v1/pipelines")).send().await.unwrap();
    assert_eq!(
        json_of(r).await,
        serde_json::json!([{"name":"trade","latest":1}])
    );
    let r = c
        .get(url(addr, "/v1/pipelines/trade"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "etag").as_deref(), Some("\"1\""));
    let def = json_of(r).await;
    // Schema references are pinned when the pipeline is registered.
    assert_eq!(def["input_schema"], "trade-input@1");
    assert_eq!(def["output_schema"], "trade-output@1");
    assert_eq!(def["output"], "json");
    let r = c
        .get(url(addr, "/v1/pipelines/trade/versions/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await, def);
    assert_problem(
        c.get(url(addr, "/v1/pipelines/trade/versions/2"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;

    // A schema in use cannot go, and the problem names who uses it.
    let p = assert_problem(
        c.delete(url(addr, "/v1/schemas/trade-input"))
            .send()
            .await
            .unwrap(),
        409,
        "in_use",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("trade"), "{p}");

    let r = c
        .delete(url(addr, "/v1/pipelines/trade"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c
        .delete(url(addr, "/v1/schemas/trade-input"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.get(url(addr, "/v1/pipelines")).send().await.unwrap();
    assert_eq!(json_of(r).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trade_workload_comes_out_exactly_as_expected() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    for (input, expected) in [
        ("examples/trade/trade.json", "examples/trade/expected.json"),
        (
            "examples/trade/trade-precision.json",
            "examples/trade/expected-precision.json",
        ),
    ] {
        let r = post_json(
            &c,
            addr,
            "/v1/pipelines/trade/process",
            read_repo_file(input),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{input}");
        assert_eq!(content_type(&r), JSON);
        assert_eq!(header(&r, "x-assay-version").as_deref(), Some("1"));
        // The encoding follows `Accept`, so caches must key on it.
        assert_eq!(header(&r, "vary").as_deref(), Some("accept"));
        let body = r.bytes().await.unwrap();
        assert_same_json(&body, &read_repo_file(expected));
        // JSON output copies every number's text: byte for byte the expectation.
        assert_eq!(
            String::from_utf8_lossy(&body).trim(),
            String::from_utf8(read_repo_file(expected)).unwrap().trim()
        );
    }
    let r = post_json(
        &c,
        addr,
        "/v1/pipelines/trade/process",
        read_repo_file("examples/trade/trade-precision.json"),
    )
    .await;
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("\"sequence\":12345678901234567890")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_sent_in_pieces_is_read_whole() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    let doc = read_repo_file("examples/trade/trade.json");
    let expected = read_repo_file("examples/trade/expected.json");
    // Chunked, without a Content-Length: the body comes in several frames, of one byte, of
    // a few, and of one empty piece among them.
    for sizes in [vec![1; 40], vec![0, 7, 0, 100, 3], vec![doc.len() - 1]] {
        let mut pieces = Vec::new();
        let mut at = 0;
        for size in sizes {
            let end = (at + size).min(doc.len());
            pieces.push(Bytes::copy_from_slice(&doc[at..end]));
            at = end;
        }
        pieces.push(Bytes::copy_from_slice(&doc[at..]));
        let body = reqwest::Body::wrap_stream(futures::stream::iter(
            pieces.into_iter().map(Ok::<_, std::io::Error>),
        ));
        // The media type's case does not matter (RFC 9110, 8.3.1).
        let r = send(
            &c,
            Method::POST,
            addr,
            "/v1/pipelines/trade/process",
            Some("Application/JSON; charset=utf-8"),
            body,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().await.unwrap().trim_ascii(), expected.trim_ascii());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_in_the_encoding_asked_for() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    let trade = read_repo_file("examples/trade/trade.json");
    let process = |accept: &'static str, query: &'static str| {
        c.post(url(addr, &format!("/v1/pipelines/trade/process{query}")))
            .header(CONTENT_TYPE, JSON)
            .header(ACCEPT, accept)
            .body(trade.clone())
            .send()
    };

    let r = process("application/msgpack", "").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), "application/msgpack");
    // A map of the 14 fields of the canonical record: fixmap 0x8e.
    assert_eq!(r.bytes().await.unwrap()[0], 0x8e);

    let r = process("text/html;q=0.9, application/cbor", "")
        .await
        .unwrap();
    assert_eq!(content_type(&r), "application/cbor");
    // A CBOR map of 14 pairs: major type 5, length 14.
    assert_eq!(r.bytes().await.unwrap()[0], 0xae);

    let r = process("application/x-ndjson", "").await.unwrap();
    assert_eq!(content_type(&r), NDJSON);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.last(), Some(&b'\n'));
    assert_same_json(&body, &read_repo_file("examples/trade/expected.json"));

    // Canonical JSON (RFC 8785): keys sorted, numbers through exact doubles, and `?encoding`
    // wins over `Accept`.
    let r = put_json(&c, addr, "/v1/pipelines/pass", "{}").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .post(url(addr, "/v1/pipelines/pass/process?encoding=jcs"))
        .header(CONTENT_TYPE, JSON)
        .header(ACCEPT, "application/msgpack")
        .body(r#"{"b":2718350.0000000,"a":[1E3,0.10,-0]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), JSON);
    assert_eq!(r.text().await.unwrap(), r#"{"a":[1000,0.1,0],"b":2718350}"#);

    // A number no double holds exactly is refused rather than rounded.
    let p = assert_problem(
        process("*/*", "?encoding=jcs").await.unwrap(),
        422,
        "not_representable",
    )
    .await;
    assert!(
        p["detail"].as_str().unwrap().contains("9007199254740993"),
        "{p}"
    );

    let r = process("*/*", "?encoding=yaml").await.unwrap();
    assert_problem(r, 400, "unknown_encoding").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_document_names_its_stage_and_findings() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    let mut doc: Value =
        serde_json::from_slice(&read_repo_file("examples/trade/trade.json")).unwrap();
    doc["side"] = "hold".into();
    doc["price"] = serde_json::from_str("-1").unwrap();
    let r = post_json(&c, addr, "/v1/pipelines/trade/process", doc.to_string()).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(content_type(&r), JSON);
    assert_eq!(header(&r, "x-assay-version").as_deref(), Some("1"));
    let body = json_of(r).await;
    assert_eq!(body["accepted"], false);
    assert_eq!(body["stage"], "input");
    let locations: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["instance_location"].as_str().unwrap())
        .collect();
    assert!(
        locations.contains(&"/side") && locations.contains(&"/price"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_a_problem_with_its_status_and_code() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    let process = "/v1/pipelines/trade/process";
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));

    let cases: Vec<(&str, Response, u16, &str)> = vec![
        (
            "malformed JSON",
            post_json(&c, addr, process, "{\"trade_id\":").await,
            400,
            "syntax",
        ),
        (
            "trailing data",
            post_json(&c, addr, process, "{} {}").await,
            400,
            "syntax",
        ),
        (
            "deep nesting",
            post_json(&c, addr, process, deep.clone()).await,
            400,
            "too_deep",
        ),
        (
            "invalid UTF-8",
            post_json(&c, addr, process, b"{\"trade_id\":\"T-\xff\"}".to_vec()).await,
            400,
            "invalid_utf8",
        ),
        (
            "duplicate keys",
            post_json(&c, addr, process, "{\"a\":1,\"a\":2}").await,
            400,
            "duplicate_key",
        ),
        (
            "validate: duplicate keys",
            post_json(
                &c,
                addr,
                "/v1/schemas/trade-input/validate",
                "{\"a\":1,\"a\":2}",
            )
            .await,
            400,
            "duplicate_key",
        ),
        (
            "wrong content type",
            send(&c, Method::POST, addr, process, Some("text/plain"), "{}").await,
            415,
            "unsupported_media_type",
        ),
        (
            "form content type (curl -d)",
            send(
                &c,
                Method::PUT,
                addr,
                "/v1/schemas/x",
                Some("application/x-www-form-urlencoded"),
                "{}",
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "no content type",
            send(
                &c,
                Method::POST,
                addr,
                "/v1/schemas/trade-input/validate",
                None,
                "{}",
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "NDJSON where one document is expected",
            send(
                &c,
                Method::POST,
                addr,
                "/v1/schemas/trade-input/validate",
                Some(NDJSON),
                "{}",
            )
            .await,
            415,
            "unsupported_media_type",
        ),
        (
            "unknown pipeline",
            post_json(&c, addr, "/v1/pipelines/nope/process", "{}").await,
            404,
            "not_found",
        ),
        (
            "unknown pipeline, batch",
            send(
                &c,
                Method::POST,
                addr,
                "/v1/pipelines/nope/process",
                Some(NDJSON),
                "{}\n",
            )
            .await,
            404,
            "not_found",
        ),
        (
            "unknown schema",
            post_json(&c, addr, "/v1/schemas/nope/validate", "{}").await,
            404,
            "not_found",
        ),
        (
            "unknown version",
            c.get(url(addr, "/v1/schemas/trade-input/versions/9"))
                .send()
                .await
                .unwrap(),
            404,
            "not_found",
        ),
        (
            "version not a number",
            c.get(url(addr, "/v1/schemas/trade-input/versions/latest"))
                .send()
                .await
                .unwrap(),
            400,
            "invalid_request",
        ),
        (
            "unknown route",
            c.get(url(addr, "/v1/nothing/here")).send().await.unwrap(),
            404,
            "not_found",
        ),
        (
            "method not allowed",
            send(
                &c,
                Method::PATCH,
                addr,
                "/v1/schemas/trade-input",
                Some(JSON),
                "{}",
            )
            .await,
            405,
            "method_not_allowed",
        ),
        (
            "schema with a duplicate key",
            put_json(
                &c,
                addr,
                "/v1/schemas/dup",
                "{\"type\":\"object\",\"type\":\"array\"}",
            )
            .await,
            400,
            "duplicate_key",
        ),
        (
            "invalid name",
            put_json(&c, addr, "/v1/schemas/-bad", "{}").await,
            400,
            "invalid_request",
        ),
        (
            "schema that does not compile",
            put_json(&c, addr, "/v1/schemas/broken", "{\"type\":12}").await,
            422,
            "rejected",
        ),
        (
            "pipeline naming an unknown schema",
            put_json(&c, addr, "/v1/pipelines/p", "{\"input_schema\":\"nope\"}").await,
            422,
            "rejected",
        ),
        (
            "pipeline with a misspelt field",
            put_json(&c, addr, "/v1/pipelines/p", "{\"transfrom\":\".\"}").await,
            400,
            "invalid_request",
        ),
        (
            "transform failure",
            {
                let r = put_json(
                    &c,
                    addr,
                    "/v1/pipelines/fails",
                    "{\"transform\":\"error(\\\"no\\\")\"}",
                )
                .await;
                assert_eq!(r.status(), StatusCode::CREATED);
                post_json(&c, addr, "/v1/pipelines/fails/process", "{}").await
            },
            422,
            "transform_error",
        ),
        (
            "in-use delete",
            c.delete(url(addr, "/v1/schemas/trade-output"))
                .send()
                .await
                .unwrap(),
            409,
            "in_use",
        ),
        (
            "batch in an encoding that is not JSON",
            send(
                &c,
                Method::POST,
                addr,
                "/v1/pipelines/trade/process?encoding=cbor",
                Some(NDJSON),
                "{}\n",
            )
            .await,
            400,
            "invalid_request",
        ),
    ];
    for (what, r, status, code) in cases {
        let allow = header(&r, "allow");
        let p = assert_problem(r, status, code).await;
        if code == "method_not_allowed" {
            assert!(allow.is_some_and(|a| a.contains("PUT")), "{what}");
        }
        eprintln!("{what}: {}", p["detail"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_but_batches_are_limited_per_line() {
    let limit = 4096;
    let (addr, _server) = spawn_server(RawSettings {
        max_body_bytes: Some(limit),
        ..RawSettings::default()
    })
    .await;
    let c = client();
    let r = put_json(&c, addr, "/v1/pipelines/pass", "{}").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let big = format!("[{}1]", "1,".repeat(limit));
    let r = post_json(&c, addr, "/v1/pipelines/pass/process", big.clone()).await;
    // The unread body ends the connection, and the answer says so: a client that reused it
    // would lose its next request to the close.
    assert_eq!(
        r.headers().get(CONNECTION).map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    let p = assert_problem(r, 413, "too_large").await;
    assert!(p["detail"].as_str().unwrap().contains("4096"), "{p}");
    assert_problem(
        put_json(&c, addr, "/v1/schemas/big", big.clone()).await,
        413,
        "too_large",
    )
    .await;
    assert_problem(
        post_json(&c, addr, "/v1/schemas/big/validate", big.clone()).await,
        413,
        "too_large",
    )
    .await;
    // Without a Content-Length the limit is found while reading.
    let chunked = reqwest::Body::wrap_stream(futures::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1000]))),
    ));
    assert_problem(
        send(
            &c,
            Method::POST,
            addr,
            "/v1/pipelines/pass/process",
            Some(JSON),
            chunked,
        )
        .await,
        413,
        "too_large",
    )
    .await;

    // A batch larger than the limit is fine; only a line longer than the limit is refused,
    // on its own line.
    let line = format!("[{}1]", "1,".repeat(1000));
    let mut batch = String::new();
    for i in 0..20 {
        batch.push_str(if i == 10 { &big } else { &line });
        batch.push('\n');
    }
    let r = send(
        &c,
        Method::POST,
        addr,
        "/v1/pipelines/pass/process",
        Some(NDJSON),
        batch,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["line"], i as u64 + 1);
        if i == 10 {
            assert_eq!(l["ok"], false);
            assert_eq!(l["error"]["code"], "too_large");
        } else {
            assert_eq!(l["ok"], true, "{l}");
            assert_eq!(l["result"].as_array().unwrap().len(), 1001);
        }
    }
}

/// A trade-like line for batch `i`: every field varies with `i`, the `sequence` is wider than
/// a double, and a memo pads the line so that holding the batch would show in memory.
fn trade_line(i: u64) -> String {
    format!(
        concat!(
            r#"{{"trade_id":"T-2026-{i:09}","account":{{"id":"ACC-{acc}","book":"B-{book}"}},"#,
            r#""instrument":{{"type":"fx_spot","pair":"EURUSD"}},"side":"buy","quantity":"{qty}.00","#,
            r#""price":1.25,"currency":"USD","trade_date":"2026-11-27","sequence":{seq},"#,
            r#""fees":[{{"type":"commission","amount":0.50,"currency":"USD"}}],"memo":"{memo}"}}"#
        ),
        i = i,
        acc = i % 997,
        book = i % 13,
        qty = 1000 + i % 1000,
        seq = 12_345_678_901_234_000_000u64 + i,
        memo = "m".repeat(1000),
    )
}

/// Which lines of the big batch are not plain trades.
enum Special {
    Blank,
    Malformed,
    Rejected,
    Trade,
}

fn special(i: u64) -> Special {
    match i % 10_007 {
        5 => Special::Malformed,
        9 => Special::Rejected,
        _ if i % 5_000 == 7 => Special::Blank,
        _ => Special::Trade,
    }
}

fn input_line(i: u64) -> String {
    match special(i) {
        Special::Blank => "   ".into(),
        Special::Malformed => format!("{{\"trade_id\":\"T-2026-{i:09}\","),
        Special::Rejected => trade_line(i).replace("\"side\":\"buy\"", "\"side\":\"hold\""),
        Special::Trade => trade_line(i),
    }
}

/// The resident set size of this process (the server runs in it), in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Set in the child process that runs the memory test alone.
const ALONE: &str = "ASSAY_TEST_ALONE";

/// Resident memory is per process, and the other tests of this binary run beside this one:
/// the measurement is made in a child process running this test alone.
#[test]
fn a_batch_of_100_000_lines_streams_in_order_in_constant_memory() {
    if std::env::var_os(ALONE).is_some() {
        return tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(batch_in_constant_memory());
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "http::a_batch_of_100_000_lines_streams_in_order_in_constant_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ALONE, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn batch_in_constant_memory() {
    const LINES: u64 = 100_000;
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    // The trade input schema without the transform: a debug build runs jq about ten times
    // slower than a release build, and the transform's exactness is checked document by
    // document above. Accepted lines come back as they went in.
    let r = put_json(
        &c,
        addr,
        "/v1/schemas/trade-input",
        read_repo_file("examples/trade/input.schema.json"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = put_json(
        &c,
        addr,
        "/v1/pipelines/batch",
        r#"{"input_schema":"trade-input"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let process = "/v1/pipelines/batch/process";
    // Warm up, so that what is measured below is the batch and not first-use allocations.
    let warm: String = (0..200).map(|i| input_line(i) + "\n").collect();
    let r = send(&c, Method::POST, addr, process, Some(NDJSON), warm).await;
    assert_eq!(r.text().await.unwrap().lines().count(), 199);
    let before = rss_bytes();

    // The request is generated as it is sent and the answer checked as it arrives: this
    // side holds neither, so memory growth is the server's.
    let body = futures::stream::iter(0..LINES).chunks(500).map(|is| {
        let mut s = String::with_capacity(is.len() * 1700);
        for i in is {
            s.push_str(&input_line(i));
            s.push('\n');
        }
        Ok::<_, std::io::Error>(Bytes::from(s))
    });
    let r = c
        .post(url(addr, process))
        .header(CONTENT_TYPE, NDJSON)
        .body(reqwest::Body::wrap_stream(body))
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(content_type(&r), NDJSON);
    assert_eq!(header(&r, "x-assay-version").as_deref(), Some("1"));

    let mut expected = (0..LINES).filter(|i| !matches!(special(*i), Special::Blank));
    let mut counts = BTreeMap::<&str, u64>::new();
    let mut peak = before;
    let mut pending = Vec::new();
    let mut stream = r.bytes_stream();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk.unwrap());
        let mut start = 0;
        while let Some(p) = pending[start..].iter().position(|&b| b == b'\n') {
            let line: Value = serde_json::from_slice(&pending[start..start + p]).unwrap();
            start += p + 1;
            let i = expected
                .next()
                .expect("no more results than non-blank lines");
            assert_eq!(line["line"], i + 1, "in order, numbered from 1: {line}");
            match special(i) {
                Special::Trade => {
                    assert_eq!(line["ok"], true, "{line}");
                    let result = &line["result"];
                    assert_eq!(result["trade_id"], format!("T-2026-{i:09}"));
                    // Every number as written: all 20 digits, and trailing zeros.
                    let number = |v: &Value| v.as_number().unwrap().as_str().to_owned();
                    assert_eq!(
                        number(&result["sequence"]),
                        (12_345_678_901_234_000_000u64 + i).to_string()
                    );
                    assert_eq!(number(&result["fees"][0]["amount"]), "0.50");
                    *counts.entry("ok").or_default() += 1;
                }
                Special::Malformed => {
                    assert_eq!(line["ok"], false);
                    assert_eq!(line["error"]["code"], "syntax", "{line}");
                    *counts.entry("malformed").or_default() += 1;
                }
                Special::Rejected => {
                    assert_eq!(line["ok"], false);
                    assert_eq!(line["stage"], "input", "{line}");
                    assert_eq!(line["errors"][0]["instance_location"], "/side");
                    *counts.entry("rejected").or_default() += 1;
                }
                Special::Blank => unreachable!(),
            }
            seen += 1;
            if seen.is_multiple_of(5_000) {
                peak = peak.max(rss_bytes());
            }
        }
        pending.drain(..start);
    }
    assert!(pending.is_empty(), "the answer ends with a whole line");
    assert_eq!(expected.next(), None, "one result per non-blank line");
    assert_eq!(counts["malformed"], 10);
    assert_eq!(counts["rejected"], 10);
    assert_eq!(counts["ok"], LINES - 20 - 20);

    // About 130 MB go in and as much comes out; a server that held either would grow by more
    // than the bound. Other tests run in this process at the same time, hence the margin.
    if let (Some(before), Some(peak)) = (before, peak) {
        let growth = peak.saturating_sub(before);
        eprintln!(
            "resident memory grew by {} MB during the batch",
            growth >> 20
        );
        assert!(growth < 100 << 20, "memory grew by {} MB", growth >> 20);
    } else {
        panic!("/proc/self/status has no VmRSS: cannot measure memory on this system");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_line_before_the_request_ends() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    assert_eq!(
        put_json(&c, addr, "/v1/pipelines/pass", "{}")
            .await
            .status(),
        StatusCode::CREATED
    );
    // The client sends a line only after reading the answer to the previous one: a server
    // that read the whole request before answering would deadlock here.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tx.send(Ok(Bytes::from("{\"n\":1}\n"))).await.unwrap();
    let body = reqwest::Body::wrap_stream(rx);
    let r = c
        .post(url(addr, "/v1/pipelines/pass/process"))
        .header(CONTENT_TYPE, NDJSON)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut stream = r.bytes_stream();
    let mut received = Vec::new();
    for n in 2..=5 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an answer to the line sent, while the request is still open")
            .unwrap()
            .unwrap();
        received.push(String::from_utf8(chunk.to_vec()).unwrap());
        tx.send(Ok(Bytes::from(format!("{{\"n\":{n}}}\n"))))
            .await
            .unwrap();
    }
    drop(tx);
    while let Some(chunk) = stream.next().await {
        received.push(String::from_utf8(chunk.unwrap().to_vec()).unwrap());
    }
    let all: String = received.concat();
    let expected: String = (1..=5)
        .map(|n| format!("{{\"line\":{n},\"ok\":true,\"result\":{{\"n\":{n}}}}}\n"))
        .collect();
    assert_eq!(all, expected);
}

/// curl, a client nobody here wrote, runs a document through a pipeline and reads a problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_processes_a_document_and_reads_a_problem() {
    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let c = client();
    register_trade(&c, addr).await;
    let curl = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}\n%{content_type}"])
            .args(args)
            .output()
            .await
            .expect("curl must be installed (apt-get install curl) for this test");
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut parts = text.rsplitn(3, '\n');
        let content_type = parts.next().unwrap().to_owned();
        let status: u16 = parts.next().unwrap().parse().unwrap();
        (status, content_type, parts.next().unwrap().to_owned())
    };
    let input = repo_file("examples/trade/trade.json");
    let (status, ctype, body) = curl(vec![
        "-H".into(),
        "Content-Type: application/json".into(),
        "--data-binary".into(),
        format!("@{}", input.display()),
        url(addr, "/v1/pipelines/trade/process"),
    ])
    .await;
    assert_eq!(status, 200);
    assert_eq!(ctype, JSON);
    assert_same_json(
        body.as_bytes(),
        &read_repo_file("examples/trade/expected.json"),
    );

    // `curl -d` sends a form type: refused, as a problem curl can read.
    let (status, ctype, body) = curl(vec![
        "-d".into(),
        "{}".into(),
        url(addr, "/v1/pipelines/trade/process"),
    ])
    .await;
    assert_eq!(status, 415);
    assert_eq!(ctype, PROBLEM);
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["code"], "unsupported_media_type");
    assert_eq!(p["status"].as_u64(), Some(415));
}

/// A client that sends `Expect: 100-continue` (curl does for bodies over 1 MiB) hears
/// `100 Continue` before anything else, so it sends its batch at once instead of waiting out
/// its expect timeout. A plain socket, to see the bytes in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_expect_100_continue_before_its_lines() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (addr, _server) = spawn_server(RawSettings::default()).await;
    let r = put_json(&client(), addr, "/v1/pipelines/pass", "{}").await;
    assert_eq!(r.status(), StatusCode::CREATED);

    let batch = "{\"a\":1}\n{\"a\":2.50}\n";
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/pipelines/pass/process HTTP/1.1\r\nhost: {addr}\r\n\
         content-type: {NDJSON}\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\
         connection: close\r\n\r\n",
        batch.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    // Nothing of the body has been sent: the server must ask for it first.
    let mut first = vec![0; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut first))
        .await
        .expect("the server said nothing before the body")
        .unwrap();
    let first = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 100 Continue\r\n"), "{first:?}");

    socket.write_all(batch.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest))
        .await
        .expect("no answer to the batch")
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    let answer = format!("{first}{rest}");
    let final_head = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(final_head.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.contains(r#"{"line":1,"ok":true,"result":{"a":1}}"#),
        "{answer}"
    );
    assert!(
        answer.contains(r#"{"line":2,"ok":true,"result":{"a":2.50}}"#),
        "{answer}"
    );
}
