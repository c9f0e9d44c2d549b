//! The WebSocket gateway: the upgrade (Origin check, header auth), then one task per session
//! that reads the client's frames and writes what its outbox holds, over this module's own
//! framing (`ws`), which keeps no buffer for an idle connection.

mod handlers;
mod session;
mod writer;
mod ws;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confab_protocol::ErrorCode;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /v1/ws`.
pub async fn upgrade(State(app): State<AppState>, mut request: Request) -> Response {
    let headers = request.headers();
    let key = match handshake_key(request.method(), headers) {
        Ok(key) => key,
        Err(message) => return ApiError::bad_request(message).into_response(),
    };
    if !app.is_ready() {
        return ApiError::new(
            ErrorCode::Unavailable,
            "this node is not serving; try another",
        )
        .into_response();
    }
    if !origin_allowed(headers, &app.config.allowed_origins) {
        return ApiError::new(ErrorCode::Forbidden, "origin not allowed").into_response();
    }
    let caller = match bearer(headers) {
        Some(token) => match app.authenticate(Some(token)).await {
            Ok(c) => Some(Box::new(c)),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return ApiError::bad_request("this connection cannot be upgraded").into_response();
    };
    tokio::spawn(session::run(app, on_upgrade, caller));
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, key);
    response
}

/// Checks an RFC 6455 opening handshake; the `Sec-WebSocket-Accept` value that answers it.
fn handshake_key(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, &'static str> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if method != Method::GET {
        return Err("a websocket upgrade must be a GET");
    }
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("expected a websocket upgrade (Connection: upgrade, Upgrade: websocket)");
    }
    if !has(header::SEC_WEBSOCKET_VERSION, "13") {
        return Err("unsupported Sec-WebSocket-Version; this server speaks 13");
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or("missing Sec-WebSocket-Key")?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| "bad Sec-WebSocket-Key")
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
