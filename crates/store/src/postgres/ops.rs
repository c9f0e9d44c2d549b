//! The writes a shard's writer takes, what they answer, and the facts a batch of them needs
//! read before it can decide.

use confab_protocol::{UserRef, Visibility};

use crate::{Append, Appended, Change, StoreError};

/// One write to a shard, as its writer receives it.
#[derive(Debug, Clone)]
pub(super) enum Op {
    CreateRoom {
        room_id: String,
        owner: UserRef,
        name: String,
        visibility: Visibility,
    },
    /// Opens the DM `room_id` (whose key the directory has already given it), creating the
    /// room if it does not exist yet and joining whichever of the two is not a member.
    OpenDm {
        room_id: String,
        dm_key: String,
        a: UserRef,
        b: UserRef,
    },
    Join {
        room_id: String,
        user: UserRef,
    },
    Leave {
        room_id: String,
        user: UserRef,
    },
    AddMember {
        room_id: String,
        actor: UserRef,
        target: UserRef,
        /// Whether the directory knows the target (users are never deleted).
        target_exists: bool,
    },
    RemoveMember {
        room_id: String,
        actor: UserRef,
        target: UserRef,
    },
    Append {
        room_id: String,
        user: UserRef,
        append: Append,
    },
    SetRead {
        room_id: String,
        user_id: String,
        seq: u64,
    },
}

impl Op {
    /// The room the write is about: every write is about exactly one.
    pub(super) fn room_id(&self) -> &str {
        match self {
            Op::CreateRoom { room_id, .. }
            | Op::OpenDm { room_id, .. }
            | Op::Join { room_id, .. }
            | Op::Leave { room_id, .. }
            | Op::AddMember { room_id, .. }
            | Op::RemoveMember { room_id, .. }
            | Op::Append { room_id, .. }
            | Op::SetRead { room_id, .. } => room_id,
        }
    }
}

/// What a write answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Change(Change),
    Appended(Appended),
    Read(Option<u64>),
}

/// The facts a batch reads before it decides: which rooms, which memberships, which events.
#[derive(Debug, Default)]
pub(super) struct Needs {
    /// Rooms to lock, sorted and without repeats once `finish`ed.
    pub(super) rooms: Vec<String>,
    /// DM rooms that may have to be created first: (id, key, name, owner).
    pub(super) dm_rooms: Vec<(String, String, String, String)>,
    /// Memberships read from `members` (with their read markers).
    pub(super) members: Vec<(String, String)>,
    /// Senders of appends, which need only to know whether they are members (the writer may
    /// know that already, `room_cache.rs`); none of them is also in `members`.
    pub(super) senders: Vec<(String, String)>,
    pub(super) targets: Vec<(String, i64)>,
    pub(super) client_ids: Vec<(String, String, String)>,
}

impl Needs {
    pub(super) fn of(ops: &[&Op]) -> Needs {
        let mut needs = Needs::default();
        for op in ops {
            needs.add(op);
        }
        needs.rooms.sort_unstable();
        needs.rooms.dedup();
        needs.dm_rooms.sort_unstable();
        needs.dm_rooms.dedup_by(|x, y| x.0 == y.0);
        needs.members.sort_unstable();
        needs.members.dedup();
        needs.senders.sort_unstable();
        needs.senders.dedup();
        let members = &needs.members;
        needs
            .senders
            .retain(|pair| members.binary_search(pair).is_err());
        needs
    }

    fn member(&mut self, room_id: &str, user_id: &str) {
        self.members.push((room_id.to_owned(), user_id.to_owned()));
    }

    fn add(&mut self, op: &Op) {
        match op {
            Op::CreateRoom { .. } => {}
            Op::OpenDm {
                room_id,
                dm_key,
                a,
                b,
            } => {
                let name = format!("{}, {}", a.name, b.name);
                self.dm_rooms
                    .push((room_id.clone(), dm_key.clone(), name, a.id.clone()));
                self.rooms.push(room_id.clone());
                self.member(room_id, &a.id);
                self.member(room_id, &b.id);
            }
            Op::Join { room_id, user } | Op::Leave { room_id, user } => {
                self.rooms.push(room_id.clone());
                self.member(room_id, &user.id);
            }
            Op::AddMember {
                room_id,
                actor,
                target,
                ..
            }
            | Op::RemoveMember {
                room_id,
                actor,
                target,
            } => {
                self.rooms.push(room_id.clone());
                self.member(room_id, &actor.id);
                self.member(room_id, &target.id);
            }
            Op::Append {
                room_id,
                user,
                append,
            } => {
                self.rooms.push(room_id.clone());
                self.senders.push((room_id.clone(), user.id.clone()));
                match append {
                    Append::Text { client_id, .. } => {
                        self.client_ids
                            .push((room_id.clone(), user.id.clone(), client_id.clone()))
                    }
                    Append::Edit { target, .. }
                    | Append::Delete { target }
                    | Append::React { target, .. } => {
                        if let Ok(seq) = i64::try_from(*target) {
                            self.targets.push((room_id.clone(), seq));
                        }
                    }
                }
            }
            Op::SetRead {
                room_id, user_id, ..
            } => {
                self.rooms.push(room_id.clone());
                self.member(room_id, user_id);
            }
        }
    }
}

/// Turns an answer into the shape a caller awaits; a mismatch is a bug in the writer.
pub(super) fn mismatch() -> StoreError {
    StoreError::Corrupt("the writer answered a command with the wrong kind of result".into())
}
