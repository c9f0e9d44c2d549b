//! A session's writer task: drains the outbox in order, keeps each room's cursor so every seq
//! goes out exactly once and in order (reading any gap through the cache's recent events, else
//! the store), answers `sync`, sends heartbeat pings, and writes whatever is queued with one
//! flush.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use confab_protocol::frames::SyncedRoom;
use confab_protocol::{CloseCode, ErrorCode, ServerFrame};
use confab_store::EventRange;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use serde_json::Value;

use super::session::close_message;
use crate::events::RoomEvents;
use crate::hub::{Out, Outbox, Ready, Subscribe};
use crate::metrics;

/// Most missed events `sync` sends per room.
const SYNC_MAX: usize = 500;
/// Most events a cursor may be behind before the session is told to reconnect instead.
const CATCH_UP_MAX: usize = 10_000;
/// Most queued items written before one flush.
const BATCH: usize = 64;

type Sink = SplitSink<WebSocket, Message>;

struct Cursor {
    /// The last seq sent on this connection.
    last: u64,
    /// Where live delivery started: seqs up to here were never sent on this connection.
    live_from: u64,
}

/// Why the writer stops.
enum Stop {
    Closed(u16),
    Gone,
}

struct Writer {
    sink: Sink,
    events: Arc<RoomEvents>,
    cursors: HashMap<Arc<str>, Cursor>,
    ready: bool,
    early: VecDeque<Out>,
    early_max: usize,
    written: u64,
}

/// Runs until the session is closed or the socket fails.
pub async fn run(
    sink: Sink,
    outbox: Arc<Outbox>,
    events: Arc<RoomEvents>,
    heartbeat: Duration,
    early_max: usize,
) {
    let mut w = Writer {
        sink,
        events,
        cursors: HashMap::new(),
        ready: false,
        early: VecDeque::new(),
        early_max,
        written: 0,
    };
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let stop = loop {
        let step = tokio::select! {
            biased;
            next = outbox.next() => match next {
                Err(code) => Err(Stop::Closed(code)),
                // Boxed: handling is the writer's largest state, needed only while it runs.
                Ok(out) => Box::pin(w.batch(out, &outbox)).await,
            },
            _ = ping.tick() => w.send(Message::Ping(Default::default())).await,
        };
        let step = match step {
            Ok(()) => w.flush().await,
            Err(stop) => Err(stop),
        };
        if let Err(stop) = step {
            break stop;
        }
    };
    outbox.writer_gone();
    if let Stop::Closed(code) = stop {
        if code != 1000 {
            metrics::connection_kicked(code);
        }
        let _ = w.sink.send(close_message(code)).await;
    }
    let _ = w.sink.close().await;
}

impl Writer {
    /// Handles `first` and whatever else is already queued, up to `BATCH`.
    async fn batch(&mut self, first: Out, outbox: &Outbox) -> Result<(), Stop> {
        self.handle(first).await?;
        for _ in 1..BATCH {
            match outbox.try_next() {
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
                self.send(Message::Text(frame)).await?;
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
            Out::Frame(frame) => self.send(Message::Text(frame)).await?,
            Out::Event(event) => {
                let (room, seq) = (&event.room, event.seq);
                let Some(last) = self.cursors.get(room).map(|c| c.last) else {
                    return Ok(());
                };
                if seq <= last {
                    return Ok(());
                }
                if seq > last + 1 {
                    Box::pin(self.must_catch_up(room, Some(seq - 1), seq - 1)).await?;
                }
                self.send(Message::Text(event.frame.clone())).await?;
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
                    self.send(Message::Text(frame)).await?;
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
                self.send(Message::Text(
                    ServerFrame::Removed {
                        room: room.to_string(),
                    }
                    .to_json()
                    .into(),
                ))
                .await?;
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
                self.send(Message::Text(Utf8Bytes::from(&*event.frame)))
                    .await?;
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
        self.send(Message::Text(frame.to_json().into())).await
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
                self.send(Message::Text(Utf8Bytes::from(&*event.frame)))
                    .await?;
                sent += 1;
            }
            if !more {
                break;
            }
        }
        Ok((sent, last >= to || sent < max))
    }

    async fn send(&mut self, message: Message) -> Result<(), Stop> {
        self.written += 1;
        self.sink.feed(message).await.map_err(|_| Stop::Gone)
    }

    async fn flush(&mut self) -> Result<(), Stop> {
        if self.written > 0 {
            metrics::frames_delivered(self.written);
            self.written = 0;
        }
        self.sink.flush().await.map_err(|_| Stop::Gone)
    }
}

/// A store read failed mid-delivery: rather than leave a gap, close (1011) so the client
/// reconnects and resumes with `sync`.
fn store_failed(e: confab_store::StoreError) -> Stop {
    tracing::warn!(error = %e, "store read failed during delivery; closing the session");
    Stop::Closed(INTERNAL_ERROR)
}

/// WebSocket close code for an unexpected server condition.
const INTERNAL_ERROR: u16 = 1011;
