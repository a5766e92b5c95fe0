//! Strict JSON parsing into the exact document model. (Being written.)

use crate::{Limits, Value};

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Placeholder until the parser lands.
    #[error("{0}")]
    Syntax(String),
}

/// Parses one JSON document under `limits`.
pub fn parse_document(bytes: &[u8], limits: &Limits) -> Result<Value, ParseError> {
    let _ = limits;
    serde_json::from_slice(bytes).map_err(|e| ParseError::Syntax(e.to_string()))
}
