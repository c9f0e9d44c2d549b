//! Recent events: shared by every node, trimmed to the newest, and never brought back stale
//! after a `forget`.

use std::sync::Arc;

use confab_cache::{CachedEvent, Span};

use crate::{Backend, unique};

fn ev(seq: u64, text: &str) -> CachedEvent {
    CachedEvent {
        seq,
        frame: Arc::from(format!(r#"{{"type":"msg","seq":{seq},"body":"{text}"}}"#)),
    }
}

fn seqs(events: &[CachedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test]
async fn every_node_reads_what_one_remembered_in_each_span() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let room = unique("room");
        let batch: Vec<_> = (1..=6).map(|s| ev(s, "hi")).collect();
        // Out of order and in two calls, as events from two nodes arrive.
        assert!(
            nodes[0]
                .remember(&room, &batch[3..], 100)
                .await
                .expect("cache")
        );
        assert!(
            nodes[1]
                .remember(&room, &batch[..3], 100)
                .await
                .expect("cache")
        );
        let reader = &nodes[1];
        let after = reader
            .recent(&room, Span::After(2), 3)
            .await
            .expect("cache");
        assert_eq!(
            (seqs(&after.events), after.head),
            (vec![3, 4, 5], 6),
            "{name}"
        );
        assert_eq!(
            after.events[0], batch[2],
            "{name}: the frame comes back as it was"
        );
        let newest = reader.recent(&room, Span::Newest, 2).await.expect("cache");
        assert_eq!(seqs(&newest.events), vec![6, 5], "{name}");
        let before = reader
            .recent(&room, Span::Before(3), 10)
            .await
            .expect("cache");
        assert_eq!(seqs(&before.events), vec![2, 1], "{name}");
        let past = reader
            .recent(&room, Span::After(6), 10)
            .await
            .expect("cache");
        assert_eq!((past.events.len(), past.head), (0, 6), "{name}");
        let none = reader.recent(&unique("room"), Span::Newest, 10).await;
        assert_eq!(
            none.expect("cache").head,
            0,
            "{name}: an unknown room holds nothing"
        );
    }
}

#[tokio::test]
async fn only_the_newest_are_kept_and_a_seq_holds_one_frame() {
    for backend in Backend::all() {
        let name = backend.name();
        let cache = &backend.nodes(1).await[0];
        let room = unique("room");
        let batch: Vec<_> = (1..=10).map(|s| ev(s, "a")).collect();
        cache.remember(&room, &batch, 4).await.expect("cache");
        let all = cache
            .recent(&room, Span::After(0), 100)
            .await
            .expect("cache");
        assert_eq!(seqs(&all.events), vec![7, 8, 9, 10], "{name}");
        // The same seq remembered again replaces its frame rather than adding a second.
        cache
            .remember(&room, &[ev(9, "b")], 4)
            .await
            .expect("cache");
        let all = cache
            .recent(&room, Span::After(0), 100)
            .await
            .expect("cache");
        assert_eq!(seqs(&all.events), vec![7, 8, 9, 10], "{name}");
        assert_eq!(all.events[2], ev(9, "b"), "{name}");
    }
}

#[tokio::test]
async fn after_a_forget_a_stale_batch_cannot_bring_an_erased_body_back() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let room = unique("room");
        nodes[0]
            .remember(&room, &[ev(1, "join"), ev(2, "secret")], 100)
            .await
            .expect("cache");
        // Seq 3 deletes seq 2: the deleting node forgets the room...
        nodes[1].forget(&room, 3).await.expect("cache");
        let gone = nodes[0]
            .recent(&room, Span::Newest, 10)
            .await
            .expect("cache");
        assert_eq!((gone.events.len(), gone.head), (0, 0), "{name}");
        // ...so a late copy of seq 2 (committed or read before the delete) is refused,
        let late = nodes[0].remember(&room, &[ev(2, "secret")], 100).await;
        assert!(!late.expect("cache"), "{name}: a stale batch is refused");
        // while a batch read after the delete is taken.
        let fresh = [ev(1, "join"), ev(2, ""), ev(3, "delete")];
        assert!(nodes[1].remember(&room, &fresh, 100).await.expect("cache"));
        let now = nodes[0]
            .recent(&room, Span::After(0), 10)
            .await
            .expect("cache");
        assert_eq!(now.events, fresh.to_vec(), "{name}");
        // A forget with a lower floor drops the events but keeps the higher floor.
        nodes[0].forget(&room, 1).await.expect("cache");
        let stale = nodes[1].remember(&room, &[ev(2, "secret")], 100).await;
        assert!(!stale.expect("cache"), "{name}");
    }
}
