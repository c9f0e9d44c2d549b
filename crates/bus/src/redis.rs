//! The Redis bus: Redis pub/sub (at most once) over one RESP3 connection per node.
//!
//! A supervisor task owns the connection: it connects, replays the node's subscriptions, and
//! when the connection drops (or stops answering pings) it reconnects forever with a short
//! pause. Messages arrive as RESP3 pushes and go straight into the inbox with `try_send`.
//! While there is no connection, `publish` fails at once with `Unavailable`; `subscribe`
//! records the topic, fails with `Unavailable`, and the topic is subscribed on reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{
    AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value,
};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{Bus, BusError, Inbox, channel, redact};

/// How long one Redis call may take before the bus calls Redis unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an idle connection is checked with PING.
const PING_EVERY: Duration = Duration::from_secs(5);
/// The longest pause between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// One node's connection to Redis pub/sub.
pub struct RedisBus {
    shared: Arc<Shared>,
    supervisor: JoinHandle<()>,
    url: String,
}

struct Shared {
    client: Client,
    inbox: Arc<Inbox>,
    /// Subscribed channels and their topics: what is delivered, and what a reconnect replays.
    topics: Mutex<HashMap<String, Arc<str>>>,
    /// The live connection, `None` while reconnecting.
    conn: Mutex<Option<MultiplexedConnection>>,
    /// Held while subscriptions change, so a replay and an unsubscribe never interleave.
    changes: tokio::sync::Mutex<()>,
}

impl Shared {
    fn topics(&self) -> MutexGuard<'_, HashMap<String, Arc<str>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conn(&self) -> Option<MultiplexedConnection> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_conn(&self, conn: Option<MultiplexedConnection>) {
        *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = conn;
    }

    /// Handles one push from the server: a message for the inbox, or the connection's end.
    fn on_push(&self, push: PushInfo, lost: &Notify) {
        match push.kind {
            PushKind::Message => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(chan)), Some(Value::BulkString(payload))) =
                    (data.next(), data.next())
                else {
                    return;
                };
                let topic = std::str::from_utf8(&chan)
                    .ok()
                    .and_then(|c| self.topics().get(c).cloned());
                if let Some(topic) = topic {
                    self.inbox.deliver(topic, Bytes::from(payload));
                }
            }
            PushKind::Disconnection => lost.notify_one(),
            _ => {}
        }
    }
}

impl RedisBus {
    /// Connects to the Redis server at `url`; fails if it cannot be reached now.
    pub(crate) async fn connect(url: &str, inbox: Arc<Inbox>) -> Result<Self, BusError> {
        let shown = redact(url);
        let bad = |e: ::redis::RedisError| BusError::Config(format!("redis URL {shown}: {e}"));
        let info = url.into_connection_info().map_err(bad)?;
        // Pushes (and so pub/sub on a normal multiplexed connection) need RESP3.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings)).map_err(bad)?;
        let shared = Arc::new(Shared {
            client,
            inbox,
            topics: Mutex::new(HashMap::new()),
            conn: Mutex::new(None),
            changes: tokio::sync::Mutex::new(()),
        });
        // The first connection is made here so that a wrong address fails at start-up.
        let lost = connect_and_replay(&shared).await.map_err(|e| {
            BusError::Unavailable(format!("cannot connect to Redis at {shown}: {e}"))
        })?;
        tracing::info!(url = %shown, "bus connected to Redis");
        let supervisor = tokio::spawn(supervise(Arc::downgrade(&shared), lost, shown.clone()));
        Ok(RedisBus {
            shared,
            supervisor,
            url: shown,
        })
    }
}

/// Opens a connection whose pushes go to `shared` and whose end signals `lost`, replays the
/// subscriptions on it and makes it the live one.
async fn connect_and_replay(shared: &Arc<Shared>) -> Result<Arc<Notify>, String> {
    let lost = Arc::new(Notify::new());
    let weak = Arc::downgrade(shared);
    let signal = lost.clone();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CALL_TIMEOUT))
        .set_response_timeout(Some(CALL_TIMEOUT))
        .set_push_sender(
            move |push: PushInfo| -> Result<(), std::convert::Infallible> {
                // Weak: the connection must not keep the bus it belongs to alive.
                if let Some(shared) = weak.upgrade() {
                    shared.on_push(push, &signal);
                }
                Ok(())
            },
        );
    let opening = shared
        .client
        .get_multiplexed_async_connection_with_config(&config);
    let mut conn = within(opening).await?;
    let _changes = shared.changes.lock().await;
    let channels: Vec<String> = shared.topics().keys().cloned().collect();
    for chunk in channels.chunks(1000) {
        within(conn.subscribe(chunk)).await?;
    }
    shared.set_conn(Some(conn));
    Ok(lost)
}

/// Runs a Redis call with the bus's time limit.
async fn within<T>(call: impl Future<Output = ::redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("Redis did not answer in time".into()),
    }
}

/// Watches the live connection and replaces it when it is lost, forever.
async fn supervise(shared: Weak<Shared>, mut lost: Arc<Notify>, url: String) {
    loop {
        // Until the connection ends or stops answering pings.
        loop {
            tokio::select! {
                _ = lost.notified() => break,
                _ = tokio::time::sleep(PING_EVERY) => {
                    let Some(conn) = shared.upgrade().and_then(|s| s.conn()) else { return };
                    let mut conn = conn;
                    if within(::redis::cmd("PING").query_async::<()>(&mut conn)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let Some(s) = shared.upgrade() else { return };
        s.set_conn(None);
        drop(s);
        tracing::warn!(url, "bus disconnected from Redis; reconnecting");
        let mut attempts: u64 = 0;
        lost = loop {
            let Some(s) = shared.upgrade() else { return };
            match connect_and_replay(&s).await {
                Ok(lost) => break lost,
                Err(e) => {
                    attempts += 1;
                    if attempts == 1 {
                        tracing::warn!(url, error = %e, "bus cannot reach Redis yet; retrying");
                    }
                }
            }
            drop(s);
            let pause = Duration::from_millis(50 * attempts).min(MAX_RECONNECT_DELAY);
            tokio::time::sleep(pause).await;
        };
        tracing::info!(
            url,
            attempts,
            "bus reconnected to Redis; subscriptions restored"
        );
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, topic: &str, payload: Bytes) -> Result<(), BusError> {
        let chan = channel(topic)?;
        let Some(mut conn) = self.shared.conn() else {
            return Err(BusError::Unavailable("not connected to Redis".into()));
        };
        let mut publish = ::redis::cmd("PUBLISH");
        publish.arg(&chan).arg(&payload[..]);
        within(publish.query_async::<i64>(&mut conn))
            .await
            .map(drop)
            .map_err(BusError::Unavailable)
    }

    async fn subscribe(&self, topic: &str) -> Result<(), BusError> {
        let chan = channel(topic)?;
        let _changes = self.shared.changes.lock().await;
        // Recorded first: if Redis is away now, the reconnect subscribes it.
        self.shared.topics().insert(chan.clone(), Arc::from(topic));
        let Some(mut conn) = self.shared.conn() else {
            return Err(BusError::Unavailable("not connected to Redis".into()));
        };
        // Returns once the server has confirmed the SUBSCRIBE.
        within(conn.subscribe(&chan))
            .await
            .map_err(BusError::Unavailable)
    }

    async fn unsubscribe(&self, topic: &str) -> Result<(), BusError> {
        let chan = channel(topic)?;
        let _changes = self.shared.changes.lock().await;
        // From here on nothing of this topic is delivered, whatever Redis still sends.
        if self.shared.topics().remove(&chan).is_none() {
            return Ok(());
        }
        if let Some(mut conn) = self.shared.conn()
            && let Err(e) = within(conn.unsubscribe(&chan)).await
        {
            // A reconnect will not replay it; until then its messages are ignored.
            tracing::debug!(error = %e, topic, "Redis UNSUBSCRIBE failed");
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("redis {}", self.url)
    }

    fn dropped(&self) -> u64 {
        self.shared.inbox.dropped()
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}
