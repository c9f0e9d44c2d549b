//! The in-process bus: a broker shared by the nodes of one process (one node by default).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::{Bus, BusError, Delivery, Inbox, channel};

type NodeId = u64;

#[derive(Default)]
struct Routes {
    topics: HashMap<Arc<str>, HashSet<NodeId>>,
    inboxes: HashMap<NodeId, Arc<Inbox>>,
    next_node: NodeId,
}

/// A broker; each `node()` is one subscriber with its own inbox.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    routes: Arc<Mutex<Routes>>,
}

impl MemoryBroker {
    /// A new node on this broker, with an inbox of `capacity` messages.
    pub fn node(&self, capacity: usize) -> (MemoryBus, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(capacity);
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let id = routes.next_node;
        routes.next_node += 1;
        let inbox = Arc::new(Inbox::new(tx));
        routes.inboxes.insert(id, inbox.clone());
        (
            MemoryBus {
                broker: self.clone(),
                id,
                inbox,
            },
            rx,
        )
    }
}

/// One node's handle on a `MemoryBroker`.
pub struct MemoryBus {
    broker: MemoryBroker,
    id: NodeId,
    inbox: Arc<Inbox>,
}

impl MemoryBus {
    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.broker
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        channel(topic)?;
        let routes = self.routes();
        let Some((topic, nodes)) = routes.topics.get_key_value(topic) else {
            return Ok(());
        };
        for node in nodes {
            if let Some(inbox) = routes.inboxes.get(node) {
                // A full inbox loses the message, as any bus may; receivers fill gaps from the store.
                inbox.deliver(topic.clone(), payload.clone());
            }
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str) -> Result<(), BusError> {
        channel(topic)?;
        self.routes()
            .topics
            .entry(Arc::from(topic))
            .or_default()
            .insert(self.id);
        Ok(())
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), BusError> {
        let mut routes = self.routes();
        if let Some(nodes) = routes.topics.get_mut(topic) {
            nodes.remove(&self.id);
            if nodes.is_empty() {
                routes.topics.remove(topic);
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "memory (in-process)".into()
    }

    fn dropped(&self) -> u64 {
        self.inbox.dropped()
    }
}

impl Drop for MemoryBus {
    fn drop(&mut self) {
        let mut routes = self.routes();
        routes.inboxes.remove(&self.id);
        for nodes in routes.topics.values_mut() {
            nodes.remove(&self.id);
        }
        routes.topics.retain(|_, nodes| !nodes.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_reaches_subscribed_nodes_only() {
        let broker = MemoryBroker::default();
        let (a, mut a_in) = broker.node(8);
        let (b, mut b_in) = broker.node(8);
        a.subscribe("room.1").await.expect("subscribe");
        b.publish("room.1", Bytes::from_static(b"hi"))
            .await
            .expect("publish");
        b.publish("room.2", Bytes::from_static(b"no"))
            .await
            .expect("publish");
        let got = a_in.recv().await.expect("delivered");
        assert_eq!(&*got.topic, "room.1");
        assert_eq!(&got.payload[..], b"hi");
        assert!(b_in.try_recv().is_err());
        a.unsubscribe("room.1").await.expect("unsubscribe");
        b.publish("room.1", Bytes::from_static(b"late"))
            .await
            .expect("publish");
        assert!(a_in.try_recv().is_err());
    }
}
