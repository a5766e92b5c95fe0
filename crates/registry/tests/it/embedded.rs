//! The embedded (redb) store: the shared suite, and crash safety.

use std::sync::Arc;

use registry::{EmbeddedStore, Store};

/// A fresh store in a temporary directory that lives as long as the test process.
pub(crate) fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(EmbeddedStore::open(&dir).unwrap())
}

/// Two instances on one embedded store: redb allows one process per file, so instances
/// share the store itself.
fn fresh_pair() -> (Arc<dyn Store>, Arc<dyn Store>) {
    let store = fresh();
    (store.clone(), store)
}

mod suite {
    store_suite!(super::fresh(), super::fresh_pair());
}

/// Environment variable that turns this test binary into the writer of the crash test.
const WRITER_DIR: &str = "ASSAY_CRASH_WRITER_DIR";

fn body(version: u32) -> String {
    format!(r#"{{"type":"object","maxProperties":{version}}}"#)
}

/// The child side of the crash test: registers versions as fast as it can and reports each
/// committed one on stdout, until it is killed. Does nothing in a normal test run.
#[tokio::test]
async fn crash_writer_child() {
    let Some(dir) = std::env::var_os(WRITER_DIR) else {
        return;
    };
    use std::io::Write;
    let store = EmbeddedStore::open(std::path::Path::new(&dir)).unwrap();
    let start = store
        .get(registry::Kind::Schema, "t", "s", None)
        .await
        .unwrap()
        .map_or(0, |r| r.version);
    for v in start + 1.. {
        let got = store
            .put(registry::Kind::Schema, "t", "s", &body(v), &[])
            .await
            .unwrap();
        assert_eq!(got.version(), v);
        println!("committed {v}");
        std::io::stdout().flush().unwrap();
    }
}

/// kill -9 a writer mid-stream, three times, and reopen: every version it reported as
/// committed is there, intact, numbered without gaps, and the store takes new writes.
#[tokio::test]
async fn killed_writer_loses_at_most_the_write_in_flight() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let mut reported = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "embedded::crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = reported + 20 + round * 7;
        while reported < target {
            let line = lines.next().expect("writer stopped early").unwrap();
            if let Some(v) = line.strip_prefix("committed ") {
                reported = v.parse().unwrap();
            }
        }
        child.kill().unwrap(); // SIGKILL: no destructor, no flush, mid-transaction or not.
        child.wait().unwrap();

        let store = EmbeddedStore::open(dir.path()).unwrap();
        let latest = store
            .get(registry::Kind::Schema, "t", "s", None)
            .await
            .unwrap()
            .unwrap()
            .version;
        // Reported means committed; at most one more may have committed before the kill.
        assert!(
            latest >= reported,
            "lost committed versions: {latest} < {reported}"
        );
        for v in 1..=latest {
            let rec = store
                .get(registry::Kind::Schema, "t", "s", Some(v))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("version {v} of {latest} is missing"));
            assert_eq!(rec.body, body(v));
        }
        assert_eq!(store.snapshot().await.unwrap().len(), 1);
        reported = latest;
    }
}
