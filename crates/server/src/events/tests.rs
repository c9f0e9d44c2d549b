//! Reading through the cache against a real SQLite store: what comes from the cache, when the
//! store is read instead, and that a delete never leaves an erased body readable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use confab_cache::memory::MemoryCache;
use confab_cache::{Cache, CacheError, CachedEvent, Rate, Recent, Span};
use confab_protocol::{Event, UserRef};
use confab_store::{Append, EventRange, Store};

use super::{RoomEvents, frame_of, unbroken};

/// The in-process cache, failing every call while `down` is set.
#[derive(Default)]
struct Flaky {
    inner: MemoryCache,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), CacheError> {
        if self.down.load(Ordering::SeqCst) {
            Err(CacheError::Unavailable("down for the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Cache for Flaky {
    async fn take_token(&self, k: &str, r: Rate, now: u64) -> Result<Result<(), u64>, CacheError> {
        self.check()?;
        self.inner.take_token(k, r, now).await
    }
    async fn session_opened(&self, user: &str, node: &str) -> Result<bool, CacheError> {
        self.check()?;
        self.inner.session_opened(user, node).await
    }
    async fn session_closed(&self, user: &str, node: &str) -> Result<bool, CacheError> {
        self.check()?;
        self.inner.session_closed(user, node).await
    }
    async fn online(&self, users: &[String]) -> Result<Vec<String>, CacheError> {
        self.check()?;
        self.inner.online(users).await
    }
    async fn remember(&self, r: &str, e: &[CachedEvent], keep: u32) -> Result<bool, CacheError> {
        self.check()?;
        self.inner.remember(r, e, keep).await
    }
    async fn recent(&self, r: &str, span: Span, limit: u32) -> Result<Recent, CacheError> {
        self.check()?;
        self.inner.recent(r, span, limit).await
    }
    async fn forget(&self, room: &str, floor: u64) -> Result<(), CacheError> {
        self.check()?;
        self.inner.forget(room, floor).await
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    cache: Arc<Flaky>,
    events: Arc<RoomEvents>,
    user: UserRef,
    room: String,
}

async fn rig() -> Rig {
    let crate::fixture::Fixture {
        dir,
        store,
        user,
        room: change,
    } = crate::fixture::store_with_room().await;
    let cache = Arc::new(Flaky::default());
    let events = Arc::new(RoomEvents::new(store.clone(), cache.clone(), 50));
    for e in &change.events {
        events.committed(e, &frame_of(e).frame).await;
    }
    let room = change.room.id;
    Rig {
        _dir: dir,
        store,
        cache,
        events,
        user,
        room,
    }
}

impl Rig {
    /// Commits a text; the cache is told a marked copy, so a reader can see where it read.
    async fn send(&self, body: &str, tell_cache: bool) -> Event {
        let append = Append::Text {
            client_id: format!("c{body}"),
            body: body.into(),
        };
        let e = self
            .store
            .append(&self.room, &self.user, append)
            .await
            .expect("append")
            .event;
        if tell_cache {
            let mut marked = e.clone();
            marked.body = Some(format!("{body} (cached)"));
            self.events.committed(&e, &frame_of(&marked).frame).await;
        }
        e
    }

    async fn bodies(&self, range: EventRange, limit: u32, known: u64) -> Vec<String> {
        let page = self
            .events
            .page(&self.room, range, limit, known)
            .await
            .expect("page");
        page.events
            .into_iter()
            .map(|e| e.body.unwrap_or_else(|| format!("<{}>", e.kind.as_str())))
            .collect()
    }
}

#[tokio::test]
async fn committed_events_are_read_from_the_cache() {
    let rig = rig().await;
    rig.send("a", true).await;
    rig.send("b", true).await;
    assert_eq!(
        rig.bodies(EventRange::After(1), 10, 3).await,
        ["a (cached)", "b (cached)"]
    );
    assert_eq!(
        rig.bodies(EventRange::Newest, 2, 0).await,
        ["b (cached)", "a (cached)"]
    );
    let page = rig
        .events
        .frames(&rig.room, EventRange::Newest, 10, 0)
        .await
        .expect("frames");
    assert_eq!(page.events.len(), 3);
    assert!(!page.has_more, "seq 1 is the room's first event");
}

#[tokio::test]
async fn a_hole_or_a_newer_known_seq_reads_the_store_which_fills_the_cache() {
    let rig = rig().await;
    rig.send("a", true).await;
    rig.send("b", false).await;
    rig.send("c", true).await;
    // Seq 3 is missing from the cache: the whole page comes from the store.
    assert_eq!(
        rig.bodies(EventRange::After(1), 10, 0).await,
        ["a", "b", "c"]
    );
    // The store page reached the newest event, so it was remembered (without waiting).
    for _ in 0..100 {
        let cached = rig.cache.recent(&rig.room, Span::After(1), 10).await;
        if cached.expect("cache").events.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rig.bodies(EventRange::After(2), 10, 0).await, ["b", "c"]);
    // The cache ends at seq 4; a caller that knows seq 5 exists gets it from the store.
    rig.send("d", false).await;
    assert_eq!(rig.bodies(EventRange::After(3), 10, 4).await, ["c"]);
    assert_eq!(rig.bodies(EventRange::After(3), 10, 5).await, ["c", "d"]);
}

#[tokio::test]
async fn a_delete_leaves_no_erased_body_in_the_cache() {
    let rig = rig().await;
    let secret = rig.send("secret", true).await;
    let stale = frame_of(&secret);
    let delete = rig
        .store
        .append(&rig.room, &rig.user, Append::Delete { target: secret.seq })
        .await
        .expect("delete")
        .event;
    rig.events
        .committed(&delete, &frame_of(&delete).frame)
        .await;
    let page = rig
        .events
        .page(&rig.room, EventRange::Newest, 10, 0)
        .await
        .expect("page");
    let target = page.events.iter().find(|e| e.seq == secret.seq);
    assert!(target.is_some_and(|e| e.deleted && e.body.is_none()));
    // A copy read or committed before the delete can no longer be remembered.
    let late = rig.cache.remember(&rig.room, &[stale], 50).await;
    assert!(!late.expect("cache"));
}

#[tokio::test]
async fn after_a_failed_cache_call_the_room_is_read_from_the_store_until_dropped() {
    let rig = rig().await;
    rig.send("a", true).await;
    rig.cache.down.store(true, Ordering::SeqCst);
    rig.send("b", true).await;
    rig.cache.down.store(false, Ordering::SeqCst);
    // The cache answers again but may lack seq 3: this node reads the store.
    assert_eq!(rig.bodies(EventRange::After(1), 10, 0).await, ["a", "b"]);
    let repair = rig.events.start_repair(Duration::from_millis(10));
    for _ in 0..100 {
        if rig.events.stale().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    repair.abort();
    assert!(rig.events.stale().is_empty(), "the room was dropped");
    let gone = rig.cache.recent(&rig.room, Span::Newest, 10).await;
    assert_eq!(gone.expect("cache").head, 0);
    rig.send("c", true).await;
    assert_eq!(
        rig.bodies(EventRange::After(3), 10, 0).await,
        ["c (cached)"]
    );
}

#[test]
fn a_page_is_whole_only_without_a_hole_up_to_its_end() {
    let evs = |seqs: &[u64]| -> Vec<CachedEvent> {
        seqs.iter()
            .map(|&seq| CachedEvent {
                seq,
                frame: Arc::from("{}"),
            })
            .collect()
    };
    let has_more = |f: Option<super::Frames>| f.map(|f| f.has_more);
    // After: up to the head, or `limit` of them.
    assert_eq!(
        has_more(unbroken(EventRange::After(2), 5, 4, evs(&[3, 4]))),
        Some(false)
    );
    assert_eq!(
        has_more(unbroken(EventRange::After(2), 2, 9, evs(&[3, 4]))),
        Some(true)
    );
    assert_eq!(
        has_more(unbroken(EventRange::After(9), 5, 9, evs(&[]))),
        Some(false)
    );
    assert_eq!(
        has_more(unbroken(EventRange::After(2), 5, 9, evs(&[3, 4]))),
        None
    );
    assert_eq!(
        has_more(unbroken(EventRange::After(2), 5, 5, evs(&[3, 5]))),
        None
    );
    assert_eq!(
        has_more(unbroken(EventRange::After(1), 5, 4, evs(&[3, 4]))),
        None
    );
    // Newest and Before: down to seq 1, or `limit` of them.
    assert_eq!(
        has_more(unbroken(EventRange::Newest, 5, 3, evs(&[3, 2, 1]))),
        Some(false)
    );
    assert_eq!(
        has_more(unbroken(EventRange::Newest, 2, 3, evs(&[3, 2]))),
        Some(true)
    );
    assert_eq!(
        has_more(unbroken(EventRange::Newest, 5, 9, evs(&[9, 8]))),
        None
    );
    assert_eq!(
        has_more(unbroken(EventRange::Before(3), 5, 9, evs(&[2, 1]))),
        Some(false)
    );
    assert_eq!(
        has_more(unbroken(EventRange::Before(20), 2, 9, evs(&[9, 8]))),
        Some(true)
    );
    assert_eq!(
        has_more(unbroken(EventRange::Before(20), 2, 9, evs(&[8, 7]))),
        None
    );
    assert_eq!(
        has_more(unbroken(EventRange::Before(1), 5, 9, evs(&[]))),
        Some(false)
    );
}
