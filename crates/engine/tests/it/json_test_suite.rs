//! JSONTestSuite conformance (`test_parsing/`, from ../shared): `parse_document` with default
//! `Limits` must accept every `y_` case, refuse every `n_` case and give every `i_` case (where
//! RFC 8259 leaves the choice to the parser) the outcome chosen in `I_EXPECTED`, the same table
//! as in docs/parsing.md. Nothing may panic. Every case runs and all mismatches are reported
//! together, so one run shows the whole picture.

use std::collections::BTreeSet;
use std::fs;
use std::panic;
use std::path::Path;

use engine::{Doc, Limits, ParseError, Value, parse_document};

use crate::shared;

/// `y_` cases that are valid RFC 8259 JSON but refused by default policy, with the error code
/// expected. Each must still be accepted once the policy is relaxed.
const Y_REFUSED_BY_DEFAULT: &[(&str, &str /* code */)] = &[
    // RFC 8259 says object names SHOULD be unique, and parsers disagree on which duplicate
    // wins; `Limits::allow_duplicate_keys` is off by default.
    ("y_object_duplicated_key.json", "duplicate_key"),
    ("y_object_duplicated_key_and_value.json", "duplicate_key"),
];

/// Every `i_` case, with whether `parse_document` accepts it under default `Limits` and why.
#[rustfmt::skip]
const I_EXPECTED: &[(&str, bool /* accepted */, &str /* reason */)] = &[
    // Numbers keep their literal text, so no number is too big, too small or too precise.
    ("i_number_double_huge_neg_exp.json", true, "numbers keep their text: no underflow"),
    ("i_number_huge_exp.json", true, "numbers keep their text: no overflow"),
    ("i_number_neg_int_huge_exp.json", true, "numbers keep their text: no overflow"),
    ("i_number_pos_double_huge_exp.json", true, "numbers keep their text: no overflow"),
    ("i_number_real_neg_overflow.json", true, "numbers keep their text: no overflow"),
    ("i_number_real_pos_overflow.json", true, "numbers keep their text: no overflow"),
    ("i_number_real_underflow.json", true, "numbers keep their text: no underflow"),
    ("i_number_too_big_neg_int.json", true, "integers are arbitrary precision"),
    ("i_number_too_big_pos_int.json", true, "integers are arbitrary precision"),
    ("i_number_very_big_negative_int.json", true, "integers are arbitrary precision"),
    // A `\u` escape must not leave a lone surrogate: a string must be Unicode text.
    ("i_object_key_lone_2nd_surrogate.json", false, "lone trailing surrogate escape in a key"),
    ("i_string_1st_surrogate_but_2nd_missing.json", false, "lone leading surrogate escape"),
    ("i_string_1st_valid_surrogate_2nd_invalid.json", false, "leading surrogate escape followed by a non-surrogate"),
    ("i_string_incomplete_surrogate_and_escape_valid.json", false, "lone leading surrogate escape"),
    ("i_string_incomplete_surrogate_pair.json", false, "lone trailing surrogate escape"),
    ("i_string_incomplete_surrogates_escape_valid.json", false, "two leading surrogate escapes"),
    ("i_string_invalid_lonely_surrogate.json", false, "lone leading surrogate escape"),
    ("i_string_invalid_surrogate.json", false, "lone leading surrogate escape"),
    ("i_string_inverted_surrogates_U+1D11E.json", false, "trailing surrogate escape before its leading one"),
    ("i_string_lone_second_surrogate.json", false, "lone trailing surrogate escape"),
    // The document must be UTF-8 (RFC 8259 section 8.1), checked over the whole input.
    ("i_string_UTF-16LE_with_BOM.json", false, "UTF-16, not UTF-8"),
    ("i_string_UTF-8_invalid_sequence.json", false, "invalid UTF-8"),
    ("i_string_UTF8_surrogate_U+D800.json", false, "an encoded surrogate is not UTF-8"),
    ("i_string_invalid_utf-8.json", false, "invalid UTF-8"),
    ("i_string_iso_latin_1.json", false, "Latin-1, not UTF-8"),
    ("i_string_lone_utf8_continuation_byte.json", false, "invalid UTF-8"),
    ("i_string_not_in_unicode_range.json", false, "a code point above U+10FFFF is not UTF-8"),
    ("i_string_overlong_sequence_2_bytes.json", false, "an overlong encoding is not UTF-8"),
    ("i_string_overlong_sequence_6_bytes.json", false, "an overlong encoding is not UTF-8"),
    ("i_string_overlong_sequence_6_bytes_null.json", false, "an overlong encoding is not UTF-8"),
    ("i_string_truncated-utf-8.json", false, "invalid UTF-8"),
    ("i_string_utf16BE_no_BOM.json", false, "UTF-16, not UTF-8"),
    ("i_string_utf16LE_no_BOM.json", false, "UTF-16, not UTF-8"),
    // Structure.
    ("i_structure_500_nested_arrays.json", false, "deeper than the depth limit"),
    ("i_structure_UTF-8_BOM_empty_object.json", false, "a byte order mark is refused"),
];

#[test]
fn json_test_suite_parsing_cases_meet_their_expectations() {
    let Some(dir) = shared::dir("suites/json-test-suite/test_parsing") else {
        return;
    };
    let names = case_names(&dir);

    let limits = Limits::default();
    let relaxed = Limits {
        allow_duplicate_keys: true,
        ..Limits::default()
    };
    let mut failures = Vec::new();
    let mut counts = [0usize; 3];
    for name in &names {
        let bytes = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        let outcome = match run(&bytes, &limits) {
            Ok(outcome) => outcome,
            Err(panic) => {
                failures.push(format!("{name}: panicked: {panic}"));
                continue;
            }
        };
        let expected = if name.starts_with("y_") {
            counts[0] += 1;
            match Y_REFUSED_BY_DEFAULT.iter().find(|(file, _)| file == name) {
                Some((_, code)) => {
                    if !matches!(run(&bytes, &relaxed), Ok(Ok(_))) {
                        failures.push(format!("{name}: refused even with duplicate keys allowed"));
                    }
                    Err(*code)
                }
                None => Ok(()),
            }
        } else if name.starts_with("n_") {
            counts[1] += 1;
            Err("any refusal")
        } else if name.starts_with("i_") {
            counts[2] += 1;
            match I_EXPECTED.iter().find(|(file, ..)| file == name) {
                Some((_, true, _)) => Ok(()),
                Some((_, false, _)) => Err("any refusal"),
                None => {
                    failures.push(format!(
                        "{name}: missing from I_EXPECTED, got {}",
                        describe(&outcome)
                    ));
                    continue;
                }
            }
        } else {
            failures.push(format!("{name}: not a y_, n_ or i_ case"));
            continue;
        };
        let met = match (&expected, &outcome) {
            (Ok(()), Ok(_)) => true,
            (Err("any refusal"), Err(_)) => true,
            (Err(code), Err(error)) => error.code() == *code,
            _ => false,
        };
        if !met {
            let wanted = match expected {
                Ok(()) => "acceptance".to_owned(),
                Err(code) => format!("refusal ({code})"),
            };
            failures.push(format!(
                "{name}: expected {wanted}, got {}",
                describe(&outcome)
            ));
        }
    }

    let listed: BTreeSet<&str> = Y_REFUSED_BY_DEFAULT
        .iter()
        .map(|(file, _)| *file)
        .chain(I_EXPECTED.iter().map(|(file, ..)| *file))
        .collect();
    for stale in listed
        .iter()
        .filter(|file| !names.iter().any(|name| name == *file))
    {
        failures.push(format!("{stale}: listed here but not in the suite"));
    }
    // An empty or truncated copy of the suite must not pass by running nothing.
    if counts.contains(&0) {
        failures.push(format!(
            "found {counts:?} y_/n_/i_ cases: the suite looks incomplete"
        ));
    }

    assert!(
        failures.is_empty(),
        "{} of {} JSONTestSuite cases failed:\n  {}",
        failures.len(),
        names.len(),
        failures.join("\n  ")
    );
}

/// `Doc`, the engine's own document type, must read every case as `parse_document` does:
/// the same documents accepted, as the same values (member order and number spelling
/// included), under the default limits and under a small depth limit.
#[test]
fn doc_reads_every_case_as_parse_document_does() {
    let Some(dir) = shared::dir("suites/json-test-suite/test_parsing") else {
        return;
    };
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let names = case_names(&dir);
    let mut failures = Vec::new();
    for name in &names {
        let bytes = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        for limits in [&Limits::default(), &shallow] {
            let compact = |value: Value| serde_json::to_string(&value).expect("serialises");
            let reference = parse_document(&bytes, limits).ok().map(compact);
            let doc =
                panic::catch_unwind(|| Doc::parse_bytes(&bytes, limits).map(|d| d.to_value()));
            match doc {
                Ok(doc) if doc.clone().map(compact) == reference => {}
                Ok(doc) => failures.push(format!(
                    "{name} (max_depth {}): parse_document {reference:?}, Doc {:?}",
                    limits.max_depth,
                    doc.map(compact)
                )),
                Err(_) => failures.push(format!("{name}: Doc panicked")),
            }
        }
    }
    assert!(
        names.len() > 300,
        "only {} cases in {}",
        names.len(),
        dir.display()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn json_test_suite_numbers_keep_their_spelling() {
    let Some(dir) = shared::dir("suites/json-test-suite/test_parsing") else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    // These cases hold only numbers, brackets and insignificant spaces, so the compact
    // serialisation must be the input without its spaces.
    for name in case_names(&dir)
        .iter()
        .filter(|name| name.starts_with("y_number") || name.starts_with("i_number"))
    {
        let bytes = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
        let expected: String = String::from_utf8_lossy(&bytes)
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        checked += 1;
        match run(&bytes, &Limits::default()) {
            Ok(Ok(value)) => match serde_json::to_string(&value) {
                Ok(text) if text == expected => {}
                Ok(text) => failures.push(format!("{name}: {expected} came back as {text}")),
                Err(e) => failures.push(format!("{name}: cannot serialise: {e}")),
            },
            Ok(Err(error)) => failures.push(format!("{name}: refused: {error}")),
            Err(panic) => failures.push(format!("{name}: panicked: {panic}")),
        }
    }
    assert!(checked > 0, "no number cases found in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {checked} number cases changed:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The suite's case file names, sorted.
fn case_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            entry.file_name().to_string_lossy().into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// Parses one case, turning a panic into its message so that one crash does not hide the
/// remaining cases.
fn run(bytes: &[u8], limits: &Limits) -> Result<Result<Value, ParseError>, String> {
    panic::catch_unwind(|| parse_document(bytes, limits)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned())
    })
}

fn describe(outcome: &Result<Value, ParseError>) -> String {
    match outcome {
        Ok(_) => "acceptance".to_owned(),
        Err(error) => format!("refusal ({}: {error})", error.code()),
    }
}
