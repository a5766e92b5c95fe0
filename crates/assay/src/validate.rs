//! `assay validate`: checks each document against a JSON Schema. Valid documents produce no
//! output; every other one produces a record (see [`crate::stream`]).

use engine::{Limits, ParseError, Schema, Value};
use serde_json::Map;

use crate::stream::{Processor, Tally, Verdict, error_value};

/// Validation against one compiled schema.
pub struct Validation {
    schema: Schema,
    limits: Limits,
}

impl Validation {
    /// Validates documents read under `limits` against `schema`.
    pub fn new(schema: Schema, limits: Limits) -> Self {
        Self { schema, limits }
    }
}

fn invalid() -> Map<String, Value> {
    let mut fields = Map::with_capacity(2);
    fields.insert("valid".into(), false.into());
    fields
}

impl Processor for Validation {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn process(&self, doc: &Value, _out: &mut Vec<u8>) -> Verdict {
        // The boolean check is much cheaper than collecting findings, and most documents are
        // valid.
        if self.schema.is_valid(doc) {
            return Verdict::Passed;
        }
        let findings = self.schema.validate(doc);
        let mut fields = invalid();
        fields.insert(
            "errors".into(),
            serde_json::to_value(findings).expect("findings are strings"),
        );
        Verdict::Rejected(fields)
    }

    fn unparsable(&self, error: &ParseError) -> Map<String, Value> {
        let mut fields = invalid();
        fields.insert("error".into(), error_value(error.code(), error));
        fields
    }
}

/// `{"summary": {"documents", "valid", "invalid", "unparsable"}}`.
pub fn summary(tally: &Tally) -> Value {
    serde_json::json!({"summary": {
        "documents": tally.documents,
        "valid": tally.passed,
        "invalid": tally.rejected,
        "unparsable": tally.failed,
    }})
}
