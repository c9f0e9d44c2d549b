//! What a worker is asked to do (serializable, so a worker can be another process) and the
//! commands and reports that pace it.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::stats::{Snapshot, WorkerResult};

/// Which protocol the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// PROTOCOL.md: HTTP setup, `GET /v1/ws`, `send`/`ack`/`msg` (confab and the floor).
    Confab,
    /// Socket.IO v4 (Engine.IO v4 over WebSocket) with the events of benches/peers/socketio.
    Socketio,
}

/// One simulated user's connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnSpec {
    /// The user's name (Socket.IO authenticates by name).
    pub name: String,
    /// The session token (confab dialect).
    pub token: String,
    /// The rooms whose seqs this connection checks (Socket.IO joins them on connect).
    pub rooms: Vec<String>,
    /// Set when this connection also sends.
    pub send: Option<SendSpec>,
    /// The node to connect to, when it is not the run's one target (a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A sender's fixed-rate schedule in one room: message `n` is due at
/// `t0 + offset_ns + n * interval_ns`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendSpec {
    pub room: String,
    pub interval_ns: u64,
    pub offset_ns: u64,
    /// Unique among senders, part of every `client_id`.
    pub sender: u32,
}

/// A worker's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub index: usize,
    /// This run's nonce, part of every `client_id`.
    pub run: String,
    pub base_url: String,
    pub dialect: Dialect,
    /// Local addresses to bind, round-robin (empty: let the kernel choose).
    pub bind: Vec<IpAddr>,
    pub conns: Vec<ConnSpec>,
    /// Message body size in bytes.
    pub size: usize,
    /// Connections opened at once.
    pub connect_concurrency: usize,
    /// Reconnect (with backoff, jitter and `sync`) when the server closes or asks to.
    pub reconnect: bool,
}

/// Coordinator → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmd {
    /// Start sending; schedules count from `t0_ns` (Unix ns); latencies of messages due
    /// before `record_from_ns` (the warm-up) are not recorded.
    Go { t0_ns: u64, record_from_ns: u64 },
    /// Every connection drops and reconnects after a random delay below `max_ms` (a storm
    /// that needs no control over the server).
    Drop { max_ms: u64 },
    /// Answer with a `Mark` snapshot now.
    Mark,
    /// Stop sending and report once every send is acknowledged (or given up on).
    StopSending,
    /// Wait until every room reached its final seq (or the deadline), then report the result.
    Finish {
        finals: HashMap<String, u64>,
        wait_ms: u64,
    },
}

/// Worker → coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Every connection was tried once; how many are up.
    Connected {
        ok: u64,
        failed: u64,
        first_error: Option<String>,
    },
    /// Cumulative counters, about twice a second.
    Progress(Snapshot),
    /// The answer to `Mark`.
    Mark(Snapshot),
    /// Sending stopped: the highest acknowledged seq per room and what was never acknowledged.
    Stopped {
        max_acked: HashMap<String, u64>,
        unacked: u64,
    },
    /// The end of the run.
    Done(Box<WorkerResult>),
    /// The worker failed.
    Failed(String),
}
