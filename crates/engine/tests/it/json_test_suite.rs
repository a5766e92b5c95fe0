//! JSONTestSuite conformance. (Being written.)
