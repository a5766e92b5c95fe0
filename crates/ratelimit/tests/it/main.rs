//! The rate limiter's one integration-test binary: the local backend, and the Redis backend
//! against a real Redis (found as `testkit::redis` describes), failures included.

mod local;
mod redis;
mod support;
