//! The sending side of a simulated user: a fixed schedule (message `n` is due at
//! `t0 + offset + n * interval`), bodies that carry their due time, acks matched to sends by
//! `client_id`, and retries of what was not acknowledged (rate limits, reconnects).

use std::sync::PoisonError;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::BTreeSet;

use tokio::time::Instant;

use crate::link::LinkTx;
use crate::spec::SendSpec;
use crate::stats::Kind;
use crate::user::{Phase, User, truncate};

/// Unix time in nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The tokio instant of a Unix time in nanoseconds.
pub(crate) fn instant_of(ns: u64) -> Instant {
    let now = now_ns();
    Instant::now() + Duration::from_nanos(ns.saturating_sub(now))
}

/// The body of message `n`: its due time (hex ns) first, padded to `size` bytes.
pub fn body(due_ns: u64, client_id: &str, size: usize) -> String {
    let mut b = format!("{due_ns:x} {client_id} ");
    while b.len() < size {
        b.push('x');
    }
    b
}

/// The due time a bench body carries.
pub fn due_of(body: &str) -> Option<u64> {
    u64::from_str_radix(body.split(' ').next()?, 16).ok()
}

pub(crate) struct Sender {
    pub(crate) spec: SendSpec,
    pub(crate) next: u64,
    pub(crate) pending: BTreeSet<u64>,
    pub(crate) retry_at: Option<Instant>,
}

impl Sender {
    fn due_ns(&self, t0: u64, n: u64) -> u64 {
        t0 + self.spec.offset_ns + n * self.spec.interval_ns
    }
    fn client_id(&self, run: &str, n: u64) -> String {
        format!("s{}-{run}-{n}", self.spec.sender)
    }
}

impl User {
    pub(crate) fn next_send_at(&self, phase: &Phase) -> Option<Instant> {
        let s = self.sender.as_ref()?;
        let retry = s.retry_at;
        let due = match phase {
            Phase::Running { t0_ns, .. } => Some(instant_of(s.due_ns(*t0_ns, s.next))),
            _ => None,
        };
        match (due, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) async fn send_due(&mut self, tx: &mut LinkTx, phase: &Phase) {
        let Some(t0) = self.t0 else {
            return;
        };
        let now = now_ns();
        let size = self.shared.size;
        let Some(s) = self.sender.as_mut() else {
            return;
        };
        let mut batch: Vec<u64> = Vec::new();
        if s.retry_at.is_some_and(|at| at <= Instant::now()) {
            s.retry_at = None;
            batch.extend(s.pending.iter().copied());
        }
        if matches!(phase, Phase::Running { .. }) {
            // Catch up on everything due (bounded, so one burst cannot starve the reader).
            while s.due_ns(t0, s.next) <= now && batch.len() < 256 {
                batch.push(s.next);
                s.pending.insert(s.next);
                self.shared.unacked.fetch_add(1, Relaxed);
                s.next += 1;
            }
        }
        for n in batch {
            let cid = s.client_id(&self.shared.run, n);
            let b = body(s.due_ns(t0, n), &cid, size);
            match tx.send(&s.spec.room, &cid, &b).await {
                Ok(()) => {
                    self.shared.stats.sent.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    self.shared.stats.note(format!("send: {}", truncate(&e)));
                    // The reader sees the close and reconnects; pending sends go again then.
                    return;
                }
            }
        }
    }

    pub(crate) async fn resend_pending(&mut self, tx: &mut LinkTx, phase: &Phase) {
        if let Some(s) = self.sender.as_mut()
            && !s.pending.is_empty()
        {
            s.retry_at = Some(Instant::now());
            self.send_due(tx, phase).await;
        }
    }

    pub(crate) fn acked(&mut self, client_id: Option<String>, room: &str, seq: u64) {
        let stats = self.shared.stats.clone();
        stats.acked.fetch_add(1, Relaxed);
        if self.starts.get(room).is_some_and(|start| seq <= *start) {
            stats.errors.fetch_add(1, Relaxed);
            stats.note("ack of an event older than the run (client_id reused?)");
        }
        {
            let mut max = self
                .shared
                .max_acked
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let e = max.entry(room.to_string()).or_insert(0);
            *e = (*e).max(seq);
        }
        let Some(s) = self.sender.as_mut() else {
            return;
        };
        let Some(n) = client_id
            .as_deref()
            .and_then(|c| c.rsplit('-').next()?.parse().ok())
        else {
            return;
        };
        if s.pending.remove(&n) {
            self.shared.unacked.fetch_sub(1, Relaxed);
        }
        let (Some(t0), Some(from)) = (self.t0, self.record_from) else {
            return;
        };
        let due = s.due_ns(t0, n);
        if due >= from {
            self.ack_lat.push(now_ns().saturating_sub(due) / 1000);
            if self.ack_lat.len() >= 64 {
                stats.record(Kind::Ack, &self.ack_lat);
                self.ack_lat.clear();
            }
        }
    }

    pub(crate) fn failed(
        &mut self,
        reference: Option<String>,
        code: &str,
        retry_after_ms: Option<u64>,
    ) {
        let stats = &self.shared.stats;
        stats.note(format!("error {code}"));
        let n = reference
            .as_deref()
            .and_then(|c| c.rsplit('-').next()?.parse::<u64>().ok());
        match (self.sender.as_mut(), n) {
            (Some(s), Some(n)) if s.pending.contains(&n) => {
                if matches!(code, "rate_limited" | "unavailable") {
                    let wait = retry_after_ms.unwrap_or(100).clamp(10, 5000);
                    s.retry_at = Some(Instant::now() + Duration::from_millis(wait));
                } else {
                    s.pending.remove(&n);
                    self.shared.unacked.fetch_sub(1, Relaxed);
                    stats.errors.fetch_add(1, Relaxed);
                }
            }
            _ => {
                stats.errors.fetch_add(1, Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_due_time_and_have_the_asked_size() {
        let b = body(0xabc_def, "s1-9", 100);
        assert_eq!(b.len(), 100);
        assert_eq!(due_of(&b), Some(0xabc_def));
        assert_eq!(due_of("hello"), None);
    }
}
