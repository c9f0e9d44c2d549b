//! Accounts and sessions: `POST /v1/users`, `POST /v1/sessions`, `DELETE /v1/sessions`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::extract::{Bearer, Body};
use crate::actions;
use crate::error::ApiError;
use crate::state::AppState;

/// Name and password, for sign-up and log-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    name: String,
    password: String,
}

/// `POST /v1/users`
pub async fn register(
    State(app): State<AppState>,
    body: Result<Body<Credentials>, ApiError>,
) -> Result<Response, ApiError> {
    let Body(c) = body?;
    let user = actions::register(&app, &c.name, &c.password).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `POST /v1/sessions`
pub async fn login(
    State(app): State<AppState>,
    body: Result<Body<Credentials>, ApiError>,
) -> Result<Response, ApiError> {
    let Body(c) = body?;
    let (token, user, expires_ts) = actions::login(&app, &c.name, &c.password).await?;
    let expires =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(expires_ts.max(0) as u64);
    let expires_at = humantime::format_rfc3339_seconds(expires).to_string();
    Ok(Json(json!({ "token": token, "user": user, "expires_at": expires_at })).into_response())
}

/// `DELETE /v1/sessions`
pub async fn logout(
    State(app): State<AppState>,
    Bearer(token): Bearer,
) -> Result<StatusCode, ApiError> {
    let caller = app.authenticate(token.as_deref()).await?;
    actions::logout(&app, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}
