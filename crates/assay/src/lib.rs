//! The `assay` command line's machinery: reading inputs (one JSON document or NDJSON),
//! spreading documents over threads in bounded memory, and what each command does with a
//! document. The engine does the JSON work and no I/O; this crate does the I/O.
//!
//! The `assay` binary (`main.rs`, `cli.rs`) is glue over this library: it parses flags,
//! loads configuration through [`load`], picks a [`stream::Processor`] and maps the
//! resulting [`stream::Tally`] to an exit code.

pub mod admin;
pub mod input;
pub mod load;
mod progress;
pub mod remote;
pub mod run;
pub mod stream;
pub mod transform;
pub mod validate;
