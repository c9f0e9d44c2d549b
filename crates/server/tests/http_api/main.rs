//! Integration tests of the whole HTTP API of PROTOCOL.md (and of the choices docs/protocol.md
//! records where it is silent): a real node on 127.0.0.1:0, driven over real HTTP (and, where an
//! HTTP call's effect shows there, WebSocket) connections. Every row of the HTTP table and every
//! error rule has at least one test, named as the sentence it checks.

#[path = "../it/helpers.rs"]
mod helpers;

mod accounts;
mod errors;
mod members;
mod messages;
mod ops;
mod rooms;

use std::collections::BTreeSet;

use confab_client::protocol::{ErrorCode, Event};
use confab_client::{ClientError, HttpClient, Method, RawResponse, http::encode};
use serde_json::Value;

/// Sends `method path` with an optional JSON body and this client's token; the answer as it came.
pub async fn call(
    http: &HttpClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> RawResponse {
    http.raw(method.clone(), path, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} got no answer: {e}"))
}

/// The body of `raw` as JSON, failing the test with the body when it is not.
pub fn json(raw: &RawResponse) -> Value {
    raw.json()
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", raw.text()))
}

/// Asserts that `raw` is the protocol error `code` with `status`, shaped exactly
/// `{"error":{"code","message"}}` (plus `retry_after_ms` for `rate_limited`), and returns the
/// inner error object.
#[track_caller]
pub fn assert_error(raw: &RawResponse, status: u16, code: &str) -> Value {
    assert_eq!(
        (raw.status, error_code(raw).as_deref()),
        (status, Some(code)),
        "expected {status} {code}, got {} {}",
        raw.status,
        raw.text()
    );
    let content_type = raw
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "an error is JSON, got content-type {content_type:?}"
    );
    let body = json(raw);
    assert_eq!(keys(&body), set(&["error"]), "{body}");
    let error = body["error"].clone();
    let mut expected = set(&["code", "message"]);
    if code == "rate_limited" {
        expected.insert("retry_after_ms".into());
    }
    assert_eq!(keys(&error), expected, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error has a message: {body}"
    );
    error
}

/// The `error.code` of an answer, if it has one.
pub fn error_code(raw: &RawResponse) -> Option<String> {
    let body: Value = serde_json::from_slice(&raw.body).ok()?;
    body["error"]["code"].as_str().map(str::to_owned)
}

/// The status and code of a typed call that must fail.
#[track_caller]
pub fn failure<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, ErrorCode) {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => (
            e.status().unwrap_or_else(|| panic!("no status in {e}")),
            e.code().unwrap_or_else(|| panic!("no error code in {e}")),
        ),
    }
}

/// The keys of a JSON object.
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// A set of keys.
pub fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// `/v1/rooms/{id}/messages`
pub fn messages_path(room: &str) -> String {
    format!("/v1/rooms/{}/messages", encode(room))
}

/// The whole log of a room (at most 100 events), oldest first.
pub async fn log(http: &HttpClient, room: &str) -> Vec<Event> {
    let page = http
        .messages(room, None, Some(0), Some(100))
        .await
        .expect("history");
    assert!(!page.has_more, "these tests keep rooms under 100 events");
    page.events
}

/// The whole log of a room as raw JSON objects, oldest first.
pub async fn raw_log(http: &HttpClient, room: &str) -> Vec<Value> {
    let raw = call(
        http,
        Method::GET,
        &format!("{}?after=0&limit=100", messages_path(room)),
        None,
    )
    .await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    json(&raw)["events"]
        .as_array()
        .expect("events is an array")
        .clone()
}

/// Milliseconds since the Unix epoch, by this process's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Asserts a `…_ts` value is a commit time of this test run (within a minute of now).
#[track_caller]
pub fn assert_recent(ts: i64) {
    let now = now_ms();
    assert!(
        (now - 60_000..=now + 60_000).contains(&ts),
        "{ts} is not milliseconds since the epoch near {now}"
    );
}
