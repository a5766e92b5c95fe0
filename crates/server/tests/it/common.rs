//! What every integration test needs: a real server on a free port with its own store, and
//! the repository's example files.

use std::net::SocketAddr;
use std::path::PathBuf;

use server::{AppState, Application, RawSettings};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server. Dropping it asks the server to stop; [`ServerHandle::stop`] also waits.
pub(crate) struct ServerHandle {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    // Kept until the server is gone: it holds the embedded store.
    _data_dir: TempDir,
}

impl ServerHandle {
    /// Stops the server and waits for it, failing the test if it ended with an error.
    #[allow(dead_code)]
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the server task panicked")
                .expect("the server failed");
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Builds and starts a server with `settings`, listening on `127.0.0.1:0` with a fresh
/// embedded store and authentication off unless `settings` says otherwise.
pub(crate) async fn spawn_server(settings: RawSettings) -> (SocketAddr, ServerHandle) {
    let (addr, handle, _) = spawn_server_with_state(settings).await;
    (addr, handle)
}

/// [`spawn_server`], with the server's state (to create API keys, say).
pub(crate) async fn spawn_server_with_state(
    settings: RawSettings,
) -> (SocketAddr, ServerHandle, AppState) {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let defaults = RawSettings {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.path().to_owned()),
        auth: Some("none".into()),
        ..RawSettings::default()
    };
    let config = defaults
        .overlaid_by(settings)
        .validate()
        .expect("valid test settings");
    let app = Application::build(config).await.expect("the server builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let handle = ServerHandle {
        shutdown: Some(tx),
        task: Some(task),
        _data_dir: data_dir,
    };
    (addr, handle, state)
}

/// A file of the repository, by its path from the repository's root.
/// The server's Prometheus exposition (`GET /metrics`, which needs no key).
pub(crate) async fn metrics(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(crate) fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// The contents of a file of the repository.
pub(crate) fn read_repo_file(path: &str) -> Vec<u8> {
    let p = repo_file(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}
