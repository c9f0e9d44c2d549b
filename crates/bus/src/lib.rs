//! The Bus port: carries published messages to every node subscribed to their topic.
//!
//! Contract, for every back end: a message published on a topic reaches each node that was
//! subscribed to it when `subscribe` returned, at most once, and none reaches a node after its
//! `unsubscribe` returned. The bus MAY lose or reorder messages (a slow node's inbox overflows,
//! a broker restarts): nothing that must not be lost rests on it. `publish` never waits for a
//! broker that is away: it fails at once with `BusError::Unavailable`. Back ends reconnect by
//! themselves and restore the node's subscriptions. Only `connect(url)` names a back end.
//!
//! Topics are dot-separated words of `[A-Za-z0-9_-]` (`room.<id>`, `user.<id>`, `presence`).

pub mod memory;
pub mod nats;
pub mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Why a bus call failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached right now.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// A bad bus URL.
    #[error("bus configuration: {0}")]
    Config(String),
    /// A topic that is not dot-separated words of `[A-Za-z0-9_-]`.
    #[error("bad bus topic `{0}`")]
    Topic(String),
}

/// A message as it arrives at a subscribed node.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: Arc<str>,
    pub payload: Bytes,
}

/// Publish/subscribe between nodes. See the module documentation for the contract.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends `payload` to the nodes subscribed to `topic`.
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError>;
    /// Subscribes this node to `topic`; effective for every publish after it returns. When it
    /// fails because the broker is away, the subscription still takes effect once it is back.
    async fn subscribe(&self, topic: &str) -> Result<(), BusError>;
    /// Stops delivering `topic` to this node.
    async fn unsubscribe(&self, topic: &str) -> Result<(), BusError>;
    /// Which back end this is, for logs.
    fn describe(&self) -> String;
    /// How many messages this node's inbox has dropped because it was full.
    fn dropped(&self) -> u64 {
        0
    }
}

/// How many messages a node's inbox holds before the bus drops for it.
pub const INBOX: usize = 65_536;

/// Connects to the bus a URL names: `memory://`, `nats://host:port` (a comma-separated list
/// for a cluster) or `redis://host:port`; returns the handle and this node's inbox.
pub async fn connect(url: &str) -> Result<(Arc<dyn Bus>, mpsc::Receiver<Delivery>), BusError> {
    if url == "memory://" || url == "memory" {
        let broker = memory::MemoryBroker::default();
        let (bus, inbox) = broker.node(INBOX);
        return Ok((Arc::new(bus), inbox));
    }
    let (tx, rx) = mpsc::channel(INBOX);
    let inbox = Arc::new(Inbox::new(tx));
    if url.starts_with("nats://") || url.starts_with("tls://") {
        return Ok((Arc::new(nats::NatsBus::connect(url, inbox).await?), rx));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok((Arc::new(redis::RedisBus::connect(url, inbox).await?), rx));
    }
    Err(BusError::Config(format!(
        "unsupported bus URL `{}`",
        redact(url)
    )))
}

/// The sending side of a node's inbox: never waits; a full inbox drops and counts.
pub(crate) struct Inbox {
    tx: mpsc::Sender<Delivery>,
    dropped: AtomicU64,
}

impl Inbox {
    pub(crate) fn new(tx: mpsc::Sender<Delivery>) -> Self {
        Inbox {
            tx,
            dropped: AtomicU64::new(0),
        }
    }

    pub(crate) fn deliver(&self, topic: Arc<str>, payload: Bytes) {
        if let Err(mpsc::error::TrySendError::Full(d)) =
            self.tx.try_send(Delivery { topic, payload })
        {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8, ... drops so a flood does not flood the log too.
            if n.is_power_of_two() {
                tracing::warn!(topic = %d.topic, dropped = n, "bus inbox full; message dropped");
            }
        }
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The broker-side name of a topic (a NATS subject or a Redis channel).
pub(crate) fn channel(topic: &str) -> Result<String, BusError> {
    let word_ok = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !topic.split('.').all(word_ok) {
        return Err(BusError::Topic(topic.to_owned()));
    }
    Ok(format!("{CHANNEL_PREFIX}{topic}"))
}

/// Every confab channel starts with this, so confab can share a broker with others.
pub(crate) const CHANNEL_PREFIX: &str = "confab.";

/// A URL with any `user:password@` replaced, for logs.
pub(crate) fn redact(url: &str) -> String {
    url.split(',')
        .map(|one| match (one.find("://"), one.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                format!("{}://***@{}", &one[..scheme], &one[at + 1..])
            }
            _ => one.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_map_to_prefixed_channels_and_odd_ones_are_refused() {
        assert_eq!(channel("room.r_1-x").expect("ok"), "confab.room.r_1-x");
        assert_eq!(channel("presence").expect("ok"), "confab.presence");
        for bad in ["", "room.", ".x", "room.*", "room.>", "a b", "room..x"] {
            assert!(channel(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn credentials_never_reach_the_logs() {
        assert_eq!(
            redact("nats://u:p@h:1,nats://h2:2"),
            "nats://***@h:1,nats://h2:2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
