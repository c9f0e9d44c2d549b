//! `/healthz`, `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use confab_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// 200 while the process runs.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the node can serve; 503 while starting or draining.
pub async fn readyz(State(app): State<AppState>) -> axum::response::Response {
    if app.is_ready() {
        "ready".into_response()
    } else {
        ApiError::new(ErrorCode::Unavailable, "not ready").into_response()
    }
}

/// Prometheus text format.
pub async fn metrics() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
}
