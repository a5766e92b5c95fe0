//! The gRPC services. (Being written.)

use axum::Router;

use crate::AppState;

/// The gRPC services as routes of the shared router.
pub fn routes(state: AppState) -> Router {
    let _ = state;
    Router::new()
}
