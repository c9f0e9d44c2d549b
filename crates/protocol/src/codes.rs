//! Error codes (HTTP and WebSocket) and WebSocket close codes.

use serde::{Deserialize, Serialize};

/// A protocol error code, as sent in `{"error":{"code"}}` and `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooLarge,
    RateLimited,
    Internal,
    Unavailable,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

/// WebSocket close codes used by confab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCode;

impl CloseCode {
    /// The node is restarting (after a `reconnect` frame).
    pub const RESTART: u16 = 1012;
    /// A message or frame over `max_frame`.
    pub const TOO_LARGE: u16 = 1009;
    /// No valid token.
    pub const UNAUTHORIZED: u16 = 4001;
    /// Too many `rate_limited` errors in the flood window.
    pub const FLOOD: u16 = 4008;
    /// The session's outgoing queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4009;
    /// Nothing arrived for three heartbeats.
    pub const GOING_AWAY: u16 = 1001;
    /// An ordinary close (the answer to a client's close).
    pub const NORMAL: u16 = 1000;
    /// A frame that breaks RFC 6455.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame that is not valid UTF-8.
    pub const BAD_UTF8: u16 = 1007;
    /// The store failed while catching the session up (reconnect and `sync`).
    pub const INTERNAL_ERROR: u16 = 1011;
}
