//! What a writer knows of its rooms from batch to batch: each room's row and whether senders
//! are members, so that a batch of appends does not probe `members` once per sender, and a
//! batch of texts whose rooms and senders are all known can be written in one statement
//! (`fast.rs`).
//!
//! Other nodes write the same rooms, so what is known is kept with the room's `last_seq` at
//! the time it was read, and used only while the room still has that `last_seq` (checked under
//! the room's lock: by reading it, or by the fast path's guarded update). Every change of
//! membership writes an event (join or leave), which moves `last_seq`, and nothing changes a
//! room's row without one: a room whose seq has not moved has the row and members it had.
//! When this writer's own batch moves a room with texts only, what is known moves with it.

use std::collections::HashMap;

use crate::RoomInfo;

/// Answers kept at most, all rooms together, before they are all forgotten.
const KEPT_MAX: usize = 65_536;

/// What is known of one room, true as of its `last_seq` = `seq`.
struct Known {
    seq: u64,
    /// The room's row, if it was read at `seq`.
    info: Option<RoomInfo>,
    users: HashMap<String, bool>,
}

/// A writer's knowledge of its rooms.
#[derive(Default)]
pub(super) struct RoomCache {
    rooms: HashMap<String, Known>,
    entries: usize,
}

impl RoomCache {
    /// The room's row, as of the `last_seq` it holds, if known.
    pub(super) fn room(&self, room_id: &str) -> Option<&RoomInfo> {
        let known = self.rooms.get(room_id)?;
        known.info.as_ref().filter(|i| i.room.last_seq == known.seq)
    }

    /// Keeps a room's row, read under its lock.
    pub(super) fn put_room(&mut self, info: &RoomInfo) {
        let known = self.known(&info.room.id, info.room.last_seq);
        known.info = Some(info.clone());
    }

    /// Whether `user_id` is a member of `room_id`, if known for the room at `last_seq`.
    pub(super) fn get(&self, room_id: &str, last_seq: u64, user_id: &str) -> Option<bool> {
        let room = self.rooms.get(room_id).filter(|r| r.seq == last_seq)?;
        room.users.get(user_id).copied()
    }

    /// Keeps what was read under the room's lock while its `last_seq` was `last_seq`.
    pub(super) fn put(&mut self, room_id: &str, last_seq: u64, user_id: &str, member: bool) {
        let known = self.known(room_id, last_seq);
        let added = known.users.insert(user_id.to_owned(), member).is_none();
        if added {
            self.entries += 1;
        }
    }

    /// The room's entry at `last_seq`, emptied if it held an older seq.
    fn known(&mut self, room_id: &str, last_seq: u64) -> &mut Known {
        if self.entries >= KEPT_MAX || self.rooms.len() >= KEPT_MAX {
            self.clear();
        }
        let known = self
            .rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| Known {
                seq: last_seq,
                info: None,
                users: HashMap::new(),
            });
        if known.seq != last_seq {
            self.entries -= known.users.len();
            known.users.clear();
            known.info = None;
            known.seq = last_seq;
        }
        known
    }

    /// A commit moved each room of `seqs` (`(room, from, to)`): what is known of a room where
    /// it wrote texts only (`texts_only`) moves with it, the rest is forgotten.
    pub(super) fn committed(
        &mut self,
        seqs: &[(String, u64, u64)],
        texts_only: impl Fn(&str) -> bool,
    ) {
        for (room_id, from, to) in seqs {
            if texts_only(room_id) {
                self.moved(room_id, *from, *to);
            } else {
                self.forget(room_id);
            }
        }
    }

    /// A committed batch moved the room from `from` to `to` writing texts only (no change of
    /// membership): what was true at `from` is true at `to`.
    fn moved(&mut self, room_id: &str, from: u64, to: u64) {
        if let Some(known) = self.rooms.get_mut(room_id)
            && known.seq == from
        {
            known.seq = to;
            if let Some(info) = &mut known.info {
                info.room.last_seq = to;
            }
        }
    }

    /// Forgets one room (its members changed).
    pub(super) fn forget(&mut self, room_id: &str) {
        if let Some(room) = self.rooms.remove(room_id) {
            self.entries -= room.users.len();
        }
    }

    /// Forgets everything (a batch failed: what it read is no longer trusted).
    pub(super) fn clear(&mut self) {
        self.rooms.clear();
        self.entries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_holds_only_at_the_seq_it_was_read_at() {
        let mut cache = RoomCache::default();
        cache.put("r1", 5, "ada", true);
        cache.put("r1", 5, "bob", false);
        assert_eq!(cache.get("r1", 5, "ada"), Some(true));
        assert_eq!(cache.get("r1", 5, "bob"), Some(false));
        assert_eq!(
            cache.get("r1", 6, "ada"),
            None,
            "another writer moved the room"
        );
        assert_eq!(cache.get("r2", 5, "ada"), None);
        cache.put("r1", 7, "cy", true);
        assert_eq!(
            cache.get("r1", 7, "ada"),
            None,
            "older answers were dropped"
        );
        assert_eq!(cache.entries, 1);
    }

    #[test]
    fn answers_follow_the_writers_own_texts_but_not_a_change_of_members() {
        let mut cache = RoomCache::default();
        cache.put("r1", 5, "ada", true);
        cache.moved("r1", 5, 9);
        assert_eq!(cache.get("r1", 9, "ada"), Some(true));
        cache.moved("r1", 4, 12);
        assert_eq!(
            cache.get("r1", 12, "ada"),
            None,
            "moved from a seq it did not hold"
        );
        cache.put("r2", 1, "ada", true);
        cache.forget("r2");
        assert_eq!(cache.get("r2", 1, "ada"), None);
        assert_eq!(cache.entries, 1);
    }

    #[test]
    fn a_rooms_row_follows_its_seq() {
        let mut cache = RoomCache::default();
        let info = RoomInfo {
            room: confab_protocol::Room {
                id: "r1".into(),
                name: "one".into(),
                visibility: confab_protocol::Visibility::Public,
                owner: "ada".into(),
                created_ts: 1,
                member_count: 2,
                last_seq: 5,
                read_seq: None,
            },
            dm: false,
        };
        cache.put_room(&info);
        cache.put("r1", 5, "ada", true);
        assert_eq!(cache.room("r1").map(|i| i.room.last_seq), Some(5));
        cache.moved("r1", 5, 8);
        assert_eq!(cache.room("r1").map(|i| i.room.last_seq), Some(8));
        assert_eq!(cache.get("r1", 8, "ada"), Some(true));
        cache.put("r1", 9, "bob", true);
        assert!(
            cache.room("r1").is_none(),
            "read at another seq: the row is dropped"
        );
        cache.forget("r1");
        assert!(cache.room("r1").is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = RoomCache::default();
        for i in 0..KEPT_MAX + 10 {
            cache.put(&format!("r{}", i % 100), 1, &format!("u{i}"), true);
        }
        assert!(cache.entries <= KEPT_MAX);
    }
}
