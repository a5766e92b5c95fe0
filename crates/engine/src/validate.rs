//! JSON Schema validation. (Being written.)
