//! The HTTP API. (Being written.)

use axum::Router;

use crate::AppState;

/// The HTTP API's routes.
pub fn routes(state: AppState) -> Router {
    let _ = state;
    Router::new()
}
