//! WebSocket frames: what clients send (parsed strictly at the edge) and what the server sends.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codes::ErrorCode;
use crate::objects::{Event, Limits, Room, UserRef};

/// Longest `ref` string the server accepts and echoes.
pub const MAX_REF_BYTES: usize = 64;

/// A client frame together with the `ref` it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    pub reference: Option<Value>,
    pub frame: ClientFrame,
}

/// Why a client frame was refused; always answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// The frame's `ref`, when it could be read, so the error can carry it.
    pub reference: Option<Value>,
    pub message: String,
}

/// Every frame a client may send.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Auth(Auth),
    Send(Send),
    Edit(Edit),
    Delete(Delete),
    React(React),
    Sync(SyncRequest),
    History(HistoryRequest),
    Join(RoomOnly),
    Leave(RoomOnly),
    Typing(RoomOnly),
    Read(Read),
    Presence(RoomOnly),
    Ping(Empty),
}

/// `{"type":"auth","token","sync"?}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub token: String,
    #[serde(default)]
    pub sync: Option<BTreeMap<String, u64>>,
}

/// `{"type":"send","room","client_id","body"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    pub room: String,
    pub client_id: String,
    pub body: String,
}

/// `{"type":"edit","room","target","body"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub room: String,
    pub target: u64,
    pub body: String,
}

/// `{"type":"delete","room","target"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delete {
    pub room: String,
    pub target: u64,
}

/// `{"type":"react","room","target","body"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct React {
    pub room: String,
    pub target: u64,
    pub body: String,
}

/// `{"type":"sync","rooms":{...}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    pub rooms: BTreeMap<String, u64>,
}

/// `{"type":"history","room","before"?,"after"?,"limit"?}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    pub room: String,
    #[serde(default)]
    pub before: Option<u64>,
    #[serde(default)]
    pub after: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Frames that name only a room: join, leave, typing, presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomOnly {
    pub room: String,
}

/// `{"type":"read","room","seq"}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Read {
    pub room: String,
    pub seq: u64,
}

/// A frame with no fields but its type (ping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl ClientRequest {
    /// Parses one text frame: a JSON object with a known `type`, its fields and nothing else.
    pub fn parse(text: &str) -> Result<ClientRequest, FrameError> {
        let fail = |reference: Option<Value>, message: String| FrameError { reference, message };
        let mut map: Map<String, Value> = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(fail(None, "a frame must be a JSON object".into())),
            Err(e) => return Err(fail(None, format!("invalid JSON: {e}"))),
        };
        let reference = match map.remove("ref") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() <= MAX_REF_BYTES => Some(Value::String(s)),
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(Value::Number(n)),
            Some(_) => {
                let msg = format!(
                    "`ref` must be a string of at most {MAX_REF_BYTES} bytes or an integer"
                );
                return Err(fail(None, msg));
            }
        };
        let kind = match map.remove("type") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(fail(reference, "`type` must be a string".into())),
            None => return Err(fail(reference, "missing field `type`".into())),
        };
        let body = Value::Object(map);
        let frame = match kind.as_str() {
            "auth" => fields(body).map(ClientFrame::Auth),
            "send" => fields(body).map(ClientFrame::Send),
            "edit" => fields(body).map(ClientFrame::Edit),
            "delete" => fields(body).map(ClientFrame::Delete),
            "react" => fields(body).map(ClientFrame::React),
            "sync" => fields(body).map(ClientFrame::Sync),
            "history" => fields(body).map(ClientFrame::History),
            "join" => fields(body).map(ClientFrame::Join),
            "leave" => fields(body).map(ClientFrame::Leave),
            "typing" => fields(body).map(ClientFrame::Typing),
            "read" => fields(body).map(ClientFrame::Read),
            "presence" => fields(body).map(ClientFrame::Presence),
            "ping" => fields(body).map(ClientFrame::Ping),
            other => Err(format!("unknown type `{}`", truncate(other, 64))),
        };
        match frame {
            Ok(frame) => Ok(ClientRequest { reference, frame }),
            Err(message) => Err(fail(reference, message)),
        }
    }
}

fn fields<T: DeserializeOwned>(body: Value) -> Result<T, String> {
    serde_json::from_value(body).map_err(|e| e.to_string())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Every frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Ready {
        session_id: String,
        user: UserRef,
        rooms: Vec<Room>,
        heartbeat_ms: u64,
        limits: Limits,
    },
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        room: String,
        seq: u64,
        id: String,
        ts: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Msg(Event),
    Synced {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        rooms: BTreeMap<String, SyncedRoom>,
    },
    History {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        room: String,
        events: Vec<Event>,
        has_more: bool,
    },
    Ok {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    Typing {
        room: String,
        user: UserRef,
    },
    Read {
        room: String,
        seq: u64,
    },
    Presence(Presence),
    Room {
        room: Room,
    },
    Removed {
        room: String,
    },
    Reconnect {
        after_ms: u64,
    },
    Pong {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
    },
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<Value>,
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// One room's line in `synced`: its newest seq and whether everything missed was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SyncedRoom {
    Done { last_seq: u64, complete: bool },
    Failed { error: ErrorCode },
}

/// A `presence` frame: either the reply listing a room's online members, or an unasked change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl ServerFrame {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: keys are strings, no maps with other keys.
        serde_json::to_string(self).unwrap_or_else(|_| {
            String::from(r#"{"type":"error","code":"internal","message":"encoding failed"}"#)
        })
    }

    /// An error frame.
    pub fn error(reference: Option<Value>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            reference,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_frame_parses_with_its_ref() {
        let r = ClientRequest::parse(
            r#"{"type":"send","ref":7,"room":"r","client_id":"c","body":"hi"}"#,
        )
        .expect("parses");
        assert_eq!(r.reference, Some(Value::from(7)));
        assert!(matches!(r.frame, ClientFrame::Send(Send { ref body, .. }) if body == "hi"));
    }

    #[test]
    fn an_unknown_field_is_refused_but_the_ref_is_kept() {
        let e = ClientRequest::parse(r#"{"type":"ping","ref":"a","x":1}"#).expect_err("refused");
        assert_eq!(e.reference, Some(Value::from("a")));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn huge_numbers_and_deep_nesting_are_refused() {
        assert!(ClientRequest::parse(r#"{"type":"read","room":"r","seq":1e400}"#).is_err());
        assert!(
            ClientRequest::parse(r#"{"type":"read","room":"r","seq":184467440737095516160}"#)
                .is_err()
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(ClientRequest::parse(&deep).is_err());
    }

    #[test]
    fn a_msg_frame_is_the_event_with_a_type() {
        let ev = Event {
            room: "r".into(),
            seq: 1,
            id: "e".into(),
            kind: crate::EventKind::Text,
            from: UserRef {
                id: "u".into(),
                name: "ada".into(),
            },
            by: None,
            body: Some("hi".into()),
            target: None,
            deleted: false,
            ts: 5,
            client_id: None,
        };
        let json = ServerFrame::Msg(ev).to_json();
        assert_eq!(
            json,
            r#"{"type":"msg","room":"r","seq":1,"id":"e","kind":"text","from":{"id":"u","name":"ada"},"body":"hi","ts":5}"#
        );
    }
}
