//! What the tests share: quotas, a metrics recorder per test, and finding a Redis.
//!
//! Redis is found at `REDIS_URL` (default `redis://127.0.0.1:6379`). When nothing answers
//! there, a private `redis-server` is started on a free port for this test process; when
//! there is no `redis-server` either, the tests say so loudly and pass without running,
//! except under `CI`, where they fail. Each test uses its own key prefix, so tests run in
//! parallel; the limiter's keys expire by themselves once a bucket is full again (seconds
//! here), so nothing is left behind to clean.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use ratelimit::{Quota, Quotas};
use tokio::sync::OnceCell;

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

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The Redis the tests share, once found (or started) for the whole test process.
static SHARED: OnceCell<Option<String>> = OnceCell::const_new();

/// The shared Redis's URL, or `None` when the test should be skipped.
pub(crate) async fn redis_url() -> Option<String> {
    SHARED.get_or_init(find_redis).await.clone()
}

async fn find_redis() -> Option<String> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    if answers(&url).await {
        return Some(url);
    }
    if let Some(server) = RedisServer::start(free_port())
        && server.wait_ready().await
    {
        let private = server.url();
        loud(&format!(
            "no Redis answers at {url}; the Redis tests use a private redis-server at {private}"
        ));
        // Kept for the whole process: the wrapper stops the server when the process exits
        // and its stdin closes, however the process ends.
        std::mem::forget(server);
        return Some(private);
    }
    skip_or_fail(&format!(
        "no Redis answers at {url} (set REDIS_URL) and no redis-server could be started"
    ));
    None
}

/// Whether `redis-server` can be run, for the tests that need a private one.
pub(crate) fn have_redis_server(test: &str) -> bool {
    let ok = redis_server_runs();
    if !ok {
        skip_or_fail(&format!("{test} needs redis-server on PATH"));
    }
    ok
}

fn redis_server_runs() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Test output is captured unless a test fails; a skipped test must be seen anyway, so this
/// writes to stderr directly rather than through `eprintln!`.
fn loud(message: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** ratelimit Redis tests: {message} ***\n"
    );
}

fn skip_or_fail(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI never skips the Redis tests");
    }
    loud(&format!("SKIPPED: {why}"));
}

async fn answers(url: &str) -> bool {
    let ping = async {
        let client = ::redis::Client::open(url)?;
        let mut con = client.get_multiplexed_async_connection().await?;
        ::redis::cmd("PING").query_async::<String>(&mut con).await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), ping).await,
        Ok(Ok(_))
    )
}

/// A port nothing listens on (racy in principle, which is fine for tests).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key prefix no other test (in this process or another) uses.
pub(crate) fn unique_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "assay-test:{}-{nanos}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private `redis-server` that keeps nothing on disk, run through a small shell wrapper
/// that stops it when the wrapper's stdin closes: on [`stop`], on drop, or when the test
/// process dies.
///
/// [`stop`]: RedisServer::stop
pub(crate) struct RedisServer {
    port: u16,
    wrapper: Option<(Child, ChildStdin)>,
}

impl RedisServer {
    /// Starts `redis-server` on `port`; `None` when it cannot be run.
    pub(crate) fn start(port: u16) -> Option<Self> {
        if !redis_server_runs() {
            return None;
        }
        let mut server = Self {
            port,
            wrapper: None,
        };
        server.restart().then_some(server)
    }

    /// Starts the server again on the same port.
    pub(crate) fn restart(&mut self) -> bool {
        assert!(self.wrapper.is_none(), "the server is running");
        let script = r#"redis-server "$@" & pid=$!; read _ignored; kill -TERM "$pid"; wait "$pid""#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn();
        match child {
            Ok(mut child) => {
                let stdin = child.stdin.take().expect("piped stdin");
                self.wrapper = Some((child, stdin));
                true
            }
            Err(_) => false,
        }
    }

    /// Stops the server and waits until it has exited.
    pub(crate) fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.wrapper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the server answers within 5 s.
    pub(crate) async fn wait_ready(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if answers(&self.url()).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
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
