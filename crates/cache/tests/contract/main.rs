//! The Cache contract, written once and run against every back end: the in-process one always,
//! Redis when `CONFAB_TEST_REDIS_URL` is set. Each test uses its own random keys, users and
//! node names, so tests run in parallel against one shared server.

mod buckets;
mod presence;
mod recent;
mod resilience;

use std::sync::Arc;
use std::time::Duration;

use confab_cache::Cache;
use confab_cache::memory::MemoryCache;
use confab_cache::redis::{RedisCache, RedisCacheOptions};
use rand::RngExt;

/// One back end the suite runs against.
pub enum Backend {
    Memory,
    Redis(String),
}

impl Backend {
    /// Every back end this run can reach; says which are skipped and why.
    pub fn all() -> Vec<Backend> {
        let mut all = vec![Backend::Memory];
        match std::env::var("CONFAB_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => all.push(Backend::Redis(url)),
            _ => println!("skipped: redis cache contract (CONFAB_TEST_REDIS_URL is not set)"),
        }
        all
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// `n` nodes' handles on one shared cache (in-process: one cache they all hold).
    pub async fn nodes(&self, n: usize) -> Vec<Arc<dyn Cache>> {
        self.nodes_with_ttl(n, RedisCacheOptions::default().presence_ttl)
            .await
    }

    /// Like `nodes`, with the presence TTL of back ends that have one.
    pub async fn nodes_with_ttl(&self, n: usize, ttl: Duration) -> Vec<Arc<dyn Cache>> {
        match self {
            Backend::Memory => {
                let shared: Arc<dyn Cache> = Arc::new(MemoryCache::default());
                vec![shared; n]
            }
            Backend::Redis(url) => {
                let mut nodes: Vec<Arc<dyn Cache>> = Vec::new();
                for _ in 0..n {
                    nodes.push(Arc::new(redis_node(url, ttl).await));
                }
                nodes
            }
        }
    }
}

pub async fn redis_node(url: &str, ttl: Duration) -> RedisCache {
    let options = RedisCacheOptions { presence_ttl: ttl };
    RedisCache::connect_with(url, options)
        .await
        .expect("redis cache connects")
}

/// A name no other test (or run) uses.
pub fn unique(word: &str) -> String {
    format!("{word}_t{:016x}", rand::rng().random::<u64>())
}
