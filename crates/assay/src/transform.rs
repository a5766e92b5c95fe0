//! `assay transform`: runs a jq program on each document and prints its outputs as compact
//! JSON, one per line, with numbers exactly as the program computed them.

use std::time::Duration;

use engine::{CompileError, Encoding, Limits, OutputMode, ParseError, Transform, Value, encode};
use serde_json::Map;

use crate::stream::{Processor, Verdict, error_value};

/// How a program's outputs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outputs {
    /// Each output on its own line, as jq prints them.
    #[default]
    Each,
    /// Exactly one output per document; zero or several is an error.
    One,
    /// All outputs of a document as one array, on one line.
    Collect,
}

/// A compiled program and how to print what it yields.
pub struct Transformation {
    transform: Transform,
    limits: Limits,
    each: bool,
}

impl Transformation {
    /// Compiles `code`. Documents are read under `limits`, and each run gets
    /// `limits.transform_timeout`.
    pub fn new(code: &str, outputs: Outputs, limits: Limits) -> Result<Self, CompileError> {
        let mode = match outputs {
            Outputs::One => OutputMode::One,
            // jq prints every output: the engine gathers them, and they are split again here.
            Outputs::Each | Outputs::Collect => OutputMode::Collect,
        };
        Ok(Self {
            transform: Transform::compile(code, mode)?,
            limits,
            each: outputs == Outputs::Each,
        })
    }

    fn timeout(&self) -> Duration {
        self.limits.transform_timeout
    }
}

fn failed(code: &str, message: impl std::fmt::Display) -> Verdict {
    let mut fields = Map::with_capacity(1);
    fields.insert("error".into(), error_value(code, message));
    Verdict::Failed(fields)
}

impl Processor for Transformation {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn process(&self, doc: &Value, out: &mut Vec<u8>) -> Verdict {
        let result = match self.transform.run(doc, self.timeout()) {
            Ok(result) => result,
            Err(e) => return failed(e.code(), &e),
        };
        let outputs = match (&result, self.each) {
            (Value::Array(outputs), true) => outputs.as_slice(),
            _ => std::slice::from_ref(&result),
        };
        let start = out.len();
        for output in outputs {
            // NDJSON is compact JSON and a newline; it cannot fail, but a document's outputs
            // are still all or nothing.
            if let Err(e) = encode(output, Encoding::Ndjson, out) {
                out.truncate(start);
                return failed(e.code(), &e);
            }
        }
        Verdict::Passed
    }

    fn unparsable(&self, error: &ParseError) -> Map<String, Value> {
        let mut fields = Map::with_capacity(1);
        fields.insert("error".into(), error_value(error.code(), error));
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(code: &str, outputs: Outputs, input: &str) -> Result<String, Map<String, Value>> {
        let t = Transformation::new(code, outputs, Limits::default()).unwrap();
        let doc = engine::parse_document(input.as_bytes(), &Limits::default()).unwrap();
        let mut out = Vec::new();
        match t.process(&doc, &mut out) {
            Verdict::Passed => Ok(String::from_utf8(out).unwrap()),
            Verdict::Failed(f) | Verdict::Rejected(f) => Err(f),
        }
    }

    #[test]
    fn outputs_are_printed_like_jq() {
        assert_eq!(
            run(".[]", Outputs::Each, "[1, 0.10, {}]").unwrap(),
            "1\n0.10\n{}\n"
        );
        assert_eq!(run("empty", Outputs::Each, "1").unwrap(), "");
        assert_eq!(run(".[]", Outputs::Collect, "[1,2]").unwrap(), "[1,2]\n");
        assert_eq!(run(".", Outputs::One, "[1,2]").unwrap(), "[1,2]\n");
        let e = run(".[]", Outputs::One, "[1,2]").unwrap_err();
        assert_eq!(e["error"]["code"], "transform_output_count");
    }
}
