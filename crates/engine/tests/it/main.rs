//! The engine's one integration-test binary: conformance suites, the reference workload and
//! the number model, each in its own module.

mod json_test_suite;
mod schema_test_suite;
mod shared;
mod tidy;
mod trade;
