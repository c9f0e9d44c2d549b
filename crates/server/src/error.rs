//! The one place where internal errors become protocol error codes and HTTP answers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_domain::{RuleError, TextError};
use confab_protocol::{ErrorCode, ServerFrame};
use confab_store::StoreError;
use serde_json::{Value, json};

/// An error as a client sees it: a code and a message that names no internals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing, invalid, expired or revoked token",
        )
    }

    /// `not_found` for a room.
    pub fn no_room() -> Self {
        Self::new(ErrorCode::NotFound, "no such room")
    }

    /// `rate_limited`, retry after `ms`.
    pub fn rate_limited(ms: u64) -> Self {
        ApiError {
            retry_after_ms: Some(ms),
            ..Self::new(ErrorCode::RateLimited, "too many requests; slow down")
        }
    }

    /// `internal`: logged in full here, answered generically.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// This error as a WebSocket `error` frame answering `reference`.
    pub fn frame(&self, reference: Option<Value>) -> ServerFrame {
        ServerFrame::Error {
            reference,
            code: self.code,
            message: self.message.clone(),
            retry_after_ms: self.retry_after_ms,
        }
    }
}

impl From<TextError> for ApiError {
    fn from(e: TextError) -> Self {
        ApiError::bad_request(e.0)
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        match e {
            RuleError::NotFound(m) => ApiError::new(ErrorCode::NotFound, m),
            RuleError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            RuleError::BadRequest(m) => ApiError::new(ErrorCode::BadRequest, m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rule(r) => r.into(),
            StoreError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the store cannot commit right now; nothing was stored, retry",
                )
            }
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(ms) = self.retry_after_ms {
            error["retry_after_ms"] = json!(ms);
        }
        let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = ms.div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
