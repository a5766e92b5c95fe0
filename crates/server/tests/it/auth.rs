//! Tenants, keys and rate limits over real sockets: the isolation matrix over every HTTP
//! endpoint and every gRPC method (401 without a valid key, 403 for a role that may not, 404
//! for another tenant's resources), expiry, the gateway's signed tenant (and forgeries of
//! it), and rate limits with their headers, locally and with Redis unreachable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use server::config::{Secret, TenantSettings};
use server::grpc::proto::engine_client::EngineClient;
use server::grpc::proto::keys_client::KeysClient;
use server::grpc::proto::registry_client::RegistryClient;
use server::grpc::proto::{
    CreateKeyRequest, DeleteRequest, EchoRequest, GetRequest, ListKeysRequest, ListRequest,
    ProcessRequest, PutRequest, RevokeKeyRequest, ValidateRequest,
};
use server::{AppState, RawSettings};
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::common::{ServerHandle, spawn_server_with_state};

const GATEWAY_SECRET: &str = "a gateway secret of at least 32 characters";

async fn keyed(settings: RawSettings) -> (SocketAddr, ServerHandle, AppState) {
    spawn_server_with_state(RawSettings {
        auth: Some("keys".into()),
        ..settings
    })
    .await
}

async fn key(state: &AppState, tenant: &str, role: &str) -> String {
    state
        .access
        .keys
        .create(tenant, role.parse().unwrap(), None, None)
        .await
        .unwrap()
        .token
}

async fn call(
    c: &Client,
    addr: SocketAddr,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut r = c
        .request(method, format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    r.send().await.unwrap()
}

async fn code_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

/// Registers schema `{prefix}-s` and pipeline `{prefix}-p` for the key's tenant.
async fn register(c: &Client, addr: SocketAddr, key: &str, prefix: &str) {
    let r = call(
        c,
        addr,
        Method::PUT,
        &format!("/v1/schemas/{prefix}-s"),
        Some(key),
        r#"{"type":"object"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = call(
        c,
        addr,
        Method::PUT,
        &format!("/v1/pipelines/{prefix}-p"),
        Some(key),
        &format!(r#"{{"input_schema":"{prefix}-s"}}"#),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// What the matrix sends for each route: a concrete path and a body.
fn concrete(
    method: &Method,
    path: &str,
    schema: &str,
    pipeline: &str,
    key_id: &str,
) -> (String, String) {
    let name = if path.starts_with("/v1/pipelines") {
        pipeline
    } else {
        schema
    };
    let concrete = path
        .replace("{name}", name)
        .replace("{version}", "1")
        .replace("{id}", key_id);
    let body = match (method.as_str(), path) {
        ("PUT", "/v1/schemas/{name}") => r#"{"type":"object"}"#.to_owned(),
        ("PUT", "/v1/pipelines/{name}") => format!(r#"{{"input_schema":"{schema}"}}"#),
        ("POST", "/v1/keys") => r#"{"role":"client"}"#.to_owned(),
        _ => "{}".to_owned(),
    };
    (concrete, body)
}

/// Routes a client key may use.
fn client_may(method: &Method, path: &str) -> bool {
    matches!(
        (method.as_str(), path),
        ("POST", "/v1/schemas/{name}/validate")
            | ("POST", "/v1/pipelines/{name}/process")
            | ("POST", "/v1/echo")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_http_endpoint_refuses_strangers_wrong_roles_and_other_tenants() {
    let (addr, _server, state) = keyed(RawSettings::default()).await;
    let c = Client::new();
    let a_admin = key(&state, "tenant-a", "admin").await;
    let a_client = key(&state, "tenant-a", "client").await;
    let b_admin = key(&state, "tenant-b", "admin").await;
    register(&c, addr, &a_admin, "a").await;
    register(&c, addr, &b_admin, "b").await;
    let b_key_id = b_admin.split('.').nth(2).unwrap().to_owned();

    let routes: Vec<_> = server::http::api_routes()
        .into_iter()
        .filter(|(_, p)| *p != "/openapi.json")
        .collect();
    assert_eq!(
        routes.len(),
        16,
        "every API route is in the matrix: {routes:?}"
    );
    for (method, path) in &routes {
        let (own, body) = concrete(method, path, "a-s", "a-p", "0000000000000000");
        // No key, a malformed key, a well-formed key that does not exist: 401.
        for (key, code) in [
            (None, "unauthenticated"),
            (Some("nonsense"), "key_malformed"),
            (
                Some("ak1.tenant-a.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                "key_invalid",
            ),
        ] {
            let r = call(&c, addr, method.clone(), &own, key, &body).await;
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"assay\"");
            assert_eq!(code_of(r).await, (401, code.to_owned()), "{method} {own}");
        }
        // A client key: 403 where it may not go, never 401 or 403 where it may.
        let r = call(&c, addr, method.clone(), &own, Some(&a_client), &body).await;
        let (status, code) = code_of(r).await;
        if client_may(method, path) {
            assert!(
                !matches!(status, 401 | 403),
                "{method} {own}: {status} {code}"
            );
        } else {
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden"),
                "{method} {own}"
            );
        }
    }

    // A lists its own and nothing of B's.
    for (list, own) in [("/v1/schemas", "a-s"), ("/v1/pipelines", "a-p")] {
        let r = call(&c, addr, Method::GET, list, Some(&a_admin), "").await;
        let listed: Value = r.json().await.unwrap();
        assert_eq!(
            listed,
            serde_json::json!([{"name": own, "latest": 1}]),
            "{list}"
        );
    }
    // Tenant A's admin on tenant B's resources: as if they did not exist. (Writes last:
    // A's own resources of the same names would answer the reads.)
    let mut routes = routes;
    routes.sort_by_key(|(m, _)| *m == Method::PUT);
    for (method, path) in &routes {
        let (theirs, body) = concrete(method, path, "b-s", "b-p", &b_key_id);
        let r = call(&c, addr, method.clone(), &theirs, Some(&a_admin), &body).await;
        let (status, code) = code_of(r).await;
        match (method.as_str(), *path) {
            // Listings show A's own only; checked below.
            ("GET", "/v1/schemas" | "/v1/pipelines" | "/v1/keys") => assert_eq!(status, 200),
            // A name is per tenant: A registers its own `b-s`, B's is untouched (below).
            ("PUT", _) => assert_eq!(status, 201, "{method} {theirs}: {code}"),
            ("POST", "/v1/keys" | "/v1/echo") => assert!(status < 300, "{method} {theirs}"),
            _ => assert_eq!(
                (status, code.as_str()),
                (404, "not_found"),
                "{method} {theirs}"
            ),
        }
    }
    let r = call(&c, addr, Method::GET, "/v1/keys", Some(&a_admin), "").await;
    let text = r.text().await.unwrap();
    assert!(!text.contains(&b_key_id), "{text}");
    for list in ["/v1/schemas", "/v1/pipelines"] {
        let r = call(&c, addr, Method::GET, list, Some(&a_admin), "").await;
        let names: Vec<Value> = r.json().await.unwrap();
        // A's own, and B's names only as A's own registrations above.
        assert!(names.iter().all(|n| n["latest"] == 1), "{list}: {names:?}");
        assert!(!names.is_empty());
    }
    // B's resources are as B left them: version 1, B's own document.
    let r = call(&c, addr, Method::GET, "/v1/schemas/b-s", Some(&b_admin), "").await;
    assert_eq!(r.headers()["x-assay-version"], "1");
    let r = call(&c, addr, Method::GET, "/v1/pipelines", Some(&b_admin), "").await;
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed, serde_json::json!([{"name":"b-p","latest":1}]));
    // A's pipeline cannot refer to a schema only B has: the answer is the one for a schema
    // that does not exist at all.
    let r = call(
        &c,
        addr,
        Method::PUT,
        "/v1/pipelines/sneaky",
        Some(&a_admin),
        r#"{"input_schema":"b-only"}"#,
    )
    .await;
    let missing = code_of(r).await;
    let r = call(
        &c,
        addr,
        Method::PUT,
        "/v1/schemas/b-only",
        Some(&b_admin),
        r#"{"type":"object"}"#,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = call(
        &c,
        addr,
        Method::PUT,
        "/v1/pipelines/sneaky",
        Some(&a_admin),
        r#"{"input_schema":"b-only"}"#,
    )
    .await;
    assert_eq!(code_of(r).await, missing);
    assert_eq!(missing, (422, "rejected".to_owned()));
    // B's key still works: A could not revoke it.
    let r = call(&c, addr, Method::GET, "/v1/keys", Some(&b_admin), "").await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn grpc_clients(addr: SocketAddr) -> (EngineClient<Channel>, RegistryClient<Channel>) {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (EngineClient::new(ch.clone()), RegistryClient::new(ch))
}

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.err().map_or(Code::Ok, |s| s.code())
}

fn with_key<T>(message: T, key: Option<&str>) -> Request<T> {
    let mut r = Request::new(message);
    if let Some(k) = key {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    r
}

/// Every gRPC method of Engine, Registry and Keys, called with `key` on the resources named
/// by `schema`, `pipeline` and `key_id`, as (method, status code).
async fn every_grpc_method(
    addr: SocketAddr,
    key: Option<&str>,
    schema: &str,
    pipeline: &str,
    key_id: &str,
) -> Vec<(&'static str, Code)> {
    let (mut engine, mut registry) = grpc_clients(addr).await;
    let mut keys = KeysClient::new(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let put = |name: &str, body: &str| PutRequest {
        name: name.into(),
        body: body.as_bytes().to_vec(),
    };
    let stream_code = {
        let request = with_key(
            futures::stream::iter(vec![ProcessRequest {
                pipeline: pipeline.into(),
                document: b"{}".to_vec(),
                ..ProcessRequest::default()
            }]),
            key,
        );
        match engine.process_stream(request).await {
            Err(s) => s.code(),
            Ok(r) => {
                let mut s = r.into_inner();
                match s.message().await {
                    Err(s) => s.code(),
                    // A document-level error (not found) is in the response: report it.
                    Ok(Some(resp)) => match resp.result {
                        Some(server::grpc::proto::process_response::Result::Error(f))
                            if f.code == "not_found" =>
                        {
                            Code::NotFound
                        }
                        _ => Code::Ok,
                    },
                    Ok(None) => Code::Ok,
                }
            }
        }
    };
    vec![
        (
            "Process",
            code(
                engine
                    .process(with_key(
                        ProcessRequest {
                            pipeline: pipeline.into(),
                            document: b"{}".to_vec(),
                            ..ProcessRequest::default()
                        },
                        key,
                    ))
                    .await,
            ),
        ),
        (
            "Validate",
            code(
                engine
                    .validate(with_key(
                        ValidateRequest {
                            schema: schema.into(),
                            document: b"{}".to_vec(),
                        },
                        key,
                    ))
                    .await,
            ),
        ),
        ("ProcessStream", stream_code),
        (
            "Echo",
            code(
                engine
                    .echo(with_key(EchoRequest { document: vec![] }, key))
                    .await,
            ),
        ),
        (
            "GetSchema",
            code(
                registry
                    .get_schema(with_key(
                        GetRequest {
                            name: schema.into(),
                            version: 0,
                        },
                        key,
                    ))
                    .await,
            ),
        ),
        (
            "ListSchemas",
            code(registry.list_schemas(with_key(ListRequest {}, key)).await),
        ),
        (
            "GetPipeline",
            code(
                registry
                    .get_pipeline(with_key(
                        GetRequest {
                            name: pipeline.into(),
                            version: 0,
                        },
                        key,
                    ))
                    .await,
            ),
        ),
        (
            "ListPipelines",
            code(registry.list_pipelines(with_key(ListRequest {}, key)).await),
        ),
        (
            "DeletePipeline",
            code(
                registry
                    .delete_pipeline(with_key(
                        DeleteRequest {
                            name: pipeline.into(),
                        },
                        key,
                    ))
                    .await,
            ),
        ),
        (
            "DeleteSchema",
            code(
                registry
                    .delete_schema(with_key(
                        DeleteRequest {
                            name: schema.into(),
                        },
                        key,
                    ))
                    .await,
            ),
        ),
        (
            "PutSchema",
            code(
                registry
                    .put_schema(with_key(put(schema, r#"{"type":"object"}"#), key))
                    .await,
            ),
        ),
        (
            "PutPipeline",
            code(
                registry
                    .put_pipeline(with_key(
                        put(pipeline, &format!(r#"{{"input_schema":"{schema}"}}"#)),
                        key,
                    ))
                    .await,
            ),
        ),
        (
            "ListKeys",
            code(keys.list_keys(with_key(ListKeysRequest {}, key)).await),
        ),
        (
            "RevokeKey",
            code(
                keys.revoke_key(with_key(RevokeKeyRequest { id: key_id.into() }, key))
                    .await,
            ),
        ),
        (
            "CreateKey",
            code(
                keys.create_key(with_key(
                    CreateKeyRequest {
                        role: "client".into(),
                        ..CreateKeyRequest::default()
                    },
                    key,
                ))
                .await,
            ),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpc_method_refuses_strangers_wrong_roles_and_other_tenants() {
    let (addr, _server, state) = keyed(RawSettings::default()).await;
    let c = Client::new();
    let a_admin = key(&state, "tenant-a", "admin").await;
    let a_client = key(&state, "tenant-a", "client").await;
    let b_admin = key(&state, "tenant-b", "admin").await;
    register(&c, addr, &b_admin, "b").await;
    let b_key_id = b_admin.split('.').nth(2).unwrap().to_owned();
    let every = |key: Option<String>| {
        let b_key_id = b_key_id.clone();
        async move { every_grpc_method(addr, key.as_deref(), "b-s", "b-p", &b_key_id).await }
    };

    let methods = every(None).await;
    assert_eq!(
        methods.len(),
        15,
        "every method of Engine, Registry and Keys"
    );
    for (method, code) in &methods {
        assert_eq!(*code, Code::Unauthenticated, "{method} without a key");
    }
    for (method, code) in every(Some("ak1.x.y.z".into())).await {
        assert_eq!(code, Code::Unauthenticated, "{method} with a bad key");
    }
    for (method, code) in every(Some(a_client.clone())).await {
        let engine = matches!(method, "Process" | "Validate" | "ProcessStream" | "Echo");
        if engine {
            // May call, but B's resources are not there for A.
            assert!(
                matches!(code, Code::NotFound | Code::Ok),
                "{method}: {code:?}"
            );
        } else {
            assert_eq!(code, Code::PermissionDenied, "{method} with a client key");
        }
    }
    for (method, code) in every(Some(a_admin.clone())).await {
        let expected = match method {
            "Echo" | "ListSchemas" | "ListPipelines" | "ListKeys" | "CreateKey" => Code::Ok,
            // Registers A's own resources under the same names.
            "PutSchema" | "PutPipeline" => Code::Ok,
            _ => Code::NotFound,
        };
        assert_eq!(code, expected, "{method} of tenant A on tenant B's names");
    }
    // B's are untouched, and A's listing shows only A's.
    let (_, mut registry) = grpc_clients(addr).await;
    let theirs = registry
        .get_schema(with_key(
            GetRequest {
                name: "b-s".into(),
                version: 0,
            },
            Some(&b_admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.version, 1);
    let listed = registry
        .list_pipelines(with_key(ListRequest {}, Some(&b_admin)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.items.len(), 1);
    // B's key survived A's attempt to revoke it, and A's listing holds A's keys only.
    let mut keys = KeysClient::new(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let listed = keys
        .list_keys(with_key(ListKeysRequest {}, Some(&b_admin)))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.keys.iter().any(|k| k.id == b_key_id));
    let mine = keys
        .list_keys(with_key(ListKeysRequest {}, Some(&a_admin)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        mine.keys
            .iter()
            .all(|k| k.tenant == "tenant-a" && k.key.is_empty())
    );
    // A key made over gRPC works, and is shown once.
    let made = keys
        .create_key(with_key(
            CreateKeyRequest {
                role: "admin".into(),
                expires_in_seconds: 3600,
                label: "grpc".into(),
            },
            Some(&a_admin),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(made.key.starts_with("ak1.tenant-a."));
    assert!(made.expires_at > made.created_at);
    registry
        .list_schemas(with_key(ListRequest {}, Some(&made.key)))
        .await
        .unwrap();
    // x-api-key works as metadata too.
    let mut r = Request::new(ListRequest {});
    r.metadata_mut()
        .insert("x-api-key", a_admin.parse().unwrap());
    let mine = registry.list_schemas(r).await.unwrap().into_inner();
    assert_eq!(
        mine.items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["b-s"],
        "A's own b-s, registered above"
    );
    // Health and reflection stay open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_refused() {
    let (addr, _server, state) = keyed(RawSettings::default()).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = state
        .access
        .keys
        .create("acme", "admin".parse().unwrap(), Some(now + 2), None)
        .await
        .unwrap()
        .token;
    let c = Client::new();
    let r = call(&c, addr, Method::GET, "/v1/schemas", Some(&token), "").await;
    assert_eq!(r.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let r = call(&c, addr, Method::GET, "/v1/schemas", Some(&token), "").await;
    assert_eq!(code_of(r).await, (401, "key_expired".to_owned()));
}

fn signed(
    method: &str,
    path: &str,
    tenant: &str,
    role: &str,
    secret: &str,
    skew: i64,
) -> Vec<(&'static str, String)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .saturating_add_signed(skew);
    let signature =
        server::auth::gateway_signature(secret, now, method, path, tenant, role, "gw-key-1");
    vec![
        (server::auth::TENANT_HEADER, tenant.to_owned()),
        (server::auth::ROLE_HEADER, role.to_owned()),
        (server::auth::KEY_ID_HEADER, "gw-key-1".to_owned()),
        (server::auth::TIMESTAMP_HEADER, now.to_string()),
        (server::auth::SIGNATURE_HEADER, signature),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_signed_tenant_is_trusted_and_a_forged_one_refused() {
    let (addr, _server, state) = spawn_server_with_state(RawSettings {
        auth: Some("gateway".into()),
        gateway_secret: Some(Secret::new(GATEWAY_SECRET.into())),
        ..RawSettings::default()
    })
    .await;
    let c = Client::new();
    let send = |headers: Vec<(&'static str, String)>, path: &str| {
        let mut r = c
            .put(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(r#"{"type":"object"}"#);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let path = "/v1/schemas/s";
    let ok = send(
        signed("PUT", path, "acme", "admin", GATEWAY_SECRET, 0),
        path,
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    // It landed in acme's registry, nowhere else.
    let acme = state
        .registry
        .list(registry::Kind::Schema, "acme")
        .await
        .unwrap();
    assert_eq!(acme.len(), 1);

    let mut forged = Vec::new();
    // Signed with another secret.
    forged.push(signed(
        "PUT",
        path,
        "acme",
        "admin",
        "not the gateway's secret, but long",
        0,
    ));
    // A tenant swapped after signing.
    let mut swapped = signed("PUT", path, "acme", "client", GATEWAY_SECRET, 0);
    swapped[0].1 = "victim".into();
    forged.push(swapped);
    // A role raised after signing.
    let mut raised = signed("PUT", path, "acme", "client", GATEWAY_SECRET, 0);
    raised[1].1 = "admin".into();
    forged.push(raised);
    // Signed for another route.
    forged.push(signed(
        "PUT",
        "/v1/schemas/other",
        "acme",
        "admin",
        GATEWAY_SECRET,
        0,
    ));
    // Too old, and from the future.
    forged.push(signed("PUT", path, "acme", "admin", GATEWAY_SECRET, -3600));
    forged.push(signed("PUT", path, "acme", "admin", GATEWAY_SECRET, 3600));
    // No signature at all.
    let mut unsigned = signed("PUT", path, "acme", "admin", GATEWAY_SECRET, 0);
    unsigned.pop();
    forged.push(unsigned);
    for headers in forged {
        let r = send(headers.clone(), path).await.unwrap();
        assert_eq!(
            code_of(r).await,
            (401, "gateway_signature_invalid".to_owned()),
            "{headers:?}"
        );
    }
    // An API key is no way in when the engine trusts its gateway only.
    let token = key(&state, "acme", "admin").await;
    let r = call(&c, addr, Method::GET, "/v1/schemas", Some(&token), "").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let acme = state
        .registry
        .list(registry::Kind::Schema, "acme")
        .await
        .unwrap();
    assert_eq!(acme.len(), 1, "no forged request changed anything");

    // gRPC: the same headers, signed for the method's path.
    let (_, mut registry) = grpc_clients(addr).await;
    let mut r = Request::new(ListRequest {});
    for (k, v) in signed(
        "POST",
        "/assay.v1.Registry/ListSchemas",
        "acme",
        "admin",
        GATEWAY_SECRET,
        0,
    ) {
        r.metadata_mut().insert(k, v.parse().unwrap());
    }
    let listed = registry.list_schemas(r).await.unwrap().into_inner();
    assert_eq!(listed.items.len(), 1);
    let mut r = Request::new(ListRequest {});
    for (k, v) in signed(
        "POST",
        "/assay.v1.Registry/ListPipelines",
        "acme",
        "admin",
        GATEWAY_SECRET,
        0,
    ) {
        r.metadata_mut().insert(k, v.parse().unwrap());
    }
    let s = registry.list_schemas(r).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
}

fn limited(tenant: &str, per_second: u32, burst: u32) -> HashMap<String, TenantSettings> {
    let quota: TenantSettings = toml::from_str(&format!(
        "rate_limit = {{ per_second = {per_second}, burst = {burst} }}"
    ))
    .unwrap();
    HashMap::from([(tenant.to_owned(), quota)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_limit_gets_429_with_the_draft_headers() {
    let (addr, _server, state) = keyed(RawSettings {
        tenants: Some(limited("slow", 1, 3)),
        ..RawSettings::default()
    })
    .await;
    let c = Client::new();
    let slow = key(&state, "slow", "client").await;
    let free = key(&state, "free", "client").await;
    for remaining in [2, 1, 0] {
        let r = call(&c, addr, Method::POST, "/v1/echo", Some(&slow), "{}").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["ratelimit-policy"], "\"tenant\";q=3;w=3");
        let now = r.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            now.starts_with(&format!("\"tenant\";r={remaining};t=")),
            "{now}"
        );
    }
    let r = call(&c, addr, Method::POST, "/v1/echo", Some(&slow), "{}").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers().contains_key("ratelimit"));
    assert_eq!(code_of(r).await, (429, "rate_limited".to_owned()));
    // gRPC: RESOURCE_EXHAUSTED, with the reason and a retry hint.
    let (mut engine, _) = grpc_clients(addr).await;
    let s = engine
        .echo(with_key(EchoRequest { document: vec![] }, Some(&slow)))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(s.get_details_error_info().unwrap().reason, "rate_limited");
    assert!(s.get_details_retry_info().is_some());
    // Another tenant is not limited by it (and, unlimited, gets no headers).
    for _ in 0..10 {
        let r = call(&c, addr, Method::POST, "/v1/echo", Some(&free), "{}").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(!r.headers().contains_key("ratelimit"));
    }
    // The quota refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = call(&c, addr, Method::POST, "/v1/echo", Some(&slow), "{}").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_on_one_redis_share_a_tenants_limit() {
    let Some(url) = testkit::redis::redis_url("server tests").await else {
        return;
    };
    // Two servers, each with its own key store, limit tenant acme through one Redis prefix;
    // failing closed, a request the Redis limiter could not decide would be a 503, not a 200.
    let prefix = testkit::redis::unique_prefix();
    let settings = || RawSettings {
        tenants: Some(limited("acme", 1, 3)),
        rate_limit_backend: Some("redis".into()),
        rate_limit_redis_url: Some(Secret::new(url.clone())),
        rate_limit_on_redis_error: Some("closed".into()),
        redis_prefix: Some(prefix.clone()),
        ..RawSettings::default()
    };
    let (a, _server_a, state_a) = keyed(settings()).await;
    let (b, _server_b, state_b) = keyed(settings()).await;
    let key_a = key(&state_a, "acme", "client").await;
    let key_b = key(&state_b, "acme", "client").await;
    let c = Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        for (addr, key) in [(a, &key_a), (b, &key_b)] {
            let r = call(&c, addr, Method::POST, "/v1/echo", Some(key), "{}").await;
            statuses.push(r.status());
        }
    }
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    // A burst of 3 for both servers together (each alone would admit 3: 6 in all); one more
    // may have refilled if the six requests took over a second.
    assert!(
        (3..=4).contains(&admitted) && admitted + refused == 6,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_limits_fail_open_or_closed_as_configured() {
    for (on_error, expected) in [
        ("open", StatusCode::OK),
        ("closed", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let (addr, _server, state) = keyed(RawSettings {
            tenants: Some(limited("acme", 1, 2)),
            rate_limit_backend: Some("redis".into()),
            rate_limit_redis_url: Some(Secret::new("redis://127.0.0.1:1".into())),
            rate_limit_on_redis_error: Some(on_error.into()),
            ..RawSettings::default()
        })
        .await;
        let c = Client::new();
        let acme = key(&state, "acme", "client").await;
        let r = call(&c, addr, Method::POST, "/v1/echo", Some(&acme), "{}").await;
        assert_eq!(r.status(), expected, "fail {on_error}");
        if on_error == "open" {
            // Open still limits, in this process.
            call(&c, addr, Method::POST, "/v1/echo", Some(&acme), "{}").await;
            let r = call(&c, addr, Method::POST, "/v1/echo", Some(&acme), "{}").await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        } else {
            assert!(r.headers().contains_key("retry-after"));
        }
        let metrics = crate::common::metrics(addr).await;
        assert!(
            metrics.contains("assay_rate_limit_backend_errors_total"),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_of_a_batch_counts_against_the_limit() {
    // 10 documents a second, 5 at once: the request itself takes one, so 24 documents need
    // at least (1 + 24 - 5) / 10 = 2 s, however fast the engine is.
    let (addr, _server, state) = keyed(RawSettings {
        tenants: Some(limited("slow", 10, 5)),
        ..RawSettings::default()
    })
    .await;
    let c = Client::new();
    let slow = key(&state, "slow", "admin").await;
    register(&c, addr, &slow, "t").await;
    let batch = "{\"n\":1}\n".repeat(24);
    let started = std::time::Instant::now();
    let r = c
        .post(format!("http://{addr}/v1/pipelines/t-p/process"))
        .bearer_auth(&slow)
        .header("content-type", "application/x-ndjson")
        .body(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let elapsed = started.elapsed();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 24, "{text}");
    assert!(lines.iter().all(|l| l["ok"] == true), "{text}");
    assert!(
        elapsed >= Duration::from_millis(1800),
        "24 documents at 10/s went through in {elapsed:?}"
    );

    // A gRPC stream likewise. The batch left the bucket empty, and a call over the limit is
    // refused before it starts, so first let the bucket fill up; then the call and its 12
    // documents need at least (1 + 12 - 5) / 10 = 0.8 s.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (mut engine, _) = grpc_clients(addr).await;
    let requests = (0..12u64).map(|sequence| ProcessRequest {
        pipeline: "t-p".into(),
        document: b"{\"n\":1}".to_vec(),
        sequence,
        ..ProcessRequest::default()
    });
    let started = std::time::Instant::now();
    let mut responses = engine
        .process_stream(with_key(futures::stream::iter(requests), Some(&slow)))
        .await
        .unwrap()
        .into_inner();
    let mut answered = 0;
    while let Some(r) = responses.message().await.unwrap() {
        assert!(
            matches!(
                r.result,
                Some(server::grpc::proto::process_response::Result::Accepted(_))
            ),
            "{r:?}"
        );
        answered += 1;
    }
    assert_eq!(answered, 12);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(750),
        "12 documents at 10/s went through in {elapsed:?}"
    );
}
