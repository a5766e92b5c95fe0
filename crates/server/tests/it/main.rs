//! The server's one integration-test binary: each module starts real servers on port 0 (each
//! with its own embedded store in a temporary directory, so tests run in parallel) and talks
//! to them with real clients over real sockets.

mod auth;
mod common;
mod grpc;
mod http;
mod ops;
