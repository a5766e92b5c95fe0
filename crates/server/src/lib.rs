//! assay's engine service: one listener serving HTTP/1.1 (axum) and gRPC over h2c (tonic),
//! over the engine and the registry.
//!
//! Entry points: [`Application::build`] opens the registry, warms its cache, binds the
//! listener (port 0 in tests) and exposes the address; [`Application::run_until`] serves
//! until a shutdown signal, then drains requests in flight. [`router`] builds the whole
//! service without a socket.

pub mod auth;
pub mod client;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod ops;
pub mod state;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use registry::{EmbeddedStore, Keys, RedisStore, Registry, RegistryOptions, Store};
use tokio::net::TcpListener;

pub use config::{Config, RawSettings};
pub use state::AppState;

use crate::auth::Access;
use crate::config::StoreConfig;

/// The tenant every request acts for in open mode (`--auth none`).
pub const TENANT: &str = registry::DEFAULT_TENANT;

/// A built server: registry open and warm, listener bound.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    config: Config,
}

impl Application {
    /// Opens the registry named by `config`, warms its cache, starts following changes and
    /// binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Before anything registers a metric (the rate limiter does, as it is built).
        ops::metrics_handle();
        let store: Arc<dyn Store> = match &config.store {
            StoreConfig::Embedded(dir) => Arc::new(EmbeddedStore::open(dir)?),
            StoreConfig::Redis { url, prefix } => {
                Arc::new(RedisStore::connect(url.expose(), prefix).await?)
            }
        };
        let registry = Arc::new(Registry::new(store.clone(), RegistryOptions::default()));
        let report = registry
            .warm()
            .await
            .context("warming the registry cache")?;
        tracing::info!(
            schemas = report.schemas,
            pipelines = report.pipelines,
            failed = report.failed,
            "registry cache warm"
        );
        tokio::spawn(registry.clone().follow_changes());
        let keys = Arc::new(Keys::new(store));
        let key_count = keys.warm().await.context("loading API keys")?;
        tokio::spawn(keys.clone().follow_changes());
        let access = Access::build(&config, keys, key_count).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let state = AppState::new(registry, access, &config);
        Ok(Self {
            listener,
            state,
            config,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The shared state, for tests.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish (up to the configured grace period) and returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(self.state, &self.config);
        let grace = self.config.shutdown_grace;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        // TCP_NODELAY: an HTTP/2 (gRPC) answer is several small writes (headers, data,
        // trailers), and Nagle's algorithm held the later ones back until the client's delayed
        // ACK, about 40 ms a call.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        let serve =
            axum::serve(listener, app.into_make_service()).with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: draining requests in flight");
                let _ = stopping_tx.send(());
            });
        tokio::select! {
            r = serve => r.context("serving")?,
            () = async {
                let _ = stopping_rx.await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("grace period over; dropping requests still in flight"),
        }
        Ok(())
    }
}

/// Completes on SIGTERM or Ctrl-C: the signals that ask the server to drain and stop.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The whole service: HTTP API, gRPC services and operational endpoints, with the limits.
pub fn router(state: AppState, config: &Config) -> Router {
    let routes = ops::with_deadline(http::routes(state.clone()), config)
        .merge(ops::routes(state.clone()))
        .merge(grpc::routes(state));
    ops::with_layers(routes)
}
