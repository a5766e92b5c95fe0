//! The rate limiter's one integration-test binary: the local backend, and the Redis backend
//! against a real Redis (found as `support` describes), failures included.

mod local;
mod redis;
mod support;
