//! Access to `../shared` (the conformance suites and the reference workload).
//!
//! The project builds and runs without it: a test that needs it skips with a loud notice when
//! it is absent, and fails instead when `CI` is set, so CI can never pass by skipping.

use std::path::PathBuf;

/// Returns `../shared/<rel>` from the workspace root, or `None` (after printing a notice)
/// when it is absent outside CI. Panics when it is absent under CI.
pub(crate) fn dir(rel: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    let path = root.join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing and CI is set: conformance tests must not skip",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: {} is absent; set it up beside the project to run this test",
        path.display()
    );
    None
}
