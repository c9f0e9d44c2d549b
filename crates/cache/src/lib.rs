//! The Cache port: state shared by nodes that may be lost without losing anything acknowledged:
//! presence (who is online), rate-limit counters and each active room's recent events.
//!
//! Contract: the cache is never the only copy of anything durable. Presence entries of a node
//! expire by themselves when the node stops refreshing them. A token bucket is shared by every
//! node using the same key. Calls never wait long for a cache that is away: they fail with
//! `CacheError::Unavailable`. Only `connect(url)` names a back end.

pub mod memory;
pub mod recent;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

pub use recent::{CachedEvent, Recent, Span};

/// Why a cache call failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache cannot be reached right now.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// A bad cache URL.
    #[error("cache configuration: {0}")]
    Config(String),
}

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_s: u32,
    pub burst: u32,
}

/// Shared, loseable state. See the module documentation for the contract.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// Takes a token from `key`'s bucket, or returns the milliseconds until one is there.
    async fn take_token(
        &self,
        key: &str,
        rate: Rate,
        now_ms: u64,
    ) -> Result<Result<(), u64>, CacheError>;
    /// Counts one more session of `user` on `node`; true if the user just came online.
    async fn session_opened(&self, user: &str, node: &str) -> Result<bool, CacheError>;
    /// Counts one session of `user` on `node` gone; true if the user just went offline.
    async fn session_closed(&self, user: &str, node: &str) -> Result<bool, CacheError>;
    /// Which of `users` are online.
    async fn online(&self, users: &[String]) -> Result<Vec<String>, CacheError>;
    /// Adds committed `events` of `room` (as the store held them once their newest seq was
    /// committed) and keeps the newest `keep`; false if a `forget` since made them stale.
    async fn remember(
        &self,
        room: &str,
        events: &[CachedEvent],
        keep: u32,
    ) -> Result<bool, CacheError>;
    /// The room's cached events in `span`, at most `limit`, and the newest seq cached.
    async fn recent(&self, room: &str, span: Span, limit: u32) -> Result<Recent, CacheError>;
    /// Drops the room's cached events: the store changed events before `floor` (a delete was
    /// committed at `floor`), so batches whose newest seq is below it are refused from now on.
    async fn forget(&self, room: &str, floor: u64) -> Result<(), CacheError>;
    /// Which back end this is, for logs.
    fn describe(&self) -> String;
}

/// Connects to the cache a URL names (`memory://` or `redis://host:port`).
pub async fn connect(url: &str) -> Result<Arc<dyn Cache>, CacheError> {
    if url == "memory://" || url == "memory" {
        return Ok(Arc::new(memory::MemoryCache::default()));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Arc::new(redis::RedisCache::connect(url).await?));
    }
    let scheme = url.split("://").next().unwrap_or_default();
    Err(CacheError::Config(format!(
        "unsupported cache URL scheme `{scheme}`"
    )))
}
