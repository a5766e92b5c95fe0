//! What the tests share: quotas, a metrics recorder per test, and the limiter's log lines.
//! Finding a Redis is `testkit::redis`, which the other suites share too.

use std::collections::HashMap;
use std::io::Write;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use ratelimit::{Quota, Quotas};

/// A cost for `check_n`.
pub(crate) fn n(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a cost is at least 1")
}

/// Quotas with `default` for everyone and `tenants` of their own.
pub(crate) fn quotas(default: Option<(u32, u32)>, tenants: &[(&str, u32, u32)]) -> Quotas {
    let quota = |(per_second, burst)| Quota::new(per_second, burst).unwrap();
    Quotas {
        default: default.map(quota),
        tenants: tenants
            .iter()
            .map(|&(name, per_second, burst)| (name.to_owned(), quota((per_second, burst))))
            .collect(),
    }
}

/// A metrics recorder of the test's own. Limiters register their counters when built, so
/// build them inside [`Meter::recording`].
pub(crate) struct Meter {
    recorder: DebuggingRecorder,
    snapshotter: Snapshotter,
    /// Snapshots reset counters; this keeps the totals.
    totals: Mutex<HashMap<String, u64>>,
}

impl Meter {
    pub(crate) fn new() -> Self {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        Self {
            recorder,
            snapshotter,
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `build` with this meter as the thread's recorder.
    pub(crate) async fn recording<T>(&self, build: impl Future<Output = T>) -> T {
        // The guard is not `Send`; the tests' futures run on the test's thread.
        let _guard = metrics::set_default_local_recorder(&self.recorder);
        build.await
    }

    /// A counter's total, named like `name{label=value,...}` (labels in registration order).
    pub(crate) fn counter(&self, series: &str) -> u64 {
        let mut totals = self.totals.lock().unwrap();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let DebugValue::Counter(n) = value else {
                continue;
            };
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            *totals.entry(name).or_default() += n;
        }
        totals.get(series).copied().unwrap_or(0)
    }

    /// `assay_rate_limit_decisions_total` of one backend and outcome.
    pub(crate) fn decisions(&self, backend: &str, outcome: &str) -> u64 {
        self.counter(&format!(
            "assay_rate_limit_decisions_total{{backend={backend},outcome={outcome}}}"
        ))
    }

    pub(crate) fn backend_errors(&self) -> u64 {
        self.counter("assay_rate_limit_backend_errors_total")
    }
}

/// The log lines written while the guard returned by [`Logs::capture`] lives on this thread.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub(crate) fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || sink.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// The lines of `level` (`WARN`, `INFO`, ...) that come from the rate limiter.
    pub(crate) fn lines(&self, level: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains(level) && l.contains("ratelimit"))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
