//! The client's error type: API errors (HTTP bodies and WebSocket `error` frames), transport,
//! decoding, timeouts and closed connections.

use confab_protocol::ErrorCode;
use serde::Deserialize;

/// The boxed cause of a transport failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A result with a [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to a confab server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a protocol error (`{"error":{...}}` or an `error` frame).
    #[error("{code:?} ({status}): {message}")]
    Api {
        /// The HTTP status, or for an `error` frame the status that carries its code.
        status: u16,
        /// The protocol error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
        /// For `rate_limited`: how long to wait before retrying.
        retry_after_ms: Option<u64>,
    },
    /// A non-success HTTP status whose body is not a protocol error object.
    #[error("unexpected HTTP status {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The body, lossily decoded and truncated.
        body: String,
    },
    /// The WebSocket upgrade was answered with an HTTP status instead of 101.
    #[error("WebSocket upgrade refused with HTTP {status}: {body}")]
    UpgradeRefused {
        /// The HTTP status (401 for a bad token, 403 for a refused `Origin`, ...).
        status: u16,
        /// The error code, when the body was a protocol error object.
        code: Option<ErrorCode>,
        /// Whatever part of the body arrived with the headers, lossily decoded.
        body: String,
    },
    /// The connection or request failed below the protocol (refused, reset, bad URL, ...).
    #[error("transport: {0}")]
    Transport(#[source] BoxError),
    /// A response or frame could not be decoded into the expected type.
    #[error("decode: {message}; input: {input}")]
    Decode {
        /// What the decoder said.
        message: String,
        /// The offending input, truncated.
        input: String,
    },
    /// Nothing arrived within the allowed time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The WebSocket connection is closed (1006 when it ended without a close frame).
    #[error("connection closed with code {code}: {reason}")]
    Closed {
        /// The close code the server sent, or 1006.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// The server sent a valid frame that does not fit the exchange (e.g. no `ready` first).
    #[error("unexpected: {0}")]
    Unexpected(String),
}

impl ClientError {
    /// The protocol error code, for API errors and refused upgrades that carried one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { code, .. } => Some(*code),
            ClientError::UpgradeRefused { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status, for API errors, unexpected statuses and refused upgrades.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. }
            | ClientError::Status { status, .. }
            | ClientError::UpgradeRefused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The close code, when the error is a closed WebSocket connection.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            ClientError::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A decode error for `input`, which is kept truncated for the message.
    pub(crate) fn decode(message: impl ToString, input: &[u8]) -> Self {
        ClientError::Decode {
            message: message.to_string(),
            input: snippet(input),
        }
    }

    /// A transport error from any cause.
    pub(crate) fn transport(e: impl Into<BoxError>) -> Self {
        ClientError::Transport(e.into())
    }
}

/// The object inside an HTTP error body: `{"error":{"code","message","retry_after_ms"?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiErrorBody {
    /// The protocol error code.
    pub code: ErrorCode,
    /// The server's message.
    #[serde(default)]
    pub message: String,
    /// For `rate_limited`: how long to wait before retrying.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope {
    error: ApiErrorBody,
}

/// Parses an HTTP error body; `None` when it is not `{"error":{"code",...}}` with a known code.
pub fn parse_error_body(body: &[u8]) -> Option<ApiErrorBody> {
    serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error)
}

/// The error for a non-success HTTP answer: `Api` when the body is a protocol error object,
/// `Status` otherwise. `retry_after` is the `Retry-After` header in seconds, used when the body
/// has no `retry_after_ms`.
pub fn error_from_response(status: u16, body: &[u8], retry_after: Option<u64>) -> ClientError {
    match parse_error_body(body) {
        Some(e) => ClientError::Api {
            status,
            code: e.code,
            message: e.message,
            retry_after_ms: e
                .retry_after_ms
                .or_else(|| retry_after.map(|s| s.saturating_mul(1000))),
        },
        None => ClientError::Status {
            status,
            body: snippet(body),
        },
    }
}

/// At most 512 bytes of `input`, lossily decoded, for error messages.
pub(crate) fn snippet(input: &[u8]) -> String {
    const MAX: usize = 512;
    let cut = &input[..input.len().min(MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if input.len() > MAX {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limited_body_is_parsed_with_its_retry_delay() {
        let body =
            br#"{"error":{"code":"rate_limited","message":"slow down","retry_after_ms":250}}"#;
        let err = error_from_response(429, body, Some(1));
        match err {
            ClientError::Api {
                status,
                code,
                message,
                retry_after_ms,
            } => {
                assert_eq!(status, 429);
                assert_eq!(code, ErrorCode::RateLimited);
                assert_eq!(message, "slow down");
                assert_eq!(retry_after_ms, Some(250));
            }
            other => panic!("expected Api, got {other:?}"),
        }
    }

    #[test]
    fn the_retry_after_header_is_used_when_the_body_has_no_delay() {
        let body = br#"{"error":{"code":"rate_limited","message":"x"}}"#;
        let err = error_from_response(429, body, Some(2));
        assert!(matches!(
            err,
            ClientError::Api {
                retry_after_ms: Some(2000),
                ..
            }
        ));
    }

    #[test]
    fn every_error_code_parses_from_its_wire_name() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::TooLarge,
            ErrorCode::RateLimited,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ] {
            let body = format!(
                r#"{{"error":{{"code":"{}","message":"m"}}}}"#,
                code.as_str()
            );
            let parsed = parse_error_body(body.as_bytes()).expect("parses");
            assert_eq!(parsed.code, code);
            let err = error_from_response(code.http_status(), body.as_bytes(), None);
            assert_eq!(err.code(), Some(code));
            assert_eq!(err.status(), Some(code.http_status()));
        }
    }

    #[test]
    fn a_missing_message_is_tolerated() {
        let parsed = parse_error_body(br#"{"error":{"code":"not_found"}}"#).expect("parses");
        assert_eq!(parsed.code, ErrorCode::NotFound);
        assert_eq!(parsed.message, "");
    }

    #[test]
    fn a_body_that_is_not_an_error_object_is_an_unexpected_status() {
        for body in [
            &b"Failed to buffer the request body: length limit exceeded"[..],
            br#"{"error":{"code":"no_such_code","message":"m"}}"#,
            br#"{"code":"bad_request"}"#,
            b"",
            b"\xff\xfe not utf-8",
        ] {
            let err = error_from_response(413, body, None);
            assert!(
                matches!(err, ClientError::Status { status: 413, .. }),
                "{err:?}"
            );
            assert_eq!(err.code(), None);
        }
    }

    #[test]
    fn long_bodies_are_truncated_in_errors() {
        let body = vec![b'a'; 10_000];
        match error_from_response(500, &body, None) {
            ClientError::Status { body, .. } => assert!(body.len() < 600),
            other => panic!("expected Status, got {other:?}"),
        }
    }
}
