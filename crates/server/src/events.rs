//! A room's events for every reader (sync, catch-up, history, gap fill): from the cache's
//! window of recent events where it holds an unbroken run, else from the store; and what each
//! commit tells the cache.
//!
//! The cache may miss anything (it is never the only copy), so a reader trusts it only for a
//! run of seqs with no hole that reaches what the page needs: `limit` events, the room's first
//! event, or the newest seq the cache holds — which must not be below the newest seq the
//! caller already knows of (`known`). Anything else is read from the store, and a store page
//! that reaches the room's newest event is remembered for the next reader.
//!
//! A node whose cache call failed after a commit cannot tell whether the cache holds that
//! event (or, for a delete, still holds the erased body): it stops reading the room from the
//! cache and drops the room there as soon as the cache answers again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use confab_cache::{Cache, CachedEvent, Span};
use confab_protocol::{Event, EventKind, ServerFrame};
use confab_store::{EventRange, Page, Store, StoreResult};

use crate::metrics;

/// A page of events as `msg` frames, oldest or newest first as the range says.
pub struct Frames {
    pub events: Vec<CachedEvent>,
    pub has_more: bool,
}

/// Reads room events through the cache; tells the cache about commits.
pub struct RoomEvents {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    /// Events kept per room in the cache; 0 turns the cache off for events.
    keep: u32,
    /// Rooms this node could not update in the cache, with the floor to forget them at.
    stale: Mutex<HashMap<String, u64>>,
}

enum Found {
    Cache(Frames),
    Store(Page),
}

impl RoomEvents {
    /// Events through `cache` (keeping `keep` per room), else `store`.
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>, keep: u32) -> Self {
        RoomEvents {
            store,
            cache,
            keep,
            stale: Mutex::new(HashMap::new()),
        }
    }

    fn stale(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.stale.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A page as frames; `known` is a seq the caller knows the room has reached.
    pub async fn frames(
        &self,
        room: &str,
        range: EventRange,
        limit: u32,
        known: u64,
    ) -> StoreResult<Frames> {
        Ok(match self.find(room, range, limit, known).await? {
            Found::Cache(frames) => frames,
            Found::Store(page) => Frames {
                events: page.events.into_iter().map(|e| frame_of(&e)).collect(),
                has_more: page.has_more,
            },
        })
    }

    /// A page as events; `known` as for `frames`.
    pub async fn page(
        &self,
        room: &str,
        range: EventRange,
        limit: u32,
        known: u64,
    ) -> StoreResult<Page> {
        match self.find(room, range, limit, known).await? {
            Found::Store(page) => Ok(page),
            Found::Cache(frames) => {
                let parsed: Option<Vec<Event>> =
                    frames.events.iter().map(|e| event_of(&e.frame)).collect();
                match parsed {
                    Some(events) => Ok(Page {
                        events,
                        has_more: frames.has_more,
                    }),
                    None => {
                        tracing::warn!(room, "unreadable event in the cache; read the store");
                        self.read_store(room, range, limit).await
                    }
                }
            }
        }
    }

    /// The room's newest seq, from the store.
    pub async fn newest(&self, room: &str) -> StoreResult<Option<u64>> {
        Ok(self.store.room(room).await?.map(|i| i.room.last_seq))
    }

    async fn find(
        &self,
        room: &str,
        range: EventRange,
        limit: u32,
        known: u64,
    ) -> StoreResult<Found> {
        if self.keep > 0 && !self.stale().contains_key(room) {
            let span = match range {
                EventRange::Newest => Span::Newest,
                EventRange::Before(b) => Span::Before(b),
                EventRange::After(a) => Span::After(a),
            };
            match self.cache.recent(room, span, limit).await {
                Ok(recent) if recent.head >= known.max(1) => {
                    if let Some(frames) = unbroken(range, limit, recent.head, recent.events) {
                        metrics::recent_read(true);
                        return Ok(Found::Cache(frames));
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "recent events unavailable; read the store"),
            }
            metrics::recent_read(false);
        }
        Ok(Found::Store(self.read_store(room, range, limit).await?))
    }

    async fn read_store(&self, room: &str, range: EventRange, limit: u32) -> StoreResult<Page> {
        let page = self.store.events(room, range, limit).await?;
        // Only a page that reaches the newest event belongs in the window of recent events.
        let reaches_newest = match range {
            EventRange::Newest => true,
            EventRange::After(_) => !page.has_more,
            EventRange::Before(_) => false,
        };
        if self.keep > 0 && reaches_newest && !page.events.is_empty() {
            let events: Vec<CachedEvent> = page.events.iter().map(frame_of).collect();
            let (cache, room, keep) = (self.cache.clone(), room.to_owned(), self.keep);
            // The reader does not wait for it; a lost write here only costs a later store read.
            tokio::spawn(async move {
                if let Err(e) = cache.remember(&room, &events, keep).await {
                    tracing::debug!(error = %e, "recent events not remembered");
                }
            });
        }
        Ok(page)
    }

    /// Tells the cache about a committed event: a delete first drops the room's cached events
    /// (their bodies may be erased now), then the event joins the window.
    pub async fn committed(&self, event: &Event, frame: &str) {
        if self.keep == 0 {
            return;
        }
        let room = event.room.as_str();
        let pending = self.stale().get(room).copied();
        let floor = match event.kind {
            EventKind::Delete => event.seq.max(pending.unwrap_or(0)),
            _ => pending.unwrap_or(0),
        };
        if pending.is_some() || event.kind == EventKind::Delete {
            if let Err(e) = self.cache.forget(room, floor).await {
                return self.mark_stale(room, floor, &e);
            }
            self.stale().remove(room);
        }
        let cached = CachedEvent {
            seq: event.seq,
            frame: Arc::from(frame),
        };
        if let Err(e) = self.cache.remember(room, &[cached], self.keep).await {
            self.mark_stale(room, 0, &e);
        }
    }

    fn mark_stale(&self, room: &str, floor: u64, error: &confab_cache::CacheError) {
        tracing::warn!(room, error = %error, "cache not updated after a commit; the room is read from the store until the cache answers");
        let mut stale = self.stale();
        let f = stale.entry(room.to_owned()).or_insert(0);
        *f = (*f).max(floor);
    }

    /// Every `every`, drops from the cache the rooms this node could not update there.
    pub fn start_repair(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(me) = me.upgrade() else { return };
                let rooms: Vec<(String, u64)> =
                    me.stale().iter().map(|(r, f)| (r.clone(), *f)).collect();
                for (room, floor) in rooms {
                    if me.cache.forget(&room, floor).await.is_err() {
                        break;
                    }
                    let mut stale = me.stale();
                    // A commit may have raised the floor meanwhile: then the next tick goes on.
                    if stale.get(&room) == Some(&floor) {
                        stale.remove(&room);
                    }
                }
            }
        })
    }
}

/// The cached events if they make the whole page: no hole from where the range starts, and
/// `limit` of them, or all up to the room's newest (`head`) or first event.
fn unbroken(range: EventRange, limit: u32, head: u64, events: Vec<CachedEvent>) -> Option<Frames> {
    let limit = limit as usize;
    let ascending = matches!(range, EventRange::After(_));
    let first = match range {
        EventRange::Newest => head,
        EventRange::Before(b) => b.saturating_sub(1).min(head),
        EventRange::After(a) => a.checked_add(1)?,
    };
    let expected = |i: usize| {
        if ascending {
            first.checked_add(i as u64)
        } else {
            first.checked_sub(i as u64)
        }
    };
    let whole = events
        .iter()
        .enumerate()
        .all(|(i, e)| Some(e.seq) == expected(i));
    if !whole || events.len() > limit {
        return None;
    }
    // The seq after the last one given, in the page's direction; past the end means done.
    let next = expected(events.len()).unwrap_or(0);
    let ends = if ascending { next > head } else { next == 0 };
    if events.len() == limit || ends {
        Some(Frames {
            events,
            has_more: !ends,
        })
    } else {
        None
    }
}

/// The `msg` frame of an event, as sent and cached.
pub fn frame_of(event: &Event) -> CachedEvent {
    CachedEvent {
        seq: event.seq,
        frame: Arc::from(ServerFrame::Msg(event.clone()).to_json()),
    }
}

fn event_of(frame: &str) -> Option<Event> {
    match serde_json::from_str::<ServerFrame>(frame) {
        Ok(ServerFrame::Msg(event)) => Some(event),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
