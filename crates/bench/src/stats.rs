//! Counters and latency histograms: shared by a worker's connections, snapshotted for progress,
//! serialized to cross process boundaries and merged by the coordinator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

/// Highest latency a histogram holds, in microseconds (larger values are clamped).
const MAX_US: u64 = 120_000_000;

/// A histogram of microseconds, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("sigfig 3"))
}

/// Cumulative counters of one worker (or, merged, of a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Connections up now.
    pub connected: u64,
    /// Connection attempts that failed.
    pub connect_failed: u64,
    /// Successful reconnects.
    pub reconnects: u64,
    /// `send` frames written.
    pub sent: u64,
    /// `ack`s received.
    pub acked: u64,
    /// Events received (`msg` frames, live and replayed).
    pub delivered: u64,
    /// Seqs that never arrived (gaps, and rooms short of their final seq at the end).
    pub lost: u64,
    /// Seqs that arrived again or out of order.
    pub duplicates: u64,
    /// Error frames, failed writes, undecodable frames, unexpected closes.
    pub errors: u64,
}

impl Snapshot {
    /// The sum of two snapshots.
    pub fn add(&self, o: &Snapshot) -> Snapshot {
        Snapshot {
            connected: self.connected + o.connected,
            connect_failed: self.connect_failed + o.connect_failed,
            reconnects: self.reconnects + o.reconnects,
            sent: self.sent + o.sent,
            acked: self.acked + o.acked,
            delivered: self.delivered + o.delivered,
            lost: self.lost + o.lost,
            duplicates: self.duplicates + o.duplicates,
            errors: self.errors + o.errors,
        }
    }
}

/// The shared, lock-light recorder of one worker.
#[derive(Debug)]
pub struct Stats {
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    pub reconnects: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub lost: AtomicU64,
    pub duplicates: AtomicU64,
    pub errors: AtomicU64,
    hists: Mutex<Hists>,
    notes: Mutex<BTreeMap<String, u64>>,
}

#[derive(Debug)]
struct Hists {
    delivery: Histogram<u64>,
    ack: Histogram<u64>,
    connect: Histogram<u64>,
}

/// Which histogram a sample goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Delivery,
    Ack,
    Connect,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            hists: Mutex::new(Hists {
                delivery: new_histogram(),
                ack: new_histogram(),
                connect: new_histogram(),
            }),
            notes: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: self.connected.load(Relaxed),
            connect_failed: self.connect_failed.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            lost: self.lost.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// Records a batch of samples (microseconds) into one histogram under one lock.
    pub fn record(&self, kind: Kind, samples: &[u64]) {
        if samples.is_empty() {
            return;
        }
        let mut h = self.hists.lock().unwrap_or_else(PoisonError::into_inner);
        let hist = match kind {
            Kind::Delivery => &mut h.delivery,
            Kind::Ack => &mut h.ack,
            Kind::Connect => &mut h.connect,
        };
        for &us in samples {
            hist.saturating_record(us.clamp(1, MAX_US));
        }
    }

    /// Counts one occurrence of a labelled event (an error kind, a close code), kept for the
    /// report; the first message of each label is what people read, so labels stay short.
    pub fn note(&self, label: impl Into<String>) {
        let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        let label: String = label.into();
        let label = if notes.len() >= 64 && !notes.contains_key(&label) {
            "other".to_string()
        } else {
            label
        };
        *notes.entry(label).or_insert(0) += 1;
    }

    /// Everything recorded, for the coordinator.
    pub fn result(&self) -> WorkerResult {
        let h = self.hists.lock().unwrap_or_else(PoisonError::into_inner);
        WorkerResult {
            counters: self.snapshot(),
            delivery: encode(&h.delivery),
            ack: encode(&h.ack),
            connect: encode(&h.connect),
            notes: self
                .notes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A worker's final counters and histograms (hex-encoded HdrHistogram V2).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerResult {
    pub counters: Snapshot,
    pub delivery: String,
    pub ack: String,
    pub connect: String,
    pub notes: BTreeMap<String, u64>,
}

/// Merged results of all workers.
#[derive(Debug, Clone)]
pub struct Merged {
    pub counters: Snapshot,
    pub delivery: Histogram<u64>,
    pub ack: Histogram<u64>,
    pub connect: Histogram<u64>,
    pub notes: BTreeMap<String, u64>,
}

impl Merged {
    /// Merges worker results.
    pub fn from_results(results: &[WorkerResult]) -> anyhow::Result<Merged> {
        let mut m = Merged {
            counters: Snapshot::default(),
            delivery: new_histogram(),
            ack: new_histogram(),
            connect: new_histogram(),
            notes: BTreeMap::new(),
        };
        for r in results {
            m.counters = m.counters.add(&r.counters);
            m.delivery.add(decode(&r.delivery)?)?;
            m.ack.add(decode(&r.ack)?)?;
            m.connect.add(decode(&r.connect)?)?;
            for (k, v) in &r.notes {
                *m.notes.entry(k.clone()).or_insert(0) += v;
            }
        }
        Ok(m)
    }
}

/// A histogram as hex-encoded HdrHistogram V2 (empty on failure).
pub fn encode(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2Serializer::new().serialize(h, &mut buf) {
        Ok(_) => hex::encode(buf),
        Err(_) => String::new(),
    }
}

/// The histogram of [`encode`]'s output (empty for an empty string).
pub fn decode(s: &str) -> anyhow::Result<Histogram<u64>> {
    if s.is_empty() {
        return Ok(new_histogram());
    }
    let bytes = hex::decode(s)?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("bad histogram: {e:?}"))?;
    Ok(h)
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    /// The summary of a histogram.
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_survive_encoding_and_merge() {
        let a = Stats::default();
        a.record(Kind::Delivery, &[100, 200, 300]);
        a.sent.store(3, Relaxed);
        a.note("close 4009");
        let b = Stats::default();
        b.record(Kind::Delivery, &[1000]);
        b.note("close 4009");
        let m = Merged::from_results(&[a.result(), b.result()]).expect("merges");
        assert_eq!(m.delivery.len(), 4);
        assert_eq!(m.counters.sent, 3);
        assert_eq!(m.notes.get("close 4009"), Some(&2));
        assert!(Latency::of(&m.delivery).max_us >= 1000);
    }
}
