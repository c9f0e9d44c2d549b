//! The objects that appear inside frames and HTTP bodies: events, rooms, users, limits.

use serde::{Deserialize, Serialize};

/// A user as embedded in events and replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    pub id: String,
    pub name: String,
}

/// Whether anyone may find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    /// The visibility as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
        }
    }

    /// Parses a stored visibility.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Visibility::Public),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// The kinds of event in a room's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Text,
    Edit,
    Delete,
    React,
    Join,
    Leave,
}

impl EventKind {
    /// The kind as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Text => "text",
            EventKind::Edit => "edit",
            EventKind::Delete => "delete",
            EventKind::React => "react",
            EventKind::Join => "join",
            EventKind::Leave => "leave",
        }
    }

    /// Parses a stored kind.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => EventKind::Text,
            "edit" => EventKind::Edit,
            "delete" => EventKind::Delete,
            "react" => EventKind::React,
            "join" => EventKind::Join,
            "leave" => EventKind::Leave,
            _ => return None,
        })
    }
}

/// One event of a room's log, as clients see it in `msg` frames and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub room: String,
    pub seq: u64,
    pub id: String,
    pub kind: EventKind,
    pub from: UserRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<UserRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// A room as clients see it; `read_seq` only where the caller's own rooms are listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub id: String,
    pub name: String,
    pub visibility: Visibility,
    pub owner: String,
    pub created_ts: i64,
    pub member_count: u64,
    pub last_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_seq: Option<u64>,
}

/// When a flooding connection is closed: `count` rate-limit errors within `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloodClose {
    pub count: u32,
    pub window_ms: u64,
}

/// The limits a session is told in `ready`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_body: usize,
    pub max_frame: usize,
    pub rate_per_s: u32,
    pub burst: u32,
    pub flood_close: FloodClose,
}
