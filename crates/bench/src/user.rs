//! One simulated user: reads its connection, checks every room's seqs (no gap, no repeat, in
//! order) with the client crate's `SessionTracker`, records end-to-end latency from the send
//! time carried in each body, sends on a fixed schedule when it is a sender, and reconnects with
//! backoff, jitter and `sync` when the server closes or asks it to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_client::{SeqViolation, SessionTracker};
use confab_protocol::{Event, EventKind, UserRef};
use futures_util::FutureExt;
use rand::RngExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::link::{self, Closed, Incoming, LinkRx, LinkTx, Opened, Target};
pub use crate::sending::now_ns;
use crate::sending::{Sender, due_of};
use crate::spec::ConnSpec;
use crate::stats::{Kind, Stats};

/// Frames handled per wake-up of a session before the select looks at the phase again.
const DRAIN_MAX: usize = 64;

/// What the session loop does after a read.
enum Flow {
    Go,
    Renew(u64),
    Stop,
}

/// Where the run is, as every connection sees it.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Connected, not sending yet.
    Connecting,
    /// Senders follow their schedules from `t0_ns`; samples of messages due before
    /// `record_from_ns` (the warm-up) are not recorded.
    /// `storm` counts client-side storms: when it grows, every connection drops and
    /// reconnects after a random delay below `storm_max_ms`.
    Running {
        t0_ns: u64,
        record_from_ns: u64,
        storm: u64,
        storm_max_ms: u64,
    },
    /// No new sends; unacknowledged ones are still retried.
    Stopping,
    /// Wait for every room to reach its final seq, until the deadline.
    Finish {
        finals: Arc<HashMap<String, u64>>,
        deadline: Instant,
    },
    /// Close and exit.
    Close,
}

/// What a worker's connections share.
pub struct Shared {
    pub target: Target,
    /// Part of every `client_id`: the server keeps ids for a day, and a rerun with the same
    /// users must not have its sends taken for retries.
    pub run: String,
    pub stats: Arc<Stats>,
    pub size: usize,
    pub reconnect: bool,
    /// Sends not yet acknowledged (nor given up on).
    pub unacked: AtomicU64,
    /// Connections that have not yet reached their rooms' final seqs.
    pub unfinished: AtomicU64,
    /// Highest acknowledged seq per room.
    pub max_acked: Mutex<HashMap<String, u64>>,
}

/// The local state of one connection.
pub struct User {
    pub(crate) shared: Arc<Shared>,
    pub(crate) spec: ConnSpec,
    pub(crate) bind: Option<IpAddr>,
    pub(crate) tracker: SessionTracker,
    pub(crate) sender: Option<Sender>,
    pub(crate) lat: Vec<u64>,
    pub(crate) ack_lat: Vec<u64>,
    pub(crate) finished: bool,
    pub(crate) connected: bool,
    /// The schedule's start and the first due time recorded, once the run started.
    pub(crate) t0: Option<u64>,
    pub(crate) record_from: Option<u64>,
    pub(crate) storm: u64,
    /// Each room's seq when this user first connected: an ack at or below it acknowledges an
    /// event older than the run (a reused `client_id`), which the checks must not miss.
    pub(crate) starts: HashMap<String, u64>,
}

impl User {
    /// A user whose connection is open.
    pub fn new(shared: Arc<Shared>, spec: ConnSpec, bind: Option<IpAddr>, opened: &Opened) -> Self {
        let mut tracker = SessionTracker::strict();
        for (room, seq) in &opened.starts {
            tracker.start(room, *seq);
        }
        let sender = spec.send.clone().map(|spec| Sender {
            spec,
            next: 0,
            pending: BTreeSet::new(),
            retry_at: None,
        });
        shared.stats.connected.fetch_add(1, Relaxed);
        shared.unfinished.fetch_add(1, Relaxed);
        User {
            shared,
            spec,
            bind,
            tracker,
            sender,
            lat: Vec::new(),
            ack_lat: Vec::new(),
            finished: false,
            connected: true,
            t0: None,
            record_from: None,
            storm: 0,
            starts: opened.starts.iter().cloned().collect(),
        }
    }

    /// Runs until the phase is `Close` (or the connection is lost for good).
    pub async fn run(mut self, mut tx: LinkTx, mut rx: LinkRx, mut phase: watch::Receiver<Phase>) {
        let mut reconnect_after: Option<u64> = None;
        'session: loop {
            let current = phase.borrow().clone();
            match &current {
                Phase::Close => {
                    tx.close().await;
                    break;
                }
                Phase::Running {
                    t0_ns,
                    record_from_ns,
                    storm,
                    storm_max_ms,
                } => {
                    self.t0 = Some(*t0_ns);
                    self.record_from = Some(*record_from_ns);
                    if *storm > self.storm {
                        self.storm = *storm;
                        if reconnect_after.is_none() && self.connected {
                            let max = (*storm_max_ms).max(1);
                            reconnect_after = Some(rand::rng().random_range(0..max));
                        }
                    }
                }
                Phase::Finish { finals, .. } if !self.finished && self.reached(finals) => {
                    self.finish_now(&current);
                }
                _ => {}
            }
            if let Some(after_ms) = reconnect_after.take() {
                tx.close().await;
                match self.reconnect(after_ms, &mut phase).await {
                    Some((t, r)) => {
                        tx = t;
                        rx = r;
                        self.resend_pending(&mut tx, &current).await;
                        continue;
                    }
                    None => break,
                }
            }
            let next_send = self.next_send_at(&current);
            let deadline = match &current {
                Phase::Finish { deadline, .. } if !self.finished => Some(*deadline),
                _ => None,
            };
            tokio::select! {
                biased;
                changed = phase.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    if let Phase::Finish { .. } = &*phase.borrow() {
                        self.flush();
                    }
                }
                incoming = rx.next() => {
                    // Frames already read are handled here rather than through the select
                    // again, whose futures cost more than a frame at 100k frames/s.
                    let mut next = Some(incoming);
                    let mut handled = 0;
                    while let Some(incoming) = next.take() {
                        match self.on_incoming(incoming, &mut tx, &phase).await {
                            Flow::Go => {}
                            Flow::Renew(after) => {
                                reconnect_after = Some(after);
                                break;
                            }
                            Flow::Stop => break 'session,
                        }
                        handled += 1;
                        if handled < DRAIN_MAX {
                            next = rx.next().now_or_never();
                        }
                    }
                }
                _ = sleep_until_opt(next_send), if next_send.is_some() => {
                    self.send_due(&mut tx, &current).await;
                }
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    self.finish_now(&current);
                }
            }
        }
        if self.connected {
            self.connected = false;
            self.shared.stats.connected.fetch_sub(1, Relaxed);
        }
        // A user that lost its connection for good still counts what it missed.
        loop {
            let p = phase.borrow().clone();
            self.finish_now(&p);
            if self.finished || phase.changed().await.is_err() {
                break;
            }
        }
        self.flush();
    }

    /// What a read means for the session loop.
    async fn on_incoming(
        &mut self,
        incoming: Result<Incoming, Closed>,
        tx: &mut LinkTx,
        phase: &watch::Receiver<Phase>,
    ) -> Flow {
        match incoming {
            Ok(i) => match self.handle(i, tx).await {
                Some(after) => Flow::Renew(after),
                None => Flow::Go,
            },
            Err(closed) => {
                if matches!(*phase.borrow(), Phase::Close) {
                    return Flow::Stop;
                }
                self.shared.stats.note(format!("closed {}", closed.code));
                if !self.shared.reconnect {
                    self.give_up(&closed);
                    return Flow::Stop;
                }
                Flow::Renew(0)
            }
        }
    }

    fn give_up(&mut self, closed: &Closed) {
        let stats = &self.shared.stats;
        stats.errors.fetch_add(1, Relaxed);
        if !closed.reason.is_empty() {
            stats.note(format!(
                "closed {}: {}",
                closed.code,
                truncate(&closed.reason)
            ));
        }
    }

    /// Handles one incoming item; returns `Some(after_ms)` when the connection must be renewed.
    async fn handle(&mut self, i: Incoming, tx: &mut LinkTx) -> Option<u64> {
        let stats = self.shared.stats.clone();
        match i {
            Incoming::Msg(ev) => {
                stats.delivered.fetch_add(1, Relaxed);
                self.check(&ev);
                if let (Some(due), Some(from)) =
                    (ev.body.as_deref().and_then(due_of), self.record_from)
                    && due >= from
                {
                    self.lat.push(now_ns().saturating_sub(due) / 1000);
                    if self.lat.len() >= 256 {
                        stats.record(Kind::Delivery, &self.lat);
                        self.lat.clear();
                    }
                }
            }
            Incoming::Ack {
                client_id,
                room,
                seq,
            } => self.acked(client_id, &room, seq),
            Incoming::Error {
                reference,
                code,
                retry_after_ms,
            } => self.failed(reference, &code, retry_after_ms),
            Incoming::Reconnect { after_ms } => {
                stats.note("reconnect frame");
                return Some(after_ms);
            }
            Incoming::Ping => {
                if let Err(e) = tx.pong().await {
                    stats.note(format!("pong: {}", truncate(&e)));
                }
            }
            Incoming::Undecodable(m) => {
                stats.errors.fetch_add(1, Relaxed);
                stats.note(format!("undecodable: {}", truncate(&m)));
            }
            Incoming::Other => {}
        }
        None
    }

    fn check(&mut self, ev: &Event) {
        let stats = &self.shared.stats;
        match self.tracker.observe(ev) {
            Ok(()) => {}
            Err(SeqViolation::Gap { expected, got, .. }) => {
                stats.lost.fetch_add(got - expected, Relaxed);
                stats.note("gap");
            }
            Err(SeqViolation::Repeat { .. }) => {
                stats.duplicates.fetch_add(1, Relaxed);
                stats.note("repeat");
            }
            Err(SeqViolation::OutOfOrder { .. }) => {
                stats.duplicates.fetch_add(1, Relaxed);
                stats.note("out of order");
            }
            Err(SeqViolation::Untracked { .. }) => {
                stats.errors.fetch_add(1, Relaxed);
                stats.note("event in an untracked room");
            }
        }
    }

    fn reached(&self, finals: &HashMap<String, u64>) -> bool {
        self.spec.rooms.iter().all(|room| match finals.get(room) {
            Some(f) => self.tracker.last_seq(room).is_some_and(|l| l >= *f),
            None => true,
        })
    }

    /// Counts what never arrived (once) and marks this user finished.
    fn finish_now(&mut self, phase: &Phase) {
        if self.finished {
            return;
        }
        let Phase::Finish { finals, .. } = phase else {
            if matches!(phase, Phase::Close) {
                self.finished = true;
                self.shared.unfinished.fetch_sub(1, Relaxed);
            }
            return;
        };
        let mut short = 0;
        for room in &self.spec.rooms {
            if let Some(f) = finals.get(room) {
                let last = self.tracker.last_seq(room).unwrap_or(0);
                short += f.saturating_sub(last);
            }
        }
        if short > 0 {
            self.shared.stats.lost.fetch_add(short, Relaxed);
            self.shared.stats.note("short of the final seq");
        }
        self.finished = true;
        self.shared.unfinished.fetch_sub(1, Relaxed);
        self.flush();
    }

    fn flush(&mut self) {
        self.shared.stats.record(Kind::Delivery, &self.lat);
        self.lat.clear();
        self.shared.stats.record(Kind::Ack, &self.ack_lat);
        self.ack_lat.clear();
    }

    /// Reconnects with exponential backoff and full jitter, resuming with `sync`; gives up
    /// after 60 s or when the run closes.
    async fn reconnect(
        &mut self,
        after_ms: u64,
        phase: &mut watch::Receiver<Phase>,
    ) -> Option<(LinkTx, LinkRx)> {
        let stats = self.shared.stats.clone();
        if self.connected {
            self.connected = false;
            stats.connected.fetch_sub(1, Relaxed);
        }
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut wait = Duration::from_millis(after_ms);
        let mut attempt = 0u32;
        loop {
            tokio::time::sleep(wait).await;
            if matches!(*phase.borrow(), Phase::Close) || Instant::now() > give_up {
                stats.errors.fetch_add(1, Relaxed);
                stats.note("gave up reconnecting");
                return None;
            }
            let sync: BTreeMap<String, u64> = self.tracker.sync_map();
            match link::open(&self.shared.target, &self.spec, self.bind, Some(sync)).await {
                Ok(opened) => {
                    for (room, seq) in &opened.starts {
                        if self.tracker.last_seq(room).is_none() {
                            self.tracker.start(room, *seq);
                        }
                    }
                    stats.reconnects.fetch_add(1, Relaxed);
                    stats.connected.fetch_add(1, Relaxed);
                    self.connected = true;
                    return Some((opened.tx, opened.rx));
                }
                Err(e) => {
                    stats.connect_failed.fetch_add(1, Relaxed);
                    stats.note(format!("reconnect: {}", truncate(&e)));
                    attempt = attempt.saturating_add(1);
                    let cap = (100u64 << attempt.min(5)).min(3000);
                    wait = Duration::from_millis(rand::rng().random_range(cap / 2..=cap));
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

/// An event as the tracker wants it, for dialects that do not send full events.
pub fn bare_event(room: String, seq: u64, body: Option<String>) -> Event {
    Event {
        room,
        seq,
        id: String::new(),
        kind: EventKind::Text,
        from: UserRef {
            id: String::new(),
            name: String::new(),
        },
        by: None,
        body,
        target: None,
        deleted: false,
        ts: 0,
        client_id: None,
    }
}
