//! Appending texts, edits, deletes and reactions, and read markers.

use confab_protocol::{EventKind, Visibility};
use confab_store::Append;

use crate::{Backend, Fixture, is_bad_request, is_forbidden, is_not_found, text};

fn edit(target: u64, body: &str) -> Append {
    Append::Edit {
        target,
        body: body.to_owned(),
    }
}

fn react(target: u64) -> Append {
    Append::React {
        target,
        body: "👍".to_owned(),
    }
}

async fn a_text_gets_the_next_seq_and_every_field_is_stored(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    let sent = f
        .store
        .append(&room.id, &ada, text("c-1", "hello"))
        .await
        .expect("stored");
    assert!(!sent.duplicate);
    let e = &sent.event;
    assert_eq!(
        (e.room.as_str(), e.seq, e.kind),
        (room.id.as_str(), 2, EventKind::Text)
    );
    assert_eq!(
        (&e.from, &e.by, e.body.as_deref()),
        (&ada, &None, Some("hello"))
    );
    assert_eq!(
        (e.target, e.deleted, e.client_id.as_deref()),
        (None, false, Some("c-1"))
    );
    assert_eq!(e.id.len(), 26, "a ULID");
    assert!(e.ts >= room.created_ts);
    assert_eq!(f.all_events(&room.id).await[1], sent.event);
    let info = f.store.room(&room.id).await.expect("reads").expect("found");
    assert_eq!(info.room.last_seq, 2);
}

async fn a_repeated_client_id_returns_the_stored_event_and_writes_nothing(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    let first = f
        .store
        .append(&room.id, &ada, text("c-1", "hello"))
        .await
        .expect("stored");
    let again = f
        .store
        .append(&room.id, &ada, text("c-1", "hello?"))
        .await
        .expect("answered");
    assert!(again.duplicate);
    assert_eq!(again.event, first.event);
    assert_eq!(f.all_events(&room.id).await.len(), 2);
    assert_eq!(
        f.store
            .room(&room.id)
            .await
            .expect("reads")
            .expect("found")
            .room
            .last_seq,
        2
    );
}

async fn the_same_client_id_from_another_user_or_in_another_room_is_a_new_message(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let one = f.room(&ada, "one", Visibility::Public).await;
    let two = f.room(&ada, "two", Visibility::Public).await;
    f.store.join(&one.id, &bob).await.expect("joined");
    assert!(!f.say(&one, &ada, "c-1").await.duplicate);
    assert!(!f.say(&one, &bob, "c-1").await.duplicate);
    assert!(!f.say(&two, &ada, "c-1").await.duplicate);
}

async fn only_the_author_edits_and_the_edit_names_its_target(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.store.join(&room.id, &bob).await.expect("joined");
    let msg = f.say(&room, &bob, "c1").await.event;
    assert!(
        is_forbidden(f.store.append(&room.id, &ada, edit(msg.seq, "x")).await),
        "not even the owner"
    );
    let e = f
        .store
        .append(&room.id, &bob, edit(msg.seq, "better"))
        .await
        .expect("edited")
        .event;
    assert_eq!(
        (e.kind, e.target, e.body.as_deref()),
        (EventKind::Edit, Some(msg.seq), Some("better"))
    );
    assert_eq!(e.seq, msg.seq + 1);
    assert_eq!(e.client_id, None);
}

async fn the_author_or_the_owner_deletes_and_no_one_else(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob, cat) = (
        f.user("ada").await,
        f.user("bob").await,
        f.user("cat").await,
    );
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.store.join(&room.id, &bob).await.expect("joined");
    f.store.join(&room.id, &cat).await.expect("joined");
    let first = f.say(&room, &bob, "c1").await.event;
    let second = f.say(&room, &bob, "c2").await.event;
    let delete = |target| Append::Delete { target };
    assert!(is_forbidden(
        f.store.append(&room.id, &cat, delete(first.seq)).await
    ));
    let by_owner = f
        .store
        .append(&room.id, &ada, delete(first.seq))
        .await
        .expect("the owner deletes");
    let e = &by_owner.event;
    assert_eq!(
        (e.kind, e.target, e.body.as_deref(), &e.from),
        (EventKind::Delete, Some(first.seq), None, &ada)
    );
    f.store
        .append(&room.id, &bob, delete(second.seq))
        .await
        .expect("the author deletes");
    assert!(
        is_not_found(f.store.append(&room.id, &bob, delete(second.seq)).await),
        "already deleted"
    );
}

async fn deleting_erases_the_body_of_the_message_and_of_its_edits(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    let msg = f.say(&room, &ada, "c1").await.event;
    f.store
        .append(&room.id, &ada, edit(msg.seq, "secret v2"))
        .await
        .expect("edited");
    f.store
        .append(&room.id, &ada, react(msg.seq))
        .await
        .expect("reacted");
    let other = f.say(&room, &ada, "c2").await.event;
    f.store
        .append(&room.id, &ada, Append::Delete { target: msg.seq })
        .await
        .expect("deleted");

    let events = f.all_events(&room.id).await;
    let at = |seq: u64| {
        events
            .iter()
            .find(|e| e.seq == seq)
            .expect("the event is there")
    };
    let (text_ev, edit_ev, react_ev, other_ev, delete_ev) = (at(2), at(3), at(4), at(5), at(6));
    assert!(text_ev.deleted && text_ev.body.is_none());
    assert_eq!(text_ev.client_id.as_deref(), Some("c1"));
    assert!(edit_ev.deleted && edit_ev.body.is_none());
    assert_eq!(edit_ev.target, Some(msg.seq));
    assert!(!react_ev.deleted && react_ev.body.as_deref() == Some("👍"));
    assert_eq!(other_ev, &other, "other messages are untouched");
    assert_eq!(
        (delete_ev.kind, delete_ev.target, &delete_ev.body),
        (EventKind::Delete, Some(2), &None)
    );
}

async fn editing_or_reacting_to_a_deleted_message_is_not_found(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    let msg = f.say(&room, &ada, "c1").await.event;
    f.store
        .append(&room.id, &ada, Append::Delete { target: msg.seq })
        .await
        .expect("deleted");
    assert!(is_not_found(
        f.store.append(&room.id, &ada, react(msg.seq)).await
    ));
    assert!(is_not_found(
        f.store.append(&room.id, &ada, edit(msg.seq, "x")).await
    ));
}

async fn editing_deleting_or_reacting_to_a_non_text_event_is_a_bad_request(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    let msg = f.say(&room, &ada, "c1").await.event;
    let edited = f
        .store
        .append(&room.id, &ada, edit(msg.seq, "v2"))
        .await
        .expect("edited")
        .event;
    assert!(
        is_bad_request(f.store.append(&room.id, &ada, edit(1, "x")).await),
        "a join"
    );
    assert!(is_bad_request(
        f.store.append(&room.id, &ada, react(1)).await
    ));
    assert!(is_bad_request(
        f.store
            .append(&room.id, &ada, Append::Delete { target: 1 })
            .await
    ));
    assert!(
        is_bad_request(f.store.append(&room.id, &ada, edit(edited.seq, "x")).await),
        "an edit"
    );
}

async fn targeting_a_missing_event_is_not_found(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    for target in [0, 2, 99, u64::MAX] {
        assert!(
            is_not_found(f.store.append(&room.id, &ada, react(target)).await),
            "{target}"
        );
        assert!(
            is_not_found(f.store.append(&room.id, &ada, edit(target, "x")).await),
            "{target}"
        );
    }
    assert_eq!(f.all_events(&room.id).await.len(), 1);
}

async fn the_read_marker_only_moves_forward_and_is_clamped_to_the_newest(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    for i in 0..3 {
        f.say(&room, &ada, &format!("c{i}")).await;
    }
    f.store.join(&room.id, &bob).await.expect("joined"); // seq 5
    for i in 3..6 {
        f.say(&room, &ada, &format!("c{i}")).await; // seqs 6, 7, 8
    }
    let read = |seq| f.store.set_read(&room.id, &bob.id, seq);
    assert_eq!(
        read(3).await.expect("answered"),
        None,
        "below the join marker"
    );
    assert_eq!(read(5).await.expect("answered"), None, "not a move");
    assert_eq!(read(7).await.expect("answered"), Some(7));
    assert_eq!(read(6).await.expect("answered"), None, "never backwards");
    assert_eq!(
        read(1_000).await.expect("answered"),
        Some(8),
        "clamped to the newest"
    );
    assert_eq!(read(u64::MAX).await.expect("answered"), None);
    assert_eq!(
        f.store.membership(&room.id, &bob.id).await.expect("reads"),
        Some(8)
    );
    let mine = f.store.rooms_of(&bob.id).await.expect("reads");
    assert_eq!(mine[0].read_seq, Some(8));
}

async fn sending_does_not_move_the_senders_read_marker(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.say(&room, &ada, "c1").await;
    assert_eq!(
        f.store.membership(&room.id, &ada.id).await.expect("reads"),
        Some(1)
    );
}

crate::contract_tests!(
    a_text_gets_the_next_seq_and_every_field_is_stored,
    a_repeated_client_id_returns_the_stored_event_and_writes_nothing,
    the_same_client_id_from_another_user_or_in_another_room_is_a_new_message,
    only_the_author_edits_and_the_edit_names_its_target,
    the_author_or_the_owner_deletes_and_no_one_else,
    deleting_erases_the_body_of_the_message_and_of_its_edits,
    editing_or_reacting_to_a_deleted_message_is_not_found,
    editing_deleting_or_reacting_to_a_non_text_event_is_a_bad_request,
    targeting_a_missing_event_is_not_found,
    the_read_marker_only_moves_forward_and_is_clamped_to_the_newest,
    sending_does_not_move_the_senders_read_marker,
);
