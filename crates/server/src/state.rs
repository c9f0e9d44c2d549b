//! The state every request handler and session shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use confab_bus::Bus;
use confab_cache::Cache;
use confab_protocol::UserRef;
use confab_store::Store;

use crate::auth;
use crate::config::Config;
use crate::error::ApiError;
use crate::events::RoomEvents;
use crate::hub::Hub;

/// Handles to the ports, the local fan-out hub and the node's settings.
pub struct State {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn Cache>,
    /// Room events, read through the cache's recent window.
    pub events: Arc<RoomEvents>,
    pub hub: Hub,
    pub node_id: String,
    /// The threads that hash passwords.
    pub hasher: auth::Hasher,
    ready: AtomicBool,
}

/// The shared state, cheap to clone.
pub type AppState = Arc<State>;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRef,
    pub token_hash: String,
}

impl State {
    /// Assembles the state; the node is not ready until `set_ready(true)`.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        cache: Arc<dyn Cache>,
        node_id: String,
        hasher: auth::Hasher,
    ) -> Self {
        let events = Arc::new(RoomEvents::new(
            store.clone(),
            cache.clone(),
            config.recent_events,
        ));
        let hub = Hub::new(
            bus.clone(),
            store.clone(),
            events.clone(),
            config.reorder_wait_ms,
        );
        State {
            config,
            store,
            bus,
            cache,
            events,
            hub,
            node_id,
            hasher,
            ready: AtomicBool::new(false),
        }
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the node ready (started) or not (draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The caller a token secret belongs to, if the token exists and has not expired.
    pub async fn authenticate(&self, secret: Option<&str>) -> Result<Caller, ApiError> {
        let secret = secret
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(ApiError::unauthorized)?;
        let token_hash = auth::token_hash(secret);
        match self.store.token(&token_hash).await? {
            Some(t) if t.expires_ts > now_ms() => Ok(Caller {
                user: t.user,
                token_hash,
            }),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
