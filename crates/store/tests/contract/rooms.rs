//! Rooms, memberships, DMs and the membership events they write.

use confab_protocol::{EventKind, Visibility};

use crate::{Backend, Fixture, is_forbidden, is_not_found};

async fn creating_a_room_writes_the_owners_join_as_seq_1(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let change = f
        .store
        .create_room(&ada, &"General".parse_room(), Visibility::Public)
        .await
        .expect("created");
    let room = &change.room;
    assert!(is_room_id(&room.id), "{}", room.id);
    assert_eq!(room.name, "General");
    assert_eq!(room.owner, ada.id);
    assert_eq!(
        (room.member_count, room.last_seq, room.read_seq),
        (1, 1, Some(1))
    );
    assert!(room.created_ts > 0);
    assert_eq!(change.events.len(), 1);
    let join = &change.events[0];
    assert_eq!(
        (join.seq, join.kind, &join.from, &join.by),
        (1, EventKind::Join, &ada, &None)
    );
    assert_eq!(join.ts, room.created_ts);

    let info = f.store.room(&room.id).await.expect("reads").expect("found");
    assert!(!info.dm);
    assert_eq!(info.room.read_seq, None);
    assert_eq!(info.room.last_seq, 1);
    assert_eq!(
        f.store.membership(&room.id, &ada.id).await.expect("reads"),
        Some(1)
    );
    assert_eq!(f.all_events(&room.id).await, change.events);
    let mine = f.store.rooms_of(&ada.id).await.expect("reads");
    assert_eq!(mine, vec![room.clone()]);
}

async fn joining_a_public_room_writes_a_join_and_starts_the_marker_there(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.say(&room, &ada, "c1").await;
    let change = f.store.join(&room.id, &bob).await.expect("joined");
    assert_eq!(change.events.len(), 1);
    let join = &change.events[0];
    assert_eq!(
        (join.seq, join.kind, &join.from, &join.by),
        (3, EventKind::Join, &bob, &None)
    );
    assert_eq!((change.room.member_count, change.room.last_seq), (2, 3));
    assert_eq!(change.room.read_seq, Some(3));
    assert_eq!(
        f.store.membership(&room.id, &bob.id).await.expect("reads"),
        Some(3)
    );
    let members = f.store.members(&room.id).await.expect("reads");
    assert_eq!(members, vec![ada, bob]);
}

async fn joining_again_writes_nothing(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.store.join(&room.id, &bob).await.expect("joined");
    let again = f.store.join(&room.id, &bob).await.expect("answered");
    assert!(again.events.is_empty());
    assert_eq!(
        (
            again.room.last_seq,
            again.room.member_count,
            again.room.read_seq
        ),
        (2, 2, Some(2))
    );
    assert_eq!(f.all_events(&room.id).await.len(), 2);
}

async fn a_private_room_is_not_found_by_a_non_member(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, eve) = (f.user("ada").await, f.user("eve").await);
    let room = f.room(&ada, "secret", Visibility::Private).await;
    assert!(is_not_found(f.store.join(&room.id, &eve).await));
    assert!(is_not_found(f.store.leave(&room.id, &eve).await));
    assert!(is_not_found(
        f.store.append(&room.id, &eve, crate::text("c", "hi")).await
    ));
    assert!(is_not_found(f.store.set_read(&room.id, &eve.id, 1).await));
    assert!(is_not_found(f.store.add_member(&room.id, &eve, &eve).await));
    assert_eq!(f.all_events(&room.id).await.len(), 1, "nothing was written");
}

async fn a_non_member_of_a_public_room_is_forbidden_to_write(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, eve) = (f.user("ada").await, f.user("eve").await);
    let room = f.room(&ada, "open", Visibility::Public).await;
    assert!(is_forbidden(
        f.store.append(&room.id, &eve, crate::text("c", "hi")).await
    ));
    assert!(is_forbidden(f.store.set_read(&room.id, &eve.id, 1).await));
    assert!(is_forbidden(f.store.leave(&room.id, &eve).await));
}

async fn an_unknown_room_is_not_found_for_every_write(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let r = "r_doesnotexist";
    assert!(is_not_found(f.store.join(r, &ada).await));
    assert!(is_not_found(f.store.leave(r, &ada).await));
    assert!(is_not_found(f.store.add_member(r, &ada, &ada).await));
    assert!(is_not_found(f.store.remove_member(r, &ada, &ada).await));
    assert!(is_not_found(
        f.store.append(r, &ada, crate::text("c", "hi")).await
    ));
    assert!(is_not_found(f.store.set_read(r, &ada.id, 1).await));
    assert_eq!(f.store.room(r).await.expect("reads"), None);
}

async fn leaving_writes_a_leave_and_ends_the_membership(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.store.join(&room.id, &bob).await.expect("joined");
    f.say(&room, &ada, "c1").await;
    f.store.set_read(&room.id, &bob.id, 3).await.expect("moved");
    let change = f.store.leave(&room.id, &bob).await.expect("left");
    let leave = &change.events[0];
    assert_eq!(
        (leave.seq, leave.kind, &leave.from, &leave.by),
        (4, EventKind::Leave, &bob, &None)
    );
    assert_eq!(change.room.read_seq, Some(3), "the marker bob had");
    assert_eq!((change.room.member_count, change.room.last_seq), (1, 4));
    assert_eq!(
        f.store.membership(&room.id, &bob.id).await.expect("reads"),
        None
    );
    assert!(f.store.rooms_of(&bob.id).await.expect("reads").is_empty());
    assert!(
        is_forbidden(f.store.leave(&room.id, &bob).await),
        "not a member any more"
    );
}

async fn the_owner_may_leave_only_as_the_last_member(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "general", Visibility::Public).await;
    f.store.join(&room.id, &bob).await.expect("joined");
    assert!(is_forbidden(f.store.leave(&room.id, &ada).await));
    f.store.leave(&room.id, &bob).await.expect("bob leaves");
    let change = f
        .store
        .leave(&room.id, &ada)
        .await
        .expect("the owner leaves last");
    assert_eq!(change.room.member_count, 0);
}

async fn the_owner_adds_and_removes_members_and_the_events_name_the_owner(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob, cat) = (
        f.user("ada").await,
        f.user("bob").await,
        f.user("cat").await,
    );
    let room = f.room(&ada, "team", Visibility::Private).await;
    let added = f
        .store
        .add_member(&room.id, &ada, &bob)
        .await
        .expect("added");
    let join = &added.events[0];
    assert_eq!(
        (join.seq, join.kind, &join.from),
        (2, EventKind::Join, &bob)
    );
    assert_eq!(join.by.as_ref(), Some(&ada));
    assert_eq!(added.room.read_seq, Some(2));
    assert_eq!(added.room.member_count, 2);

    let again = f
        .store
        .add_member(&room.id, &ada, &bob)
        .await
        .expect("answered");
    assert!(again.events.is_empty());
    assert!(
        is_forbidden(f.store.add_member(&room.id, &bob, &cat).await),
        "only the owner adds"
    );
    assert!(
        is_forbidden(f.store.remove_member(&room.id, &bob, &ada).await),
        "only the owner removes"
    );
    assert!(
        is_not_found(f.store.remove_member(&room.id, &ada, &cat).await),
        "cat is no member"
    );

    let removed = f
        .store
        .remove_member(&room.id, &ada, &bob)
        .await
        .expect("removed");
    let leave = &removed.events[0];
    assert_eq!(
        (leave.seq, leave.kind, &leave.from),
        (3, EventKind::Leave, &bob)
    );
    assert_eq!(leave.by.as_ref(), Some(&ada));
    assert_eq!(removed.room.read_seq, Some(2), "the marker bob had");
    assert_eq!(removed.room.member_count, 1);
    assert_eq!(
        f.store.membership(&room.id, &bob.id).await.expect("reads"),
        None
    );
}

async fn removing_oneself_is_a_leave_without_by(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let room = f.room(&ada, "team", Visibility::Private).await;
    f.store
        .add_member(&room.id, &ada, &bob)
        .await
        .expect("added");
    assert!(
        is_forbidden(f.store.remove_member(&room.id, &ada, &ada).await),
        "owner, not last"
    );
    f.store
        .remove_member(&room.id, &ada, &bob)
        .await
        .expect("removed");
    let change = f
        .store
        .remove_member(&room.id, &ada, &ada)
        .await
        .expect("left");
    let leave = &change.events[0];
    assert_eq!(
        (leave.kind, &leave.from, &leave.by),
        (EventKind::Leave, &ada, &None)
    );
}

async fn public_rooms_search_is_case_insensitive_and_ordered_by_name(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let rust = f.room(&ada, "Rust users", Visibility::Public).await;
    let trust = f.room(&ada, "a TRUSTed place", Visibility::Public).await;
    f.room(&ada, "golang", Visibility::Public).await;
    f.room(&ada, "rust secrets", Visibility::Private).await;
    let bob = f.user("bob").await;
    f.store.open_dm(&ada, &bob).await.expect("opened");

    let found = f.store.public_rooms("RuSt", 50).await.expect("reads");
    let ids: Vec<_> = found.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec![trust.id.as_str(), rust.id.as_str()]);
    assert!(found.iter().all(|r| r.read_seq.is_none()));
    assert_eq!(
        f.store.public_rooms("rust", 1).await.expect("reads").len(),
        1
    );
    assert_eq!(f.store.public_rooms("", 50).await.expect("reads").len(), 3);
    assert!(
        f.store
            .public_rooms("ada", 50)
            .await
            .expect("reads")
            .is_empty(),
        "no DMs"
    );
}

async fn percent_underscore_and_backslash_in_a_search_are_literal(b: Backend) {
    let f = Fixture::open(b).await;
    let ada = f.user("ada").await;
    let percent = f.room(&ada, "100% rust", Visibility::Public).await;
    f.room(&ada, "1000 rust", Visibility::Public).await;
    let under = f.room(&ada, "snake_case", Visibility::Public).await;
    f.room(&ada, "snakeXcase", Visibility::Public).await;
    let slash = f.room(&ada, r"back\slash", Visibility::Public).await;

    let ids =
        |rooms: Vec<confab_protocol::Room>| rooms.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(f.store.public_rooms("0%", 50).await.expect("reads")),
        vec![percent.id]
    );
    assert_eq!(
        ids(f.store.public_rooms("e_c", 50).await.expect("reads")),
        vec![under.id]
    );
    assert_eq!(
        ids(f.store.public_rooms(r"k\s", 50).await.expect("reads")),
        vec![slash.id]
    );
}

async fn rooms_of_lists_a_users_rooms_by_id_with_their_markers(b: Backend) {
    let f = Fixture::open(b).await;
    let (ada, bob) = (f.user("ada").await, f.user("bob").await);
    let mut expected = Vec::new();
    for name in ["one", "two", "three"] {
        let room = f.room(&ada, name, Visibility::Public).await;
        f.store.join(&room.id, &bob).await.expect("joined");
        expected.push((room.id, Some(2)));
    }
    f.room(&ada, "alone", Visibility::Public).await;
    expected.sort();
    let rooms = f.store.rooms_of(&bob.id).await.expect("reads");
    let got: Vec<_> = rooms.into_iter().map(|r| (r.id, r.read_seq)).collect();
    assert_eq!(got, expected);
}

/// `r`, the shard's number (none on an unsharded back end), `_` and 16 letters or digits.
fn is_room_id(id: &str) -> bool {
    let Some((shard, random)) = id.strip_prefix('r').and_then(|r| r.split_once('_')) else {
        return false;
    };
    shard.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Room names parse in tests without ceremony.
trait ParseRoom {
    fn parse_room(&self) -> confab_domain::text::RoomName;
}

impl ParseRoom for str {
    fn parse_room(&self) -> confab_domain::text::RoomName {
        confab_domain::text::RoomName::parse(self).expect("a valid room name")
    }
}

crate::contract_tests!(
    creating_a_room_writes_the_owners_join_as_seq_1,
    joining_a_public_room_writes_a_join_and_starts_the_marker_there,
    joining_again_writes_nothing,
    a_private_room_is_not_found_by_a_non_member,
    a_non_member_of_a_public_room_is_forbidden_to_write,
    an_unknown_room_is_not_found_for_every_write,
    leaving_writes_a_leave_and_ends_the_membership,
    the_owner_may_leave_only_as_the_last_member,
    the_owner_adds_and_removes_members_and_the_events_name_the_owner,
    removing_oneself_is_a_leave_without_by,
    public_rooms_search_is_case_insensitive_and_ordered_by_name,
    percent_underscore_and_backslash_in_a_search_are_literal,
    rooms_of_lists_a_users_rooms_by_id_with_their_markers,
);
