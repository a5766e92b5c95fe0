//! The command line as typed: clap definitions, help texts and the checks clap can make.
//! Turning these into engine and library settings is `main.rs`'s job.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use engine::{Draft, Encoding};

const ABOUT: &str = "Validate, transform and run pipelines on JSON without losing a digit.";

const LONG_ABOUT: &str = "\
Validate, transform and run pipelines on JSON without losing a digit.

Numbers keep their exact decimal value from input to output: 0.1 + 0.2 is 0.3, and an \
integer above 2^64 stays as written.";

const EXIT_CODES: &str = "\
Exit status:
  0  every document passed
  1  validate, run: a document was invalid, rejected or could not be processed
  2  usage error, unreadable file, or a schema, program or pipeline that does not compile
  5  transform: a document could not be parsed or the program failed on it (as jq)";

const INPUT_HELP: &str = "\
Inputs:
  Each FILE (or standard input when there is none, or for \"-\") holds one JSON document or \
NDJSON, decided per input:
    --ndjson, or a name ending in .ndjson, .jsonl or .ldjson: NDJSON, one document per line;
    --whole: one JSON document;
    otherwise, by the first non-blank line: if it ends with a string, array or object still \
open (the first line of a pretty-printed document) the whole input is one document, else \
the input is NDJSON (a single-line input is simply one document either way).
  In NDJSON, blank lines are skipped and the others are processed in parallel (--jobs), \
with results in input order. A line longer than --max-bytes is reported as too_large and \
skipped without being held in memory.

Reports:
  Each document that does not pass gets one JSON line on standard error, for example
    {\"file\":\"in.ndjson\",\"line\":12,\"valid\":false,\"errors\":[{\"instance_location\":\"/price\",...}]}
    {\"file\":\"in.ndjson\",\"line\":13,\"valid\":false,\"error\":{\"code\":\"syntax\",\"message\":\"...\"}}
  \"line\" is the 1-based line of the document in its input (1 for a whole-input document). \
Standard input is named \"<stdin>\".";

/// The `assay` command line.
#[derive(Debug, Parser)]
#[command(name = "assay", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check JSON documents against a JSON Schema.
    #[command(after_help = EXIT_CODES, after_long_help = format!("{INPUT_HELP}\n\n{EXIT_CODES}"))]
    Validate(ValidateArgs),
    /// Run a jq program on JSON documents, with exact decimal arithmetic.
    ///
    /// Every output is printed as compact JSON on its own line, like `jq -c`.
    #[command(after_help = EXIT_CODES, after_long_help = format!("{INPUT_HELP}\n\n{EXIT_CODES}"))]
    Transform(TransformArgs),
    /// Run documents through a pipeline: input schema, jq transform, output schema, encoding.
    ///
    /// Accepted documents are written to standard output in the pipeline's encoding (or
    /// --output): json, jcs and ndjson one per line, msgpack and cbor back to back.
    #[command(after_help = EXIT_CODES, after_long_help = format!("{PIPELINE_HELP}\n\n{INPUT_HELP}\n\n{EXIT_CODES}"))]
    Run(RunArgs),
    /// Run the engine service: HTTP and gRPC on one listener, registry on the embedded
    /// store (--data-dir) or Redis (--redis-url).
    ///
    /// Settings come from flags, then ASSAY_* environment variables, then the TOML file given
    /// with --config (keys as the flags, with underscores). SIGTERM or Ctrl-C drains requests
    /// in flight, then exits.
    Serve(ServeArgs),
    /// Manage registered JSON Schemas: numbered, immutable versions per tenant.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Schema(AdminArgs),
    /// Manage registered pipelines (input schema, jq transform, output schema, encoding).
    ///
    /// A pipeline file is JSON or YAML: {input_schema: "name" or "name@3", transform: "<jq>",
    /// output_schema: ..., output: json, options: {...}}. An unpinned schema reference is
    /// pinned to the newest version when the pipeline is registered.
    #[command(after_help = ADMIN_EXIT_CODES)]
    Pipeline(AdminArgs),
    /// Manage API keys: create (the key is printed once), list, revoke.
    ///
    /// On the store directly (--data-dir or --redis-url), as the bootstrap before the first
    /// `assay serve`, or through a running server (--server with an admin --api-key).
    #[command(after_help = ADMIN_EXIT_CODES)]
    Keys(KeysArgs),
}

/// `assay keys ...`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) action: KeysAction,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysAction {
    /// Create a key for --tenant and print it on standard output, once: it is stored only
    /// as a hash. Its description goes to standard error.
    Create {
        /// What the key may do: admin (the tenant's registry and keys) or client (process
        /// and validate only).
        #[arg(long)]
        role: String,
        /// Make the key stop working after this long (e.g. 90d, 12h, 30m).
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
        /// A note for people (who or what the key is for).
        #[arg(long)]
        label: Option<String>,
    },
    /// Print the tenant's keys, one JSON object per line (ids, never secrets).
    List,
    /// Revoke a key: every instance refuses it within a second.
    Revoke {
        /// The key's id (as `list` prints it).
        id: String,
    },
}

const ADMIN_EXIT_CODES: &str = "\
Exit status:
  0  done
  1  refused: not found, does not compile, a reference does not resolve, still in use
  2  usage error, unreadable file, or the registry is unavailable";

/// `assay serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML file with settings (flags and environment variables take precedence).
    #[arg(long, env = "ASSAY_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "ASSAY_LISTEN", value_name = "HOST:PORT")]
    pub(crate) listen: Option<String>,
    /// Directory of the embedded registry store [default: assay-data].
    #[arg(long, env = "ASSAY_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Share the registry through this Redis instead (redis://host:port/db).
    #[arg(long, env = "ASSAY_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// Key prefix of the deployment in Redis [default: assay].
    #[arg(long, env = "ASSAY_REDIS_PREFIX")]
    pub(crate) redis_prefix: Option<String>,
    /// Most documents processed at once; more are refused with 503 [default: 64 per core].
    #[arg(long, env = "ASSAY_MAX_IN_FLIGHT")]
    pub(crate) max_in_flight: Option<usize>,
    /// Largest request body in bytes [default: 16 MiB].
    #[arg(long, env = "ASSAY_MAX_BODY_BYTES")]
    pub(crate) max_body_bytes: Option<usize>,
    /// Per-request deadline in milliseconds [default: 10000].
    #[arg(long, env = "ASSAY_REQUEST_TIMEOUT_MS")]
    pub(crate) request_timeout_ms: Option<u64>,
    /// How long shutdown waits for requests in flight, in milliseconds [default: 30000].
    #[arg(long, env = "ASSAY_SHUTDOWN_GRACE_MS")]
    pub(crate) shutdown_grace_ms: Option<u64>,
    /// Log format: pretty or json [default: pretty].
    #[arg(long, env = "ASSAY_LOG_FORMAT")]
    pub(crate) log_format: Option<String>,
    /// Export spans (one per request) to this OpenTelemetry collector, as OTLP/HTTP
    /// (e.g. http://127.0.0.1:4318/v1/traces).
    #[arg(long, env = "ASSAY_OTLP_ENDPOINT", value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    /// Who may call: keys (API keys), gateway (tenants signed by a trusted gateway) or none
    /// (everything open, for local use only) [default: keys].
    #[arg(long, env = "ASSAY_AUTH", value_name = "MODE")]
    pub(crate) auth: Option<String>,
    /// The secret the gateway signs with (--auth gateway), at least 32 characters. Prefer
    /// the environment variable: flags show in process listings.
    #[arg(long, env = "ASSAY_GATEWAY_SECRET", hide_env_values = true)]
    pub(crate) gateway_secret: Option<String>,
    /// Every tenant's rate limit, in requests per second [default: unlimited].
    #[arg(long, env = "ASSAY_RATE_LIMIT_PER_SECOND")]
    pub(crate) rate_limit_per_second: Option<u32>,
    /// Every tenant's burst [default: one second's worth].
    #[arg(long, env = "ASSAY_RATE_LIMIT_BURST")]
    pub(crate) rate_limit_burst: Option<u32>,
    /// Where limits are kept: off, local or redis [default: redis when the registry is on
    /// Redis, else local].
    #[arg(long, env = "ASSAY_RATE_LIMIT_BACKEND")]
    pub(crate) rate_limit_backend: Option<String>,
    /// Redis for shared limits, if not the registry's.
    #[arg(long, env = "ASSAY_RATE_LIMIT_REDIS_URL", hide_env_values = true)]
    pub(crate) rate_limit_redis_url: Option<String>,
    /// With Redis unreachable: open (limit in this process alone) or closed (refuse)
    /// [default: open].
    #[arg(long, env = "ASSAY_RATE_LIMIT_ON_REDIS_ERROR")]
    pub(crate) rate_limit_on_redis_error: Option<String>,
}

/// `assay schema ...` / `assay pipeline ...`.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    #[command(subcommand)]
    pub(crate) action: AdminAction,
    #[command(flatten)]
    pub(crate) store: StoreArgs,
}

/// Where the registry is, and whose resources to manage.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Directory of the embedded registry store (used unless --redis-url is given).
    #[arg(
        long,
        global = true,
        env = "ASSAY_DATA_DIR",
        default_value = "assay-data"
    )]
    pub(crate) data_dir: PathBuf,
    /// Use the registry shared through this Redis (redis://host:port/db) instead.
    #[arg(long, global = true, env = "ASSAY_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// Key prefix of the deployment in Redis.
    #[arg(
        long,
        global = true,
        env = "ASSAY_REDIS_PREFIX",
        default_value = "assay"
    )]
    pub(crate) redis_prefix: String,
    /// Work on the registry of this running server (http://host:port) instead.
    #[arg(
        long,
        global = true,
        env = "ASSAY_SERVER",
        conflicts_with = "redis_url"
    )]
    pub(crate) server: Option<String>,
    /// The tenant that owns the resources (with --server, the API key's tenant instead).
    #[arg(long, global = true, env = "ASSAY_TENANT", default_value = "default")]
    pub(crate) tenant: String,
    /// With --server: the API key to call it with.
    #[arg(long, global = true, env = "ASSAY_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminAction {
    /// Register FILE as the next version of NAME (an identical document returns the newest
    /// version instead). Prints {"name","version","created"}.
    Put {
        /// The resource's name.
        name: String,
        /// The document: JSON (a pipeline may also be YAML unless named *.json).
        file: PathBuf,
        /// Pipelines: read the jq program from this file into `transform`.
        #[arg(long, value_name = "PROGRAM_FILE")]
        transform_file: Option<PathBuf>,
    },
    /// Print one version of NAME, the newest unless --version is given.
    Get {
        /// The resource's name.
        name: String,
        /// The version to print.
        #[arg(long)]
        version: Option<u32>,
    },
    /// Print every name with its newest version, one JSON object per line.
    List,
    /// Delete NAME and all its versions (refused for a schema a pipeline still uses).
    Delete {
        /// The resource's name.
        name: String,
    },
}

const PIPELINE_HELP: &str = "\
Pipeline file (JSON when named *.json, YAML otherwise):
  input_schema: input.schema.json   # paths are relative to the pipeline file
  transform: transform.jq           # or {code: \"...\"}
  output_schema: output.schema.json
  output: json                      # json | ndjson | jcs | msgpack | cbor
  options: {output_mode: one, validate_formats: true, draft: \"2020-12\", max_errors: 100,
            transform_timeout_ms: 1000, max_depth: 128, max_bytes: 16777216,
            allow_duplicate_keys: false}";

/// Where documents come from and how they are read.
#[derive(Debug, Args)]
pub(crate) struct InputArgs {
    /// Input files; "-" or none reads standard input.
    #[arg(value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) reading: ReadingArgs,
}

/// How inputs are framed and processed.
#[derive(Debug, Args)]
pub(crate) struct ReadingArgs {
    /// Read every input as NDJSON: one document per line.
    #[arg(long, conflicts_with = "whole")]
    pub(crate) ndjson: bool,

    /// Read every input as one JSON document.
    #[arg(long)]
    pub(crate) whole: bool,

    /// Worker threads for NDJSON input [default: the number of cores].
    #[arg(long, short = 'j', value_name = "N")]
    pub(crate) jobs: Option<NonZeroUsize>,
}

/// Limits on what a document may be.
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// Largest accepted document (or NDJSON line), in bytes [default: 16 MiB].
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_bytes: Option<usize>,

    /// Deepest accepted nesting of arrays and objects [default: 128].
    #[arg(long, value_name = "LEVELS")]
    pub(crate) max_depth: Option<NonZeroUsize>,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// The JSON Schema file.
    #[arg(long, short = 's', value_name = "SCHEMA")]
    pub(crate) schema: PathBuf,

    /// JSON Schema draft: 4, 6, 7, 2019-09 or 2020-12 [default: the schema's $schema, else
    /// 2020-12].
    #[arg(long, value_name = "DRAFT")]
    pub(crate) draft: Option<Draft>,

    /// Treat "format" as an annotation instead of an assertion.
    #[arg(long)]
    pub(crate) no_formats: bool,

    /// Most findings reported per document.
    #[arg(long, value_name = "N", default_value = "100")]
    pub(crate) max_errors: NonZeroUsize,

    /// End with a summary line on standard error:
    /// {"summary":{"documents":N,"valid":N,"invalid":N,"unparsable":N}}.
    #[arg(long)]
    pub(crate) summary: bool,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) input: InputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TransformArgs {
    /// The jq program (with -f, this is the first input FILE instead).
    #[arg(value_name = "PROGRAM", required_unless_present = "from_file")]
    pub(crate) program: Option<String>,

    /// Read the jq program from this file.
    #[arg(long = "from-file", short = 'f', value_name = "PROGRAM_FILE")]
    pub(crate) from_file: Option<PathBuf>,

    /// Print all outputs of a document as one array instead of one per line.
    #[arg(long, conflicts_with = "one")]
    pub(crate) collect: bool,

    /// Require exactly one output per document; zero or several is an error.
    #[arg(long)]
    pub(crate) one: bool,

    /// Accepted for jq habits; output is always compact.
    #[arg(short = 'c', long = "compact-output")]
    pub(crate) compact: bool,

    /// Time budget for the program on one document, in milliseconds.
    #[arg(long, value_name = "MS", default_value = "1000")]
    pub(crate) timeout_ms: u64,

    #[command(flatten)]
    pub(crate) limits: LimitArgs,

    #[command(flatten)]
    pub(crate) input: InputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pipeline description (JSON or YAML).
    #[arg(long, short = 'p', value_name = "PIPELINE")]
    pub(crate) pipeline: PathBuf,

    /// Output encoding: json, ndjson, jcs, msgpack or cbor [default: the pipeline's].
    #[arg(long, short = 'o', value_name = "ENCODING")]
    pub(crate) output: Option<Encoding>,

    /// End with a summary line on standard error:
    /// {"summary":{"documents":N,"accepted":N,"rejected":N,"failed":N}}.
    #[arg(long)]
    pub(crate) summary: bool,

    #[command(flatten)]
    pub(crate) input: InputArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
