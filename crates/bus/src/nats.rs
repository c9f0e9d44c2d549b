//! The NATS bus: core NATS publish/subscribe, one NATS subscription per subscribed topic.
//!
//! async-nats owns the socket, reconnects forever (to any server of the list, and to the ones a
//! cluster advertises) and replays the subscriptions on the new connection by itself. While it
//! is disconnected, `publish` fails at once with `Unavailable` instead of queueing: a message
//! published in the instant before the client notices the loss may still sit in its bounded
//! command buffer and go out after the reconnect.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;

use crate::{Bus, BusError, Inbox, channel, redact};

/// How long `subscribe` waits for the server to confirm, and `publish` for buffer room.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A subject outside confab's namespace that nobody answers: see `round_trip`.
const SYNC_SUBJECT: &str = "_CONFAB.sync";
/// The longest pause between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// One node's connection to NATS.
pub struct NatsBus {
    client: Client,
    inbox: Arc<Inbox>,
    subs: Mutex<HashMap<Arc<str>, Forwarder>>,
    urls: String,
}

/// The task moving one subscription's messages into the inbox.
struct Forwarder {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl NatsBus {
    /// Connects to the first reachable server of `urls` (comma-separated); fails if none is.
    pub(crate) async fn connect(urls: &str, inbox: Arc<Inbox>) -> Result<Self, BusError> {
        let servers: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(BusError::Config("no NATS server in the URL".into()));
        }
        let shown = redact(urls);
        let log_as = shown.clone();
        let options = ConnectOptions::new()
            .name("confab")
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .connection_timeout(Duration::from_secs(2))
            // Notices a silently dead server within a few pings.
            .ping_interval(Duration::from_secs(5))
            .event_callback(move |event| {
                let urls = log_as.clone();
                async move { log_event(&urls, event) }
            });
        let client = options.connect(servers).await.map_err(|e| {
            BusError::Unavailable(format!("cannot connect to NATS at {shown}: {e}"))
        })?;
        tracing::info!(urls = %shown, "bus connected to NATS");
        Ok(NatsBus {
            client,
            inbox,
            subs: Mutex::new(HashMap::new()),
            urls: shown,
        })
    }

    /// Waits until the server has processed everything this client sent before (our SUBs
    /// included). A flush only empties the socket buffer, so this makes a round trip: a request
    /// nobody answers, which the server answers "no responders" after the SUB.
    async fn round_trip(&self) -> Result<(), BusError> {
        match tokio::time::timeout(
            CALL_TIMEOUT,
            self.client.request(SYNC_SUBJECT, Bytes::new()),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.kind() == RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(e)) => Err(BusError::Unavailable(format!("NATS round trip: {e}"))),
            Err(_) => Err(BusError::Unavailable("NATS did not answer in time".into())),
        }
    }
}

fn reconnect_delay(attempts: usize) -> Duration {
    // 0, 50, 100, ... ms, then every 500 ms forever: a restarted server is found quickly.
    let ms = 50 * attempts.saturating_sub(1) as u64;
    Duration::from_millis(ms).min(MAX_RECONNECT_DELAY)
}

fn log_event(urls: &str, event: Event) {
    match event {
        Event::Connected => tracing::info!(urls, "bus reconnected to NATS"),
        Event::Disconnected => tracing::warn!(urls, "bus disconnected from NATS; reconnecting"),
        Event::Closed => tracing::warn!(urls, "bus connection to NATS closed"),
        Event::SlowConsumer(sid) => {
            tracing::warn!(urls, sid, "NATS subscription too slow; messages dropped")
        }
        other => tracing::info!(urls, event = %other, "NATS connection event"),
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let subject = channel(topic)?;
        if self.client.connection_state() != State::Connected {
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        match tokio::time::timeout(CALL_TIMEOUT, self.client.publish(subject, payload)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BusError::Unavailable(format!("NATS publish: {e}"))),
            Err(_) => Err(BusError::Unavailable("NATS publish buffer full".into())),
        }
    }

    async fn subscribe(&self, topic: &str) -> Result<(), BusError> {
        let subject = channel(topic)?;
        let mut subs = self.subs.lock().await;
        if !subs.contains_key(topic) {
            // Only queues the SUB (replayed on every reconnect); bounded in case the queue is full.
            let mut sub = match tokio::time::timeout(CALL_TIMEOUT, self.client.subscribe(subject))
                .await
            {
                Ok(Ok(sub)) => sub,
                Ok(Err(e)) => return Err(BusError::Unavailable(format!("NATS subscribe: {e}"))),
                Err(_) => return Err(BusError::Unavailable("NATS command queue full".into())),
            };
            let topic: Arc<str> = Arc::from(topic);
            let (stop, mut stopped) = oneshot::channel();
            let inbox = self.inbox.clone();
            let name = topic.clone();
            let task = tokio::spawn(async move {
                loop {
                    tokio::select! {
                        biased;
                        _ = &mut stopped => break,
                        msg = sub.next() => match msg {
                            Some(m) => inbox.deliver(name.clone(), m.payload),
                            None => break,
                        },
                    }
                }
                // Dropping `sub` sends the UNSUB without waiting for a connection.
            });
            subs.insert(topic, Forwarder { stop, task });
        }
        drop(subs);
        if self.client.connection_state() != State::Connected {
            // Not waiting for the server: the subscription takes effect when it is back.
            return Err(BusError::Unavailable("not connected to NATS".into()));
        }
        self.round_trip().await
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), BusError> {
        let Some(forwarder) = self.subs.lock().await.remove(topic) else {
            return Ok(());
        };
        let _ = forwarder.stop.send(());
        // Once the task has ended, nothing more of this topic reaches the inbox.
        let _ = forwarder.task.await;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("nats {}", self.urls)
    }

    fn dropped(&self) -> u64 {
        self.inbox.dropped()
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        for forwarder in self.subs.get_mut().values() {
            forwarder.task.abort();
        }
    }
}
