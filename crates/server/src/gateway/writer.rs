//! A session's sending side: drains the outbox in order, keeps each room's cursor so every seq
//! goes out exactly once and in order (reading any gap through the cache's recent events, else
//! the store), answers `sync`, and writes whatever is queued with one system call where the
//! socket takes it. It owns the connection; the session's loop reads through it too.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use confab_protocol::frames::SyncedRoom;
use confab_protocol::{CloseCode, ErrorCode, ServerFrame};
use confab_store::EventRange;
use futures_util::FutureExt;
use serde_json::Value;

use super::ws::Conn;
use crate::events::RoomEvents;
use crate::hub::{Out, Outbox, Ready, Subscribe};
use crate::metrics;

/// Most missed events `sync` sends per room.
const SYNC_MAX: usize = 500;
/// Most events a cursor may be behind before the session is told to reconnect instead.
const CATCH_UP_MAX: usize = 10_000;
/// Most queued items handled before one flush.
const BATCH: usize = 64;
/// Bytes queued that make `send` flush before going on (catch-up can queue many events).
const FLUSH_AT: usize = 64 * 1024;
/// How long a closing handshake may take before the socket is dropped.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

struct Cursor {
    /// The last seq sent on this connection.
    last: u64,
    /// Where live delivery started: seqs up to here were never sent on this connection.
    live_from: u64,
}

/// Why a session stops.
#[derive(Debug)]
pub enum Stop {
    /// Close the connection with this code.
    Closed(u16),
    /// The socket is gone.
    Gone,
}

/// A session's connection, its outbox and its rooms' cursors.
pub struct Writer {
    pub conn: Conn,
    pub outbox: Arc<Outbox>,
    events: Arc<RoomEvents>,
    cursors: HashMap<Arc<str>, Cursor>,
    ready: bool,
    early: VecDeque<Out>,
    early_max: usize,
    written: u64,
    /// How long a write may wait for the client to take bytes.
    stall: Duration,
}

impl Writer {
    /// A writer for `conn`; at most `early_max` items wait for `ready`.
    pub fn new(
        conn: Conn,
        outbox: Arc<Outbox>,
        events: Arc<RoomEvents>,
        early_max: usize,
        stall: Duration,
    ) -> Self {
        Writer {
            conn,
            outbox,
            events,
            cursors: HashMap::new(),
            ready: false,
            early: VecDeque::new(),
            early_max,
            written: 0,
            stall,
        }
    }

    /// Handles `first` and whatever else is already queued, up to `BATCH`.
    pub async fn batch(&mut self, first: Out) -> Result<(), Stop> {
        self.handle(first).await?;
        for _ in 1..BATCH {
            match self.outbox.try_next() {
                Some(Ok(out)) => self.handle(out).await?,
                Some(Err(code)) => return Err(Stop::Closed(code)),
                None => break,
            }
        }
        Ok(())
    }

    async fn handle(&mut self, out: Out) -> Result<(), Stop> {
        if !self.ready && !matches!(out, Out::Ready(_) | Out::Close(_)) {
            // Nothing may precede `ready`: hold what the hub sent during the handshake.
            if self.early.len() >= self.early_max {
                return Err(Stop::Closed(CloseCode::SLOW_CONSUMER));
            }
            self.early.push_back(out);
            return Ok(());
        }
        match out {
            Out::Ready(ready) => {
                let Ready { frame, cursors } = *ready;
                self.send(&frame).await?;
                for (room, from) in cursors {
                    self.cursors.insert(
                        room,
                        Cursor {
                            last: from,
                            live_from: from,
                        },
                    );
                }
                self.ready = true;
                while let Some(out) = self.early.pop_front() {
                    Box::pin(self.handle(out)).await?;
                }
            }
            Out::Frame(frame) => self.send(&frame).await?,
            Out::Event(event) => {
                let (room, seq) = (&event.room, event.seq);
                let Some(cursor) = self.cursors.get_mut(room) else {
                    return Ok(());
                };
                let last = cursor.last;
                if seq <= last {
                    return Ok(());
                }
                if seq == last + 1 {
                    // The common case, with one map lookup.
                    cursor.last = seq;
                    return self.send(&event.frame).await;
                }
                Box::pin(self.must_catch_up(room, Some(seq - 1), seq - 1)).await?;
                self.send(&event.frame).await?;
                self.advance(room, seq);
            }
            Out::Subscribe(sub) => {
                let Subscribe {
                    room,
                    cursor,
                    announce,
                } = *sub;
                if self.cursors.contains_key(&room) {
                    return Ok(());
                }
                if let Some(frame) = announce {
                    self.send(&frame).await?;
                }
                self.cursors.insert(
                    room,
                    Cursor {
                        last: cursor,
                        live_from: cursor,
                    },
                );
            }
            Out::CatchUp { room, known } => {
                Box::pin(self.must_catch_up(&room, None, known)).await?
            }
            Out::Unsubscribe { room, through } => {
                if !self.cursors.contains_key(&room) {
                    return Ok(());
                }
                Box::pin(self.must_catch_up(&room, Some(through), through)).await?;
                self.cursors.remove(&room);
                let removed = ServerFrame::Removed {
                    room: room.to_string(),
                };
                self.send(&removed.to_json()).await?;
            }
            // Store reads are boxed so an idle writer's future stays small.
            Out::Sync(ask) => Box::pin(self.sync(ask.reference, ask.rooms)).await?,
            Out::Close(code) => return Err(Stop::Closed(code)),
        }
        Ok(())
    }

    fn advance(&mut self, room: &Arc<str>, seq: u64) {
        if let Some(c) = self.cursors.get_mut(room) {
            c.last = c.last.max(seq);
        }
    }

    /// Sends the room's events after the cursor through `to` (or to the newest), at most
    /// `max`; false if `max` stopped it first. The room is known to have reached `known`.
    async fn catch_up(
        &mut self,
        room: &Arc<str>,
        to: Option<u64>,
        max: usize,
        known: u64,
    ) -> Result<bool, Stop> {
        let mut sent = 0;
        loop {
            let Some((last, live_from)) = self.cursors.get(room).map(|c| (c.last, c.live_from))
            else {
                return Ok(true);
            };
            if to.is_some_and(|t| last >= t) {
                return Ok(true);
            }
            if sent >= max {
                return Ok(false);
            }
            let want = (max - sent).min(100) as u32;
            let page = self
                .events
                .frames(room, EventRange::After(last), want, known.max(live_from))
                .await
                .map_err(store_failed)?;
            for event in page.events {
                if to.is_some_and(|t| event.seq > t) {
                    return Ok(true);
                }
                self.send(&event.frame).await?;
                self.advance(room, event.seq);
                sent += 1;
            }
            if !page.has_more {
                return Ok(true);
            }
        }
    }

    /// Catches up with no budget to spare: a session this far behind reconnects and syncs.
    async fn must_catch_up(
        &mut self,
        room: &Arc<str>,
        to: Option<u64>,
        known: u64,
    ) -> Result<(), Stop> {
        if self.catch_up(room, to, CATCH_UP_MAX, known).await? {
            Ok(())
        } else {
            Err(Stop::Closed(CloseCode::SLOW_CONSUMER))
        }
    }

    /// For each room: the events after the client's seq that this connection has not sent,
    /// up to `SYNC_MAX`, then one `synced`.
    async fn sync(
        &mut self,
        reference: Option<Value>,
        rooms: BTreeMap<String, u64>,
    ) -> Result<(), Stop> {
        let mut result = BTreeMap::new();
        for (room_id, since) in rooms {
            let Some((room, live_from)) = self
                .cursors
                .get_key_value(room_id.as_str())
                .map(|(r, c)| (r.clone(), c.live_from))
            else {
                result.insert(
                    room_id,
                    SyncedRoom::Failed {
                        error: ErrorCode::NotFound,
                    },
                );
                continue;
            };
            let mut budget = SYNC_MAX;
            let mut complete = true;
            if since < live_from {
                // Before live delivery began: never sent here, so send it now.
                let (sent, done) = self.send_range(&room, since, live_from, budget).await?;
                budget -= sent;
                complete = done;
            }
            if complete {
                complete = self.catch_up(&room, None, budget, live_from).await?;
            }
            let sent_through = self.cursors.get(&room).map_or(0, |c| c.last);
            // Complete means everything through the cursor was sent; only a sync cut short
            // needs the room's newest seq from the store.
            let newest = if complete {
                sent_through
            } else {
                match self.events.newest(&room).await {
                    Ok(Some(newest)) => newest.max(sent_through),
                    _ => sent_through,
                }
            };
            if !complete && since >= live_from {
                // The rest is paged with `history`; live delivery goes on after the newest.
                if let Some(c) = self.cursors.get_mut(&room) {
                    c.last = c.last.max(newest);
                }
            }
            result.insert(
                room_id,
                SyncedRoom::Done {
                    last_seq: newest,
                    complete,
                },
            );
        }
        let frame = ServerFrame::Synced {
            reference,
            rooms: result,
        };
        self.send(&frame.to_json()).await
    }

    /// Sends events in `(from, to]` without touching the cursor; `(count, reached to)`.
    async fn send_range(
        &mut self,
        room: &str,
        from: u64,
        to: u64,
        max: usize,
    ) -> Result<(usize, bool), Stop> {
        let mut last = from;
        let mut sent = 0;
        while last < to && sent < max {
            let want = (max - sent).min(100) as u32;
            let page = self
                .events
                .frames(room, EventRange::After(last), want, to)
                .await
                .map_err(store_failed)?;
            let more = page.has_more;
            for event in page.events.into_iter().take_while(|e| e.seq <= to) {
                last = event.seq;
                self.send(&event.frame).await?;
                sent += 1;
            }
            if !more {
                break;
            }
        }
        Ok((sent, last >= to || sent < max))
    }

    /// Queues a frame, writing out what is queued once it is large.
    async fn send(&mut self, frame: &str) -> Result<(), Stop> {
        self.written += 1;
        self.conn.queue_text(frame);
        if self.conn.pending() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes what is queued. A client that takes no bytes for `stall`, or a session closed
    /// meanwhile (its outbox overflowed), stops the wait.
    pub async fn flush(&mut self) -> Result<(), Stop> {
        if self.written > 0 {
            metrics::frames_delivered(self.written);
            self.written = 0;
        }
        if self.conn.pending() == 0 {
            return Ok(());
        }
        // Most flushes finish at once: try before arming a timer. The wait is boxed so the
        // session's future does not carry its size.
        match self.conn.flush().now_or_never() {
            Some(done) => done.map_err(|_| Stop::Gone),
            None => Box::pin(self.wait_flushed()).await,
        }
    }

    async fn wait_flushed(&mut self) -> Result<(), Stop> {
        tokio::select! {
            done = self.conn.flush() => done.map_err(|_| Stop::Gone),
            code = self.outbox.closed() => Err(Stop::Closed(code)),
            () = tokio::time::sleep(self.stall) => Err(Stop::Closed(CloseCode::SLOW_CONSUMER)),
        }
    }

    /// Sends a close frame with `code` (after what was flushed; nothing else) and ends.
    pub async fn close(mut self, code: u16) {
        self.conn.close(code, close_reason(code), CLOSE_WAIT).await;
    }
}

/// The reason sent with a close code.
pub fn close_reason(code: u16) -> &'static str {
    match code {
        CloseCode::UNAUTHORIZED => "unauthorized",
        CloseCode::FLOOD => "too many rate-limited requests",
        CloseCode::SLOW_CONSUMER => "too slow: reconnect and sync",
        CloseCode::TOO_LARGE => "message too large",
        CloseCode::RESTART => "node restarting: reconnect",
        CloseCode::GOING_AWAY => "no heartbeat",
        CloseCode::PROTOCOL_ERROR => "websocket protocol error",
        _ => "",
    }
}

/// A store read failed mid-delivery: rather than leave a gap, close (1011) so the client
/// reconnects and resumes with `sync`.
fn store_failed(e: confab_store::StoreError) -> Stop {
    tracing::warn!(error = %e, "store read failed during delivery; closing the session");
    Stop::Closed(CloseCode::INTERNAL_ERROR)
}
