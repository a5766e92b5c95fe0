//! Reading the files a command is configured with: schemas, jq programs and pipeline
//! descriptions. Failures here are the user's setup, reported before any input is read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use engine::{
    Limits, ParseError, PipelineError, Schema, SchemaError, SchemaOptions, Value, parse_document,
};

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The file is not strict JSON.
    #[error("{} is not a JSON document: {error}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        error: ParseError,
    },
    /// The file is not YAML.
    #[error("{} is not a YAML document: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The YAML parser's explanation.
        message: String,
    },
    /// The schema does not compile.
    #[error("{}: {error}", path.display())]
    Schema {
        /// The schema file.
        path: PathBuf,
        /// Why.
        error: SchemaError,
    },
    /// The pipeline description is unusable or one of its parts does not compile.
    #[error("{}: {error}", path.display())]
    Pipeline {
        /// The pipeline file.
        path: PathBuf,
        /// Why.
        error: PipelineError,
    },
}

/// Reads `path` whole.
pub fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    fs::read(path).map_err(|error| LoadError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Reads `path` as UTF-8 text (a jq program).
pub fn read_text(path: &Path) -> Result<String, LoadError> {
    fs::read_to_string(path).map_err(|error| LoadError::Read {
        path: path.to_owned(),
        error,
    })
}

/// Reads `path` as one strict JSON document, with every number's text kept. Configuration is
/// held to the same parser as data, so a schema's `0.1` is the decimal `0.1`.
pub fn json(path: &Path) -> Result<Value, LoadError> {
    parse_document(&read(path)?, &Limits::default()).map_err(|error| LoadError::Json {
        path: path.to_owned(),
        error,
    })
}

/// Reads a description (a pipeline): JSON when the name ends in `.json`, YAML otherwise.
pub fn description(path: &Path) -> Result<Value, LoadError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return json(path);
    }
    // YAML numbers arrive through f64 or u64. That is exact for the counts and limits of
    // `options`; an inline schema whose numbers must keep every digit belongs in a JSON
    // file of its own.
    serde_norway::from_slice::<Value>(&read(path)?).map_err(|e| LoadError::Yaml {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Reads and compiles the JSON Schema in `path`.
pub fn schema(path: &Path, options: &SchemaOptions) -> Result<Schema, LoadError> {
    Schema::compile(&json(path)?, options).map_err(|error| LoadError::Schema {
        path: path.to_owned(),
        error,
    })
}
