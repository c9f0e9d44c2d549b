//! Outgoing frames (built as JSON values, since the protocol's `ClientFrame` is parse-only),
//! the typed helpers of `WsClient` that send them, and small readers of server frames.

use std::collections::BTreeMap;
use std::time::Duration;

use confab_protocol::ServerFrame;
use serde_json::{Map, Value, json};

use crate::error::{ClientError, Result};
use crate::ws::WsClient;

/// Builders of client frames, without `ref` (see [`with_ref`]).
pub mod build {
    use super::*;

    /// `{"type":"send","room","client_id","body"}`
    pub fn send(room: &str, client_id: &str, body: &str) -> Value {
        json!({"type": "send", "room": room, "client_id": client_id, "body": body})
    }

    /// `{"type":"edit","room","target","body"}`
    pub fn edit(room: &str, target: u64, body: &str) -> Value {
        json!({"type": "edit", "room": room, "target": target, "body": body})
    }

    /// `{"type":"delete","room","target"}`
    pub fn delete(room: &str, target: u64) -> Value {
        json!({"type": "delete", "room": room, "target": target})
    }

    /// `{"type":"react","room","target","body"}`
    pub fn react(room: &str, target: u64, emoji: &str) -> Value {
        json!({"type": "react", "room": room, "target": target, "body": emoji})
    }

    /// `{"type":"sync","rooms":{...}}`
    pub fn sync(rooms: &BTreeMap<String, u64>) -> Value {
        json!({"type": "sync", "rooms": rooms})
    }

    /// `{"type":"history","room","before"?,"after"?,"limit"?}`
    pub fn history(
        room: &str,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u64>,
    ) -> Value {
        let mut map = Map::new();
        map.insert("type".into(), "history".into());
        map.insert("room".into(), room.into());
        for (key, value) in [("before", before), ("after", after), ("limit", limit)] {
            if let Some(v) = value {
                map.insert(key.into(), v.into());
            }
        }
        Value::Object(map)
    }

    /// `{"type":"join","room"}`
    pub fn join(room: &str) -> Value {
        json!({"type": "join", "room": room})
    }

    /// `{"type":"leave","room"}`
    pub fn leave(room: &str) -> Value {
        json!({"type": "leave", "room": room})
    }

    /// `{"type":"typing","room"}`
    pub fn typing(room: &str) -> Value {
        json!({"type": "typing", "room": room})
    }

    /// `{"type":"read","room","seq"}`
    pub fn read(room: &str, seq: u64) -> Value {
        json!({"type": "read", "room": room, "seq": seq})
    }

    /// `{"type":"presence","room"}`
    pub fn presence(room: &str) -> Value {
        json!({"type": "presence", "room": room})
    }

    /// `{"type":"ping"}`
    pub fn ping() -> Value {
        json!({"type": "ping"})
    }
}

/// `frame` with `"ref"` set to `reference` (left alone when `None` or not an object).
pub fn with_ref(mut frame: Value, reference: Option<Value>) -> Value {
    if let (Some(r), Some(map)) = (reference, frame.as_object_mut()) {
        map.insert("ref".into(), r);
    }
    frame
}

/// Parses a server frame. `msg` frames, nearly all of what a busy session reads, skip serde's
/// buffering of internally tagged enums: the tag is read on its own, then the event directly.
pub fn decode(text: &str) -> serde_json::Result<ServerFrame> {
    #[derive(serde::Deserialize)]
    struct Tag<'a> {
        #[serde(rename = "type", borrow)]
        kind: std::borrow::Cow<'a, str>,
    }
    match serde_json::from_str::<Tag<'_>>(text) {
        Ok(tag) if tag.kind == "msg" => serde_json::from_str(text).map(ServerFrame::Msg),
        _ => serde_json::from_str(text),
    }
}

/// The `ref` a server frame carries, if any.
pub fn frame_ref(frame: &ServerFrame) -> Option<&Value> {
    match frame {
        ServerFrame::Ack { reference, .. }
        | ServerFrame::Synced { reference, .. }
        | ServerFrame::History { reference, .. }
        | ServerFrame::Ok { reference }
        | ServerFrame::Pong { reference }
        | ServerFrame::Error { reference, .. } => reference.as_ref(),
        ServerFrame::Presence(p) => p.reference.as_ref(),
        _ => None,
    }
}

/// The frame's `type` as on the wire.
pub fn frame_type(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Ready { .. } => "ready",
        ServerFrame::Ack { .. } => "ack",
        ServerFrame::Msg(_) => "msg",
        ServerFrame::Synced { .. } => "synced",
        ServerFrame::History { .. } => "history",
        ServerFrame::Ok { .. } => "ok",
        ServerFrame::Typing { .. } => "typing",
        ServerFrame::Read { .. } => "read",
        ServerFrame::Presence(_) => "presence",
        ServerFrame::Room { .. } => "room",
        ServerFrame::Removed { .. } => "removed",
        ServerFrame::Reconnect { .. } => "reconnect",
        ServerFrame::Pong { .. } => "pong",
        ServerFrame::Error { .. } => "error",
    }
}

/// An `ack`: the event a `send`, `edit`, `delete` or `react` committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The room.
    pub room: String,
    /// The committed event's seq.
    pub seq: u64,
    /// The committed event's id.
    pub id: String,
    /// The commit time, ms since the Unix epoch.
    pub ts: i64,
    /// The `client_id` of a `send`.
    pub client_id: Option<String>,
}

impl Ack {
    /// Converts an `ack` frame; anything else is an `Unexpected` error.
    pub fn from_frame(frame: ServerFrame) -> Result<Ack> {
        match frame {
            ServerFrame::Ack {
                room,
                seq,
                id,
                ts,
                client_id,
                ..
            } => Ok(Ack {
                room,
                seq,
                id,
                ts,
                client_id,
            }),
            other => Err(ClientError::Unexpected(format!(
                "expected `ack`, got {}",
                other.to_json()
            ))),
        }
    }
}

/// Typed helpers: each sends one frame with an optional `ref` and waits for nothing.
impl WsClient {
    /// Sends `send`.
    pub async fn send(
        &mut self,
        room: &str,
        client_id: &str,
        body: &str,
        reference: Option<Value>,
    ) -> Result<()> {
        self.send_frame(with_ref(build::send(room, client_id, body), reference))
            .await
    }

    /// Sends `edit`.
    pub async fn edit(
        &mut self,
        room: &str,
        target: u64,
        body: &str,
        reference: Option<Value>,
    ) -> Result<()> {
        self.send_frame(with_ref(build::edit(room, target, body), reference))
            .await
    }

    /// Sends `delete`.
    pub async fn delete(
        &mut self,
        room: &str,
        target: u64,
        reference: Option<Value>,
    ) -> Result<()> {
        self.send_frame(with_ref(build::delete(room, target), reference))
            .await
    }

    /// Sends `react`.
    pub async fn react(
        &mut self,
        room: &str,
        target: u64,
        emoji: &str,
        reference: Option<Value>,
    ) -> Result<()> {
        self.send_frame(with_ref(build::react(room, target, emoji), reference))
            .await
    }

    /// Sends `sync`.
    pub async fn sync(
        &mut self,
        rooms: &BTreeMap<String, u64>,
        reference: Option<Value>,
    ) -> Result<()> {
        self.send_frame(with_ref(build::sync(rooms), reference))
            .await
    }

    /// Sends `history`.
    pub async fn history(
        &mut self,
        room: &str,
        before: Option<u64>,
        after: Option<u64>,
        limit: Option<u64>,
        reference: Option<Value>,
    ) -> Result<()> {
        let frame = build::history(room, before, after, limit);
        self.send_frame(with_ref(frame, reference)).await
    }

    /// Sends `join`.
    pub async fn join(&mut self, room: &str, reference: Option<Value>) -> Result<()> {
        self.send_frame(with_ref(build::join(room), reference))
            .await
    }

    /// Sends `leave`.
    pub async fn leave(&mut self, room: &str, reference: Option<Value>) -> Result<()> {
        self.send_frame(with_ref(build::leave(room), reference))
            .await
    }

    /// Sends `typing`.
    pub async fn typing(&mut self, room: &str) -> Result<()> {
        self.send_frame(build::typing(room)).await
    }

    /// Sends `read`.
    pub async fn read(&mut self, room: &str, seq: u64) -> Result<()> {
        self.send_frame(build::read(room, seq)).await
    }

    /// Sends `presence`.
    pub async fn presence(&mut self, room: &str, reference: Option<Value>) -> Result<()> {
        self.send_frame(with_ref(build::presence(room), reference))
            .await
    }

    /// Sends `ping`.
    pub async fn ping(&mut self, reference: Option<Value>) -> Result<()> {
        self.send_frame(with_ref(build::ping(), reference)).await
    }

    /// Sends `send` and waits for its `ack` (an `error` reply is an `Api` error).
    pub async fn send_wait(
        &mut self,
        room: &str,
        client_id: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<Ack> {
        let reply = self
            .request(build::send(room, client_id, body), timeout)
            .await?;
        Ack::from_frame(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::ClientRequest;

    /// Every builder's output is accepted by the server's own strict parser.
    #[test]
    fn built_frames_parse_as_client_requests() {
        let rooms = BTreeMap::from([("r".to_string(), 3u64)]);
        let frames = [
            build::send("r", "c1", "hi"),
            build::edit("r", 1, "hey"),
            build::delete("r", 1),
            build::react("r", 1, "👍"),
            build::sync(&rooms),
            build::history("r", Some(9), None, Some(10)),
            build::history("r", None, None, None),
            build::join("r"),
            build::leave("r"),
            build::typing("r"),
            build::read("r", 4),
            build::presence("r"),
            build::ping(),
            crate::connect::auth_frame("t", Some(&rooms)),
        ];
        for frame in frames {
            let text = with_ref(frame, Some(json!("x"))).to_string();
            let parsed = ClientRequest::parse(&text)
                .unwrap_or_else(|e| panic!("{text} refused: {}", e.message));
            assert_eq!(parsed.reference, Some(json!("x")));
        }
    }

    #[test]
    fn decode_reads_msg_frames_like_serde_does() {
        let cases = [
            r#"{"type":"msg","room":"r","seq":3,"id":"e","kind":"text","from":{"id":"u","name":"a"},"body":"hi","ts":1,"client_id":"c"}"#,
            r#"{"room":"r","seq":3,"id":"e","kind":"text","from":{"id":"u","name":"a"},"ts":1,"type":"msg"}"#,
            r#"{"type":"ack","ref":"q1","room":"r","seq":5,"id":"e","ts":1,"client_id":"c"}"#,
            r#"{"type":"pong"}"#,
        ];
        for text in cases {
            let slow: ServerFrame = serde_json::from_str(text).expect("serde");
            assert_eq!(decode(text).expect("decode"), slow, "{text}");
        }
        for bad in [
            r#"{"type":"msg","room":"r"}"#,
            r#"{"type":"nope"}"#,
            r#"{"room":"r"}"#,
            "[1]",
            "",
        ] {
            assert!(decode(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn refs_are_read_from_replies_only() {
        let ok: ServerFrame = serde_json::from_str(r#"{"type":"ok","ref":7}"#).expect("ok");
        assert_eq!(frame_ref(&ok), Some(&json!(7)));
        assert_eq!(frame_type(&ok), "ok");
        let typing: ServerFrame =
            serde_json::from_str(r#"{"type":"typing","room":"r","user":{"id":"u","name":"a"}}"#)
                .expect("typing");
        assert_eq!(frame_ref(&typing), None);
    }

    #[test]
    fn an_ack_frame_converts_and_other_frames_do_not() {
        let ack: ServerFrame = serde_json::from_str(
            r#"{"type":"ack","ref":"q1","room":"r","seq":5,"id":"e","ts":1,"client_id":"c"}"#,
        )
        .expect("ack");
        let ack = Ack::from_frame(ack).expect("converts");
        assert_eq!((ack.seq, ack.client_id.as_deref()), (5, Some("c")));
        let pong: ServerFrame = serde_json::from_str(r#"{"type":"pong"}"#).expect("pong");
        assert!(Ack::from_frame(pong).is_err());
    }
}
