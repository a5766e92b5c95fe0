//! Pipelines: input schema (optional) -> transform (optional) -> output schema (optional) ->
//! encoding, compiled once and run on any thread.
//!
//! A pipeline is described by a small JSON or YAML document ([`PipelineSpec::from_document`]):
//!
//! ```yaml
//! input_schema: input.schema.json    # a reference the caller resolves, or an inline schema
//! transform: transform.jq            # a reference, or {code: "..."} inline
//! output_schema: output.schema.json
//! output: json                       # json | ndjson | jcs | msgpack | cbor
//! options:                           # all optional
//!   output_mode: one                 # one | collect
//!   validate_formats: true
//!   draft: "2020-12"                 # default: the schema's $schema, else 2020-12
//!   max_errors: 100
//!   transform_timeout_ms: 1000
//!   max_depth: 128
//!   max_bytes: 16777216
//!   allow_duplicate_keys: false
//! ```
//!
//! The engine does no I/O: string references are handed to a resolver the caller supplies
//! (the CLI reads files relative to the pipeline file; the registry looks up names).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::doc::{Doc, DocRef};
use crate::encode::{EncodeError, Encoding, encode, encode_doc};
use crate::parse::{ParseError, parse_document};
use crate::transform::{CompileError, Output, OutputMode, Transform, TransformError};
use crate::validate::{Draft, Finding, Schema, SchemaError, SchemaOptions};
use crate::{Limits, Value};

/// A pipeline description with every reference resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// Schema the input must satisfy.
    pub input_schema: Option<Value>,
    /// jq program that turns the input into the output.
    pub transform: Option<String>,
    /// Schema the output must satisfy.
    pub output_schema: Option<Value>,
    /// How results are serialised.
    pub output: Encoding,
    /// Everything else.
    pub options: PipelineOptions,
}

/// Tunables of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineOptions {
    /// The transform's output rule.
    pub output_mode: OutputMode,
    /// Draft, format assertion and error cap for both schemas.
    pub schema: SchemaOptions,
    /// Size, depth, duplicate-key and time limits.
    pub limits: Limits,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            output_mode: OutputMode::One,
            schema: SchemaOptions::default(),
            limits: Limits::default(),
        }
    }
}

/// Which part of a pipeline a reference belongs to, for the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `input_schema` or `output_schema`: resolve to a schema document.
    Schema,
    /// `transform`: resolve to jq program text.
    Transform,
}

/// A pipeline description that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The description is malformed.
    #[error("invalid pipeline description: {0}")]
    Invalid(String),
    /// A reference could not be resolved.
    #[error("cannot resolve {reference:?}: {reason}")]
    Unresolved {
        /// The reference as written.
        reference: String,
        /// Why.
        reason: String,
    },
}

/// What the resolver hands back for a reference.
pub enum Resolved {
    /// A schema document.
    Schema(Value),
    /// Program text.
    Program(String),
}

const KNOWN_KEYS: &[&str] = &[
    "name",
    "description",
    "input_schema",
    "transform",
    "output_schema",
    "output",
    "options",
];
const KNOWN_OPTIONS: &[&str] = &[
    "output_mode",
    "validate_formats",
    "draft",
    "max_errors",
    "transform_timeout_ms",
    "max_depth",
    "max_bytes",
    "allow_duplicate_keys",
];

impl PipelineSpec {
    /// Reads a pipeline description. `resolve` turns a string reference into a schema or a
    /// program; unknown keys are refused so that a typo does not silently drop a stage.
    pub fn from_document(
        doc: &Value,
        mut resolve: impl FnMut(Part, &str) -> Result<Resolved, String>,
    ) -> Result<Self, SpecError> {
        let obj = doc
            .as_object()
            .ok_or_else(|| SpecError::Invalid("the description must be an object".into()))?;
        if let Some(k) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(SpecError::Invalid(format!(
                "unknown key {k:?}; expected one of {}",
                KNOWN_KEYS.join(", ")
            )));
        }
        let mut schema = |key: &str| -> Result<Option<Value>, SpecError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(r)) => match resolve(Part::Schema, r) {
                    Ok(Resolved::Schema(s)) => Ok(Some(s)),
                    Ok(Resolved::Program(_)) => Err(unresolved(r, "not a schema")),
                    Err(reason) => Err(unresolved(r, &reason)),
                },
                Some(s @ (Value::Object(_) | Value::Bool(_))) => Ok(Some(s.clone())),
                Some(_) => Err(SpecError::Invalid(format!(
                    "{key} must be a reference (string) or an inline schema"
                ))),
            }
        };
        let input_schema = schema("input_schema")?;
        let output_schema = schema("output_schema")?;
        let transform = match obj.get("transform") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) => match resolve(Part::Transform, r) {
                Ok(Resolved::Program(p)) => Some(p),
                Ok(Resolved::Schema(_)) => return Err(unresolved(r, "not a jq program")),
                Err(reason) => return Err(unresolved(r, &reason)),
            },
            Some(Value::Object(o))
                if o.len() == 1 && o.get("code").is_some_and(Value::is_string) =>
            {
                o["code"].as_str().map(str::to_owned)
            }
            Some(_) => {
                return Err(SpecError::Invalid(
                    "transform must be a reference (string) or {\"code\": \"...\"}".into(),
                ));
            }
        };
        let output = match obj.get("output") {
            None | Some(Value::Null) => Encoding::default(),
            Some(Value::String(s)) => s.parse().map_err(|e| SpecError::Invalid(format!("{e}")))?,
            Some(_) => return Err(SpecError::Invalid("output must be a string".into())),
        };
        let options = match obj.get("options") {
            None | Some(Value::Null) => PipelineOptions::default(),
            Some(o) => parse_options(o)?,
        };
        Ok(Self {
            input_schema,
            transform,
            output_schema,
            output,
            options,
        })
    }
}

fn unresolved(reference: &str, reason: &str) -> SpecError {
    SpecError::Unresolved {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    }
}

fn parse_options(o: &Value) -> Result<PipelineOptions, SpecError> {
    let obj = o
        .as_object()
        .ok_or_else(|| SpecError::Invalid("options must be an object".into()))?;
    let mut opts = PipelineOptions::default();
    for (k, v) in obj {
        let bad = |what: &str| SpecError::Invalid(format!("options.{k} must be {what}"));
        // Numbers are read through their text: with arbitrary precision that is what
        // serde_json keeps.
        let count = || -> Result<usize, SpecError> {
            v.as_number()
                .and_then(|n| n.as_str().parse::<usize>().ok())
                .ok_or_else(|| bad("a non-negative integer"))
        };
        match k.as_str() {
            "output_mode" => {
                opts.output_mode = v
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("\"one\" or \"collect\""))?;
            }
            "validate_formats" => {
                opts.schema.validate_formats = v.as_bool().ok_or_else(|| bad("a boolean"))?;
            }
            "draft" => {
                let draft: Draft = v
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("one of \"4\", \"6\", \"7\", \"2019-09\", \"2020-12\""))?;
                opts.schema.draft = Some(draft);
            }
            "max_errors" => opts.schema.max_errors = count()?,
            "transform_timeout_ms" => {
                opts.limits.transform_timeout = Duration::from_millis(count()? as u64);
            }
            "max_depth" => opts.limits.max_depth = count()?,
            "max_bytes" => opts.limits.max_bytes = count()?,
            "allow_duplicate_keys" => {
                opts.limits.allow_duplicate_keys = v.as_bool().ok_or_else(|| bad("a boolean"))?;
            }
            _ => {
                return Err(SpecError::Invalid(format!(
                    "unknown option {k:?}; expected one of {}",
                    KNOWN_OPTIONS.join(", ")
                )));
            }
        }
    }
    if opts.limits.max_depth == 0 || opts.limits.max_depth > Limits::MAX_DEPTH_CEILING {
        return Err(SpecError::Invalid(format!(
            "options.max_depth must be between 1 and {}",
            Limits::MAX_DEPTH_CEILING
        )));
    }
    Ok(opts)
}

/// A pipeline that cannot be built, or a document that could not be processed. A document
/// that fails a schema is not an error: see [`Outcome::Rejected`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// The description is unusable.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A schema does not compile.
    #[error("{stage} schema: {source}")]
    Schema {
        /// Which schema.
        stage: Stage,
        /// Why.
        source: SchemaError,
    },
    /// The transform does not compile.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The input is not acceptable JSON.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The transform failed on this document.
    #[error(transparent)]
    Transform(#[from] TransformError),
    /// The result cannot be written in the requested encoding.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl PipelineError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Spec(_) => "invalid_pipeline",
            Self::Schema { .. } => "invalid_schema",
            Self::Compile(_) => "invalid_transform",
            Self::Parse(e) => e.code(),
            Self::Transform(e) => e.code(),
            Self::Encode(e) => e.code(),
        }
    }
}

/// Where in a pipeline a document was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The input schema.
    Input,
    /// The output schema.
    Output,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Input => "input",
            Self::Output => "output",
        })
    }
}

/// A document that failed a schema: which one, and every finding (up to the cap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The schema that failed.
    pub stage: Stage,
    /// What is wrong.
    pub findings: Vec<Finding>,
}

/// The normal outcomes of running a document through a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The document passed every stage; here is the result.
    Accepted(T),
    /// A schema rejected the document.
    Rejected(Rejection),
}

/// A compiled pipeline; cheap to clone and shared across threads.
#[derive(Debug, Clone)]
pub struct Pipeline {
    input: Option<Schema>,
    transform: Option<Transform>,
    output: Option<Schema>,
    encoding: Encoding,
    limits: Limits,
}

impl Pipeline {
    /// Compiles every part; nothing is compiled again per document.
    pub fn compile(spec: &PipelineSpec) -> Result<Self, PipelineError> {
        let schema = |s: &Option<Value>, stage| {
            s.as_ref()
                .map(|s| Schema::compile(s, &spec.options.schema))
                .transpose()
                .map_err(|source| PipelineError::Schema { stage, source })
        };
        Ok(Self {
            input: schema(&spec.input_schema, Stage::Input)?,
            transform: spec
                .transform
                .as_deref()
                .map(|code| Transform::compile(code, spec.options.output_mode))
                .transpose()?,
            output: schema(&spec.output_schema, Stage::Output)?,
            encoding: spec.output,
            limits: spec.options.limits.clone(),
        })
    }

    /// The output encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The limits documents are parsed and transformed under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates, transforms and validates a parsed document.
    pub fn run(&self, doc: &Value) -> Result<Outcome<Value>, PipelineError> {
        self.run_until(doc, None)
    }

    /// [`Pipeline::run`], with the transform also stopped at `deadline` (a caller's own
    /// deadline, when it is sooner than the pipeline's transform timeout): work nobody will
    /// wait for is not done.
    pub fn run_until(
        &self,
        doc: &Value,
        deadline: Option<Instant>,
    ) -> Result<Outcome<Value>, PipelineError> {
        if let Some(rejection) = check(self.input.as_ref(), doc, Stage::Input) {
            return Ok(Outcome::Rejected(rejection));
        }
        let out = match &self.transform {
            Some(t) => t.run(doc, self.timeout(deadline))?,
            None => doc.clone(),
        };
        self.finish(out)
    }

    /// [`Pipeline::process_until`] for a document read as a [`Doc`], for a pipeline without a
    /// transform or whose transform runs directly: validation, the transform and the encoder
    /// read the document in place, and the transform's result is a `Doc` too (or a `Value`
    /// when jaq answered).
    fn process_doc(
        &self,
        doc: DocRef<'_, '_>,
        encoding: Encoding,
        deadline: Option<Instant>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome<()>, PipelineError> {
        if let Some(rejection) = check_doc(self.input.as_ref(), doc, Stage::Input) {
            return Ok(Outcome::Rejected(rejection));
        }
        let result = match &self.transform {
            Some(t) => t.run_to_doc(doc, self.timeout(deadline))?,
            None => return self.accept_doc(doc, encoding, out),
        };
        match result {
            Output::Doc(result) => self.accept_doc(result.root(), encoding, out),
            Output::Value(value) => match self.finish(value)? {
                Outcome::Accepted(value) => {
                    encode(&value, encoding, out)?;
                    Ok(Outcome::Accepted(()))
                }
                Outcome::Rejected(r) => Ok(Outcome::Rejected(r)),
            },
        }
    }

    /// Validates a result read as a [`Doc`] and encodes it.
    fn accept_doc(
        &self,
        result: DocRef<'_, '_>,
        encoding: Encoding,
        out: &mut Vec<u8>,
    ) -> Result<Outcome<()>, PipelineError> {
        if let Some(rejection) = check_doc(self.output.as_ref(), result, Stage::Output) {
            return Ok(Outcome::Rejected(rejection));
        }
        encode_doc(result, encoding, out)?;
        Ok(Outcome::Accepted(()))
    }

    /// The transform's budget: the pipeline's timeout, or less when the caller's deadline is
    /// sooner.
    fn timeout(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(at) => self
                .limits
                .transform_timeout
                .min(at.saturating_duration_since(Instant::now())),
            None => self.limits.transform_timeout,
        }
    }

    /// Validates the transform's output.
    fn finish(&self, out: Value) -> Result<Outcome<Value>, PipelineError> {
        if let Some(rejection) = check(self.output.as_ref(), &out, Stage::Output) {
            return Ok(Outcome::Rejected(rejection));
        }
        Ok(Outcome::Accepted(out))
    }

    /// Parses `bytes`, runs the pipeline, and on acceptance appends the encoded result to
    /// `out` (in `encoding`, or the pipeline's own when `None`).
    pub fn process(
        &self,
        bytes: &[u8],
        encoding: Option<Encoding>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome<()>, PipelineError> {
        self.process_until(bytes, encoding, None, out)
    }

    /// [`Pipeline::process`] with a caller's deadline (see [`Pipeline::run_until`]).
    pub fn process_until(
        &self,
        bytes: &[u8],
        encoding: Option<Encoding>,
        deadline: Option<Instant>,
        out: &mut Vec<u8>,
    ) -> Result<Outcome<()>, PipelineError> {
        // Without a transform, or with one the direct evaluator runs, the document is read in
        // place, as a `Doc` (what `Doc` declines is read as a `Value`: refused documents, for
        // the exact error, and repeated keys). jaq needs a `Value` anyway.
        let encoding = encoding.unwrap_or(self.encoding);
        let in_place = self.transform.as_ref().is_none_or(Transform::is_direct);
        if let Some(doc) = in_place
            .then(|| Doc::parse_bytes(bytes, &self.limits))
            .flatten()
        {
            return self.process_doc(doc.root(), encoding, deadline, out);
        }
        match self.run_until(&parse_document(bytes, &self.limits)?, deadline)? {
            Outcome::Accepted(v) => {
                encode(&v, encoding, out)?;
                Ok(Outcome::Accepted(()))
            }
            Outcome::Rejected(r) => Ok(Outcome::Rejected(r)),
        }
    }
}

/// [`check`] for a document read as a [`Doc`].
fn check_doc(schema: Option<&Schema>, doc: DocRef<'_, '_>, stage: Stage) -> Option<Rejection> {
    let schema = schema?;
    rejection(stage, schema.is_valid_doc(doc), || schema.validate_doc(doc))
}

fn check(schema: Option<&Schema>, doc: &Value, stage: Stage) -> Option<Rejection> {
    let schema = schema?;
    rejection(stage, schema.is_valid(doc), || schema.validate(doc))
}

/// A rejection at `stage` unless the document was `valid`. The boolean check is much cheaper
/// than collecting findings, and valid documents are the common case, so `findings` runs only
/// for a document already known to fail.
fn rejection(
    stage: Stage,
    valid: bool,
    findings: impl FnOnce() -> Vec<Finding>,
) -> Option<Rejection> {
    (!valid).then(|| Rejection {
        stage,
        findings: findings(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(doc: &str) -> Result<PipelineSpec, SpecError> {
        let doc: Value = serde_json::from_str(doc).unwrap();
        PipelineSpec::from_document(&doc, |part, r| {
            match (part, r) {
            (Part::Schema, "positive") => Ok(Resolved::Schema(
                serde_json::from_str(r#"{"type":"object","properties":{"n":{"exclusiveMinimum":0}},"required":["n"]}"#).unwrap(),
            )),
            (Part::Transform, "double.jq") => Ok(Resolved::Program("{n: (.n * 2)}".into())),
            (Part::Transform, "spin.jq") => Ok(Resolved::Program("last(range(1e15))".into())),
            _ => Err("no such file".into()),
        }
        })
    }

    fn process(p: &Pipeline, input: &str) -> Result<Outcome<String>, PipelineError> {
        let mut out = Vec::new();
        Ok(match p.process(input.as_bytes(), None, &mut out)? {
            Outcome::Accepted(()) => Outcome::Accepted(String::from_utf8(out).unwrap()),
            Outcome::Rejected(r) => Outcome::Rejected(r),
        })
    }

    #[test]
    fn a_callers_deadline_stops_the_transform_before_its_own_timeout() {
        let s =
            spec(r#"{"transform":"spin.jq","options":{"transform_timeout_ms":60000}}"#).unwrap();
        let p = Pipeline::compile(&s).unwrap();
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(50));
        let err = p
            .process_until(b"{}", None, deadline, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err.code(), "transform_timeout");
        // Stopped by the caller's deadline, not the pipeline's minute.
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn documents_read_as_doc_come_out_as_documents_read_as_values_do() {
        // These pipelines have no transform or one that runs directly, so `process` reads
        // through `Doc` and its result is a `Doc`; `run` on a parsed `Value` is the other road.
        // Both must give the same bytes in every encoding, and the same rejections and errors.
        for spec_text in [
            r#"{"input_schema":"positive","transform":"double.jq","output_schema":"positive"}"#,
            r#"{"input_schema":"positive","output_schema":"positive"}"#,
            r#"{"transform":{"code":"{all: ., n: .n, more: [.other[]?, {k: .n}], s: \"\\u00e9\\n\"}"},"output_schema":"positive"}"#,
            r#"{"transform":{"code":".n, .n, {n: .n}"},"options":{"output_mode":"collect"}}"#,
        ] {
            let p = Pipeline::compile(&spec(spec_text).unwrap()).unwrap();
            assert!(p.transform.as_ref().is_none_or(Transform::is_direct));
            for encoding in Encoding::ALL {
                let by_doc = |input: &str| -> Result<Outcome<Vec<u8>>, PipelineError> {
                    let mut out = Vec::new();
                    Ok(
                        match p.process(input.as_bytes(), Some(encoding), &mut out)? {
                            Outcome::Accepted(()) => Outcome::Accepted(out),
                            Outcome::Rejected(r) => Outcome::Rejected(r),
                        },
                    )
                };
                let by_value = |input: &str| -> Result<Outcome<Vec<u8>>, PipelineError> {
                    let doc = parse_document(input.as_bytes(), p.limits())?;
                    Ok(match p.run(&doc)? {
                        Outcome::Accepted(v) => {
                            let mut out = Vec::new();
                            encode(&v, encoding, &mut out)?;
                            Outcome::Accepted(out)
                        }
                        Outcome::Rejected(r) => Outcome::Rejected(r),
                    })
                };
                let show = |r: Result<Outcome<Vec<u8>>, PipelineError>| match r {
                    Ok(Outcome::Accepted(bytes)) => format!("accepted {bytes:?}"),
                    Ok(Outcome::Rejected(r)) => format!("rejected {r:?}"),
                    Err(e) => format!("error {}: {e}", e.code()),
                };
                for input in [
                    r#"{"n": 2.50, "other": [1, {"x": "\u00e9\"\t"}], "e": 1E+2}"#,
                    r#"{"n": 9007199254740993}"#,
                    r#"{"n": -1}"#,
                    r#"{"m": 1}"#,
                    r#"{"n": "2"}"#,
                    r#"{"n": 1, "n": 2}"#,
                    r#"{"n": 1"#,
                    "[1,2]",
                ] {
                    let (doc, value) = (show(by_doc(input)), show(by_value(input)));
                    assert_eq!(doc, value, "{spec_text} {encoding:?} {input}");
                }
            }
        }
    }

    #[test]
    fn stages_run_in_order() {
        let s = spec(
            r#"{"input_schema":"positive","transform":"double.jq","output_schema":"positive"}"#,
        )
        .unwrap();
        let p = Pipeline::compile(&s).unwrap();
        assert_eq!(
            process(&p, r#"{"n":0.05}"#).unwrap(),
            Outcome::Accepted(r#"{"n":0.10}"#.into())
        );
        let Outcome::Rejected(r) = process(&p, r#"{"n":-1}"#).unwrap() else {
            panic!()
        };
        assert_eq!(r.stage, Stage::Input);
        assert_eq!(r.findings[0].instance_location, "/n");
    }

    #[test]
    fn output_schema_rejects_what_the_transform_made() {
        let s = spec(r#"{"transform":{"code":"{n: -1}"},"output_schema":"positive"}"#).unwrap();
        let p = Pipeline::compile(&s).unwrap();
        let Outcome::Rejected(r) = process(&p, "{}").unwrap() else {
            panic!()
        };
        assert_eq!(r.stage, Stage::Output);
    }

    #[test]
    fn an_empty_pipeline_passes_documents_through() {
        let p = Pipeline::compile(&spec("{}").unwrap()).unwrap();
        assert_eq!(
            process(&p, "[12345678901234567890, 0.10]").unwrap(),
            Outcome::Accepted("[12345678901234567890,0.10]".into())
        );
    }

    #[test]
    fn descriptions_are_checked() {
        assert!(
            matches!(spec(r#"{"transfrom":"x"}"#), Err(SpecError::Invalid(m)) if m.contains("transfrom"))
        );
        assert!(matches!(
            spec(r#"{"input_schema":"missing"}"#),
            Err(SpecError::Unresolved { .. })
        ));
        assert!(matches!(
            spec(r#"{"output":"xml"}"#),
            Err(SpecError::Invalid(_))
        ));
        assert!(matches!(
            spec(r#"{"options":{"max_depth":100000}}"#),
            Err(SpecError::Invalid(_))
        ));
        let s = spec(r#"{"output":"cbor","options":{"output_mode":"collect","transform_timeout_ms":50,"draft":"7","max_errors":3}}"#).unwrap();
        assert_eq!(s.output, Encoding::Cbor);
        assert_eq!(s.options.output_mode, OutputMode::Collect);
        assert_eq!(
            s.options.limits.transform_timeout,
            Duration::from_millis(50)
        );
        assert_eq!(s.options.schema.max_errors, 3);
    }

    #[test]
    fn compile_errors_name_the_part() {
        let s = spec(r#"{"transform":{"code":".a |"}}"#).unwrap();
        assert!(matches!(
            Pipeline::compile(&s),
            Err(PipelineError::Compile(_))
        ));
        let s = spec(r#"{"input_schema":{"type":12}}"#).unwrap();
        assert!(matches!(
            Pipeline::compile(&s),
            Err(PipelineError::Schema {
                stage: Stage::Input,
                ..
            })
        ));
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        let p = Pipeline::compile(&spec("{}").unwrap()).unwrap();
        assert!(matches!(
            process(&p, r#"{"a":1,"a":2}"#),
            Err(PipelineError::Parse(_))
        ));
        assert!(matches!(
            process(&p, &"[".repeat(100_000)),
            Err(PipelineError::Parse(_))
        ));
    }
}
