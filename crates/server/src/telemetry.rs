//! Logging and tracing setup in one place: structured `tracing` events, pretty for people or
//! one JSON object per line for machines, filtered by `RUST_LOG` (default `info`); and, when
//! an OTLP endpoint is configured (and the `otel` feature is built in), every span (one per
//! request, with its request id, method and path) exported to an OpenTelemetry collector over
//! OTLP/HTTP. Tests do not call it, so they stay quiet.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Keeps the exporter alive; dropping it sends the spans not yet exported and stops it.
/// Drop it outside any async runtime (the exporter's client blocks).
#[must_use = "dropping it at once stops the export"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("assay: could not export the last spans: {e}");
        }
    }
}

/// Installs the global subscriber (a second call installs nothing), exporting spans to
/// `otlp_endpoint` (an OTLP/HTTP traces URL such as `http://127.0.0.1:4318/v1/traces`) when
/// given. Call it before starting an async runtime.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Pretty => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let telemetry = Telemetry {
        #[cfg(feature = "otel")]
        provider: otlp_endpoint.map(otel::provider).transpose()?,
    };
    #[cfg(not(feature = "otel"))]
    if otlp_endpoint.is_some() {
        anyhow::bail!("this build has no OpenTelemetry export (built without the `otel` feature)");
    }
    #[cfg(feature = "otel")]
    let otel = telemetry.provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("assay"))
    });
    #[cfg(not(feature = "otel"))]
    let otel: Option<tracing_subscriber::layer::Identity> = None;
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(filter)
        .try_init();
    Ok(telemetry)
}

#[cfg(feature = "otel")]
mod otel {
    use std::time::Duration;

    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    /// How long one batch may take to send (OTLP's default timeout).
    const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
    /// The most of a collector's answer that is read.
    const MAX_ANSWER_BYTES: usize = 1 << 20;

    /// A tracer provider sending batches of spans to `endpoint` as OTLP/HTTP protobuf.
    pub(super) fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_http_client(Exporting::new()?)
            .build()?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("assay").build())
            .build())
    }

    /// Sends span batches with [`crate::client`]. The batch processor calls it from a thread
    /// of its own, outside the server's runtime (and last while the process stops, after
    /// that runtime has ended), so the client has a small runtime of its own to do it on.
    #[derive(Debug)]
    struct Exporting {
        runtime: tokio::runtime::Runtime,
    }

    impl Exporting {
        fn new() -> anyhow::Result<Self> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(Self { runtime })
        }
    }

    #[async_trait::async_trait]
    impl HttpClient for Exporting {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let sent = self.runtime.block_on(crate::client::send(
                request,
                EXPORT_TIMEOUT,
                MAX_ANSWER_BYTES,
            ));
            Ok(sent?)
        }
    }
}
