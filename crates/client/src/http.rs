//! `HttpClient`: the typed HTTP API of PROTOCOL.md, plus raw calls for malformed-input tests.

use std::sync::Arc;
use std::time::Duration;

use confab_protocol::{Event, Room, UserRef, Visibility};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use reqwest::Method;

use crate::error::{ClientError, Result, error_from_response};

/// Timeout of every HTTP request made by [`HttpClient::new`].
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A cheap-to-clone handle on the HTTP API of one server, with an optional bearer token.
#[derive(Clone, Debug)]
pub struct HttpClient {
    http: reqwest::Client,
    base: Arc<str>,
    token: Option<Arc<str>>,
}

/// The answer to `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The bearer token.
    pub token: String,
    /// The logged-in user.
    pub user: UserRef,
    /// When the token expires, RFC 3339 in UTC.
    pub expires_at: String,
}

/// A page of a room's log: `GET /v1/rooms/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesPage {
    /// The events, in the order the server chose (see PROTOCOL.md).
    pub events: Vec<Event>,
    /// Whether more events lie beyond this page.
    pub has_more: bool,
}

/// The answer to `POST /v1/rooms/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The event's seq in its room.
    pub seq: u64,
    /// The event's globally unique id.
    pub id: String,
    /// The commit time, ms since the Unix epoch.
    pub ts: i64,
}

/// An HTTP answer as it came: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::decode(e, &self.body))
    }

    /// The body as text (lossily decoded).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body's protocol error object, if it is one.
    pub fn error(&self) -> Option<crate::error::ApiErrorBody> {
        crate::error::parse_error_body(&self.body)
    }
}

#[derive(Deserialize)]
struct RoomList {
    rooms: Vec<Room>,
}

impl HttpClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8080`) with a 10 s request timeout.
    pub fn new(base_url: impl AsRef<str>) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEFAULT_HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            // Only TLS back ends or a bad resolver configuration make building fail; we use none.
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_client(base_url, http)
    }

    /// A client for `base_url` that uses a caller-built `reqwest::Client`.
    pub fn with_client(base_url: impl AsRef<str>, http: reqwest::Client) -> Self {
        HttpClient {
            http,
            base: Arc::from(base_url.as_ref().trim_end_matches('/')),
            token: None,
        }
    }

    /// A clone of this client that authenticates with `token`.
    pub fn with_token(&self, token: impl AsRef<str>) -> Self {
        HttpClient {
            token: Some(Arc::from(token.as_ref())),
            ..self.clone()
        }
    }

    /// Sets or clears the bearer token used by this handle.
    pub fn set_token(&mut self, token: Option<&str>) {
        self.token = token.map(Arc::from);
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /v1/users`: registers a user.
    pub async fn register(&self, name: &str, password: &str) -> Result<UserRef> {
        let body = json!({"name": name, "password": password});
        self.call(Method::POST, "/v1/users", Some(body)).await
    }

    /// `POST /v1/sessions`: logs in and returns the session (the handle is not changed).
    pub async fn login(&self, name: &str, password: &str) -> Result<Session> {
        let body = json!({"name": name, "password": password});
        self.call(Method::POST, "/v1/sessions", Some(body)).await
    }

    /// `DELETE /v1/sessions`: revokes this handle's token everywhere.
    pub async fn logout(&self) -> Result<()> {
        self.call_empty(Method::DELETE, "/v1/sessions", None).await
    }

    /// `GET /v1/rooms`: the caller's rooms, each with `read_seq`.
    pub async fn rooms(&self) -> Result<Vec<Room>> {
        let list: RoomList = self.call(Method::GET, "/v1/rooms", None).await?;
        Ok(list.rooms)
    }

    /// `GET /v1/rooms/public?q=&limit=`: public rooms whose name contains `q`.
    pub async fn public_rooms(&self, q: Option<&str>, limit: Option<u64>) -> Result<Vec<Room>> {
        let mut query = Query::default();
        query.push("q", q);
        query.push("limit", limit);
        let path = format!("/v1/rooms/public{}", query.finish());
        let list: RoomList = self.call(Method::GET, &path, None).await?;
        Ok(list.rooms)
    }

    /// `POST /v1/rooms`: creates a room owned by the caller.
    pub async fn create_room(&self, name: &str, visibility: Visibility) -> Result<Room> {
        let body = json!({"name": name, "visibility": visibility});
        self.call(Method::POST, "/v1/rooms", Some(body)).await
    }

    /// `POST /v1/rooms/{id}/join`: joins a public room.
    pub async fn join(&self, room: &str) -> Result<Room> {
        let path = format!("/v1/rooms/{}/join", encode(room));
        self.call(Method::POST, &path, None).await
    }

    /// `POST /v1/rooms/{id}/leave`: leaves a room.
    pub async fn leave(&self, room: &str) -> Result<()> {
        let path = format!("/v1/rooms/{}/leave", encode(room));
        self.call_empty(Method::POST, &path, None).await
    }

    /// `POST /v1/rooms/{id}/members`: the owner adds `user` (a name or an id).
    pub async fn add_member(&self, room: &str, user: &str) -> Result<()> {
        let path = format!("/v1/rooms/{}/members", encode(room));
        let body = json!({"user": user});
        self.call_empty(Method::POST, &path, Some(body)).await
    }

    /// `DELETE /v1/rooms/{id}/members/{user}`: the owner removes `user` (a name or an id).
    pub async fn remove_member(&self, room: &str, user: &str) -> Result<()> {
        let path = format!("/v1/rooms/{}/members/{}", encode(room), encode(user));
        self.call_empty(Method::DELETE, &path, None).await
    }

    /// `GET /v1/rooms/{id}/messages?before=&after=&limit=`: a page of the room's log.
    pub async fn messages(
        &self,
        room: &str,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u64>,
    ) -> Result<MessagesPage> {
        let mut query = Query::default();
        query.push("before", before);
        query.push("after", after);
        query.push("limit", limit);
        let path = format!("/v1/rooms/{}/messages{}", encode(room), query.finish());
        self.call(Method::GET, &path, None).await
    }

    /// `POST /v1/rooms/{id}/messages`: publishes a message; the status is 201, or 200 for a
    /// repeated `client_id`.
    pub async fn publish(
        &self,
        room: &str,
        client_id: &str,
        body: &str,
    ) -> Result<(u16, Published)> {
        let path = format!("/v1/rooms/{}/messages", encode(room));
        let payload = json!({"client_id": client_id, "body": body});
        let raw = self.raw(Method::POST, &path, Some(payload)).await?;
        let published = decode_success(&raw)?;
        Ok((raw.status, published))
    }

    /// `POST /v1/dms`: opens (or finds) the direct conversation with `user` (a name or an id).
    pub async fn open_dm(&self, user: &str) -> Result<Room> {
        let body = json!({"user": user});
        self.call(Method::POST, "/v1/dms", Some(body)).await
    }

    /// `GET /healthz`: the status (200 while the process runs).
    pub async fn healthz(&self) -> Result<u16> {
        Ok(self.raw(Method::GET, "/healthz", None).await?.status)
    }

    /// `GET /readyz`: the status (200 when ready, 503 while starting or draining).
    pub async fn readyz(&self) -> Result<u16> {
        Ok(self.raw(Method::GET, "/readyz", None).await?.status)
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        let raw = self.raw(Method::GET, "/metrics", None).await?;
        check_success(&raw)?;
        Ok(raw.text())
    }

    /// Sends any request with an optional JSON body (and this handle's token) and returns the
    /// answer as it came, whatever its status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<RawResponse> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        Self::send_raw(req).await
    }

    /// Sends arbitrary body bytes (e.g. malformed JSON) with an optional content type.
    pub async fn raw_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<RawResponse> {
        let mut req = self.request(method, path).body(body);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        Self::send_raw(req).await
    }

    /// A request builder for `path` with this handle's token, for full control over headers.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => req.header(AUTHORIZATION, format!("Bearer {token}")),
            None => req,
        }
    }

    /// Sends a request built with [`HttpClient::request`] and returns the answer as it came.
    pub async fn send_raw(req: reqwest::RequestBuilder) -> Result<RawResponse> {
        let resp = req.send().await.map_err(ClientError::transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(ClientError::transport)?.to_vec();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        decode_success(&self.raw(method, path, body).await?)
    }

    async fn call_empty(&self, method: Method, path: &str, body: Option<Value>) -> Result<()> {
        check_success(&self.raw(method, path, body).await?)
    }
}

/// `Ok` for a 2xx answer, the typed error otherwise.
fn check_success(raw: &RawResponse) -> Result<()> {
    if (200..300).contains(&raw.status) {
        return Ok(());
    }
    let retry_after = raw
        .headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Err(error_from_response(raw.status, &raw.body, retry_after))
}

fn decode_success<T: DeserializeOwned>(raw: &RawResponse) -> Result<T> {
    check_success(raw)?;
    serde_json::from_slice(&raw.body).map_err(|e| ClientError::decode(e, &raw.body))
}

/// A query string built from the parameters that are present.
#[derive(Default)]
struct Query(String);

impl Query {
    fn push(&mut self, key: &str, value: Option<impl ToString>) {
        if let Some(value) = value {
            self.0.push(if self.0.is_empty() { '?' } else { '&' });
            self.0.push_str(key);
            self.0.push('=');
            self.0.push_str(&encode(&value.to_string()));
        }
    }

    fn finish(self) -> String {
        self.0
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for path segments and query
/// values).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_pass_and_the_rest_is_percent_encoded() {
        assert_eq!(encode("r_7Kq-1.x~"), "r_7Kq-1.x~");
        assert_eq!(encode("a b/é?&"), "a%20b%2F%C3%A9%3F%26");
    }

    #[test]
    fn absent_query_parameters_are_left_out() {
        let mut q = Query::default();
        q.push("before", None::<u64>);
        q.push("after", Some(5u64));
        q.push("q", Some("gen eral"));
        assert_eq!(q.finish(), "?after=5&q=gen%20eral");
        assert_eq!(Query::default().finish(), "");
    }

    #[test]
    fn the_base_url_loses_its_trailing_slash() {
        let c = HttpClient::new("http://127.0.0.1:1/");
        assert_eq!(c.base_url(), "http://127.0.0.1:1");
        assert_eq!(c.with_token("t").token(), Some("t"));
        assert_eq!(c.token(), None);
    }
}
