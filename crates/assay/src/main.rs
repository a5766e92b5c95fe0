//! The `assay` binary: parses the command line, wires the library together and turns the
//! outcome into an exit status. Everything else lives in the `assay` library and the engine.

mod cli;

// jaq evaluates jq as boxed iterators and allocates about a thousand times per trade; mimalloc
// cuts the transform's time by about a third against glibc's allocator (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{self, BufWriter, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use assay::input::{Framing, Input};
use assay::stream::{Processor, Settings, Tally, process_all};
use assay::transform::{Outputs, Transformation};
use assay::validate::Validation;
use assay::{load, run, validate};
use clap::{CommandFactory, Parser};
use engine::{Limits, SchemaOptions, Value};

use crate::cli::{
    AdminAction, AdminArgs, Cli, Command, InputArgs, KeysAction, KeysArgs, LimitArgs, ReadingArgs,
    RunArgs, ServeArgs, TransformArgs, ValidateArgs,
};

/// Some documents did not pass (invalid, rejected, unparsable).
const FAILED: u8 = 1;
/// The command could not do its work: bad setup or I/O. clap uses it for usage errors too.
const TROUBLE: u8 = 2;
/// `transform` only: a document failed, as jq reports errors.
const JQ_FAILED: u8 = 5;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("assay: {e:#}");
            ExitCode::from(TROUBLE)
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Validate(args) => validate(args),
        Command::Transform(args) => transform(args),
        Command::Run(args) => run(args),
        Command::Serve(args) => serve(args),
        Command::Schema(args) => admin(registry::Kind::Schema, args),
        Command::Pipeline(args) => admin(registry::Kind::Pipeline, args),
        Command::Keys(args) => keys(args),
    }
}

fn serve(args: ServeArgs) -> Result<ExitCode> {
    let file = match &args.config {
        Some(path) => server::RawSettings::from_file(path)?,
        None => server::RawSettings::default(),
    };
    let given = server::RawSettings {
        listen: args.listen,
        data_dir: args.data_dir,
        redis_url: args.redis_url,
        redis_prefix: args.redis_prefix,
        max_in_flight: args.max_in_flight,
        max_body_bytes: args.max_body_bytes,
        request_timeout_ms: args.request_timeout_ms,
        shutdown_grace_ms: args.shutdown_grace_ms,
        log_format: args.log_format,
        otlp_endpoint: args.otlp_endpoint,
        auth: args.auth,
        gateway_secret: args.gateway_secret.map(server::config::Secret::new),
        rate_limit_backend: args.rate_limit_backend,
        rate_limit_redis_url: args.rate_limit_redis_url.map(server::config::Secret::new),
        rate_limit_on_redis_error: args.rate_limit_on_redis_error,
        rate_limit_per_second: args.rate_limit_per_second,
        rate_limit_burst: args.rate_limit_burst,
        // Per-tenant settings come from the file only.
        tenants: None,
    };
    let config = file.overlaid_by(given).validate()?;
    // Dropped last, after the runtime: it flushes the spans not yet exported.
    let _telemetry = server::telemetry::init(config.log_format, config.otlp_endpoint.as_deref())?;
    // CPU work runs on tokio's blocking pool, one task per core at a time (`AppState`), plus
    // the store's short blocking calls. Left at tokio's default (512), the pool starts a new
    // thread whenever the others are busy for a moment, and each keeps an allocator heap; a
    // few more than the cores bound both.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // A task woken by the running task normally runs next (the "LIFO slot"). For an HTTP/2
    // connection that is the connection task, woken by each stream's answer: it wrote every
    // answer out as soon as it was ready, two writes per gRPC call, each waking the client.
    // Without the slot the connection task runs after the other ready streams and writes their
    // answers together: gRPC Echo 36k -> 50k and Process 18k -> 30k calls/s on one core
    // (docs/benchmarks.md). The switch is a tokio unstable API (.cargo/config.toml).
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    let runtime = builder
        .enable_all()
        .max_blocking_threads(cores + 2)
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = server::Application::build(config).await?;
        tracing::info!(address = %app.local_addr(), "assay serving HTTP and gRPC");
        app.run_until(server::shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn print_lines(lines: Vec<String>) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn admin(kind: registry::Kind, args: AdminArgs) -> Result<ExitCode> {
    use assay::admin::{Location, Operation, execute, open};
    let op = match args.action {
        AdminAction::Put {
            name,
            file,
            transform_file,
        } => {
            // Schemas go to the registry as sent, byte for byte; pipeline definitions may be
            // YAML and take a program file, so they are read as a description first.
            let mut body = load::read(&file)?;
            if kind == registry::Kind::Pipeline {
                let mut doc = load::description(&file)?;
                if let Some(program) = transform_file {
                    let code = load::read_text(&program)?;
                    doc.as_object_mut()
                        .context("a pipeline definition must be an object")?
                        .insert("transform".into(), Value::String(code));
                }
                body = doc.to_string().into_bytes();
            }
            Operation::Put { name, body }
        }
        AdminAction::Get { name, version } => Operation::Get { name, version },
        AdminAction::List => Operation::List,
        AdminAction::Delete { name } => Operation::Delete { name },
    };
    if let Some(server) = &args.store.server {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        return Ok(
            match runtime.block_on(assay::remote::execute(
                server,
                args.store.api_key.as_deref(),
                kind,
                op,
            )) {
                Ok(lines) => print_lines(lines)?,
                Err(e) => {
                    eprintln!("assay: {e}");
                    ExitCode::from(if e.is_refusal() { FAILED } else { TROUBLE })
                }
            },
        );
    }
    let location = match &args.store.redis_url {
        Some(url) => Location::Redis {
            url,
            prefix: &args.store.redis_prefix,
        },
        None => Location::DataDir(&args.store.data_dir),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let store = open(&location).await?;
        execute(store, kind, &args.store.tenant, op).await
    });
    match result {
        Ok(lines) => print_lines(lines),
        Err(e) => {
            eprintln!("assay: {e}");
            Ok(ExitCode::from(match e {
                registry::RegistryError::Unavailable(_) | registry::RegistryError::Corrupt(_) => {
                    TROUBLE
                }
                _ => FAILED,
            }))
        }
    }
}

fn keys(args: KeysArgs) -> Result<ExitCode> {
    use assay::admin::{KeyOperation, Location, open};
    let op = match args.action {
        KeysAction::Create {
            role,
            expires_in,
            label,
        } => KeyOperation::Create {
            role,
            expires_in: expires_in.map(Into::into),
            label,
        },
        KeysAction::List => KeyOperation::List,
        KeysAction::Revoke { id } => KeyOperation::Revoke { id },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = match &args.store.server {
        Some(server) => runtime
            .block_on(assay::remote::keys(
                server,
                args.store.api_key.as_deref(),
                op,
            ))
            .map_err(|e| (e.is_refusal(), e.to_string())),
        None => {
            let location = match &args.store.redis_url {
                Some(url) => Location::Redis {
                    url,
                    prefix: &args.store.redis_prefix,
                },
                None => Location::DataDir(&args.store.data_dir),
            };
            runtime
                .block_on(async {
                    let store = open(&location)
                        .await
                        .map_err(|e| registry::KeyError::Unavailable(e.to_string()))?;
                    assay::admin::keys(store, &args.store.tenant, op).await
                })
                .map_err(|e| {
                    let refused = matches!(
                        e,
                        registry::KeyError::Invalid(_) | registry::KeyError::NotFound(_)
                    );
                    (refused, e.to_string())
                })
        }
    };
    match result {
        Ok(printed) => {
            if let Some(note) = printed.note {
                eprintln!("{note}");
            }
            print_lines(printed.lines)
        }
        Err((refused, message)) => {
            eprintln!("assay: {message}");
            Ok(ExitCode::from(if refused { FAILED } else { TROUBLE }))
        }
    }
}

fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let options = SchemaOptions {
        draft: args.draft,
        validate_formats: !args.no_formats,
        max_errors: args.max_errors.get(),
        ..SchemaOptions::default()
    };
    let schema = load::schema(&args.schema, &options)?;
    let processor = Validation::new(schema, limits(&args.limits));
    let summary = args
        .summary
        .then_some(validate::summary as fn(&Tally) -> Value);
    let tally = stream(args.input, &processor, summary)?;
    Ok(status(tally, FAILED))
}

fn transform(args: TransformArgs) -> Result<ExitCode> {
    let mut files = args.input.files;
    let (code, origin) = match (args.from_file, args.program) {
        (Some(path), first) => {
            // As in jq, with -f every positional argument is an input.
            files.splice(0..0, first.map(PathBuf::from));
            (load::read_text(&path)?, Some(path))
        }
        (None, Some(program)) => (program, None),
        (None, None) => Cli::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "a jq PROGRAM or -f PROGRAM_FILE is required",
            )
            .exit(),
    };
    let outputs = match (args.one, args.collect) {
        (true, _) => Outputs::One,
        (_, true) => Outputs::Collect,
        _ => Outputs::Each,
    };
    let limits = Limits {
        transform_timeout: Duration::from_millis(args.timeout_ms),
        ..limits(&args.limits)
    };
    let processor = Transformation::new(&code, outputs, limits);
    let processor = match origin {
        Some(path) => processor.with_context(|| path.display().to_string())?,
        None => processor?,
    };
    let input = InputArgs {
        files,
        reading: args.input.reading,
    };
    let tally = stream(input, &processor, None)?;
    Ok(status(tally, JQ_FAILED))
}

fn run(args: RunArgs) -> Result<ExitCode> {
    let pipeline = run::load_pipeline(&args.pipeline)?;
    let processor = run::Run::new(pipeline, args.output);
    let summary = args.summary.then_some(run::summary as fn(&Tally) -> Value);
    let tally = stream(args.input, &processor, summary)?;
    Ok(status(tally, FAILED))
}

fn limits(args: &LimitArgs) -> Limits {
    let default = Limits::default();
    Limits {
        max_bytes: args.max_bytes.unwrap_or(default.max_bytes),
        max_depth: args.max_depth.map_or(default.max_depth, NonZeroUsize::get),
        ..default
    }
}

fn settings(args: &ReadingArgs) -> Settings {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN));
    Settings {
        framing: match (args.ndjson, args.whole) {
            (true, _) => Framing::Ndjson,
            (_, true) => Framing::Whole,
            _ => Framing::Auto,
        },
        progress: io::stderr().is_terminal(),
        ..Settings::new(jobs)
    }
}

/// Opens every input before reading any, so that a missing file stops the command before it
/// has written anything; then processes them in order.
fn stream(
    args: InputArgs,
    processor: &impl Processor,
    summary: Option<fn(&Tally) -> Value>,
) -> Result<Tally> {
    let inputs = if args.files.is_empty() {
        vec![Input::stdin()]
    } else {
        args.files
            .iter()
            .map(|path| {
                Input::open(path).with_context(|| format!("cannot open {}", path.display()))
            })
            .collect::<Result<_>>()?
    };
    let mut out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    // Not locked for the whole run: the progress bar draws on standard error from other
    // threads, and would wait for the lock forever.
    let mut err = io::stderr();
    let tally = match process_all(
        inputs,
        &settings(&args.reading),
        processor,
        &mut out,
        &mut err,
    ) {
        Ok(tally) => tally,
        // The reader of our output has gone (`assay ... | head`); stopping is all there is
        // to do, as for any filter killed by SIGPIPE.
        Err(e) if e.is_broken_pipe() => std::process::exit(0),
        Err(e) => return Err(e.into()),
    };
    if let Some(summary) = summary {
        serde_json::to_writer(&mut err, &summary(&tally))?;
        writeln!(err)?;
    }
    Ok(tally)
}

fn status(tally: Tally, failed: u8) -> ExitCode {
    if tally.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(failed)
    }
}
