//! The Bus port: carries published messages to every node subscribed to their topic.
//!
//! Contract, for every back end: a message published on a topic reaches each node that was
//! subscribed to it when `subscribe` returned, at most once. The bus MAY lose or reorder
//! messages (a slow node's inbox overflows, a broker restarts): nothing that must not be lost
//! rests on it. Only `connect(url)` names a back end.

pub mod memory;

use std::sync::Arc;

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
    /// Subscribes this node to `topic`; effective for every publish after it returns.
    async fn subscribe(&self, topic: &str) -> Result<(), BusError>;
    /// Stops delivering `topic` to this node.
    async fn unsubscribe(&self, topic: &str) -> Result<(), BusError>;
    /// Which back end this is, for logs.
    fn describe(&self) -> String;
}

/// How many messages a node's inbox holds before the bus drops for it.
pub const INBOX: usize = 65_536;

/// Connects to the bus a URL names (`memory://`); returns the handle and this node's inbox.
pub async fn connect(url: &str) -> Result<(Arc<dyn Bus>, mpsc::Receiver<Delivery>), BusError> {
    if url == "memory://" || url == "memory" {
        let broker = memory::MemoryBroker::default();
        let (bus, inbox) = broker.node(INBOX);
        return Ok((Arc::new(bus), inbox));
    }
    Err(BusError::Config(format!("unsupported bus URL `{url}`")))
}
