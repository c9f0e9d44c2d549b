//! The Bus contract, written once and run against every back end: the in-process one always,
//! NATS when `CONFAB_TEST_NATS_URL` is set, Redis when `CONFAB_TEST_REDIS_URL` is set.
//! The resilience tests start their own servers and run only when the matching variable is set.

mod pubsub;
mod resilience;
mod servers;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confab_bus::memory::MemoryBroker;
use confab_bus::{Bus, Delivery};
use rand::RngExt;
use tokio::sync::mpsc;

/// One back end the suite runs against.
pub enum Backend {
    Memory(MemoryBroker),
    Url(&'static str, String),
}

/// A node: its bus handle and its inbox.
pub struct Node {
    pub bus: Arc<dyn Bus>,
    pub inbox: mpsc::Receiver<Delivery>,
}

impl Backend {
    /// Every back end this run can reach; says which are skipped and why.
    pub fn all() -> Vec<Backend> {
        let mut all = vec![Backend::Memory(MemoryBroker::default())];
        for (name, var) in [
            ("nats", "CONFAB_TEST_NATS_URL"),
            ("redis", "CONFAB_TEST_REDIS_URL"),
        ] {
            match std::env::var(var) {
                Ok(url) if !url.is_empty() => all.push(Backend::Url(name, url)),
                _ => println!("skipped: {name} bus contract ({var} is not set)"),
            }
        }
        all
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Url(name, _) => name,
        }
    }

    /// A new node on this back end (nodes of one back end reach each other).
    pub async fn node(&self) -> Node {
        match self {
            Backend::Memory(broker) => {
                let (bus, inbox) = broker.node(confab_bus::INBOX);
                Node {
                    bus: Arc::new(bus),
                    inbox,
                }
            }
            Backend::Url(_, url) => connect(url).await,
        }
    }
}

/// Connects a node to `url`, which must work.
pub async fn connect(url: &str) -> Node {
    let (bus, inbox) = confab_bus::connect(url).await.expect("bus connects");
    Node { bus, inbox }
}

/// A topic no other test (or run) uses: `t<random>.<word>`.
pub fn topic(word: &str) -> String {
    format!("t{:016x}.{word}", rand::rng().random::<u64>())
}

pub fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// The next delivery within `wait`, if any.
pub async fn recv_within(inbox: &mut mpsc::Receiver<Delivery>, wait: Duration) -> Option<Delivery> {
    tokio::time::timeout(wait, inbox.recv())
        .await
        .ok()
        .flatten()
}

/// How long a healthy local server gets to deliver one message.
pub const DELIVERY: Duration = Duration::from_secs(5);
/// How long the suite watches for a message that must not come.
pub const QUIET: Duration = Duration::from_millis(300);
