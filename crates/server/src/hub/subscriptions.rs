//! The node's bus subscriptions, changed by one task in the order they were asked for, so an
//! unsubscribe never overtakes the subscribe that follows it.

use std::sync::Arc;

use confab_bus::Bus;
use tokio::sync::{mpsc, oneshot};

enum Cmd {
    Subscribe(String),
    Unsubscribe(String),
    Barrier(oneshot::Sender<()>),
}

/// A handle on the subscription task.
pub struct Subscriptions {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl Subscriptions {
    /// Starts the task that owns the subscriptions on `bus`.
    pub fn start(bus: Arc<dyn Bus>) -> Self {
        // Unbounded, but bounded in practice by the rooms and users with local sessions.
        let (tx, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(cmd) = rx.recv().await {
                match cmd {
                    Cmd::Subscribe(topic) => {
                        if let Err(e) = bus.subscribe(&topic).await {
                            tracing::warn!(error = %e, topic, "bus subscribe failed");
                        }
                    }
                    Cmd::Unsubscribe(topic) => {
                        if let Err(e) = bus.unsubscribe(&topic).await {
                            tracing::warn!(error = %e, topic, "bus unsubscribe failed");
                        }
                    }
                    Cmd::Barrier(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Subscriptions { tx }
    }

    /// Asks for a subscription.
    pub fn subscribe(&self, topic: String) {
        let _ = self.tx.send(Cmd::Subscribe(topic));
    }

    /// Asks to drop a subscription.
    pub fn unsubscribe(&self, topic: String) {
        let _ = self.tx.send(Cmd::Unsubscribe(topic));
    }

    /// Waits until every change asked for before this call has been made.
    pub async fn barrier(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Barrier(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
