//! JSON Schema Test Suite conformance: every case of drafts 4, 6, 7, 2019-09 and 2020-12,
//! optional ones included, run through `engine::Schema` exactly as the service would.
//!
//! Each case is (file, group description, test description). A case either passes or is
//! listed in [`EXPECTED_FAILURES`] with its reason; the test fails on any other failure and
//! also when a listed case passes, so the list can only shrink, never rot. All surprises are
//! collected and reported together.
//!
//! How the suite is configured, following its README:
//! - `remotes/` is served as `http://localhost:1234/<path>` through `SchemaOptions::resources`,
//!   never over a network (the engine cannot fetch anything anyway).
//! - Drafts 4, 6 and 7 are selected explicitly; for 2019-09 and 2020-12 the draft is detected
//!   from `$schema`, as the README recommends (the few schemas without one are the same under
//!   every draft).
//! - `format` is asserted in `optional/` (the README requires it for `optional/format/`, and
//!   the other optional files either do not use `format` or, like `format-assertion.json`,
//!   expect it asserted). In the required files it is not: the 2019-09 and 2020-12
//!   `format.json` tests say "only an annotation by default", and the older drafts' required
//!   format tests only check that non-strings are ignored, which holds either way.

use std::path::{Path, PathBuf};

use engine::{Doc, Draft, Limits, Schema, SchemaOptions, Value};

use crate::shared;

/// The drafts run, by their folder names in the suite.
const DRAFTS: [&str; 5] = ["draft4", "draft6", "draft7", "draft2019-09", "draft2020-12"];

/// Cases known to fail, and why: every test named in `tests` is one case of
/// (`draft`, `file`, `group`). Grouped so that a reason shared by many cases is written once.
struct ExpectedFailures {
    /// Folder name of the draft, e.g. `draft7`.
    draft: &'static str,
    /// Path of the file inside the draft folder, e.g. `optional/format/idn-hostname.json`.
    file: &'static str,
    /// The group's `description`.
    group: &'static str,
    /// The tests' `description`s.
    tests: &'static [&'static str],
    /// One line on why they fail.
    reason: &'static str,
}

/// Every case known to fail, with its reason; a reader should be able to decide from the
/// reason whether the failure still matters. Empty today: with jsonschema's `idna` feature on,
/// every required and optional case of the five drafts passes (the 168 `idn-email` and
/// `idn-hostname` cases failed without it).
const EXPECTED_FAILURES: &[ExpectedFailures] = &[];

/// One case of [`EXPECTED_FAILURES`].
struct ListedCase {
    draft: &'static str,
    file: &'static str,
    group: &'static str,
    test: &'static str,
    reason: &'static str,
}

fn listed_cases() -> Vec<ListedCase> {
    EXPECTED_FAILURES
        .iter()
        .flat_map(|entry| {
            entry.tests.iter().map(|test| ListedCase {
                draft: entry.draft,
                file: entry.file,
                group: entry.group,
                test,
                reason: entry.reason,
            })
        })
        .collect()
}

/// How one case ended.
enum Outcome {
    Passed,
    Failed(String),
}

#[derive(Default)]
struct Tally {
    total: usize,
    passed: usize,
    expected_failures: usize,
    required_total: usize,
    required_passed: usize,
}

#[test]
fn json_schema_test_suite() {
    let Some(root) = shared::dir("suites/json-schema-test-suite") else {
        return;
    };
    let resources = load_remotes(&root.join("remotes"));
    assert!(
        !resources.is_empty(),
        "no remotes found under {}",
        root.display()
    );

    let listed = listed_cases();
    let mut surprises = Vec::new();
    let mut listed_seen = vec![false; listed.len()];
    for draft_dir in DRAFTS {
        let tally = run_draft(
            &root,
            draft_dir,
            &resources,
            &listed,
            &mut listed_seen,
            &mut surprises,
        );
        eprintln!(
            "JSON Schema Test Suite {draft_dir}: {} passed, {} expected failures, {} total \
             (required: {}/{} passed)",
            tally.passed,
            tally.expected_failures,
            tally.total,
            tally.required_passed,
            tally.required_total,
        );
    }
    for (case, seen) in listed.iter().zip(&listed_seen) {
        if !seen {
            surprises.push(format!(
                "listed in EXPECTED_FAILURES but no such case: {} {} / {} / {}",
                case.draft, case.file, case.group, case.test
            ));
        }
    }
    assert!(
        surprises.is_empty(),
        "{} unexpected results in the JSON Schema Test Suite:\n\n{}",
        surprises.len(),
        surprises.join("\n\n")
    );
}

fn run_draft(
    root: &Path,
    draft_dir: &'static str,
    resources: &[(String, Value)],
    listed: &[ListedCase],
    listed_seen: &mut [bool],
    surprises: &mut Vec<String>,
) -> Tally {
    let draft: Draft = draft_dir.parse().expect("suite folder names a draft");
    let draft = match draft {
        Draft::Draft201909 | Draft::Draft202012 => None,
        older => Some(older),
    };
    let options = |validate_formats| SchemaOptions {
        draft,
        validate_formats,
        max_errors: 100,
        resources: resources.to_vec(),
    };
    let required_options = options(false);
    let optional_options = options(true);

    let dir = root.join("tests").join(draft_dir);
    let mut tally = Tally::default();
    for path in json_files(&dir) {
        let file = relative_name(&dir, &path);
        let optional = file.starts_with("optional/");
        let opts = if optional {
            &optional_options
        } else {
            &required_options
        };
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        // Parsed from text, as the service does, so that bignum and float tests see every digit.
        let groups: Vec<Value> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        for group in &groups {
            let group_name = description(group);
            let compiled = Schema::compile(&group["schema"], opts);
            let tests = group["tests"].as_array().expect("a group has tests");
            for test in tests {
                let test_name = description(test);
                let valid = test["valid"].as_bool().expect("a test says if it is valid");
                let outcome = run_case(&compiled, &test["data"], valid);

                tally.total += 1;
                if !optional {
                    tally.required_total += 1;
                }
                let index = listed.iter().position(|case| {
                    case.draft == draft_dir
                        && case.file == file
                        && case.group == group_name
                        && case.test == test_name
                });
                if let Some(index) = index {
                    listed_seen[index] = true;
                }
                match (outcome, index) {
                    (Outcome::Passed, None) => {
                        tally.passed += 1;
                        if !optional {
                            tally.required_passed += 1;
                        }
                    }
                    (Outcome::Failed(_), Some(_)) => tally.expected_failures += 1,
                    (Outcome::Passed, Some(index)) => surprises.push(format!(
                        "UNEXPECTED PASS (remove it from EXPECTED_FAILURES): {draft_dir} {file} / \
                         {group_name} / {test_name}\n  listed because: {}",
                        listed[index].reason
                    )),
                    (Outcome::Failed(why), None) => surprises.push(format!(
                        "FAILED: {draft_dir} {file} / {group_name} / {test_name}\n  {why}\n  \
                         schema: {}\n  data: {}\n  expected valid: {valid}",
                        group["schema"], test["data"]
                    )),
                }
            }
        }
    }
    tally
}

/// Runs one test against its group's compiled schema. Both entry points are checked, since
/// `is_valid` and `validate` take different paths through the validator.
fn run_case(compiled: &Result<Schema, engine::SchemaError>, data: &Value, valid: bool) -> Outcome {
    let schema = match compiled {
        Ok(schema) => schema,
        Err(error) => return Outcome::Failed(format!("the schema did not compile: {error}")),
    };
    let fast = schema.is_valid(data);
    let findings = schema.validate(data);
    if fast != findings.is_empty() {
        return Outcome::Failed(format!(
            "is_valid says {fast} but validate found {findings:?}"
        ));
    }
    // The same document read as a `Doc` must get the same answer and the same findings.
    let text = serde_json::to_string(data).expect("test data serialises");
    let Some(doc) = Doc::parse(&text, &Limits::default()) else {
        return Outcome::Failed(format!("Doc did not read {text}"));
    };
    let doc_fast = schema.is_valid_doc(doc.root());
    let doc_findings = schema.validate_doc(doc.root());
    if (doc_fast, &doc_findings) != (fast, &findings) {
        return Outcome::Failed(format!(
            "as a Value: {fast}, {findings:?}; as a Doc: {doc_fast}, {doc_findings:?}"
        ));
    }
    match (valid, fast) {
        (true, false) => Outcome::Failed(format!("rejected a valid instance: {findings:?}")),
        (false, true) => Outcome::Failed("accepted an invalid instance".to_owned()),
        _ => Outcome::Passed,
    }
}

/// Loads every file under `remotes/` as `http://localhost:1234/<path>`, the URIs the suite's
/// schemas use for them.
fn load_remotes(remotes: &Path) -> Vec<(String, Value)> {
    json_files(remotes)
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
            let uri = format!("http://localhost:1234/{}", relative_name(remotes, &path));
            (uri, value)
        })
        .collect()
}

/// Every `.json` file under `dir`, sorted, so the run and its report are stable.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("listing {}: {e}", current.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `path` relative to `base`, with `/` separators whatever the platform.
fn relative_name(base: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(base).expect("path lies under base");
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn description(node: &Value) -> &str {
    node["description"]
        .as_str()
        .expect("suite entries have a description")
}
