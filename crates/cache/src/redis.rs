//! The Redis cache: rate-limit buckets and presence shared by every node, kept in Redis.
//!
//! Keys (all under `confab:`):
//! - `rate:<key>`: a token bucket (hash `t` tokens, `l` last ms), changed by one Lua script
//!   with `TokenBucket`'s arithmetic; it expires when it would be full again, and a missing
//!   bucket is a full one, so idle buckets vanish without changing any answer.
//! - `presence:<user>`: a hash, one field per node, `"<version>:<sessions>"`.
//! - `node:<node>`: the node's heartbeat, set with a TTL and refreshed every third of it.
//! - `recent:{<room>}` and `recent-floor:{<room>}`: a room's recent events (see `recent`).
//!   A field whose node has no heartbeat does not count: a dead node's users go offline by
//!   themselves, and the next write to the hash deletes its field.
//!
//! This process's own counts are the truth and Redis a shared view of them: the heartbeat
//! rewrites them, so presence comes back by itself after Redis loses its data. Versions
//! (increasing per process) stop a late write from undoing a newer one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Script};
use async_trait::async_trait;
use tokio::task::JoinHandle;

use crate::{Cache, CacheError, CachedEvent, Rate, Recent, Span};

mod recent;

/// How long one cache call may take before the cache counts as unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Users per `online` or heartbeat script call.
const BATCH: usize = 500;

const RATE_PREFIX: &str = "confab:rate:";
const PRESENCE_PREFIX: &str = "confab:presence:";
const NODE_PREFIX: &str = "confab:node:";

/// Settings of the Redis cache.
#[derive(Debug, Clone)]
pub struct RedisCacheOptions {
    /// How long a node's users stay online after its last heartbeat (default 30 s); the
    /// heartbeat runs every third of it.
    pub presence_ttl: Duration,
}

impl Default for RedisCacheOptions {
    fn default() -> Self {
        RedisCacheOptions {
            presence_ttl: Duration::from_secs(30),
        }
    }
}

/// One process's handle on the shared Redis cache.
pub struct RedisCache {
    shared: Arc<Shared>,
    heartbeat: JoinHandle<()>,
    url: String,
}

struct Shared {
    conn: ConnectionManager,
    ttl_ms: u64,
    scripts: Scripts,
    recent_scripts: recent::RecentScripts,
    local: Mutex<Local>,
}

struct Scripts {
    take: Script,
    presence: Script,
    refresh: Script,
    online: Script,
}

/// A snapshot of one local count: node, user, version, sessions.
type Entry = (String, String, u64, u32);

/// This process's sessions, per node and user.
struct Local {
    next_version: u64,
    nodes: HashSet<String>,
    /// (node, user) → (version, sessions); entries at 0 stay until a heartbeat wrote them.
    sessions: HashMap<(String, String), (u64, u32)>,
}

impl RedisCache {
    /// Connects to Redis at `url` with default options.
    pub async fn connect(url: &str) -> Result<Self, CacheError> {
        Self::connect_with(url, RedisCacheOptions::default()).await
    }

    /// Connects to Redis at `url`; fails if it cannot be reached now.
    pub async fn connect_with(url: &str, options: RedisCacheOptions) -> Result<Self, CacheError> {
        let shown = redact(url);
        let client =
            Client::open(url).map_err(|e| CacheError::Config(format!("redis URL {shown}: {e}")))?;
        // Fail fast while Redis is away: one quick retry, then the error; the next call retries.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = tokio::time::timeout(
            CALL_TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| CacheError::Unavailable(format!("cannot connect to Redis at {shown}: {e}")))?;
        let ttl_ms = options.presence_ttl.as_millis().max(1) as u64;
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let shared = Arc::new(Shared {
            conn,
            ttl_ms,
            scripts: Scripts {
                take: Script::new(TAKE_TOKEN),
                presence: Script::new(SET_PRESENCE),
                refresh: Script::new(REFRESH_PRESENCE),
                online: Script::new(ONLINE),
            },
            recent_scripts: recent::RecentScripts::new(),
            local: Mutex::new(Local {
                // Starts at the clock so a restarted process with the same node id still wins.
                next_version: now_us,
                nodes: HashSet::new(),
                sessions: HashMap::new(),
            }),
        });
        let every = options.presence_ttl / 3;
        let heartbeat = tokio::spawn(heartbeat(Arc::downgrade(&shared), every, shown.clone()));
        tracing::info!(url = %shown, "cache connected to Redis");
        Ok(RedisCache {
            shared,
            heartbeat,
            url: shown,
        })
    }
}

impl Shared {
    fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a script with the time limit, once more if the connection had dropped (every
    /// script here may run twice without harm: presence writes are versioned, a bucket
    /// charged twice only errs on the strict side, and recent events are set, not added to).
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        invocation: &::redis::ScriptInvocation<'_>,
    ) -> Result<T, CacheError> {
        let mut last = None;
        for _ in 0..2 {
            let mut conn = self.conn.clone();
            match tokio::time::timeout(CALL_TIMEOUT, invocation.invoke_async::<T>(&mut conn)).await
            {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if e.is_unrecoverable_error() || e.is_io_error() => {
                    last = Some(e.to_string())
                }
                Ok(Err(e)) => return Err(CacheError::Unavailable(e.to_string())),
                Err(_) => {
                    return Err(CacheError::Unavailable(
                        "Redis did not answer in time".into(),
                    ));
                }
            }
        }
        Err(CacheError::Unavailable(last.unwrap_or_default()))
    }

    /// Writes one (node, user) count; returns the script's answer (was online × 2 + is online,
    /// or -1 when a newer write got there first).
    async fn write_presence(
        &self,
        user: &str,
        node: &str,
        version: u64,
        count: u32,
    ) -> Result<i64, CacheError> {
        let mut inv = self
            .scripts
            .presence
            .key(format!("{PRESENCE_PREFIX}{user}"));
        inv.arg(node)
            .arg(version)
            .arg(count)
            .arg(self.ttl_ms)
            .arg(NODE_PREFIX);
        self.run(&inv).await
    }

    /// Refreshes every node's heartbeat and rewrites this process's counts.
    async fn beat(&self) -> Result<(), CacheError> {
        let (nodes, entries): (Vec<String>, Vec<Entry>) = {
            let local = self.local();
            let entries = local
                .sessions
                .iter()
                .map(|((n, u), &(v, c))| (n.clone(), u.clone(), v, c))
                .collect();
            (local.nodes.iter().cloned().collect(), entries)
        };
        let mut pipe = ::redis::pipe();
        for node in &nodes {
            pipe.cmd("SET")
                .arg(format!("{NODE_PREFIX}{node}"))
                .arg(1)
                .arg("PX")
                .arg(self.ttl_ms)
                .ignore();
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_TIMEOUT, pipe.exec_async(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(CacheError::Unavailable(e.to_string())),
            Err(_) => {
                return Err(CacheError::Unavailable(
                    "Redis did not answer in time".into(),
                ));
            }
        }
        for chunk in entries.chunks(BATCH) {
            let mut inv = self.scripts.refresh.prepare_invoke();
            inv.arg(self.ttl_ms);
            for (node, user, version, count) in chunk {
                inv.key(format!("{PRESENCE_PREFIX}{user}"))
                    .arg(node)
                    .arg(version)
                    .arg(count);
            }
            self.run::<()>(&inv).await?;
        }
        // Zero counts are in Redis now; forget those not changed since.
        let written: HashMap<_, _> = entries
            .into_iter()
            .filter(|e| e.3 == 0)
            .map(|(n, u, v, _)| ((n, u), v))
            .collect();
        self.local()
            .sessions
            .retain(|k, (v, c)| *c > 0 || written.get(k) != Some(v));
        Ok(())
    }
}

async fn heartbeat(shared: Weak<Shared>, every: Duration, url: String) {
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.beat().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(url, "cache heartbeat reaches Redis again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(url, error = %e, "cache heartbeat failed; presence will expire unless Redis is back soon");
            }
            Err(_) => {}
        }
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn take_token(
        &self,
        key: &str,
        rate: Rate,
        now_ms: u64,
    ) -> Result<Result<(), u64>, CacheError> {
        let mut inv = self.shared.scripts.take.key(format!("{RATE_PREFIX}{key}"));
        inv.arg(rate.per_s).arg(rate.burst).arg(now_ms);
        let wait: i64 = self.shared.run(&inv).await?;
        Ok(match wait {
            0 => Ok(()),
            w if w < 0 => Err(u64::MAX),
            w => Err(w as u64),
        })
    }

    async fn session_opened(&self, user: &str, node: &str) -> Result<bool, CacheError> {
        let (version, count) = {
            let mut local = self.shared.local();
            if !local.nodes.contains(node) {
                local.nodes.insert(node.to_owned());
            }
            local.next_version += 1;
            let version = local.next_version;
            let entry = local
                .sessions
                .entry((node.to_owned(), user.to_owned()))
                .or_insert((0, 0));
            *entry = (version, entry.1 + 1);
            (version, entry.1)
        };
        // Came online: no live session anywhere before, one now.
        Ok(self
            .shared
            .write_presence(user, node, version, count)
            .await?
            == 1)
    }

    async fn session_closed(&self, user: &str, node: &str) -> Result<bool, CacheError> {
        let (version, count) = {
            let mut local = self.shared.local();
            local.next_version += 1;
            let version = local.next_version;
            let Some(entry) = local.sessions.get_mut(&(node.to_owned(), user.to_owned())) else {
                return Ok(false);
            };
            if entry.1 == 0 {
                return Ok(false);
            }
            *entry = (version, entry.1 - 1);
            (version, entry.1)
        };
        // Went offline: online before, no live session anywhere now.
        Ok(self
            .shared
            .write_presence(user, node, version, count)
            .await?
            == 2)
    }

    async fn online(&self, users: &[String]) -> Result<Vec<String>, CacheError> {
        let mut online = Vec::new();
        for chunk in users.chunks(BATCH) {
            let mut inv = self.shared.scripts.online.arg(NODE_PREFIX);
            for user in chunk {
                inv.key(format!("{PRESENCE_PREFIX}{user}"));
            }
            let flags: Vec<i64> = self.shared.run(&inv).await?;
            online.extend(
                chunk
                    .iter()
                    .zip(flags)
                    .filter(|(_, f)| *f == 1)
                    .map(|(u, _)| u.clone()),
            );
        }
        Ok(online)
    }

    async fn remember(
        &self,
        room: &str,
        events: &[CachedEvent],
        keep: u32,
    ) -> Result<bool, CacheError> {
        self.shared.remember(room, events, keep).await
    }

    async fn recent(&self, room: &str, span: Span, limit: u32) -> Result<Recent, CacheError> {
        self.shared.recent(room, span, limit).await
    }

    async fn forget(&self, room: &str, floor: u64) -> Result<(), CacheError> {
        self.shared.forget(room, floor).await
    }

    fn describe(&self) -> String {
        format!("redis {}", self.url)
    }
}

impl Drop for RedisCache {
    fn drop(&mut self) {
        // The node's heartbeat stops: its users go offline when the TTL runs out.
        self.heartbeat.abort();
    }
}

/// A URL with any `user:password@` replaced, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// `TokenBucket::take` on a bucket in Redis. ARGV: rate per s, burst, now ms.
/// Returns 0 (taken), the wait in ms, or -1 (never: the rate is 0).
const TAKE_TOKEN: &str = include_str!("redis/take_token.lua");

/// Sets one node's count of a user's sessions. KEYS: presence hash. ARGV: node, version,
/// count, ttl ms, node key prefix. Returns was_online * 2 + is_online, or -1 if stale.
const SET_PRESENCE: &str = include_str!("redis/set_presence.lua");

/// The heartbeat's rewrite of this process's counts. KEYS: presence hashes. ARGV: ttl ms,
/// then node, version, count for each key. A newer version in Redis is left alone.
const REFRESH_PRESENCE: &str = include_str!("redis/refresh_presence.lua");

/// KEYS: presence hashes. ARGV: node key prefix. Returns 1 or 0 per key: some live node has
/// a session of the user.
const ONLINE: &str = include_str!("redis/online.lua");
