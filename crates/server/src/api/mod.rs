//! The HTTP API under `/v1`, plus health, readiness and metrics. One file per resource.

mod extract;
mod health;
mod rooms;
mod users;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use confab_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{gateway, metrics, web};

/// Every route of the node.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_http_body;
    Router::new()
        .route("/v1/users", post(users::register))
        .route("/v1/sessions", post(users::login).delete(users::logout))
        .route("/v1/rooms", get(rooms::mine).post(rooms::create))
        .route("/v1/rooms/public", get(rooms::public))
        .route("/v1/rooms/{id}/join", post(rooms::join))
        .route("/v1/rooms/{id}/leave", post(rooms::leave))
        .route(
            "/v1/rooms/{id}/members",
            get(rooms::members).post(rooms::add_member),
        )
        .route(
            "/v1/rooms/{id}/members/{user}",
            delete(rooms::remove_member),
        )
        .route(
            "/v1/rooms/{id}/messages",
            get(rooms::messages).post(rooms::publish),
        )
        .route("/v1/dms", post(rooms::open_dm))
        .route("/v1/ws", get(gateway::upgrade))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(count_requests))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> Response {
    let mut r = ApiError::bad_request("method not allowed on this endpoint").into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// Counts requests by route template (never by raw path, which holds ids).
async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    metrics::http_request(&route, response.status().as_u16());
    response
}
