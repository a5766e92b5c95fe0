//! A real Redis for integration tests: test support only, never used by a shipped crate.
//!
//! Redis is found at `REDIS_URL` (default `redis://127.0.0.1:6379`). When nothing answers
//! there, a private `redis-server` is started on a free port for this test process; when
//! there is no `redis-server` either, the tests say so loudly and pass without running,
//! except under `CI`, where they fail. Each test works under its own key prefix
//! ([`unique_prefix`]), so tests run in parallel. A test that stops or restarts Redis runs
//! its own [`RedisServer`], so that it disturbs nobody.
//!
//! Every function that may speak to the person running the tests takes a `label` naming the
//! suite (for example `"registry Redis tests"`), which starts each loud message.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The arguments of a server that keeps nothing on disk, as the private shared one does.
pub const NOTHING_ON_DISK: &[&str] = &["--save", "", "--appendonly", "no"];

/// The Redis the tests share, once found (or started) for the whole test process.
static SHARED: OnceCell<Option<String>> = OnceCell::const_new();

/// The shared Redis's URL, or `None` when the test should be skipped. `label` names the suite
/// in the messages of the first call, which finds (or starts) the Redis for the process.
pub async fn redis_url(label: &str) -> Option<String> {
    SHARED.get_or_init(|| find_redis(label)).await.clone()
}

async fn find_redis(label: &str) -> Option<String> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    if answers(&url).await {
        return Some(url);
    }
    if let Some(server) = RedisServer::start(free_port(), NOTHING_ON_DISK)
        && server.wait_ready().await
    {
        let private = server.url();
        loud(
            label,
            &format!(
                "no Redis answers at {url}; the Redis tests use a private redis-server at {private}"
            ),
        );
        // Kept for the whole process: the wrapper stops the server when the process exits
        // and its stdin closes, however the process ends.
        std::mem::forget(server);
        return Some(private);
    }
    skip_or_fail(
        label,
        &format!("no Redis answers at {url} (set REDIS_URL) and no redis-server could be started"),
    );
    None
}

/// Whether `redis-server` can be run, for the tests that need a private one; when it cannot,
/// `test` is skipped loudly (or fails under `CI`).
pub fn have_redis_server(label: &str, test: &str) -> bool {
    let ok = redis_server_runs();
    if !ok {
        skip_or_fail(label, &format!("{test} needs redis-server on PATH"));
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
pub fn loud(label: &str, message: &str) {
    let _ = writeln!(std::io::stderr(), "\n*** {label}: {message} ***\n");
}

/// Says loudly that a test is skipped and why; under `CI`, fails it instead, since CI never
/// skips the Redis tests.
pub fn skip_or_fail(label: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI never skips the Redis tests");
    }
    loud(label, &format!("SKIPPED: {why}"));
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

/// A port nothing listens on.
pub fn free_port() -> u16 {
    // Racy in principle (the port is free when asked, not necessarily when used), which is
    // fine for tests.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A key prefix no other test (in this process or another) uses, with no trailing separator.
pub fn unique_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "assay-test:{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private `redis-server`, run through a small shell wrapper that stops it (SIGTERM, so
/// that an append-only file is complete) when the wrapper's stdin closes: on [`stop`], on
/// drop, or when the test process dies.
///
/// [`stop`]: RedisServer::stop
pub struct RedisServer {
    port: u16,
    args: Vec<String>,
    wrapper: Option<(Child, ChildStdin)>,
}

impl RedisServer {
    /// Starts `redis-server` on `port` with `extra_args` (for example [`NOTHING_ON_DISK`]);
    /// `None` when it cannot be run.
    pub fn start(port: u16, extra_args: &[&str]) -> Option<Self> {
        if !redis_server_runs() {
            return None;
        }
        let mut server = Self {
            port,
            args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            wrapper: None,
        };
        server.restart().then_some(server)
    }

    /// Starts the server again with the same port and arguments.
    pub fn restart(&mut self) -> bool {
        assert!(self.wrapper.is_none(), "the server is running");
        let script = r#"redis-server "$@" & pid=$!; read _ignored; kill -TERM "$pid"; wait "$pid""#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--loglevel", "warning"])
            .args(&self.args)
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
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.wrapper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Whether the server answers within 5 s.
    pub async fn wait_ready(&self) -> bool {
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
