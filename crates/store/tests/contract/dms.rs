//! Direct conversations: two members, one room per pair.

use confab_protocol::{EventKind, Visibility};

use crate::{Backend, Fixture, is_bad_request, is_forbidden, is_not_found};

async fn a_dm_starts_with_both_joins_and_asking_again_returns_it(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let change = f.store.open_dm(&ada, &bob).await.expect("opened");
    let room = &change.room;
    assert_eq!(room.name, "ada, bob");
    assert_eq!(room.visibility, Visibility::Private);
    assert_eq!(
        (room.member_count, room.last_seq, room.read_seq),
        (2, 2, Some(1))
    );
    let kinds: Vec<_> = change
        .events
        .iter()
        .map(|e| (e.seq, e.kind, e.from.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, EventKind::Join, ada.clone()),
            (2, EventKind::Join, bob.clone())
        ]
    );
    assert!(
        f.store
            .room(&room.id)
            .await
            .expect("reads")
            .expect("found")
            .dm
    );

    let again = f.store.open_dm(&bob, &ada).await.expect("opened again");
    assert_eq!(again.room.id, room.id);
    assert!(again.events.is_empty());
    assert_eq!(again.room.read_seq, Some(2), "bob's marker");
    assert_eq!(f.all_events(&room.id).await.len(), 2);
}

async fn a_dm_never_takes_a_third_member_nor_loses_one_to_removal(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob, cat) = (
        f.user("ada").await,
        f.user("bob").await,
        f.user("cat").await,
    );
    let room = f.store.open_dm(&ada, &bob).await.expect("opened").room;
    assert!(is_forbidden(f.store.add_member(&room.id, &ada, &cat).await));
    assert!(is_forbidden(
        f.store.remove_member(&room.id, &ada, &bob).await
    ));
    assert!(is_not_found(f.store.join(&room.id, &cat).await));
}

async fn a_member_who_left_a_dm_is_rejoined_when_it_is_opened_again(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.store.open_dm(&ada, &bob).await.expect("opened").room;
    f.store
        .leave(&room.id, &ada)
        .await
        .expect("the owner may leave a DM");
    let again = f.store.open_dm(&bob, &ada).await.expect("opened again");
    assert_eq!(again.room.id, room.id);
    let join = &again.events[..];
    assert_eq!(join.len(), 1);
    assert_eq!(
        (join[0].seq, join[0].kind, &join[0].from),
        (4, EventKind::Join, &ada)
    );
    assert_eq!(again.room.member_count, 2);
    assert_eq!(
        f.store.membership(&room.id, &ada.id).await.expect("reads"),
        Some(4)
    );
}

async fn a_dm_with_oneself_is_a_bad_request(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    assert!(is_bad_request(f.store.open_dm(&ada, &ada).await));
}

crate::contract_tests!(
    a_dm_starts_with_both_joins_and_asking_again_returns_it,
    a_dm_never_takes_a_third_member_nor_loses_one_to_removal,
    a_member_who_left_a_dm_is_rejoined_when_it_is_opened_again,
    a_dm_with_oneself_is_a_bad_request,
);
