//! The in-process cache: maps behind mutexes, bounded by the users and keys in use and, for
//! recent events, by `recent::MEMORY_BUDGET`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use confab_domain::limits::TokenBucket;

use crate::recent::Windows;
use crate::{Cache, CacheError, CachedEvent, Rate, Recent, Span};

#[derive(Default)]
struct State {
    buckets: HashMap<String, TokenBucket>,
    sessions: HashMap<String, u32>,
    last_sweep_ms: u64,
}

/// Presence, rate limits and recent events for a single process.
#[derive(Default)]
pub struct MemoryCache {
    state: Mutex<State>,
    // Apart from `state`: sends and reads of history should not wait on presence changes.
    windows: Mutex<Windows>,
}

impl MemoryCache {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn take_token(
        &self,
        key: &str,
        rate: Rate,
        now_ms: u64,
    ) -> Result<Result<(), u64>, CacheError> {
        let mut st = self.state();
        // Full buckets carry no information: forget them now and then so memory stays bounded
        // by the keys active in the last few seconds.
        if now_ms >= st.last_sweep_ms + 10_000 {
            st.buckets
                .retain(|_, b| !b.is_full(now_ms, rate.per_s, rate.burst));
            st.last_sweep_ms = now_ms;
        }
        let bucket = st
            .buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::full(rate.burst, now_ms));
        Ok(bucket.take(now_ms, rate.per_s, rate.burst))
    }

    async fn session_opened(&self, user: &str, _node: &str) -> Result<bool, CacheError> {
        let mut st = self.state();
        let n = st.sessions.entry(user.to_owned()).or_insert(0);
        *n += 1;
        Ok(*n == 1)
    }

    async fn session_closed(&self, user: &str, _node: &str) -> Result<bool, CacheError> {
        let mut st = self.state();
        match st.sessions.get_mut(user) {
            Some(n) if *n > 1 => {
                *n -= 1;
                Ok(false)
            }
            Some(_) => {
                st.sessions.remove(user);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn online(&self, users: &[String]) -> Result<Vec<String>, CacheError> {
        let st = self.state();
        Ok(users
            .iter()
            .filter(|u| st.sessions.contains_key(u.as_str()))
            .cloned()
            .collect())
    }

    async fn remember(
        &self,
        room: &str,
        events: &[CachedEvent],
        keep: u32,
    ) -> Result<bool, CacheError> {
        Ok(self.windows().remember(room, events, keep as usize))
    }

    async fn recent(&self, room: &str, span: Span, limit: u32) -> Result<Recent, CacheError> {
        Ok(self.windows().recent(room, span, limit as usize))
    }

    async fn forget(&self, room: &str, floor: u64) -> Result<(), CacheError> {
        self.windows().forget(room, floor);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory (in-process)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_user_is_online_from_the_first_session_to_the_last() {
        let c = MemoryCache::default();
        assert!(c.session_opened("u", "n").await.expect("ok"));
        assert!(!c.session_opened("u", "n").await.expect("ok"));
        assert_eq!(
            c.online(&["u".into(), "v".into()]).await.expect("ok"),
            vec!["u".to_owned()]
        );
        assert!(!c.session_closed("u", "n").await.expect("ok"));
        assert!(c.session_closed("u", "n").await.expect("ok"));
        assert!(c.online(&["u".into()]).await.expect("ok").is_empty());
    }

    #[tokio::test]
    async fn buckets_are_shared_by_key() {
        let c = MemoryCache::default();
        let rate = Rate { per_s: 1, burst: 2 };
        assert_eq!(c.take_token("k", rate, 0).await.expect("ok"), Ok(()));
        assert_eq!(c.take_token("k", rate, 0).await.expect("ok"), Ok(()));
        assert!(c.take_token("k", rate, 0).await.expect("ok").is_err());
        assert_eq!(c.take_token("other", rate, 0).await.expect("ok"), Ok(()));
    }
}
