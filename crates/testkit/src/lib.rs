//! Test support shared by the workspace's integration tests, so that each suite does not keep
//! its own copy. Only ever a dev-dependency: no shipped crate depends on it.
//!
//! - [`redis`]: a real Redis for the tests (found, or started privately), loud skips, and
//!   unique key prefixes.

pub mod redis;
