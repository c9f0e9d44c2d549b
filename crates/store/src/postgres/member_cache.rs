//! Whether a sender is a member of a room, kept by a writer from batch to batch so that a
//! batch of appends does not probe `members` once per sender.
//!
//! Other nodes write the same rooms, so an answer is kept with the room's `last_seq` at the
//! time it was read, and used only while the room (read again, under its lock, by every
//! batch) still has that `last_seq`. Every change of membership writes an event (join or
//! leave), which moves `last_seq`: a room whose seq has not moved has the members it had.
//! When this writer's own batch moves a room with texts only, the answers move with it.

use std::collections::HashMap;

/// Answers kept at most, all rooms together, before they are all forgotten.
const KEPT_MAX: usize = 65_536;

/// One room's answers, true as of its `last_seq` = `seq`.
struct RoomMembers {
    seq: u64,
    users: HashMap<String, bool>,
}

/// A writer's kept membership answers.
#[derive(Default)]
pub(super) struct MemberCache {
    rooms: HashMap<String, RoomMembers>,
    entries: usize,
}

impl MemberCache {
    /// Whether `user_id` is a member of `room_id`, if known for the room at `last_seq`.
    pub(super) fn get(&self, room_id: &str, last_seq: u64, user_id: &str) -> Option<bool> {
        let room = self.rooms.get(room_id).filter(|r| r.seq == last_seq)?;
        room.users.get(user_id).copied()
    }

    /// Keeps what was read under the room's lock while its `last_seq` was `last_seq`.
    pub(super) fn put(&mut self, room_id: &str, last_seq: u64, user_id: &str, member: bool) {
        if self.entries >= KEPT_MAX {
            self.clear();
        }
        let room = self
            .rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| RoomMembers {
                seq: last_seq,
                users: HashMap::new(),
            });
        if room.seq != last_seq {
            self.entries -= room.users.len();
            room.users.clear();
            room.seq = last_seq;
        }
        if room.users.insert(user_id.to_owned(), member).is_none() {
            self.entries += 1;
        }
    }

    /// A committed batch moved the room from `from` to `to` writing no change of membership:
    /// what was true at `from` is true at `to`.
    pub(super) fn moved(&mut self, room_id: &str, from: u64, to: u64) {
        if let Some(room) = self.rooms.get_mut(room_id)
            && room.seq == from
        {
            room.seq = to;
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
        let mut cache = MemberCache::default();
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
        let mut cache = MemberCache::default();
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
    fn the_cache_stays_bounded() {
        let mut cache = MemberCache::default();
        for i in 0..KEPT_MAX + 10 {
            cache.put(&format!("r{}", i % 100), 1, &format!("u{i}"), true);
        }
        assert!(cache.entries <= KEPT_MAX);
    }
}
