//! The reference workload: the trade pipeline reproduces `expected.json` and
//! `expected-precision.json` exactly, comparing numbers by value (`2718350.0000000` equals
//! `2718350`, but `0.30000000000000004` does not equal `0.3`).

use std::path::Path;
use std::str::FromStr;

use bigdecimal::BigDecimal;
use engine::{Limits, Outcome, Part, Pipeline, PipelineSpec, Resolved, Value, parse_document};

use crate::shared;

fn trade_pipeline(dir: &Path) -> Pipeline {
    let spec: Value = serde_json::from_str(
        r#"{"input_schema":"input.schema.json","transform":"transform.jq","output_schema":"output.schema.json"}"#,
    )
    .unwrap();
    let spec = PipelineSpec::from_document(&spec, |part, name| {
        let text = std::fs::read(dir.join(name)).map_err(|e| e.to_string())?;
        Ok(match part {
            Part::Schema => Resolved::Schema(
                parse_document(&text, &Limits::default()).map_err(|e| e.to_string())?,
            ),
            Part::Transform => {
                Resolved::Program(String::from_utf8(text).map_err(|e| e.to_string())?)
            }
        })
    })
    .unwrap();
    Pipeline::compile(&spec).unwrap()
}

/// Equality with numbers compared as exact decimals and objects as maps.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            BigDecimal::from_str(x.as_str()).unwrap() == BigDecimal::from_str(y.as_str()).unwrap()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn check(input: &str, expected: &str) {
    let Some(dir) = shared::dir("workloads/trade") else {
        return;
    };
    let pipeline = trade_pipeline(&dir);
    let mut out = Vec::new();
    let bytes = std::fs::read(dir.join(input)).unwrap();
    let outcome = pipeline.process(&bytes, None, &mut out).unwrap();
    assert_eq!(outcome, Outcome::Accepted(()), "{input} was rejected");
    let got = parse_document(&out, &Limits::default()).unwrap();
    let want = parse_document(
        &std::fs::read(dir.join(expected)).unwrap(),
        &Limits::default(),
    )
    .unwrap();
    assert!(same(&got, &want), "{input}:\n got  {got}\n want {want}");
}

#[test]
fn trade_reproduces_expected() {
    check("trade.json", "expected.json");
}

#[test]
fn trade_precision_reproduces_expected_precision() {
    check("trade-precision.json", "expected-precision.json");
}

#[test]
fn number_aware_comparison_can_fail() {
    let v = |s: &str| parse_document(s.as_bytes(), &Limits::default()).unwrap();
    assert!(same(&v("[2718350.0000000]"), &v("[2718350]")));
    assert!(!same(&v("[0.30000000000000004]"), &v("[0.3]")));
    assert!(!same(
        &v("[12345678901234567000]"),
        &v("[12345678901234567890]")
    ));
}
