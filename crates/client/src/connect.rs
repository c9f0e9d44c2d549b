//! Opening WebSocket sessions: the upgrade request (bearer header, `Origin`), the `auth` frame,
//! and the `ready` frame that completes a handshake.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use confab_protocol::{Limits, Room, ServerFrame, UserRef};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Error as WsError};

use crate::error::{ClientError, Result, parse_error_body, snippet};
use crate::ws::WsClient;

/// How a session authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectAuth {
    /// `Authorization: Bearer <token>` on the upgrade request.
    Bearer(String),
    /// A first `auth` frame, optionally with the last seqs seen per room (resuming).
    Frame {
        /// The session token.
        token: String,
        /// Room id → last seq seen; the server replays what was missed after `ready`.
        sync: Option<BTreeMap<String, u64>>,
    },
}

/// Options of a WebSocket connection; the defaults suit thousands of connections.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// An `Origin` header to send on the upgrade, if any.
    pub origin: Option<String>,
    /// Time allowed for TCP connect + upgrade, and again for `ready` after it.
    pub timeout: Duration,
    /// A local address to bind before connecting (spreads benches over 127.0.0.x).
    pub bind: Option<IpAddr>,
    /// tungstenite's buffer and size limits.
    pub config: WebSocketConfig,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            origin: None,
            timeout: Duration::from_secs(10),
            bind: None,
            config: small_config(),
        }
    }
}

impl ConnectOptions {
    /// These options with an `Origin` header.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// These options with a local bind address.
    pub fn with_bind(mut self, bind: IpAddr) -> Self {
        self.bind = Some(bind);
        self
    }

    /// These options with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Small buffers (tungstenite's defaults cost ~128 KiB per connection up front) and generous
/// incoming limits (a `history` reply of 100 long events can exceed 1 MiB).
pub fn small_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        // A single outgoing frame must fit: room for oversized-frame tests.
        .max_write_buffer_size(8 << 20)
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
}

/// The `ready` frame that completes a session's handshake.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// The server's id for this session.
    pub session_id: String,
    /// The authenticated user.
    pub user: UserRef,
    /// The user's rooms, each with `read_seq`; the delivery guarantee starts at their `last_seq`.
    pub rooms: Vec<Room>,
    /// How often the server pings.
    pub heartbeat_ms: u64,
    /// The session's limits.
    pub limits: Limits,
}

impl Ready {
    /// Converts a `ready` frame; any other frame is given back.
    pub fn from_frame(frame: ServerFrame) -> Result<Ready, Box<ServerFrame>> {
        match frame {
            ServerFrame::Ready {
                session_id,
                user,
                rooms,
                heartbeat_ms,
                limits,
            } => Ok(Ready {
                session_id,
                user,
                rooms,
                heartbeat_ms,
                limits,
            }),
            other => Err(Box::new(other)),
        }
    }
}

/// The `/v1/ws` URL for a base URL: `http` becomes `ws`, `https` becomes `wss`.
pub fn ws_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        base.to_string()
    };
    if base.ends_with("/v1/ws") {
        base
    } else {
        format!("{base}/v1/ws")
    }
}

/// The `auth` frame.
pub fn auth_frame(token: &str, sync: Option<&BTreeMap<String, u64>>) -> Value {
    match sync {
        Some(sync) => json!({"type": "auth", "token": token, "sync": sync}),
        None => json!({"type": "auth", "token": token}),
    }
}

impl WsClient {
    /// Connects, authenticates and waits for `ready`, with default options.
    pub async fn connect(base_url: &str, auth: ConnectAuth) -> Result<(WsClient, Ready)> {
        Self::connect_with(base_url, auth, &ConnectOptions::default()).await
    }

    /// Connects, authenticates and waits for `ready`. An `error` frame instead of `ready` is
    /// an `Api` error; a refused upgrade is `UpgradeRefused` with the HTTP status.
    pub async fn connect_with(
        base_url: &str,
        auth: ConnectAuth,
        options: &ConnectOptions,
    ) -> Result<(WsClient, Ready)> {
        let mut ws = match &auth {
            ConnectAuth::Bearer(token) => Self::open(base_url, Some(token), options).await?,
            ConnectAuth::Frame { token, sync } => {
                let mut ws = Self::open(base_url, None, options).await?;
                ws.send_frame(auth_frame(token, sync.as_ref())).await?;
                ws
            }
        };
        let frame = ws.next_frame(options.timeout).await?;
        match Ready::from_frame(frame).map_err(|f| *f) {
            Ok(ready) => Ok((ws, ready)),
            Err(ServerFrame::Error {
                code,
                message,
                retry_after_ms,
                ..
            }) => Err(ClientError::Api {
                status: code.http_status(),
                code,
                message,
                retry_after_ms,
            }),
            Err(other) => Err(ClientError::Unexpected(format!(
                "expected `ready`, got {}",
                other.to_json()
            ))),
        }
    }

    /// Opens a connection (upgrade only, with an optional bearer header) and waits for nothing:
    /// for tests of the handshake itself.
    pub async fn open(
        base_url: &str,
        bearer: Option<&str>,
        options: &ConnectOptions,
    ) -> Result<WsClient> {
        let url = ws_url(base_url);
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(ClientError::transport)?;
        let headers = request.headers_mut();
        if let Some(token) = bearer {
            headers.insert("authorization", header(&format!("Bearer {token}"))?);
        }
        if let Some(origin) = &options.origin {
            headers.insert("origin", header(origin)?);
        }
        let uri = request.uri();
        if uri.scheme_str() != Some("ws") {
            return Err(ClientError::Unexpected(format!(
                "only ws:// (plain HTTP) is supported, not {url}"
            )));
        }
        let host = uri.host().unwrap_or_default().to_string();
        let port = uri.port_u16().unwrap_or(80);
        let handshake = async {
            let tcp = tcp_connect(&host, port, options.bind).await?;
            tokio_tungstenite::client_async_with_config(request, tcp, Some(options.config))
                .await
                .map_err(upgrade_error)
        };
        let (stream, _response) = tokio::time::timeout(options.timeout, handshake)
            .await
            .map_err(|_| ClientError::Timeout("the WebSocket upgrade"))??;
        Ok(WsClient::from_stream(stream))
    }
}

fn header(value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value).map_err(ClientError::transport)
}

async fn tcp_connect(host: &str, port: u16, bind: Option<IpAddr>) -> Result<TcpStream> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(ClientError::transport)?
        .collect();
    let mut last = None;
    for addr in addrs {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        };
        let attempt = async {
            let socket = socket?;
            if let Some(ip) = bind {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            let stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        match attempt.await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => ClientError::transport(e),
        None => ClientError::Unexpected(format!("{host}:{port} resolves to no address")),
    })
}

fn upgrade_error(e: WsError) -> ClientError {
    match e {
        tungstenite::Error::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            ClientError::UpgradeRefused {
                status: response.status().as_u16(),
                code: parse_error_body(body).map(|b| b.code),
                body: snippet(body),
            }
        }
        other => ClientError::transport(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_base_urls_become_the_ws_endpoint() {
        assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/v1/ws");
        assert_eq!(
            ws_url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/v1/ws"
        );
        assert_eq!(ws_url("https://x.example"), "wss://x.example/v1/ws");
        assert_eq!(ws_url("ws://127.0.0.1:1/v1/ws"), "ws://127.0.0.1:1/v1/ws");
    }

    #[test]
    fn the_auth_frame_carries_sync_only_when_given() {
        let plain = auth_frame("t", None);
        assert_eq!(plain["type"], "auth");
        assert_eq!(plain["token"], "t");
        assert!(plain.get("sync").is_none());
        let sync = BTreeMap::from([("r1".to_string(), 4u64)]);
        assert_eq!(auth_frame("t", Some(&sync))["sync"]["r1"], 4);
    }

    #[test]
    fn the_default_config_is_small_but_valid() {
        let c = small_config();
        assert!(c.read_buffer_size <= 8 * 1024);
        assert!(c.max_write_buffer_size > c.write_buffer_size);
    }
}
