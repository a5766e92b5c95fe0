//! JSON Schema Test Suite conformance. (Being written.)
