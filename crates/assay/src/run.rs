//! `assay run`: loads a pipeline description from a JSON or YAML file and runs documents
//! through it, writing accepted results in the pipeline's encoding.

use std::path::Path;

use engine::{
    Encoding, Limits, Outcome, ParseError, Part, Pipeline, PipelineSpec, Resolved, Value, encode,
};
use serde_json::Map;

use crate::load::{self, LoadError};
use crate::stream::{Processor, Tally, Verdict, error_value};

/// Loads and compiles the pipeline described in `path`.
///
/// The description is JSON when the name ends in `.json`, YAML otherwise. String references
/// in it are file paths relative to the description's folder: schemas are JSON documents,
/// transforms are jq program text.
pub fn load_pipeline(path: &Path) -> Result<Pipeline, LoadError> {
    let doc = load::description(path)?;
    let base = path.parent().unwrap_or(Path::new(""));
    let pipeline_error = |error| LoadError::Pipeline {
        path: path.to_owned(),
        error,
    };
    let spec = PipelineSpec::from_document(&doc, |part, reference| {
        let file = base.join(reference);
        match part {
            Part::Schema => load::json(&file).map(Resolved::Schema),
            Part::Transform => load::read_text(&file).map(Resolved::Program),
        }
        .map_err(|e| e.to_string())
    })
    .map_err(|e| pipeline_error(e.into()))?;
    Pipeline::compile(&spec).map_err(pipeline_error)
}

/// A compiled pipeline and the encoding its results are written in.
pub struct Run {
    pipeline: Pipeline,
    encoding: Encoding,
}

impl Run {
    /// Runs `pipeline`, writing results in `encoding` or, when `None`, the pipeline's own.
    pub fn new(pipeline: Pipeline, encoding: Option<Encoding>) -> Self {
        let encoding = encoding.unwrap_or(pipeline.encoding());
        Self { pipeline, encoding }
    }

    /// The encoding results are written in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }
}

fn not_accepted() -> Map<String, Value> {
    let mut fields = Map::with_capacity(3);
    fields.insert("accepted".into(), false.into());
    fields
}

fn failed(code: &str, message: impl std::fmt::Display) -> Map<String, Value> {
    let mut fields = not_accepted();
    fields.insert("error".into(), error_value(code, message));
    fields
}

impl Processor for Run {
    fn limits(&self) -> &Limits {
        self.pipeline.limits()
    }

    fn process(&self, doc: &Value, out: &mut Vec<u8>) -> Verdict {
        match self.pipeline.run(doc) {
            Ok(Outcome::Accepted(result)) => match encode(&result, self.encoding, out) {
                Ok(()) => {
                    // Several JSON texts in a row need a separator; NDJSON brings its own
                    // newline, and MessagePack and CBOR items delimit themselves.
                    if matches!(self.encoding, Encoding::Json | Encoding::Jcs) {
                        out.push(b'\n');
                    }
                    Verdict::Passed
                }
                Err(e) => Verdict::Failed(failed(e.code(), &e)),
            },
            Ok(Outcome::Rejected(rejection)) => {
                let mut fields = not_accepted();
                fields.insert("stage".into(), rejection.stage.to_string().into());
                fields.insert(
                    "errors".into(),
                    serde_json::to_value(rejection.findings).expect("findings are strings"),
                );
                Verdict::Rejected(fields)
            }
            Err(e) => Verdict::Failed(failed(e.code(), &e)),
        }
    }

    fn unparsable(&self, error: &ParseError) -> Map<String, Value> {
        failed(error.code(), error)
    }
}

/// `{"summary": {"documents", "accepted", "rejected", "failed"}}`.
pub fn summary(tally: &Tally) -> Value {
    serde_json::json!({"summary": {
        "documents": tally.documents,
        "accepted": tally.passed,
        "rejected": tally.rejected,
        "failed": tally.failed,
    }})
}
