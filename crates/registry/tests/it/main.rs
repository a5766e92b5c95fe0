//! The registry's one integration-test binary: the same behaviour suite (resources and API
//! keys) against every store (embedded redb and Redis), plus each store's own failure tests.

#[macro_use]
mod suite;
mod embedded;
mod keys;
mod redis;
