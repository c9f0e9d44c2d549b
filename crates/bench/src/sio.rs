//! The Socket.IO adapter: Engine.IO v4 over a WebSocket, the default namespace, and the events
//! of benches/peers/socketio/server.js (`join` and `send` with acks, `msg` broadcasts).
//!
//! Packets are text frames: Engine.IO type digit, then for messages (`4`) the Socket.IO type
//! digit (`0` connect, `1` disconnect, `2` event, `3` ack, `4` connect error), an optional ack
//! id, and a JSON array. The server pings (`2`) and the client must answer (`3`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::link::{Closed, Incoming};
use crate::user::bare_event;

type Ws = WebSocketStream<TcpStream>;

/// The writing half of a Socket.IO connection.
pub struct SioTx {
    sink: SplitSink<Ws, Message>,
    next_ack: u64,
}

/// The reading half of a Socket.IO connection.
pub struct SioRx {
    stream: SplitStream<Ws>,
}

/// The `msg` event's payload (and an ack's): the fields the bench reads.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JoinReply {
    rooms: std::collections::BTreeMap<String, u64>,
}

/// Opens a Socket.IO session as `name`, joins `rooms` and returns their current last seqs.
pub async fn open(
    base_url: &str,
    name: &str,
    rooms: &[String],
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<(SioTx, SioRx, Vec<(String, u64)>), String> {
    let work = async {
        let hostport = base_url
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .trim_end_matches('/');
        let addr: SocketAddr = tokio::net::lookup_host(hostport)
            .await
            .map_err(|e| format!("resolve {hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("{hostport} resolves to nothing"))?;
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| format!("transport: {e}"))?;
        if let Some(ip) = bind {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("transport: bind {ip}: {e}"))?;
        }
        let tcp = socket
            .connect(addr)
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let url = format!("ws://{hostport}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            url,
            tcp,
            Some(confab_client::connect::small_config()),
        )
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
        let (sink, stream) = ws.split();
        let mut tx = SioTx { sink, next_ack: 0 };
        let mut rx = SioRx { stream };
        rx.expect(&mut tx, "0").await?;
        tx.text(format!("40{}", json!({ "name": name }))).await?;
        let connected = rx.expect(&mut tx, "4").await?;
        if !connected.starts_with("40") {
            return Err(format!("connect refused: {connected}"));
        }
        let id = tx.next_ack;
        tx.next_ack += 1;
        tx.text(format!("42{id}{}", json!(["join", { "rooms": rooms }])))
            .await?;
        let prefix = format!("43{id}");
        let reply = rx.expect(&mut tx, &prefix).await?;
        let (join,): (JoinReply,) = serde_json::from_str(&reply[prefix.len()..])
            .map_err(|e| format!("join reply: {e}: {reply}"))?;
        Ok((tx, rx, join.rooms.into_iter().collect()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| "timeout: socket.io handshake".to_string())?
}

impl SioTx {
    async fn text(&mut self, text: String) -> Result<(), String> {
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|e| format!("transport: {e}"))
    }

    /// Emits `send` with an ack id; the ack carries `client_id`.
    pub async fn send(&mut self, room: &str, client_id: &str, body: &str) -> Result<(), String> {
        let id = self.next_ack;
        self.next_ack += 1;
        let payload = json!(["send", {"room": room, "client_id": client_id, "body": body}]);
        self.text(format!("42{id}{payload}")).await
    }

    /// Answers the server's ping.
    pub async fn pong(&mut self) -> Result<(), String> {
        self.text("3".into()).await
    }

    /// Closes the WebSocket.
    pub async fn close(&mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
    }
}

impl SioRx {
    /// Reads until a text packet starting with `prefix`, answering pings on the way.
    async fn expect(&mut self, tx: &mut SioTx, prefix: &str) -> Result<String, String> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t == "2" {
                        tx.pong().await?;
                    } else if t.starts_with(prefix) {
                        return Ok(t.to_string());
                    } else if t.starts_with("44") {
                        return Err(format!("connect error: {t}"));
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    return Err(format!("closed during handshake: {f:?}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("transport: {e}")),
                None => return Err("connection ended during handshake".into()),
            }
        }
    }

    /// The next packet the bench cares about. Cancel-safe.
    pub async fn next(&mut self) -> Result<Incoming, Closed> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Ok(parse(t.as_str())),
                Some(Ok(Message::Close(f))) => {
                    return Err(Closed {
                        code: f.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                        reason: f.map(|f| f.reason.to_string()).unwrap_or_default(),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Err(Closed {
                        code: 1006,
                        reason: e.to_string(),
                    });
                }
                None => {
                    return Err(Closed {
                        code: 1006,
                        reason: "connection ended".into(),
                    });
                }
            }
        }
    }
}

/// Decodes one Engine.IO text packet.
fn parse(t: &str) -> Incoming {
    if t == "2" {
        return Incoming::Ping;
    }
    if let Some(rest) = t.strip_prefix("42") {
        return match serde_json::from_str::<(String, Payload)>(rest) {
            Ok((name, p)) if name == "msg" => match (p.room, p.seq) {
                (Some(room), Some(seq)) => Incoming::Msg(bare_event(room, seq, p.body)),
                _ => Incoming::Undecodable(format!("msg without room/seq: {rest}")),
            },
            Ok(_) => Incoming::Other,
            Err(e) => Incoming::Undecodable(format!("{e}")),
        };
    }
    if let Some(rest) = t.strip_prefix("43") {
        let json_at = rest.find('[').unwrap_or(rest.len());
        return match serde_json::from_str::<(Payload,)>(&rest[json_at..]) {
            Ok((p,)) => match (p.error, p.room, p.seq) {
                (Some(code), _, _) => Incoming::Error {
                    reference: p.client_id,
                    code,
                    retry_after_ms: None,
                },
                (None, Some(room), Some(seq)) => Incoming::Ack {
                    client_id: p.client_id,
                    room,
                    seq,
                },
                _ => Incoming::Other,
            },
            Err(e) => Incoming::Undecodable(format!("{e}")),
        };
    }
    Incoming::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_and_acks_are_decoded() {
        match parse(r#"42["msg",{"room":"r1","seq":7,"body":"hi","client_id":"c"}]"#) {
            Incoming::Msg(ev) => {
                assert_eq!(
                    (ev.room.as_str(), ev.seq, ev.body.as_deref()),
                    ("r1", 7, Some("hi"))
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(r#"4312[{"room":"r1","seq":8,"client_id":"s1-3"}]"#) {
            Incoming::Ack { client_id, seq, .. } => {
                assert_eq!((client_id.as_deref(), seq), (Some("s1-3"), 8))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(r#"433[{"error":"forbidden","client_id":"x"}]"#),
            Incoming::Error { .. }
        ));
        assert!(matches!(parse("2"), Incoming::Ping));
        assert!(matches!(parse("3"), Incoming::Other));
    }
}
