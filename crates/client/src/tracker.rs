//! `SessionTracker`: the receiver-side check of the delivery guarantee. Per room, each event's
//! seq must be exactly one more than the last one seen since the starting point.

use std::collections::{BTreeMap, HashMap};

use confab_protocol::{Event, ServerFrame};

use crate::connect::Ready;

/// A break of the delivery guarantee seen by one receiver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqViolation {
    /// Seqs were skipped: `expected` should have come before `got`.
    #[error("room {room}: gap, expected seq {expected}, got {got}")]
    Gap {
        /// The room.
        room: String,
        /// The seq that should have come.
        expected: u64,
        /// The seq that came.
        got: u64,
    },
    /// The last seq seen came again.
    #[error("room {room}: seq {seq} repeated")]
    Repeat {
        /// The room.
        room: String,
        /// The repeated seq.
        seq: u64,
    },
    /// A seq lower than the last one seen (a late repeat or a reordering).
    #[error("room {room}: seq {got} after {last}")]
    OutOfOrder {
        /// The room.
        room: String,
        /// The last seq seen.
        last: u64,
        /// The seq that came.
        got: u64,
    },
    /// An event in a room with no starting point (strict trackers only).
    #[error("room {room}: seq {seq} in a room that is not tracked")]
    Untracked {
        /// The room.
        room: String,
        /// The seq that came.
        seq: u64,
    },
}

/// Per room, the last seq seen; checks that events arrive exactly once and in order.
#[derive(Debug, Clone, Default)]
pub struct SessionTracker {
    rooms: HashMap<String, u64>,
    strict: bool,
    observed: u64,
    violations: u64,
}

impl SessionTracker {
    /// A lenient tracker: the first event of an unknown room becomes its starting point.
    pub fn new() -> Self {
        Self::default()
    }

    /// A strict tracker: an event of a room without a starting point is `Untracked`.
    pub fn strict() -> Self {
        SessionTracker {
            strict: true,
            ..Self::default()
        }
    }

    /// A strict tracker starting at each room's `last_seq` in `ready`.
    pub fn from_ready(ready: &Ready) -> Self {
        let mut tracker = Self::strict();
        for room in &ready.rooms {
            tracker.start(&room.id, room.last_seq);
        }
        tracker
    }

    /// Sets a room's starting point: the next event expected is `last_seen + 1`.
    pub fn start(&mut self, room: &str, last_seen: u64) {
        self.rooms.insert(room.to_string(), last_seen);
    }

    /// Stops tracking a room (after `removed` or a leave).
    pub fn forget(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// Checks one event. After a gap the tracker moves on to the event's seq; after a repeat
    /// or an out-of-order event it keeps its place.
    pub fn observe(&mut self, event: &Event) -> Result<(), SeqViolation> {
        self.observed += 1;
        let result = self.check(&event.room, event.seq);
        if result.is_err() {
            self.violations += 1;
        }
        result
    }

    /// Follows a server frame: checks `msg`, starts rooms from `ready` and `room`, forgets
    /// rooms on `removed`; ignores the rest.
    pub fn observe_frame(&mut self, frame: &ServerFrame) -> Result<(), SeqViolation> {
        match frame {
            ServerFrame::Msg(event) => return self.observe(event),
            ServerFrame::Ready { rooms, .. } => {
                for room in rooms {
                    self.start(&room.id, room.last_seq);
                }
            }
            // Don't move a room already tracked: its events may have arrived before `room`.
            ServerFrame::Room { room } => {
                self.rooms.entry(room.id.clone()).or_insert(room.last_seq);
            }
            ServerFrame::Removed { room } => self.forget(room),
            _ => {}
        }
        Ok(())
    }

    fn check(&mut self, room: &str, seq: u64) -> Result<(), SeqViolation> {
        let Some(last) = self.rooms.get_mut(room) else {
            if self.strict {
                return Err(SeqViolation::Untracked {
                    room: room.to_string(),
                    seq,
                });
            }
            self.rooms.insert(room.to_string(), seq);
            return Ok(());
        };
        let expected = last.saturating_add(1);
        if seq == expected {
            *last = seq;
            Ok(())
        } else if seq > expected {
            *last = seq;
            Err(SeqViolation::Gap {
                room: room.to_string(),
                expected,
                got: seq,
            })
        } else if seq == *last {
            Err(SeqViolation::Repeat {
                room: room.to_string(),
                seq,
            })
        } else {
            Err(SeqViolation::OutOfOrder {
                room: room.to_string(),
                last: *last,
                got: seq,
            })
        }
    }

    /// The last seq seen in `room` (or its starting point).
    pub fn last_seq(&self, room: &str) -> Option<u64> {
        self.rooms.get(room).copied()
    }

    /// Room id → last seq seen: the `sync` map to resume with after a reconnect.
    pub fn sync_map(&self) -> BTreeMap<String, u64> {
        self.rooms.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// How many events were observed.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// How many observed events broke the guarantee.
    pub fn violations(&self) -> u64 {
        self.violations
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{EventKind, UserRef};

    fn ev(room: &str, seq: u64) -> Event {
        Event {
            room: room.into(),
            seq,
            id: format!("e{seq}"),
            kind: EventKind::Text,
            from: UserRef {
                id: "u".into(),
                name: "ada".into(),
            },
            by: None,
            body: Some("hi".into()),
            target: None,
            deleted: false,
            ts: 0,
            client_id: None,
        }
    }

    #[test]
    fn consecutive_seqs_from_the_starting_point_pass() {
        let mut t = SessionTracker::strict();
        t.start("a", 41);
        for seq in 42..50 {
            t.observe(&ev("a", seq)).expect("in order");
        }
        assert_eq!(t.last_seq("a"), Some(49));
        assert_eq!((t.observed(), t.violations()), (8, 0));
    }

    #[test]
    fn a_skipped_seq_is_a_gap_and_tracking_moves_on() {
        let mut t = SessionTracker::strict();
        t.start("a", 0);
        t.observe(&ev("a", 1)).expect("first");
        let v = t.observe(&ev("a", 3)).expect_err("gap");
        assert_eq!(
            v,
            SeqViolation::Gap {
                room: "a".into(),
                expected: 2,
                got: 3
            }
        );
        t.observe(&ev("a", 4)).expect("continues after the gap");
        assert_eq!(t.violations(), 1);
    }

    #[test]
    fn the_same_seq_twice_is_a_repeat() {
        let mut t = SessionTracker::strict();
        t.start("a", 5);
        t.observe(&ev("a", 6)).expect("first");
        let v = t.observe(&ev("a", 6)).expect_err("repeat");
        assert_eq!(
            v,
            SeqViolation::Repeat {
                room: "a".into(),
                seq: 6
            }
        );
        t.observe(&ev("a", 7)).expect("keeps its place");
    }

    #[test]
    fn a_lower_seq_is_out_of_order() {
        let mut t = SessionTracker::strict();
        t.start("a", 10);
        t.observe(&ev("a", 11)).expect("first");
        t.observe(&ev("a", 12)).expect("second");
        let v = t.observe(&ev("a", 11)).expect_err("late");
        assert!(matches!(
            v,
            SeqViolation::OutOfOrder {
                last: 12,
                got: 11,
                ..
            }
        ));
        // Anything at or below the starting point was already seen.
        let mut t = SessionTracker::strict();
        t.start("a", 10);
        assert!(t.observe(&ev("a", 10)).is_err());
        assert!(t.observe(&ev("a", 3)).is_err());
    }

    #[test]
    fn rooms_are_tracked_independently() {
        let mut t = SessionTracker::strict();
        t.start("a", 0);
        t.start("b", 100);
        t.observe(&ev("a", 1)).expect("a1");
        t.observe(&ev("b", 101)).expect("b101");
        t.observe(&ev("a", 2)).expect("a2");
        assert!(t.observe(&ev("b", 103)).is_err());
        assert_eq!(
            t.sync_map(),
            BTreeMap::from([("a".into(), 2), ("b".into(), 103)])
        );
    }

    #[test]
    fn strict_trackers_refuse_unknown_rooms_and_lenient_ones_start_there() {
        let mut strict = SessionTracker::strict();
        assert!(matches!(
            strict.observe(&ev("x", 7)),
            Err(SeqViolation::Untracked { seq: 7, .. })
        ));
        let mut lenient = SessionTracker::new();
        lenient.observe(&ev("x", 7)).expect("starting point");
        lenient.observe(&ev("x", 8)).expect("next");
        assert!(lenient.observe(&ev("x", 10)).is_err());
    }

    #[test]
    fn frames_start_check_and_forget_rooms() {
        let mut t = SessionTracker::strict();
        let room: ServerFrame = serde_json::from_str(
            r#"{"type":"room","room":{"id":"r","name":"n","visibility":"public","owner":"u",
                "created_ts":0,"member_count":1,"last_seq":4,"read_seq":4}}"#,
        )
        .expect("room frame");
        t.observe_frame(&room).expect("room");
        t.observe_frame(&ServerFrame::Msg(ev("r", 5)))
            .expect("next after the room's last_seq");
        // A late `room` frame does not move a room already tracked.
        t.observe_frame(&room).expect("room again");
        assert_eq!(t.last_seq("r"), Some(5));
        t.observe_frame(&ServerFrame::Removed { room: "r".into() })
            .expect("removed");
        assert_eq!(t.last_seq("r"), None);
    }
}
