//! assay's processing engine: a pure library that parses a JSON document without losing a
//! digit, validates it against a JSON Schema, transforms it with a jq program, validates the
//! result and serialises it.
//!
//! The engine does no I/O, spawns no async runtime and knows nothing of HTTP, gRPC or Redis;
//! the CLI and the service are fronts for it. Everything compiled here (`Schema`, `Transform`,
//! `Pipeline`) is built once and shared across threads.

pub mod doc;
pub mod encode;
pub mod limits;
pub mod parse;
pub mod pipeline;
pub mod transform;
pub mod validate;

#[cfg(test)]
mod testing;

pub use doc::{Doc, DocRef};
pub use encode::{EncodeError, Encoding, UnknownEncoding, encode, encode_doc};
pub use limits::Limits;
pub use parse::{ParseError, parse_document};
pub use pipeline::{
    Outcome, Part, Pipeline, PipelineError, PipelineOptions, PipelineSpec, Rejection, Resolved,
    SpecError, Stage,
};
pub use transform::{CompileError, Output, OutputMode, Transform, TransformError};
pub use validate::{Draft, Finding, Schema, SchemaError, SchemaOptions, UnknownDraft};

/// The document model shared by every stage: `serde_json::Value` built with
/// `arbitrary_precision` (numbers keep their literal text) and `preserve_order`.
pub type Value = serde_json::Value;
