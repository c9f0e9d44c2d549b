//! The values the Store takes and returns.

use confab_protocol::{Event, Room, UserRef};

/// A user with the hash of its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: UserRef,
    pub password_hash: String,
}

/// A stored session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub user: UserRef,
    pub expires_ts: i64,
}

/// A room and whether it is a direct conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub room: Room,
    pub dm: bool,
}

impl RoomInfo {
    /// What the membership rules need to know about this room.
    pub fn facts(&self) -> confab_domain::rules::RoomFacts {
        confab_domain::rules::RoomFacts {
            public: self.room.visibility == confab_protocol::Visibility::Public,
            dm: self.dm,
            owner: self.room.owner.clone(),
            member_count: self.room.member_count,
        }
    }
}

/// Which events of a room to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventRange {
    /// The newest, newest first.
    Newest,
    /// Those with seq below this, newest first.
    Before(u64),
    /// Those with seq above this, oldest first.
    After(u64),
}

/// A page of events and whether more lie beyond it in the same direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub events: Vec<Event>,
    pub has_more: bool,
}

/// A membership change: the room afterwards and the events written (none if nothing changed).
/// `room.read_seq` is the affected member's read marker (their `join` seq after a join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub room: Room,
    pub events: Vec<Event>,
}

/// An event a member writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    Text { client_id: String, body: String },
    Edit { target: u64, body: String },
    Delete { target: u64 },
    React { target: u64, body: String },
}

/// The stored event; `duplicate` when a repeated `client_id` wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub event: Event,
    pub duplicate: bool,
}
