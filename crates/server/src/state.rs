//! What every request handler shares, and the work both fronts (HTTP and gRPC) do: process a
//! document through a registered pipeline, or validate it against a registered schema.
//!
//! CPU work runs only while a permit of the concurrency limit is held: when every permit is
//! taken the request is shed at once (503 / UNAVAILABLE with a retry hint) instead of queueing
//! without bound. A small document is processed (or validated) on the thread that read it,
//! with a transform budget of `INLINE_BUDGET`; a large one, or one whose transform outruns
//! that budget, goes to tokio's blocking pool, so no request holds up the threads that accept
//! connections and read requests for longer than that (validation has no budget of its own;
//! ARCHITECTURE.md says what bounds it). A panic while processing becomes an internal error
//! for that request only.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use engine::{Encoding, Finding, Outcome, Rejection};
use registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Config;
use crate::auth::Access;
use crate::error::ApiError;

/// Documents up to this size are processed on the thread that read them (see [`inline`]);
/// larger ones go to the blocking pool at once.
const INLINE_MAX_BYTES: usize = 64 * 1024;
/// How long an inline transform may run before it is stopped and redone on the blocking pool:
/// the most a request can hold up the other connections served by the same thread.
const INLINE_BUDGET: Duration = Duration::from_millis(2);

/// Shared state of one server. Every request holds a clone: one reference count (the
/// handlers' extractors clone it, several times per request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// The registry (and its compiled cache).
    pub registry: Arc<Registry>,
    /// Authentication, API keys and rate limits.
    pub access: Access,
    permits: Arc<Semaphore>,
    /// One permit per core: CPU work waits for one before it takes a blocking thread, so
    /// that a burst of requests is worked through by as many threads as there are cores
    /// instead of a thread (and an allocator heap) per request.
    cpu: Arc<Semaphore>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// How long an HTTP request may take before it is answered 504.
    pub request_timeout: Duration,
    /// The limits documents validated against a schema are parsed under.
    limits: engine::Limits,
}

/// The result of processing one document.
#[derive(Debug)]
pub enum Processed {
    /// Accepted: the encoded output.
    Accepted {
        /// Encoded bytes.
        output: Vec<u8>,
        /// Their encoding.
        encoding: Encoding,
        /// The pipeline version that ran.
        version: u32,
    },
    /// A schema rejected the document.
    Rejected {
        /// Which schema and why.
        rejection: Rejection,
        /// The pipeline version that ran.
        version: u32,
    },
}

/// The result of validating one document.
#[derive(Debug)]
pub struct Validated {
    /// Every finding (empty: valid), capped by the schema's `max_errors`.
    pub findings: Vec<Finding>,
    /// The schema version used.
    pub version: u32,
}

impl AppState {
    /// State over `registry` and `access` with `config`'s limits: at most `max_in_flight`
    /// documents at once, bodies up to `max_body_bytes`.
    pub fn new(registry: Arc<Registry>, access: Access, config: &Config) -> Self {
        Self(Arc::new(Shared {
            registry,
            access,
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            cpu: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            limits: engine::Limits {
                max_bytes: config.max_body_bytes,
                ..engine::Limits::default()
            },
        }))
    }

    /// A slot for CPU work, or `Overloaded` at once (counted as shed).
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.try_admit().ok_or_else(|| {
            metrics::counter!("assay_requests_shed_total").increment(1);
            ApiError::Overloaded {
                retry_after_secs: 1,
            }
        })
    }

    /// A slot for optional extra CPU work (a batch's second core), if one is free. Not
    /// getting one sheds nothing, so it is not counted.
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Waits for a core to be free for CPU work; the wait is bounded by the admission limit.
    async fn cpu_slot(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.cpu
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal)
    }

    /// Runs a document through the newest version of `tenant`'s pipeline `name`, writing the
    /// result in the encoding `encoding` picks given the pipeline's own (so that the pipeline
    /// is looked up once per request). A `deadline` (the caller's) stops the transform early
    /// when it is sooner than the pipeline's own transform timeout.
    pub async fn process(
        &self,
        tenant: &str,
        name: &str,
        body: Bytes,
        encoding: impl FnOnce(Encoding) -> Encoding,
        deadline: Option<Instant>,
    ) -> Result<Processed, ApiError> {
        let pipeline = match self.registry.cached_pipeline(tenant, name) {
            Some(p) => {
                per_document().pipeline_cache_hits.increment(1);
                p
            }
            None => {
                per_document().pipeline_cache_misses.increment(1);
                self.registry.pipeline(tenant, name).await?
            }
        };
        let encoding = encoding(pipeline.value.encoding());
        let permit = self.admit()?;
        let started = Instant::now();
        let small = body.len() <= INLINE_MAX_BYTES;
        let work = move |until: Option<Instant>| {
            // Most results are about as long as their document: one allocation instead of
            // the doubling from eight bytes up (capped: a large document's result may be small).
            let mut output = Vec::with_capacity(body.len().min(INLINE_MAX_BYTES));
            let outcome =
                pipeline
                    .value
                    .process_until(&body, Some(encoding), until, &mut output)?;
            let version = pipeline.version;
            Ok::<_, engine::PipelineError>(match outcome {
                Outcome::Accepted(()) => Processed::Accepted {
                    output,
                    encoding,
                    version,
                },
                Outcome::Rejected(rejection) => Processed::Rejected { rejection, version },
            })
        };
        let result = match small.then(|| inline(started, &work, deadline)).flatten() {
            Some(done) => done,
            None => {
                let cpu = self.cpu_slot().await?;
                let joined = tokio::task::spawn_blocking(move || {
                    let _cpu = cpu;
                    let _permit = permit;
                    work(deadline)
                })
                .await;
                flatten(joined)?
            }
        };
        let result = match result {
            // Stopped by the caller's deadline rather than the pipeline's own budget: the
            // caller's error, as if the answer had been cut off by the deadline itself.
            Err(e)
                if e.code() == "transform_timeout"
                    && deadline.is_some_and(|at| Instant::now() >= at) =>
            {
                Err(ApiError::DeadlineExceeded)
            }
            other => other,
        };
        per_document()
            .process_seconds
            .record(started.elapsed().as_secs_f64());
        if let Ok(Processed::Rejected { rejection, .. }) = &result {
            metrics::counter!("assay_validation_failures_total", "pipeline" => name.to_owned(), "stage" => rejection.stage.to_string()).increment(1);
        }
        result
    }

    /// Validates a document against the newest version of `tenant`'s schema `name`: a small
    /// one on this thread (like a small document processed inline, it takes microseconds,
    /// less than a trip to the blocking pool), a large one on the blocking pool.
    pub async fn validate(
        &self,
        tenant: &str,
        name: &str,
        body: Bytes,
    ) -> Result<Validated, ApiError> {
        let schema = self.registry.schema(tenant, name).await?;
        let permit = self.admit()?;
        let limits = self.limits.clone();
        let small = body.len() <= INLINE_MAX_BYTES;
        let work = move || {
            let findings = schema
                .value
                .validate_bytes(&body, &limits)
                .map_err(engine::PipelineError::Parse)?;
            Ok::<_, engine::PipelineError>(Validated {
                findings,
                version: schema.version,
            })
        };
        if small {
            let _permit = permit;
            return caught(work)?.map_err(ApiError::from);
        }
        let cpu = self.cpu_slot().await?;
        let result = tokio::task::spawn_blocking(move || {
            let _cpu = cpu;
            let _permit = permit;
            work()
        })
        .await;
        flatten(result)?
    }
}

/// The metrics every processed document updates, looked up once. `counter!` and
/// `histogram!` find the metric in the recorder on each call, hashing its name and labels.
pub(crate) struct PerDocument {
    pipeline_cache_hits: metrics::Counter,
    pipeline_cache_misses: metrics::Counter,
    /// One sample per document, whether alone or a line of a batch.
    pub(crate) process_seconds: metrics::Histogram,
}

pub(crate) fn per_document() -> &'static PerDocument {
    static METRICS: OnceLock<PerDocument> = OnceLock::new();
    METRICS.get_or_init(|| {
        // A handle taken before the recorder is installed would record nowhere.
        crate::ops::metrics_handle();
        PerDocument {
            pipeline_cache_hits: metrics::counter!("assay_cache_hits_total", "kind" => "pipeline"),
            pipeline_cache_misses: metrics::counter!("assay_cache_misses_total", "kind" => "pipeline"),
            process_seconds: metrics::histogram!("assay_process_seconds"),
        }
    })
}

/// Runs `work` on this thread with a short budget: most documents are small and their
/// pipeline takes microseconds, less than handing them to the blocking pool and back costs.
/// `None` if the budget ran out before the transform finished: the run is then repeated on the
/// pool from the start with the caller's deadline (transforms have no side effects).
fn inline<W>(
    started: Instant,
    work: &W,
    deadline: Option<Instant>,
) -> Option<Result<Processed, ApiError>>
where
    W: Fn(Option<Instant>) -> Result<Processed, engine::PipelineError>,
{
    let budget_ends = started + INLINE_BUDGET;
    let until = deadline.map_or(budget_ends, |d| d.min(budget_ends));
    Some(match caught(|| work(Some(until))) {
        Ok(Err(e)) if e.code() == "transform_timeout" && deadline.is_none_or(|d| d > until) => {
            return None;
        }
        Ok(r) => r.map_err(ApiError::from),
        Err(panicked) => Err(panicked),
    })
}

/// Runs `work` on this thread; a panic in it is this request's internal error, logged.
fn caught<T>(work: impl FnOnce() -> T) -> Result<T, ApiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|_| {
        tracing::error!("processing panicked");
        ApiError::Internal
    })
}

/// A panic inside the blocking task is this request's internal error, logged with its cause.
fn flatten<T>(
    joined: Result<Result<T, engine::PipelineError>, tokio::task::JoinError>,
) -> Result<Result<T, ApiError>, ApiError> {
    match joined {
        Ok(r) => Ok(r.map_err(ApiError::from)),
        Err(e) => {
            tracing::error!(error = %e, "processing panicked");
            Err(ApiError::Internal)
        }
    }
}
