//! Pipelines. (Being written.)
