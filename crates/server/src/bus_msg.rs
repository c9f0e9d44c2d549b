//! What travels on the bus, and its encoding: events carry their already-serialized `msg` frame
//! so no node serializes an event twice; control messages are small JSON objects.

use bytes::{BufMut, Bytes, BytesMut};
use confab_protocol::{Room, UserRef};
use serde::{Deserialize, Serialize};

/// The bus topic of a room's events and typing notices.
pub fn room_topic(room: &str) -> String {
    format!("room.{room}")
}

/// The bus topic of messages for one user's sessions.
pub fn user_topic(user: &str) -> String {
    format!("user.{user}")
}

/// The bus topic of presence changes, which every node hears.
pub const PRESENCE_TOPIC: &str = "presence";

/// A message on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum BusMsg {
    /// A committed event and its `msg` frame.
    Event {
        room: String,
        seq: u64,
        frame: String,
    },
    /// Anything else.
    Control(Control),
}

/// Control messages between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Control {
    /// The user is now a member of `room`: subscribe their sessions from the `join` at `seq`.
    Subscribed { user: String, room: Room, seq: u64 },
    /// The user is no longer a member: deliver through their `leave` at `seq`, then `removed`.
    Removed {
        user: String,
        room: String,
        seq: u64,
    },
    /// The user's read marker moved; `session` already knows.
    Read {
        user: String,
        room: String,
        seq: u64,
        session: String,
    },
    /// A token was revoked: close its sessions.
    Revoked { user: String, token_hash: String },
    /// Someone is typing in a room.
    Typing { room: String, user: UserRef },
    /// A user came online or went offline; `rooms` are their rooms small enough for presence.
    Presence {
        user: UserRef,
        online: bool,
        rooms: Vec<String>,
    },
}

impl BusMsg {
    /// The wire form: `E<seq> <room> <frame>` or `C<json>`.
    pub fn encode(&self) -> Bytes {
        match self {
            BusMsg::Event { room, seq, frame } => {
                let mut b = BytesMut::with_capacity(frame.len() + room.len() + 24);
                b.put_u8(b'E');
                b.put_slice(seq.to_string().as_bytes());
                b.put_u8(b' ');
                b.put_slice(room.as_bytes());
                b.put_u8(b' ');
                b.put_slice(frame.as_bytes());
                b.freeze()
            }
            BusMsg::Control(c) => {
                let mut v = b"C".to_vec();
                // Control holds only strings, numbers and lists: serializing cannot fail.
                v.extend(serde_json::to_vec(c).unwrap_or_default());
                Bytes::from(v)
            }
        }
    }

    /// Parses the wire form; `None` for anything malformed (logged and dropped by the caller).
    pub fn decode(payload: &[u8]) -> Option<BusMsg> {
        let (&tag, rest) = payload.split_first()?;
        match tag {
            b'E' => {
                let text = std::str::from_utf8(rest).ok()?;
                let (seq, rest) = text.split_once(' ')?;
                let (room, frame) = rest.split_once(' ')?;
                Some(BusMsg::Event {
                    room: room.to_owned(),
                    seq: seq.parse().ok()?,
                    frame: frame.to_owned(),
                })
            }
            b'C' => serde_json::from_slice(rest).ok().map(BusMsg::Control),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_controls_survive_the_round_trip() {
        let e = BusMsg::Event {
            room: "r_1".into(),
            seq: 42,
            frame: r#"{"type":"msg","body":"a b"}"#.into(),
        };
        assert_eq!(BusMsg::decode(&e.encode()), Some(e));
        let c = BusMsg::Control(Control::Revoked {
            user: "u".into(),
            token_hash: "h".into(),
        });
        assert_eq!(BusMsg::decode(&c.encode()), Some(c));
        assert_eq!(BusMsg::decode(b"Exx r {}"), None);
        assert_eq!(BusMsg::decode(b""), None);
    }
}
