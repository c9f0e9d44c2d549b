//! Filling what the bus lost: a gap that does not close within `reorder_wait`, and (on a timer)
//! a room's newest events that never arrived at all, read from the cache or the store.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use confab_store::EventRange;

use super::{Hub, deliver};

impl Hub {
    /// After `reorder_wait`, reads a gap that has not closed (cache, else store).
    pub(super) fn fill_gap_later(&self, room: Arc<str>) {
        let hub = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(hub.0.reorder_wait).await;
                let gap = hub.lock().rooms.get(&room).and_then(|e| e.reorder.gap());
                let Some((from, to)) = gap else { break };
                hub.fill(&room, from, to).await;
            }
            if let Some(entry) = hub.lock().rooms.get_mut(&room) {
                entry.gap_pending = false;
            }
        });
    }

    /// Reads events `from..=to` (at most 100) and offers them to the room's reorder buffer; if
    /// the store fails, skips the gap (sessions then fill it themselves).
    async fn fill(&self, room: &Arc<str>, from: u64, to: u64) {
        let limit = (to.saturating_sub(from) + 1).min(100) as u32;
        let fetched = self
            .0
            .events
            .frames(room, EventRange::After(from.saturating_sub(1)), limit, to)
            .await;
        let mut inner = self.lock();
        let Some(entry) = inner.rooms.get_mut(room) else {
            return;
        };
        match fetched {
            Ok(page) => {
                for e in page.events {
                    let ready = entry.reorder.offer(e.seq, Utf8Bytes::from(&*e.frame));
                    deliver(entry, room, ready);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "gap not filled from the store; skipped");
                let ready = entry.reorder.skip_gap();
                deliver(entry, room, ready);
            }
        }
    }

    /// Every `every`, compares each live room's newest seq in the store with what the hub has
    /// delivered. A room still behind at the next tick lost its newest events on the bus: they
    /// are read from the store. (Behind at one tick only is normal: events in flight.)
    pub fn start_repair(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                hub.repair_once().await;
            }
        })
    }

    async fn repair_once(&self) {
        let rooms: Vec<String> = self
            .lock()
            .rooms
            .iter()
            .filter(|(_, e)| e.live)
            .map(|(id, _)| id.to_string())
            .collect();
        if rooms.is_empty() {
            return;
        }
        let newest = match self.0.store.last_seqs(&rooms).await {
            Ok(n) => n,
            Err(e) => return tracing::debug!(error = %e, "repair tick skipped"),
        };
        let newest: std::collections::HashMap<String, u64> = newest.into_iter().collect();
        let mut lost = Vec::new();
        for (room, entry) in self.lock().rooms.iter_mut() {
            let (Some(&last), Some(next)) = (newest.get(&**room), entry.reorder.next()) else {
                continue;
            };
            if let Some(suspect) = entry.suspect.filter(|&s| s >= next && !entry.gap_pending) {
                lost.push((room.clone(), next, suspect));
            }
            entry.suspect = (last >= next).then_some(last);
        }
        for (room, from, to) in lost {
            tracing::debug!(room = %room, from, to, "events lost on the bus; reading them from the store");
            let mut from = from;
            while from <= to {
                self.fill(&room, from, to).await;
                let next = self
                    .lock()
                    .rooms
                    .get(&room)
                    .and_then(|e| e.reorder.next())
                    .unwrap_or(to + 1);
                if next <= from {
                    break;
                }
                from = next;
            }
        }
    }
}
