//! Recent events per room: the values the cache takes and returns, and the in-process window.
//!
//! The cache keeps each active room's newest events (as the frames the server sends) so that
//! `sync` and the first history page need not read the store. It knows nothing about rooms'
//! rules: callers use only a run of seqs with no hole and fall back to the store for the rest.
//!
//! Deletes change stored events, so a cached copy may go stale. `forget(room, seq)` drops the
//! room's events and raises its floor to `seq`; a later `remember` whose newest event is below
//! the floor is refused, because it was read (or committed) before the change and would bring
//! an erased body back.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One cached event: its seq and its `msg` frame as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEvent {
    pub seq: u64,
    pub frame: Arc<str>,
}

/// Which of a room's cached events to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The newest, newest first.
    Newest,
    /// Those with seq below this, newest first.
    Before(u64),
    /// Those with seq above this, oldest first.
    After(u64),
}

/// What the cache holds of a room in a span: the events in the span's order, and the newest
/// seq it holds for the room at all (0 if none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recent {
    pub events: Vec<CachedEvent>,
    pub head: u64,
}

/// Most bytes of frames the in-process window holds over all rooms; the rooms touched least
/// recently go first.
pub const MEMORY_BUDGET: usize = 64 << 20;

#[derive(Default)]
struct RoomWindow {
    events: BTreeMap<u64, Arc<str>>,
    floor: u64,
    bytes: usize,
    touched: u64,
}

/// The in-process store of recent events, bounded by `MEMORY_BUDGET`.
#[derive(Default)]
pub struct Windows {
    rooms: HashMap<String, RoomWindow>,
    bytes: usize,
    clock: u64,
}

impl Windows {
    /// Adds `events` unless a `forget` since makes them stale; keeps the newest `keep`.
    pub fn remember(&mut self, room: &str, events: &[CachedEvent], keep: usize) -> bool {
        let Some(newest) = events.iter().map(|e| e.seq).max() else {
            return true;
        };
        self.clock += 1;
        let clock = self.clock;
        let w = self.rooms.entry(room.to_owned()).or_default();
        w.touched = clock;
        if newest < w.floor {
            return false;
        }
        let mut bytes = w.bytes as isize;
        for e in events {
            bytes += e.frame.len() as isize;
            if let Some(old) = w.events.insert(e.seq, e.frame.clone()) {
                bytes -= old.len() as isize;
            }
        }
        while w.events.len() > keep {
            if let Some((_, old)) = w.events.pop_first() {
                bytes -= old.len() as isize;
            }
        }
        let before = w.bytes;
        w.bytes = bytes.max(0) as usize;
        self.bytes = (self.bytes + w.bytes).saturating_sub(before);
        self.evict();
        true
    }

    /// The room's cached events in `span`, at most `limit`.
    pub fn recent(&mut self, room: &str, span: Span, limit: usize) -> Recent {
        self.clock += 1;
        let Some(w) = self.rooms.get_mut(room) else {
            return Recent::default();
        };
        w.touched = self.clock;
        let head = w.events.last_key_value().map_or(0, |(s, _)| *s);
        let pick = |(s, f): (&u64, &Arc<str>)| CachedEvent {
            seq: *s,
            frame: f.clone(),
        };
        let events = match span {
            Span::Newest => w.events.iter().rev().take(limit).map(pick).collect(),
            Span::Before(b) => w.events.range(..b).rev().take(limit).map(pick).collect(),
            Span::After(a) => match a.checked_add(1) {
                Some(from) => w.events.range(from..).take(limit).map(pick).collect(),
                None => Vec::new(),
            },
        };
        Recent { events, head }
    }

    /// Drops the room's events and refuses batches whose newest seq is below `floor`.
    pub fn forget(&mut self, room: &str, floor: u64) {
        self.clock += 1;
        let w = self.rooms.entry(room.to_owned()).or_default();
        self.bytes -= w.bytes;
        w.events.clear();
        w.bytes = 0;
        w.floor = w.floor.max(floor);
        w.touched = self.clock;
        self.evict();
    }

    /// Holds the budget, dropping whole rooms touched least recently. A dropped room's floor
    /// goes too: a floor only has to outlive the few seconds a stale batch can be in flight,
    /// and a room is only dropped after a budget's worth of newer traffic.
    fn evict(&mut self) {
        while self.bytes > MEMORY_BUDGET {
            let Some(oldest) = self
                .rooms
                .iter()
                .min_by_key(|(_, w)| w.touched)
                .map(|(r, _)| r.clone())
            else {
                return;
            };
            if let Some(w) = self.rooms.remove(&oldest) {
                self.bytes -= w.bytes;
            }
        }
        // Rooms emptied by `forget` only keep a floor; bound how many of those stay.
        if self.rooms.len() > 100_000 {
            self.rooms.retain(|_, w| !w.events.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, text: &str) -> CachedEvent {
        CachedEvent {
            seq,
            frame: Arc::from(text),
        }
    }

    #[test]
    fn keeps_the_newest_and_reads_each_span() {
        let mut w = Windows::default();
        let events: Vec<_> = (1..=10).map(|s| ev(s, "x")).collect();
        assert!(w.remember("r", &events, 5));
        let seqs = |r: Recent| r.events.iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(w.recent("r", Span::Newest, 3)), vec![10, 9, 8]);
        assert_eq!(seqs(w.recent("r", Span::Before(8,), 9)), vec![7, 6]);
        assert_eq!(seqs(w.recent("r", Span::After(7), 9)), vec![8, 9, 10]);
        assert_eq!(w.recent("r", Span::After(u64::MAX), 9).events, vec![]);
        assert_eq!(w.recent("r", Span::Newest, 1).head, 10);
        assert_eq!(w.recent("other", Span::Newest, 1), Recent::default());
        assert_eq!(w.bytes, 5);
    }

    #[test]
    fn a_batch_older_than_a_forget_is_refused() {
        let mut w = Windows::default();
        w.remember("r", &[ev(1, "secret"), ev(2, "x")], 10);
        w.forget("r", 3);
        assert_eq!(w.bytes, 0);
        assert!(!w.remember("r", &[ev(1, "secret"), ev(2, "x")], 10));
        assert_eq!(w.recent("r", Span::Newest, 10).head, 0);
        assert!(w.remember("r", &[ev(1, "erased"), ev(2, "x"), ev(3, "del")], 10));
        assert_eq!(
            w.recent("r", Span::After(0), 1).events,
            vec![ev(1, "erased")]
        );
        // A lower floor never lowers it.
        w.forget("r", 1);
        assert!(!w.remember("r", &[ev(2, "x")], 10));
    }

    #[test]
    fn the_budget_drops_the_least_recently_touched_rooms() {
        let mut w = Windows::default();
        let big: Arc<str> = Arc::from("y".repeat(MEMORY_BUDGET / 4).as_str());
        for (i, room) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let e = CachedEvent {
                seq: i as u64 + 1,
                frame: big.clone(),
            };
            w.remember(room, &[e], 10);
            if *room == "b" {
                w.recent("a", Span::Newest, 1);
            }
        }
        assert!(w.bytes <= MEMORY_BUDGET);
        assert_eq!(w.recent("a", Span::Newest, 1).head, 1);
        assert_eq!(w.recent("b", Span::Newest, 1).head, 0);
        assert_eq!(w.recent("e", Span::Newest, 1).head, 5);
    }
}
