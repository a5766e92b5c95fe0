//! Limits that protect the engine from what a client sends: sizes, depth and time.

use std::time::Duration;

/// Resource limits applied to every document and transform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects (the top-level value is depth 1).
    pub max_depth: usize,
    /// Whether an object may repeat a key. Rejected by default: two parsers that disagree
    /// on which duplicate wins are a classic security hole.
    pub allow_duplicate_keys: bool,
    /// Wall-clock budget for one transform run.
    pub transform_timeout: Duration,
}

impl Limits {
    /// The hard ceiling on `max_depth`: the parser recurses once per level (about 4 KiB of
    /// stack per level in a debug build, 1 KiB in release), and beyond this a 2 MiB thread
    /// stack could run out.
    pub const MAX_DEPTH_CEILING: usize = 256;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 128,
            allow_duplicate_keys: false,
            transform_timeout: Duration::from_secs(1),
        }
    }
}
