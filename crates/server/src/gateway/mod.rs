//! The WebSocket gateway: the upgrade (Origin check, header auth, buffer limits), then a session
//! made of a reader (this module's `session`), a writer task and a bounded outbox between them.

mod handlers;
mod session;
mod writer;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use confab_protocol::ErrorCode;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /v1/ws`.
pub async fn upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !app.is_ready() {
        return ApiError::new(
            ErrorCode::Unavailable,
            "this node is not serving; try another",
        )
        .into_response();
    }
    if !origin_allowed(&headers, &app.config.allowed_origins) {
        return ApiError::new(ErrorCode::Forbidden, "origin not allowed").into_response();
    }
    let caller = match bearer(&headers) {
        Some(token) => match app.authenticate(Some(token)).await {
            Ok(c) => Some(c),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let max = app.config.max_frame;
    // tungstenite's defaults (128 KiB buffers, 64 MiB messages) would cost ~125 KB per idle
    // connection and let one client make the server buffer without bound.
    ws.read_buffer_size(1024)
        .write_buffer_size(8192)
        .max_write_buffer_size(max.saturating_mul(16).max(1 << 20))
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session::run(app, socket, caller))
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// No Origin, the request's own host (http, or https behind a TLS proxy), or a listed one.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let scheme = if tls { "https" } else { "http" };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn same_origin_and_no_origin_are_allowed_by_default() {
        assert!(origin_allowed(&headers(&[("host", "a.test:8080")]), &[]));
        assert!(origin_allowed(
            &headers(&[("host", "a.test:8080"), ("origin", "http://a.test:8080")]),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(&[("host", "a.test:8080"), ("origin", "https://a.test:8080")]),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(&[("host", "a.test:8080"), ("origin", "http://evil.test")]),
            &[]
        ));
    }

    #[test]
    fn configured_origins_and_the_wildcard_are_allowed() {
        let h = headers(&[("host", "a.test"), ("origin", "http://b.test")]);
        assert!(origin_allowed(&h, &["http://b.test".into()]));
        assert!(origin_allowed(&h, &["*".into()]));
    }

    #[test]
    fn a_bearer_token_is_read_from_the_header() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
    }
}
