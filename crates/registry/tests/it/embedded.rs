//! The embedded (redb) store: the shared suite, and crash safety.

use std::sync::Arc;

use registry::{EmbeddedStore, Store};

/// A fresh store in a temporary directory that lives as long as the test process.
fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(EmbeddedStore::open(&dir).unwrap())
}

mod suite {
    store_suite!(super::fresh());
}
