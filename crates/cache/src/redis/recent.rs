//! Recent events in Redis: a sorted set per room (score = seq, member = frame), trimmed to
//! the newest `keep` and expiring when the room has been quiet for `RECENT_TTL`, beside a
//! floor key a `forget` raises. Each call is one script, so each is atomic.

use std::sync::Arc;
use std::time::Duration;

use ::redis::Script;

use super::Shared;
use crate::{CacheError, CachedEvent, Recent, Span};

/// How long a quiet room's events (and a floor) stay in Redis.
const RECENT_TTL: Duration = Duration::from_secs(600);

/// Adds events unless the floor is above their newest. KEYS: events, floor. ARGV: keep,
/// ttl ms, newest seq, then seq and frame of each. Returns 1, or 0 if refused.
const REMEMBER: &str = include_str!("remember.lua");
/// KEYS: events. ARGV: `after`/`before`/`newest`, bound, limit. Returns the newest seq
/// held, then frame and seq of each event in the span.
const RECENT: &str = include_str!("recent.lua");
/// KEYS: events, floor. ARGV: floor, ttl ms. Drops the events and raises the floor.
const FORGET: &str = include_str!("forget.lua");

/// The scripts of this module, loaded once per process.
pub(super) struct RecentScripts {
    remember: Script,
    recent: Script,
    forget: Script,
}

impl RecentScripts {
    pub(super) fn new() -> Self {
        RecentScripts {
            remember: Script::new(REMEMBER),
            recent: Script::new(RECENT),
            forget: Script::new(FORGET),
        }
    }
}

// The braces make both keys of a room hash to one slot, as Redis Cluster needs for a script.
fn events_key(room: &str) -> String {
    format!("confab:recent:{{{room}}}")
}

fn floor_key(room: &str) -> String {
    format!("confab:recent-floor:{{{room}}}")
}

impl Shared {
    pub(super) async fn remember(
        &self,
        room: &str,
        events: &[CachedEvent],
        keep: u32,
    ) -> Result<bool, CacheError> {
        let Some(newest) = events.iter().map(|e| e.seq).max() else {
            return Ok(true);
        };
        let mut inv = self.recent_scripts.remember.key(events_key(room));
        inv.key(floor_key(room))
            .arg(keep.max(1))
            .arg(RECENT_TTL.as_millis() as u64)
            .arg(newest);
        for e in events {
            inv.arg(e.seq).arg(&*e.frame);
        }
        let done: i64 = self.run(&inv).await?;
        Ok(done == 1)
    }

    pub(super) async fn recent(
        &self,
        room: &str,
        span: Span,
        limit: u32,
    ) -> Result<Recent, CacheError> {
        let (mode, bound) = match span {
            Span::Newest => ("newest", 0),
            Span::Before(b) => ("before", b),
            Span::After(a) => ("after", a),
        };
        let mut inv = self.recent_scripts.recent.key(events_key(room));
        inv.arg(mode).arg(bound).arg(limit.max(1));
        let reply: Vec<String> = self.run(&inv).await?;
        parse_recent(reply)
    }

    pub(super) async fn forget(&self, room: &str, floor: u64) -> Result<(), CacheError> {
        let mut inv = self.recent_scripts.forget.key(events_key(room));
        inv.key(floor_key(room))
            .arg(floor)
            .arg(RECENT_TTL.as_millis() as u64);
        self.run::<i64>(&inv).await.map(|_| ())
    }
}

/// `[head, frame, seq, frame, seq, …]` as the script returns it.
fn parse_recent(reply: Vec<String>) -> Result<Recent, CacheError> {
    let bad = || CacheError::Unavailable("malformed recent-events reply from Redis".into());
    let mut items = reply.into_iter();
    let head = items.next().as_deref().and_then(seq_of).ok_or_else(bad)?;
    let mut events = Vec::new();
    while let Some(frame) = items.next() {
        let seq = items.next().as_deref().and_then(seq_of).ok_or_else(bad)?;
        events.push(CachedEvent {
            seq,
            frame: Arc::from(frame),
        });
    }
    Ok(Recent { events, head })
}

/// A score as Redis writes it (`"12"`, or `"1e+20"` once past what it prints plainly).
fn seq_of(s: &str) -> Option<u64> {
    s.parse::<u64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().map(|f| f as u64))
}
