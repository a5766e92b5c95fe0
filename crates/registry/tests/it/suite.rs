//! Behaviours every store must show, written once and instantiated per backend with
//! [`store_suite!`]. Each test gets a fresh, isolated store from the backend's factory.

use std::sync::Arc;

use engine::Outcome;
use registry::{Kind, Registry, RegistryError, RegistryOptions, Store};

pub(crate) const TENANT: &str = "acme";

pub(crate) const MONEY: &str = r#"{"type":"string","pattern":"^-?[0-9]+(\\.[0-9]+)?$"}"#;
pub(crate) const ORDER: &str = r#"{"type":"object","required":["qty","price"],"properties":{"qty":{"type":"number","exclusiveMinimum":0},"price":{"type":"number","maximum":0.3}}}"#;
pub(crate) const RECORD: &str =
    r#"{"type":"object","required":["total"],"properties":{"total":{"type":"number"}}}"#;

pub(crate) fn registry(store: Arc<dyn Store>) -> Registry {
    Registry::new(store, RegistryOptions::default())
}

pub(crate) fn pipeline_body(input: &str, output: &str) -> String {
    format!(
        r#"{{"input_schema":"{input}","transform":"{{total: (.qty * .price)}}","output_schema":"{output}","output":"json"}}"#
    )
}

pub(crate) async fn process(
    reg: &Registry,
    tenant: &str,
    name: &str,
    doc: &str,
) -> Result<Outcome<String>, RegistryError> {
    let p = reg.pipeline(tenant, name).await?;
    let mut out = Vec::new();
    Ok(
        match p
            .value
            .process(doc.as_bytes(), None, &mut out)
            .expect("processing failed")
        {
            Outcome::Accepted(()) => Outcome::Accepted(String::from_utf8(out).unwrap()),
            Outcome::Rejected(r) => Outcome::Rejected(r),
        },
    )
}

pub(crate) async fn versions_and_identity(store: Arc<dyn Store>) {
    let reg = registry(store);
    let a = reg
        .put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    assert_eq!((a.version, a.created), (1, true));
    // Whitespace does not make a new version; a different document does.
    let spaced = ORDER.replace(',', ", ");
    let b = reg
        .put_schema(TENANT, "order", spaced.as_bytes())
        .await
        .unwrap();
    assert_eq!((b.version, b.created), (1, false));
    let c = reg
        .put_schema(TENANT, "order", RECORD.as_bytes())
        .await
        .unwrap();
    assert_eq!((c.version, c.created), (2, true));
    let v1 = reg
        .get(Kind::Schema, TENANT, "order", Some(1))
        .await
        .unwrap();
    assert!(v1.body.contains("0.3"), "{}", v1.body);
    assert_eq!(
        reg.get(Kind::Schema, TENANT, "order", None)
            .await
            .unwrap()
            .version,
        2
    );
    assert!(matches!(
        reg.get(Kind::Schema, TENANT, "order", Some(3)).await,
        Err(RegistryError::NotFound {
            version: Some(3),
            ..
        })
    ));
    let list = reg.list(Kind::Schema, TENANT).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].name.as_str(), list[0].latest), ("order", 2));
}

pub(crate) async fn refused_writes_store_nothing(store: Arc<dyn Store>) {
    let reg = registry(store);
    let bad = [
        (&br#"{"type": 12}"#[..], "compile"),
        (b"{\"type\":", "JSON"),
        (br#"{"a":1,"a":2}"#, "JSON"),
        (br#"{"$ref":"assay://schemas/money"}"#, "version"),
        (br#"{"$ref":"assay://schemas/money/1"}"#, "unknown"),
        (b"[1]", "object"),
    ];
    for (body, why) in bad {
        let err = reg.put_schema(TENANT, "s", body).await.unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    assert!(matches!(
        reg.put_schema(TENANT, "bad/name", b"{}").await,
        Err(RegistryError::Invalid(_))
    ));
    reg.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    reg.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    let bad_pipelines = [
        (pipeline_body("nope", "record"), "unknown schema"),
        (pipeline_body("order@7", "record"), "unknown schema"),
        (r#"{"transform":".a | ("}"#.to_owned(), "line 1"),
        (r#"{"transform":"nosuch(1)"}"#.to_owned(), "nosuch"),
        (r#"{"transfrom":"."}"#.to_owned(), "transfrom"),
        (r#"{"output":"xml"}"#.to_owned(), "xml"),
    ];
    for (body, why) in bad_pipelines {
        let err = reg
            .put_pipeline(TENANT, "p", body.as_bytes())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    assert!(reg.list(Kind::Pipeline, TENANT).await.unwrap().is_empty());
    let names: Vec<_> = reg
        .list(Kind::Schema, TENANT)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["order", "record"]);
}

pub(crate) async fn pipelines_pin_schemas_and_process_exactly(store: Arc<dyn Store>) {
    let reg = registry(store);
    reg.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    reg.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    let p = reg
        .put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    assert_eq!(p.version, 1);
    let stored = reg
        .get(Kind::Pipeline, TENANT, "price", None)
        .await
        .unwrap();
    assert!(
        stored.body.contains("order@1") && stored.body.contains("record@1"),
        "{}",
        stored.body
    );
    assert_eq!(
        process(&reg, TENANT, "price", r#"{"qty":3.3,"price":0.1}"#)
            .await
            .unwrap(),
        Outcome::Accepted(r#"{"total":0.33}"#.into())
    );
    // Exact validation: 0.30000000000000001 is above maximum 0.3.
    let Outcome::Rejected(r) = process(
        &reg,
        TENANT,
        "price",
        r#"{"qty":1,"price":0.30000000000000001}"#,
    )
    .await
    .unwrap() else {
        panic!("accepted a price above the maximum")
    };
    assert_eq!(r.findings[0].instance_location, "/price");
    // A new schema version does not change what the registered pipeline means.
    reg.put_schema(
        TENANT,
        "order",
        br#"{"type":"object","required":["never"]}"#,
    )
    .await
    .unwrap();
    assert!(matches!(
        process(&reg, TENANT, "price", r#"{"qty":1,"price":0.2}"#)
            .await
            .unwrap(),
        Outcome::Accepted(_)
    ));
    // ... until the pipeline is registered again.
    let p2 = reg
        .put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    assert_eq!(p2.version, 2);
    assert!(matches!(
        process(&reg, TENANT, "price", r#"{"qty":1,"price":0.2}"#)
            .await
            .unwrap(),
        Outcome::Rejected(_)
    ));
    // Identical registration returns the same version.
    let p3 = reg
        .put_pipeline(
            TENANT,
            "price",
            pipeline_body("order@2", "record@1").as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!((p3.version, p3.created), (2, false));
}

pub(crate) async fn schemas_ref_registered_schemas(store: Arc<dyn Store>) {
    let reg = registry(store);
    reg.put_schema(TENANT, "money", MONEY.as_bytes())
        .await
        .unwrap();
    let fee = r#"{"type":"object","properties":{"amount":{"$ref":"assay://schemas/money/1"}}}"#;
    reg.put_schema(TENANT, "fee", fee.as_bytes()).await.unwrap();
    let schema = reg.schema(TENANT, "fee").await.unwrap();
    let doc = |s: &str| engine::parse_document(s.as_bytes(), &engine::Limits::default()).unwrap();
    assert!(schema.value.is_valid(&doc(r#"{"amount":"12.50"}"#)));
    assert!(!schema.value.is_valid(&doc(r#"{"amount":"12,50"}"#)));
    let err = reg.delete(Kind::Schema, TENANT, "money").await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::InUse { user, .. } if user.contains("fee")),
        "{err}"
    );
}

pub(crate) async fn deleting_a_used_schema_is_refused(store: Arc<dyn Store>) {
    let reg = registry(store);
    reg.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    reg.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    reg.put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    let err = reg.delete(Kind::Schema, TENANT, "order").await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::InUse { user, .. } if user.contains("price")),
        "{err}"
    );
    assert!(reg.get(Kind::Schema, TENANT, "order", None).await.is_ok());
    reg.delete(Kind::Pipeline, TENANT, "price").await.unwrap();
    assert!(matches!(
        reg.pipeline(TENANT, "price").await,
        Err(RegistryError::NotFound { .. })
    ));
    reg.delete(Kind::Schema, TENANT, "order").await.unwrap();
    assert!(matches!(
        reg.delete(Kind::Schema, TENANT, "order").await,
        Err(RegistryError::NotFound { .. })
    ));
    // A deleted name starts again at version 1.
    assert_eq!(
        reg.put_schema(TENANT, "order", ORDER.as_bytes())
            .await
            .unwrap()
            .version,
        1
    );
}

pub(crate) async fn a_put_never_leaves_a_dangling_reference(store: Arc<dyn Store>) {
    // What a put racing a delete of its schema sees: the store itself refuses.
    let err = store
        .put(Kind::Pipeline, TENANT, "p", "{}", &["gone".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        registry::StoreError::MissingRef {
            name: "gone".into()
        }
    );
    assert!(store.list(Kind::Pipeline, TENANT).await.unwrap().is_empty());
    // A schema that refers to an older version of itself is not its own user.
    let reg = registry(store);
    reg.put_schema(TENANT, "s", MONEY.as_bytes()).await.unwrap();
    reg.put_schema(TENANT, "s", br#"{"$ref":"assay://schemas/s/1"}"#)
        .await
        .unwrap();
    reg.delete(Kind::Schema, TENANT, "s").await.unwrap();
}

pub(crate) async fn tenants_are_separate(store: Arc<dyn Store>) {
    let reg = registry(store);
    reg.put_schema("a", "s", ORDER.as_bytes()).await.unwrap();
    reg.put_schema("b", "s", RECORD.as_bytes()).await.unwrap();
    reg.put_schema("b", "s", ORDER.as_bytes()).await.unwrap();
    assert_eq!(
        reg.get(Kind::Schema, "a", "s", None).await.unwrap().version,
        1
    );
    assert_eq!(
        reg.get(Kind::Schema, "b", "s", None).await.unwrap().version,
        2
    );
    assert!(reg.list(Kind::Schema, "c").await.unwrap().is_empty());
    // A pipeline of tenant c cannot reach tenant a's schema.
    let err = reg
        .put_pipeline("c", "p", br#"{"input_schema":"s"}"#)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown schema"), "{err}");
}

pub(crate) async fn concurrent_registrations_get_distinct_versions(store: Arc<dyn Store>) {
    let reg = Arc::new(registry(store));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let reg = reg.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"type":"object","maxProperties":{i}}}"#);
                reg.put_schema(TENANT, "c", body.as_bytes())
                    .await
                    .unwrap()
                    .version
            })
        })
        .collect();
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=16).collect::<Vec<_>>());
}

pub(crate) async fn a_second_instance_warms_and_follows(store: Arc<dyn Store>) {
    let a = registry(store.clone());
    a.put_schema(TENANT, "order", ORDER.as_bytes())
        .await
        .unwrap();
    a.put_schema(TENANT, "record", RECORD.as_bytes())
        .await
        .unwrap();
    a.put_pipeline(TENANT, "price", pipeline_body("order", "record").as_bytes())
        .await
        .unwrap();
    let b = Arc::new(registry(store));
    let report = b.warm().await.unwrap();
    assert_eq!((report.schemas, report.pipelines, report.failed), (2, 1, 0));
    assert!(b.ready().await);
    assert_eq!(b.cached_pipeline(TENANT, "price").unwrap().version, 1);
    tokio::spawn(b.clone().follow_changes());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    a.put_pipeline(TENANT, "price", br#"{"transform":"{total: 0}"}"#)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while b
        .cached_pipeline(TENANT, "price")
        .is_none_or(|p| p.version != 2)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "change did not reach the second instance within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    a.delete(Kind::Pipeline, TENANT, "price").await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while b.cached_pipeline(TENANT, "price").is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "deletion did not reach the second instance within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Instantiates every behaviour as a test, given an async expression that makes a fresh
/// store, and one that makes a fresh pair of connections to one store (for a backend with
/// no second connection, the same store twice).
macro_rules! store_suite {
    ($make:expr, $make_pair:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn versions_and_identity() {
            $crate::suite::versions_and_identity($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn refused_writes_store_nothing() {
            $crate::suite::refused_writes_store_nothing($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn pipelines_pin_schemas_and_process_exactly() {
            $crate::suite::pipelines_pin_schemas_and_process_exactly($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn schemas_ref_registered_schemas() {
            $crate::suite::schemas_ref_registered_schemas($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn deleting_a_used_schema_is_refused() {
            $crate::suite::deleting_a_used_schema_is_refused($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_put_never_leaves_a_dangling_reference() {
            $crate::suite::a_put_never_leaves_a_dangling_reference($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn tenants_are_separate() {
            $crate::suite::tenants_are_separate($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_registrations_get_distinct_versions() {
            $crate::suite::concurrent_registrations_get_distinct_versions($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_second_instance_warms_and_follows() {
            $crate::suite::a_second_instance_warms_and_follows($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keys_authenticate_their_tenant_and_role() {
            $crate::keys::keys_authenticate_their_tenant_and_role($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn keys_expire() {
            $crate::keys::keys_expire($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn listings_show_one_tenant_and_no_secret() {
            $crate::keys::listings_show_one_tenant_and_no_secret($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn revocation_is_immediate_and_per_tenant() {
            $crate::keys::revocation_is_immediate_and_per_tenant($make).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_second_instance_sees_keys_and_revocations() {
            let (a, b) = $make_pair;
            $crate::keys::a_second_instance_sees_keys_and_revocations(a, b).await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_registry_ignores_keys() {
            $crate::keys::the_registry_ignores_keys($make).await
        }
    };
}
