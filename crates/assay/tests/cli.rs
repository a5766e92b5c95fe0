//! End-to-end tests of the `assay` binary: each test runs the built executable on files in a
//! temporary folder of its own and checks exit codes, standard output and the JSON records on
//! standard error.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use assert_cmd::cargo::cargo_bin_cmd;
use bigdecimal::BigDecimal;
use engine::{Encoding, Limits, Value};
use tempfile::TempDir;

fn assay() -> assert_cmd::Command {
    cargo_bin_cmd!("assay")
}

/// A temporary folder to write inputs and configuration into.
struct Dir(TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// The JSON records on standard error, one per line.
fn records(stderr: &[u8]) -> Vec<Value> {
    std::str::from_utf8(stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn stdout(output: &std::process::Output) -> &str {
    std::str::from_utf8(&output.stdout).unwrap()
}

/// Equality with numbers compared as exact decimals: `2718350.0000000` is `2718350`, but
/// `0.30000000000000004` is not `0.3`. Object member order does not matter.
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

fn json(text: &str) -> Value {
    engine::parse_document(text.as_bytes(), &Limits::default()).unwrap()
}

#[test]
fn number_aware_comparison_is_exact() {
    assert!(same(&json("[2718350.0000000]"), &json("[2718350]")));
    assert!(same(
        &json(r#"{"a":1,"b":0.10}"#),
        &json(r#"{"b":0.1,"a":1.0}"#)
    ));
    assert!(!same(&json("0.30000000000000004"), &json("0.3")));
    assert!(!same(
        &json("12345678901234567000"),
        &json("12345678901234567890")
    ));
    assert!(!same(&json("1"), &json("\"1\"")));
}

// ---------------------------------------------------------------------------------------------
// validate

const PRICE_SCHEMA: &str = r#"{
    "type": "object",
    "required": ["price"],
    "properties": {"price": {"type": "number", "maximum": 0.3}}
}"#;

#[test]
fn validate_exits_0_when_every_document_is_valid() {
    let dir = Dir::new();
    let schema = dir.file("s.json", PRICE_SCHEMA);
    let doc = dir.file("doc.json", "{\n  \"price\": 0.3\n}\n");
    let lines = dir.file("docs.ndjson", "{\"price\":0.1}\n\n{\"price\":0.2}\n");
    assay()
        .arg("validate")
        .arg("--schema")
        .arg(&schema)
        .args([&doc, &lines])
        .assert()
        .code(0)
        .stdout("")
        .stderr("");
}

#[test]
fn validate_reports_each_bad_line_and_exits_1() {
    let dir = Dir::new();
    let schema = dir.file("s.json", PRICE_SCHEMA);
    let input = dir.file(
        "in.ndjson",
        concat!(
            "{\"price\":0.3}\n",
            "{\"price\":0.30000000000000001}\n",
            "\n",
            "{\"price\": oops}\n",
            "{\"price\":0.1,\"price\":0.2}\n",
            "{}\n",
        ),
    );
    let out = assay()
        .arg("validate")
        .arg("-s")
        .arg(&schema)
        .arg(&input)
        .arg("--summary")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stderr);
    assert_eq!(recs.len(), 5, "{recs:?}");
    let name = input.display().to_string();
    assert_eq!(recs[0]["file"], name.as_str());
    assert_eq!(recs[0]["line"], json("2"));
    assert_eq!(recs[0]["valid"], false);
    assert_eq!(recs[0]["errors"][0]["keyword"], "maximum");
    assert_eq!(recs[0]["errors"][0]["instance_location"], "/price");
    assert_eq!(
        recs[0]["errors"][0]["schema_location"],
        "/properties/price/maximum"
    );
    assert_eq!(recs[1]["line"], json("4"));
    assert_eq!(recs[1]["error"]["code"], "syntax");
    assert_eq!(recs[2]["line"], json("5"));
    assert_eq!(recs[2]["error"]["code"], "duplicate_key");
    assert_eq!(recs[3]["line"], json("6"));
    assert_eq!(recs[3]["errors"][0]["keyword"], "required");
    assert!(same(
        &recs[4],
        &json(r#"{"summary":{"documents":5,"valid":1,"invalid":2,"unparsable":2}}"#)
    ));
}

#[test]
fn validate_reads_standard_input() {
    let dir = Dir::new();
    let schema = dir.file("s.json", PRICE_SCHEMA);
    // A pretty-printed document is one document, wherever its error is.
    let out = assay()
        .args(["validate", "--schema"])
        .arg(&schema)
        .write_stdin("{\n  \"price\": 1\n}\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stderr);
    assert_eq!(recs[0]["file"], "<stdin>");
    assert_eq!(recs[0]["line"], json("1"));
    // NDJSON on standard input is recognised by its first line.
    let out = assay()
        .args(["validate", "--schema"])
        .arg(&schema)
        .arg("-")
        .write_stdin("{\"price\":0.1}\n{\"price\":2}\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(records(&out.stderr)[0]["line"], json("2"));
}

#[test]
fn validate_options_reach_the_schema() {
    let dir = Dir::new();
    let schema = dir.file(
        "s.json",
        r#"{"properties":{"d":{"format":"date"},"n":{"maximum":1}}}"#,
    );
    let bad_date = dir.file("d.json", r#"{"d":"2026-13-45"}"#);
    let args = |extra: &[&str]| {
        let mut cmd = assay();
        cmd.arg("validate").arg("--schema").arg(&schema).args(extra);
        cmd
    };
    args(&[]).arg(&bad_date).assert().code(1);
    args(&["--no-formats"]).arg(&bad_date).assert().code(0);
    args(&["--draft", "7"]).arg(&bad_date).assert().code(1);
    let many = dir.file("m.json", r#"{"d":"x","n":2}"#);
    let out = args(&["--max-errors", "1"]).arg(&many).output().unwrap();
    assert_eq!(
        records(&out.stderr)[0]["errors"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn validate_exits_2_on_usage_and_setup_errors() {
    let dir = Dir::new();
    let schema = dir.file("s.json", PRICE_SCHEMA);
    let doc = dir.file("doc.json", "{\"price\":0}");
    let missing = dir.0.path().join("missing.json");
    // An unreadable input.
    let out = assay()
        .arg("validate")
        .arg("--schema")
        .arg(&schema)
        .args([&doc, &missing])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
    // A schema that does not compile, or is not there, or is not JSON.
    let bad = dir.file("bad.json", r#"{"type": 12}"#);
    let not_json = dir.file("nj.json", "{type: object}");
    for schema in [&bad, &missing, &not_json] {
        assay()
            .arg("validate")
            .arg("--schema")
            .arg(schema)
            .arg(&doc)
            .assert()
            .code(2);
    }
    // Flags clap refuses.
    assay().args(["validate"]).arg(&doc).assert().code(2);
    assay()
        .args(["validate", "--draft", "5", "--schema"])
        .arg(&schema)
        .arg(&doc)
        .assert()
        .code(2);
    assay()
        .args(["validate", "--max-errors", "0", "--schema"])
        .arg(&schema)
        .arg(&doc)
        .assert()
        .code(2);
}

#[test]
fn oversized_lines_are_refused_and_reading_goes_on() {
    let dir = Dir::new();
    let schema = dir.file("s.json", "true");
    let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(500));
    let input = dir.file("in.jsonl", format!("{{}}\n{long}\n[]\n{long}"));
    let out = assay()
        .args(["validate", "--max-bytes", "100", "--schema"])
        .arg(&schema)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let recs = records(&out.stderr);
    assert_eq!(recs.len(), 2);
    for (rec, line) in recs.iter().zip(["2", "4"]) {
        assert_eq!(rec["line"], json(line));
        assert_eq!(rec["error"]["code"], "too_large");
    }
}

// ---------------------------------------------------------------------------------------------
// transform

fn transform(program: &str, input: &str) -> std::process::Output {
    assay()
        .args(["transform", program])
        .write_stdin(input)
        .output()
        .unwrap()
}

#[test]
fn transform_arithmetic_is_exact() {
    for (program, input, expected) in [
        ("0.1 + 0.2", "null", "0.3\n"),
        (
            ".a * .b",
            r#"{"a":2500000.00,"b":1.08734}"#,
            "2718350.0000000\n",
        ),
        (".", "9007199254740993", "9007199254740993\n"),
        (
            ".n + 2",
            r#"{"n":12345678901234567891}"#,
            "12345678901234567893\n",
        ),
        (".q * .p", r#"{"q":3.3,"p":1.1}"#, "3.63\n"),
    ] {
        let out = transform(program, input);
        assert_eq!(out.status.code(), Some(0), "{program}: {out:?}");
        assert_eq!(stdout(&out), expected, "{program}");
    }
}

#[test]
fn transform_prints_every_output_like_jq() {
    let out = transform(".[]", "[1, \"two\", {\"three\": 3.0}]\n[4]\n");
    assert_eq!(stdout(&out), "1\n\"two\"\n{\"three\":3.0}\n4\n");
    let out = assay()
        .args(["transform", "-c", "--collect", ".[]"])
        .write_stdin("[1,2]\n[]\n")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "[1,2]\n[]\n");
    let out = assay()
        .args(["transform", "--one", ".[]"])
        .write_stdin("[1]\n[1,2]\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(stdout(&out), "1\n");
    let recs = records(&out.stderr);
    assert_eq!(recs[0]["line"], json("2"));
    assert_eq!(recs[0]["error"]["code"], "transform_output_count");
}

#[test]
fn transform_errors_exit_5_and_processing_continues() {
    let out = transform(
        r#"if . == 2 then error("two") else . end"#,
        "1\n2\nnot json\n3\n",
    );
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(stdout(&out), "1\n3\n");
    let recs = records(&out.stderr);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["line"], json("2"));
    assert_eq!(recs[0]["error"]["code"], "transform_error");
    assert!(
        recs[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("two")
    );
    assert_eq!(recs[1]["line"], json("3"));
    assert_eq!(recs[1]["error"]["code"], "syntax");
}

#[test]
fn transform_compile_errors_give_line_and_column() {
    let out = transform(".a | | .b", "{}");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1, column 6"), "{err}");

    let dir = Dir::new();
    let program = dir.file("p.jq", "# doubles n\n{n: (.n * 2)}\n| .m +* 1\n");
    let out = assay()
        .args(["transform", "-f"])
        .arg(&program)
        .write_stdin("{}")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.jq") && err.contains("line 3, column"),
        "{err}"
    );
}

#[test]
fn transform_reads_the_program_from_a_file_and_inputs_from_arguments() {
    let dir = Dir::new();
    let program = dir.file("p.jq", "{n: (.n * 2)}");
    let a = dir.file("a.json", r#"{"n": 0.05}"#);
    let b = dir.file("b.ndjson", "{\"n\": 1}\n{\"n\": 2.50}\n");
    assay()
        .args(["transform", "-f"])
        .arg(&program)
        .args([&a, &b])
        .assert()
        .code(0)
        .stdout("{\"n\":0.10}\n{\"n\":2}\n{\"n\":5.00}\n");
    // Without a program there is nothing to run.
    assay().arg("transform").assert().code(2);
    assay()
        .args(["transform", "."])
        .arg(dir.0.path().join("missing.json"))
        .assert()
        .code(2);
}

// ---------------------------------------------------------------------------------------------
// run

const POSITIVE: &str =
    r#"{"type":"object","required":["n"],"properties":{"n":{"exclusiveMinimum":0}}}"#;

/// A pipeline in `dir` that doubles `n`, which must be positive before and after.
fn doubling_pipeline(dir: &Dir, yaml: bool) -> PathBuf {
    dir.file("positive.schema.json", POSITIVE);
    dir.file("double.jq", "{n: (.n * 2), id}");
    if yaml {
        dir.file(
            "p.yaml",
            "input_schema: positive.schema.json\ntransform: double.jq\n\
             output_schema: positive.schema.json\noutput: json\n",
        )
    } else {
        dir.file(
            "p.json",
            r#"{"input_schema":"positive.schema.json","transform":"double.jq",
                "output_schema":"positive.schema.json","output":"ndjson"}"#,
        )
    }
}

#[test]
fn run_accepts_rejects_and_reports_by_line() {
    for yaml in [true, false] {
        let dir = Dir::new();
        let pipeline = doubling_pipeline(&dir, yaml);
        let input = dir.file(
            "in.ndjson",
            "{\"n\":0.05,\"id\":1}\n{\"n\":-1,\"id\":2}\n{\"n\":1e2,\"id\":3}\n",
        );
        let out = assay()
            .args(["run", "--summary", "--pipeline"])
            .arg(&pipeline)
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "yaml: {yaml}");
        let lines: Vec<_> = stdout(&out).lines().map(json).collect();
        assert_eq!(lines.len(), 2);
        assert!(same(&lines[0], &json(r#"{"n":0.10,"id":1}"#)));
        assert!(same(&lines[1], &json(r#"{"n":200,"id":3}"#)));
        let recs = records(&out.stderr);
        assert_eq!(recs[0]["line"], json("2"));
        assert_eq!(recs[0]["accepted"], false);
        assert_eq!(recs[0]["stage"], "input");
        assert_eq!(recs[0]["errors"][0]["instance_location"], "/n");
        assert!(same(
            &recs[1],
            &json(r#"{"summary":{"documents":3,"accepted":2,"rejected":1,"failed":0}}"#)
        ));
    }
}

#[test]
fn run_writes_every_encoding() {
    let dir = Dir::new();
    let pipeline = doubling_pipeline(&dir, true);
    let input = dir.file(
        "in.ndjson",
        "{\"n\":1.5,\"id\":\"a\"}\n{\"n\":4,\"id\":\"b\"}\n",
    );
    let results = [json(r#"{"n":3.0,"id":"a"}"#), json(r#"{"n":8,"id":"b"}"#)];
    for encoding in Encoding::ALL {
        let mut expected = Vec::new();
        for value in &results {
            engine::encode(value, encoding, &mut expected).unwrap();
            if matches!(encoding, Encoding::Json | Encoding::Jcs) {
                expected.push(b'\n');
            }
        }
        let out = assay()
            .args(["run", "--output", encoding.as_str(), "--pipeline"])
            .arg(&pipeline)
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{encoding}: {out:?}");
        assert_eq!(out.stdout, expected, "{encoding}");
    }
    // A number that an encoding cannot carry exactly fails that document, not the run.
    let wide = dir.file("wide.json", r#"{"n":0.1000000000000000000001,"id":"c"}"#);
    let out = assay()
        .args(["run", "-o", "msgpack", "-p"])
        .arg(&pipeline)
        .arg(&wide)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        records(&out.stderr)[0]["error"]["code"],
        "not_representable"
    );
}

#[test]
fn run_output_keeps_input_order_on_any_number_of_threads() {
    let dir = Dir::new();
    let pipeline = doubling_pipeline(&dir, false);
    let mut input = String::new();
    for i in 1..=10_000 {
        // Every 97th document is rejected, so the error stream is ordered too.
        let n = if i % 97 == 0 {
            "-1".into()
        } else {
            format!("{i}.5")
        };
        input.push_str(&format!("{{\"n\":{n},\"id\":{i}}}\n"));
    }
    let input = dir.file("big.ndjson", input);
    let run = |jobs: &str| {
        assay()
            .args(["run", "--jobs", jobs, "--pipeline"])
            .arg(&pipeline)
            .arg(&input)
            .output()
            .unwrap()
    };
    let one = run("1");
    let two = run("2");
    assert_eq!(one.status.code(), Some(1));
    assert_eq!(one.stdout, two.stdout);
    assert_eq!(one.stderr, two.stderr);
    let ids: Vec<u64> = stdout(&two)
        .lines()
        .map(|l| json(l)["id"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=10_000).filter(|i| i % 97 != 0).collect();
    assert_eq!(ids, expected);
    let lines: Vec<u64> = records(&two.stderr)
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        lines,
        (1..=10_000).filter(|i| i % 97 == 0).collect::<Vec<_>>()
    );
}

#[test]
fn run_reports_broken_lines_and_goes_on() {
    let dir = Dir::new();
    let pipeline = doubling_pipeline(&dir, true);
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    let input = dir.file(
        "in.ndjson",
        format!(
            "{{\"n\":1,\"id\":1}}\n{{\"n\":1,\n{{\"n\":1,\"n\":2,\"id\":3}}\n{deep}\n\n{{\"n\":1,\"id\":6}}\n"
        ),
    );
    let out = assay()
        .args(["run", "-j", "2", "-p"])
        .arg(&pipeline)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let ids: Vec<_> = stdout(&out)
        .lines()
        .map(|l| json(l)["id"].clone())
        .collect();
    assert_eq!(ids, [json("1"), json("6")]);
    let recs = records(&out.stderr);
    let got: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(2, "syntax"), (3, "duplicate_key"), (4, "too_deep")]);
}

#[test]
fn run_exits_2_on_pipeline_and_input_errors() {
    let dir = Dir::new();
    let pipeline = doubling_pipeline(&dir, true);
    let doc = dir.file("doc.json", r#"{"n":1}"#);
    let missing = dir.0.path().join("missing.json");
    assay()
        .args(["run", "-p"])
        .arg(&pipeline)
        .arg(&missing)
        .assert()
        .code(2);
    assay()
        .args(["run", "-p"])
        .arg(&missing)
        .arg(&doc)
        .assert()
        .code(2);
    for (name, text) in [
        ("unknown-key.yaml", "transfrom: double.jq\n"),
        ("missing-ref.yaml", "input_schema: nowhere.json\n"),
        ("bad-jq.yaml", "transform: {code: \".n |\"}\n"),
        ("bad-yaml.yaml", "transform: [unclosed\n"),
    ] {
        let p = dir.file(name, text);
        let out = assay()
            .args(["run", "-p"])
            .arg(&p)
            .arg(&doc)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(name),
            "{name}: {out:?}"
        );
    }
    assay()
        .args(["run", "-o", "xml", "-p"])
        .arg(&pipeline)
        .arg(&doc)
        .assert()
        .code(2);
}

#[test]
fn help_and_version() {
    let out = assay().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    for command in ["validate", "transform", "run"] {
        assert!(stdout(&out).contains(command));
        let out = assay().args([command, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("Exit status"));
    }
    assay()
        .arg("--version")
        .assert()
        .code(0)
        .stdout(format!("assay {}\n", env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------------------------------------
// The trade workload

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/trade")
}

/// Runs `pipeline` on `input` and returns the single output document.
fn run_one(pipeline: &Path, input: &Path) -> Value {
    let out = assay()
        .args(["run", "--pipeline"])
        .arg(pipeline)
        .arg(input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out).lines().count(), 1);
    json(stdout(&out))
}

#[test]
fn the_trade_example_reproduces_its_expected_outputs() {
    let dir = example_dir();
    for (input, expected) in [
        ("trade.json", "expected.json"),
        ("trade-precision.json", "expected-precision.json"),
    ] {
        let got = run_one(&dir.join("pipeline.yaml"), &dir.join(input));
        let want = json(&std::fs::read_to_string(dir.join(expected)).unwrap());
        assert!(same(&got, &want), "{input}: {got} != {want}");
    }
}

/// `../shared` beside the workspace, or `None` after a loud notice (a failure under CI).
fn shared_workload() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("../shared/workloads/trade");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing, and CI must not skip the shared workload",
        dir.display()
    );
    eprintln!(
        "SKIPPED: {} is missing; the shared trade workload was not checked",
        dir.display()
    );
    None
}

#[test]
fn the_shared_trade_workload_matches_and_the_example_has_not_drifted() {
    let Some(shared) = shared_workload() else {
        return;
    };
    let example = example_dir();
    for file in [
        "input.schema.json",
        "output.schema.json",
        "transform.jq",
        "trade.json",
        "trade-precision.json",
        "expected.json",
        "expected-precision.json",
    ] {
        assert_eq!(
            std::fs::read(example.join(file)).unwrap(),
            std::fs::read(shared.join(file)).unwrap(),
            "examples/trade/{file} differs from the shared workload's"
        );
    }
    // A pipeline made here from the shared files themselves (absolute references).
    let dir = Dir::new();
    let reference = |f: &str| shared.join(f).display().to_string();
    let pipeline = dir.file(
        "trade.json",
        serde_json::json!({
            "input_schema": reference("input.schema.json"),
            "transform": reference("transform.jq"),
            "output_schema": reference("output.schema.json"),
        })
        .to_string(),
    );
    for (input, expected) in [
        ("trade.json", "expected.json"),
        ("trade-precision.json", "expected-precision.json"),
    ] {
        let got = run_one(&pipeline, &shared.join(input));
        let want = json(&std::fs::read_to_string(shared.join(expected)).unwrap());
        assert!(same(&got, &want), "{input}: {got} != {want}");
    }
}

/// Registry administration through the built binary: the same script against the embedded
/// store in a data directory and against Redis.
fn registry_admin(store_args: &[&str], tenants: bool) {
    let dir = Dir::new();
    let example = example_dir();
    let run = |args: &[&str]| {
        let mut cmd = assay();
        cmd.current_dir(dir.0.path()).args(args).args(store_args);
        cmd
    };
    let stdout = |args: &[&str]| {
        String::from_utf8(run(args).assert().success().get_output().stdout.clone()).unwrap()
    };
    let input = example.join("input.schema.json");
    let output = example.join("output.schema.json");
    let program = example.join("transform.jq");
    assert_eq!(
        stdout(&["schema", "put", "trade-input", input.to_str().unwrap()]),
        "{\"name\":\"trade-input\",\"version\":1,\"created\":true}\n"
    );
    // The same document again: the existing version, nothing new.
    assert_eq!(
        stdout(&["schema", "put", "trade-input", input.to_str().unwrap()]),
        "{\"name\":\"trade-input\",\"version\":1,\"created\":false}\n"
    );
    stdout(&["schema", "put", "trade-output", output.to_str().unwrap()]);
    let def = dir.file(
        "trade.yaml",
        "input_schema: trade-input\noutput_schema: trade-output\n",
    );
    assert_eq!(
        stdout(&[
            "pipeline",
            "put",
            "trade",
            def.to_str().unwrap(),
            "--transform-file",
            program.to_str().unwrap()
        ]),
        "{\"name\":\"trade\",\"version\":1,\"created\":true}\n"
    );
    let got = stdout(&["pipeline", "get", "trade"]);
    assert!(got.contains("\"input_schema\":\"trade-input@1\""), "{got}");
    assert_eq!(
        stdout(&["pipeline", "list"]),
        "{\"name\":\"trade\",\"latest\":1}\n"
    );
    // Refusals: exit 1 with the reason.
    let refused = run(&["schema", "delete", "trade-input"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&refused).contains("used by pipeline \"trade\""));
    let bad = dir.file("bad.json", r#"{"type": 12}"#);
    run(&["schema", "put", "x", bad.to_str().unwrap()])
        .assert()
        .code(1);
    run(&["schema", "get", "x"]).assert().code(1);
    let bad_jq = dir.file("bad.yaml", "transform: '.a | ('\n");
    run(&["pipeline", "put", "p", bad_jq.to_str().unwrap()])
        .assert()
        .code(1);
    // Tenants do not see each other (a server has one tenant until API keys name others).
    if tenants {
        assert_eq!(stdout(&["schema", "list", "--tenant", "other"]), "");
    }
    stdout(&["pipeline", "delete", "trade"]);
    stdout(&["schema", "delete", "trade-input"]);
    assert_eq!(
        stdout(&["schema", "list"]),
        "{\"name\":\"trade-output\",\"latest\":1}\n"
    );
    stdout(&["schema", "delete", "trade-output"]);
}

#[test]
fn registry_admin_on_the_embedded_store() {
    registry_admin(&[], true);
    assay()
        .args(["schema", "list", "--redis-url", "redis://127.0.0.1:1"])
        .assert()
        .code(2);
}

/// The Redis the tests share (see `testkit::redis`): `REDIS_URL`, else a private
/// `redis-server`; `None` (the test skips, loudly) when neither can be had, which fails the
/// test instead when `CI` is set.
fn redis_url() -> Option<String> {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(testkit::redis::redis_url("assay CLI Redis tests"))
}

/// A key prefix no other test run uses.
fn fresh_prefix() -> String {
    testkit::redis::unique_prefix()
}

#[test]
fn registry_admin_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    registry_admin(&["--redis-url", &url, "--redis-prefix", &prefix], true);
}

/// An `assay serve` child process, killed when dropped, logging JSON to a file.
struct Served {
    child: std::process::Child,
    base: String,
    log: PathBuf,
}

impl Served {
    fn start(dir: &Dir, name: &str, args: &[&str]) -> Self {
        let log = dir.0.path().join(format!("{name}.log"));
        // Port 0: the server binds a free port itself and logs the address it got, so no other
        // process can take the port between choosing it and binding it.
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("assay"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .args(args)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut served = Self {
            child,
            base: String::new(),
            log,
        };
        let started = std::time::Instant::now();
        loop {
            let address = served.log_lines().into_iter().find_map(|line| {
                (line["message"] == "assay serving HTTP and gRPC")
                    .then(|| line["address"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(address) = address {
                served.base = format!("http://{address}");
                return served;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "server {name} did not start: {}",
                std::fs::read_to_string(&served.log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The log's JSON lines.
    fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn three_instances_share_rate_limits_and_revocations() {
    let Some(url) = redis_url() else { return };
    let prefix = fresh_prefix();
    let dir = Dir::new();
    const RATE: f64 = 40.0;
    const BURST: f64 = 10.0;
    let config = dir.file(
        "assay.toml",
        format!("[tenants.acme]\nrate_limit = {{ per_second = {RATE}, burst = {BURST} }}\n"),
    );
    let store = ["--redis-url", &url, "--redis-prefix", &prefix];
    let create = |tenant: &str| {
        let out = assay()
            .args(["keys", "create", "--tenant", tenant, "--role", "admin"])
            .args(store)
            .assert()
            .success();
        String::from_utf8(out.get_output().stdout.clone())
            .unwrap()
            .trim()
            .to_owned()
    };
    let acme = create("acme");
    let beta = create("beta");
    let config = config.to_str().unwrap();
    let servers: Vec<Served> = (0..3)
        .map(|i| {
            Served::start(
                &dir,
                &format!("s{i}"),
                &[&store[..], &["--config", config]].concat(),
            )
        })
        .collect();
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();

        // acme, limited to RATE/s with a burst of BURST, hammers all three for a while.
        let started = std::time::Instant::now();
        let window = std::time::Duration::from_secs(3);
        let mut tasks = Vec::new();
        for worker in 0..24 {
            let (client, base, key) = (client.clone(), bases[worker % 3].clone(), acme.clone());
            tasks.push(tokio::spawn(async move {
                let (mut admitted, mut limited) = (0u32, 0u32);
                while started.elapsed() < window {
                    let r = client
                        .post(format!("{base}/v1/echo"))
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body("{}")
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        200 => admitted += 1,
                        429 => limited += 1,
                        other => panic!("unexpected {other}"),
                    }
                }
                (admitted, limited)
            }));
        }
        let (mut admitted, mut limited) = (0, 0);
        for t in tasks {
            let (a, l) = t.await.unwrap();
            admitted += a;
            limited += l;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let expected = BURST + RATE * elapsed;
        let ratio = f64::from(admitted) / expected;
        eprintln!(
            "three instances admitted {admitted} of {} in {elapsed:.2} s; the limit allows {expected:.0} (ratio {ratio:.3})",
            admitted + limited
        );
        assert!(limited > admitted, "the test must offer more than the limit");
        assert!((0.9..=1.1).contains(&ratio), "admitted {admitted}, expected about {expected:.0}");

        // A key revoked through one instance is refused by all of them within a second.
        let created: serde_json::Value = client
            .post(format!("{}/v1/keys", bases[0]))
            .bearer_auth(&beta)
            .header("content-type", "application/json")
            .body(r#"{"role":"client"}"#)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (token, id) = (
            created["key"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        );
        let echo = |base: String| {
            let (client, token) = (client.clone(), token.clone());
            async move {
                client
                    .post(format!("{base}/v1/echo"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        for base in &bases {
            assert_eq!(echo(base.clone()).await, 200, "{base}");
        }
        let r = client
            .delete(format!("{}/v1/keys/{id}", bases[0]))
            .bearer_auth(&beta)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let revoked = std::time::Instant::now();
        for base in &bases {
            while echo(base.clone()).await != 401 {
                assert!(
                    revoked.elapsed() < std::time::Duration::from_secs(1),
                    "{base} still accepts a key revoked {:?} ago",
                    revoked.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        eprintln!("revocation effective everywhere after {:?}", revoked.elapsed());
    });

    // The audit trail: who (tenant, key), what, and in which request.
    let beta_id = beta.split('.').nth(2).unwrap();
    let audits: Vec<serde_json::Value> = servers[0]
        .log_lines()
        .into_iter()
        .filter(|l| l["target"] == "assay::audit")
        .collect();
    for action in ["key.create", "key.revoke"] {
        let line = audits
            .iter()
            .find(|l| l["action"] == action)
            .unwrap_or_else(|| panic!("no {action} audit line in {audits:?}"));
        assert_eq!(line["tenant"], "beta", "{line}");
        assert_eq!(line["key_id"], beta_id, "{line}");
        assert_eq!(line["request_id"].as_str().unwrap().len(), 36, "{line}");
    }
}

#[test]
fn registry_admin_against_a_running_server() {
    let dir = Dir::new();
    // The bootstrap: an admin key made on the store before the server opens it.
    let created = assay()
        .args(["keys", "create", "--tenant", "default", "--role", "admin"])
        .arg("--data-dir")
        .arg(dir.0.path())
        .assert()
        .success();
    let key = String::from_utf8(created.get_output().stdout.clone()).unwrap();
    let key = key.trim().to_owned();
    assert!(key.starts_with("ak1.default."), "{key}");
    let server = Served::start(
        &dir,
        "server",
        &["--data-dir", dir.0.path().to_str().unwrap()],
    );
    let url = server.base.clone();
    {
        // Without the key: refused (exit 1, a 401).
        let refused = assay()
            .args(["schema", "list", "--server", &url])
            .assert()
            .code(1);
        let said = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(said.contains("API key"), "{said}");
        registry_admin(&["--server", &url, "--api-key", &key], false);
        // Keys through the server: a client key is created, listed and revoked.
        let created = assay()
            .args(["keys", "create", "--role", "client", "--label", "ci"])
            .args(["--server", &url, "--api-key", &key])
            .assert()
            .success();
        let client_key = String::from_utf8(created.get_output().stdout.clone()).unwrap();
        assert!(client_key.starts_with("ak1.default."), "{client_key}");
        let listed = assay()
            .args(["keys", "list", "--server", &url, "--api-key", &key])
            .assert()
            .success();
        let listed = String::from_utf8(listed.get_output().stdout.clone()).unwrap();
        assert_eq!(listed.lines().count(), 2, "{listed}");
        let id = client_key.trim().split('.').nth(2).unwrap();
        assert!(listed.contains(id), "{listed}");
        assay()
            .args(["keys", "revoke", id, "--server", &url, "--api-key", &key])
            .assert()
            .success();
        // The client key may not manage the registry even before it was revoked; now it is
        // not a key at all.
        assay()
            .args(["schema", "list", "--server", &url])
            .args(["--api-key", client_key.trim()])
            .assert()
            .code(1);
    }
    drop(server);
    // Nothing answering: exit 2.
    assay()
        .args(["schema", "list", "--server", &url])
        .assert()
        .code(2);
}

/// An OTLP/HTTP collector on a free port: it keeps every request body posted to
/// `/v1/traces`.
async fn collector() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
) {
    use axum::routing::post;
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.to_vec());
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, bodies)
}

#[test]
fn serve_exports_request_spans_to_an_opentelemetry_collector() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, bodies) = runtime.block_on(collector());
    let dir = Dir::new();
    let data = dir.0.path().join("data");
    let served = Served::start(
        &dir,
        "otel",
        &[
            "--auth",
            "none",
            "--data-dir",
            data.to_str().unwrap(),
            "--otlp-endpoint",
            &format!("http://{addr}/v1/traces"),
        ],
    );
    runtime.block_on(async {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/schemas", served.base))
            .header("x-request-id", "otel-test-request")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    });
    // SIGTERM: the server drains, exits, and flushes the spans it has not yet sent.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut served = served;
    let exited = served.child.wait().unwrap();
    assert!(exited.success(), "{exited:?}");
    // Open mode says so, loudly, at start.
    let warned = served.log_lines().into_iter().any(|l| {
        l["level"] == "WARN"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("AUTHENTICATION IS OFF"))
    });
    assert!(warned, "{:?}", served.log_lines());
    let started = std::time::Instant::now();
    let spans: Vec<_> = loop {
        let spans: Vec<_> = bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| ExportTraceServiceRequest::decode(b.as_slice()).unwrap())
            .flat_map(|r| r.resource_spans)
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        if !spans.is_empty() || started.elapsed() > std::time::Duration::from_secs(5) {
            break spans;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .unwrap_or_else(|| panic!("no request span among {spans:?}"));
    let attribute = |key: &str| {
        request
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref()?.value.clone())
    };
    assert_eq!(
        attribute("request_id"),
        Some(Any::StringValue("otel-test-request".into()))
    );
    assert_eq!(
        attribute("path"),
        Some(Any::StringValue("/v1/schemas".into()))
    );
}
