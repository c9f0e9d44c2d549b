//! Paging through a room's history.

use confab_protocol::Visibility;
use confab_store::{EventRange, Page};

use crate::{Backend, Fixture};

fn seqs(page: &Page) -> Vec<u64> {
    page.events.iter().map(|e| e.seq).collect()
}

/// A room with seqs 1 (the join) to 11.
async fn eleven_events(b: Backend) -> (Fixture, String) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    for i in 0..10 {
        f.say(&room, &ada, &format!("c{i}")).await;
    }
    (f, room.id)
}

async fn newest_pages_newest_first_and_says_when_more_are_older(b: Backend) {
    let (f, room) = eleven_events(b).await;
    let page = f
        .store
        .events(&room, EventRange::Newest, 4)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![11, 10, 9, 8], true));
    let all = f
        .store
        .events(&room, EventRange::Newest, 11)
        .await
        .expect("reads");
    assert_eq!((all.events.len(), all.has_more), (11, false));
    let more = f
        .store
        .events(&room, EventRange::Newest, 100)
        .await
        .expect("reads");
    assert_eq!((more.events.len(), more.has_more), (11, false));
}

async fn before_pages_backwards_to_the_first_event(b: Backend) {
    let (f, room) = eleven_events(b).await;
    let page = f
        .store
        .events(&room, EventRange::Before(8), 4)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![7, 6, 5, 4], true));
    let page = f
        .store
        .events(&room, EventRange::Before(4), 4)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![3, 2, 1], false));
    let page = f
        .store
        .events(&room, EventRange::Before(1), 4)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![], false));
    let page = f
        .store
        .events(&room, EventRange::Before(u64::MAX), 2)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![11, 10], true));
}

async fn after_pages_forwards_oldest_first(b: Backend) {
    let (f, room) = eleven_events(b).await;
    let page = f
        .store
        .events(&room, EventRange::After(0), 5)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![1, 2, 3, 4, 5], true));
    let page = f
        .store
        .events(&room, EventRange::After(8), 5)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![9, 10, 11], false));
    let page = f
        .store
        .events(&room, EventRange::After(6), 5)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![7, 8, 9, 10, 11], false));
    let page = f
        .store
        .events(&room, EventRange::After(u64::MAX), 5)
        .await
        .expect("reads");
    assert_eq!((seqs(&page), page.has_more), (vec![], false));
}

async fn an_unknown_room_has_an_empty_history(b: Backend) {
    let f = Fixture::open(b).await;
    let page = f
        .store
        .events("r_nothing", EventRange::Newest, 10)
        .await
        .expect("reads");
    assert_eq!((page.events.len(), page.has_more), (0, false));
}

async fn membership_events_carry_no_body_target_or_client_id(b: Backend) {
    let (f, room) = eleven_events(b).await;
    let page = f
        .store
        .events(&room, EventRange::After(0), 1)
        .await
        .expect("reads");
    let join = &page.events[0];
    assert_eq!(
        (&join.body, join.target, &join.client_id, join.deleted),
        (&None, None, &None, false)
    );
}

crate::contract_tests!(
    newest_pages_newest_first_and_says_when_more_are_older,
    before_pages_backwards_to_the_first_event,
    after_pages_forwards_oldest_first,
    an_unknown_room_has_an_empty_history,
    membership_events_carry_no_body_target_or_client_id,
);
