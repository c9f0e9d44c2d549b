//! Tests of deciding a batch in memory: later commands see earlier ones, refusals change
//! nothing, and the rows to write add up.

use confab_domain::RuleError;
use confab_protocol::{EventKind, Room, UserRef, Visibility};

use super::apply::View;
use super::ops::{Needs, Op, Outcome};
use crate::{Append, RoomInfo, StoreError};

fn user(id: &str) -> UserRef {
    UserRef {
        id: id.into(),
        name: id.trim_start_matches("u_").into(),
    }
}

/// A public room `r0_x` owned by `u_ada`, who joined at seq 1 and is its only member.
fn view() -> View {
    let room = RoomInfo {
        room: Room {
            id: "r0_x".into(),
            name: "x".into(),
            visibility: Visibility::Public,
            owner: "u_ada".into(),
            created_ts: 1,
            member_count: 1,
            last_seq: 1,
            read_seq: None,
        },
        dm: false,
    };
    View::new(
        7,
        vec![room],
        vec![("r0_x".into(), "u_ada".into(), 1)],
        Vec::new(),
        Vec::new(),
        Vec::new(),
    )
}

fn text(client_id: &str) -> Append {
    Append::Text {
        client_id: client_id.into(),
        body: "hi".into(),
    }
}

fn append(user_id: &str, append: Append) -> Op {
    Op::Append {
        room_id: "r0_x".into(),
        user: user(user_id),
        append,
    }
}

fn seq(outcome: &Result<Outcome, StoreError>) -> u64 {
    match outcome {
        Ok(Outcome::Appended(a)) => a.event.seq,
        Ok(Outcome::Change(c)) => c.events[0].seq,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn a_join_earlier_in_the_batch_lets_a_later_send_through() {
    let mut view = view();
    let joined = view.apply(&join_op("u_bob"));
    let sent = view.apply(&append("u_bob", text("c1")));
    assert_eq!((seq(&joined), seq(&sent)), (2, 3));
    let writes = view.into_writes();
    assert_eq!(writes.events.len(), 2);
    assert_eq!(
        writes.member_inserts,
        vec![("r0_x".into(), "u_bob".into(), "bob".into(), 2)]
    );
    assert_eq!(writes.room_counts, vec![("r0_x".into(), 2, 3)]);
}

#[test]
fn a_refused_command_changes_nothing_and_the_next_one_takes_the_next_seq() {
    let mut view = view();
    let refused = view.apply(&append("u_eve", text("c1")));
    assert!(matches!(
        refused,
        Err(StoreError::Rule(RuleError::Forbidden(_)))
    ));
    let edit = Append::Edit {
        target: 99,
        body: "x".into(),
    };
    assert!(matches!(
        view.apply(&append("u_ada", edit)),
        Err(StoreError::Rule(RuleError::NotFound(_)))
    ));
    assert_eq!(seq(&view.apply(&append("u_ada", text("c1")))), 2);
    assert_eq!(view.into_writes().events.len(), 1);
}

#[test]
fn a_client_id_repeated_in_one_batch_is_written_once() {
    let mut view = view();
    let first = view.apply(&append("u_ada", text("c1")));
    let again = view.apply(&append("u_ada", text("c1")));
    match (first, again) {
        (Ok(Outcome::Appended(a)), Ok(Outcome::Appended(b))) => {
            assert!(!a.duplicate && b.duplicate);
            assert_eq!(a.event, b.event);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(view.into_writes().events.len(), 1);
}

#[test]
fn deleting_a_message_sent_in_the_same_batch_erases_it_and_its_edits_before_they_are_written() {
    let mut view = view();
    let sent = seq(&view.apply(&append("u_ada", text("c1"))));
    let edit = Append::Edit {
        target: sent,
        body: "edited".into(),
    };
    view.apply(&append("u_ada", edit)).expect("edited");
    view.apply(&append("u_ada", Append::Delete { target: sent }))
        .expect("deleted");
    let react = Append::React {
        target: sent,
        body: "👍".into(),
    };
    assert!(matches!(
        view.apply(&append("u_ada", react)),
        Err(StoreError::Rule(RuleError::NotFound(_)))
    ));
    let writes = view.into_writes();
    let kinds: Vec<_> = writes
        .events
        .iter()
        .map(|e| (e.kind, e.deleted, e.body.is_some()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Text, true, false),
            (EventKind::Edit, true, false),
            (EventKind::Delete, false, false),
        ]
    );
    assert_eq!(writes.erased, vec![("r0_x".into(), sent)]);
}

fn join_op(user_id: &str) -> Op {
    Op::Join {
        room_id: "r0_x".into(),
        user: user(user_id),
    }
}

fn leave_op(user_id: &str) -> Op {
    Op::Leave {
        room_id: "r0_x".into(),
        user: user(user_id),
    }
}

#[test]
fn joining_leaving_and_joining_again_in_one_batch_inserts_one_member_row() {
    let mut view = view();
    for op in [join_op("u_bob"), leave_op("u_bob"), join_op("u_bob")] {
        view.apply(&op).expect("applied");
    }
    let writes = view.into_writes();
    assert_eq!(
        writes.member_inserts,
        vec![("r0_x".into(), "u_bob".into(), "bob".into(), 4)]
    );
    assert_eq!(writes.room_counts, vec![("r0_x".into(), 2, 4)]);
}

#[test]
fn a_stored_member_leaving_and_joining_again_in_one_batch_updates_the_member_row() {
    let room = RoomInfo {
        room: Room {
            id: "r0_x".into(),
            name: "x".into(),
            visibility: Visibility::Public,
            owner: "u_ada".into(),
            created_ts: 1,
            member_count: 2,
            last_seq: 2,
            read_seq: None,
        },
        dm: false,
    };
    let members = vec![
        ("r0_x".into(), "u_ada".into(), 1),
        ("r0_x".into(), "u_bob".into(), 2),
    ];
    let mut view = View::new(7, vec![room], members, Vec::new(), Vec::new(), Vec::new());
    view.apply(&leave_op("u_bob")).expect("left");
    view.apply(&join_op("u_bob")).expect("joined again");
    let writes = view.into_writes();
    assert!(writes.member_inserts.is_empty() && writes.member_deletes.is_empty());
    assert_eq!(
        writes.member_updates,
        vec![("r0_x".into(), "u_bob".into(), 4)]
    );
}

#[test]
fn a_batch_reads_each_room_and_membership_once_in_sorted_order() {
    let ops = [
        append("u_bob", text("c1")),
        append("u_ada", text("c2")),
        Op::Join {
            room_id: "r0_a".into(),
            user: user("u_bob"),
        },
        append("u_bob", text("c3")),
    ];
    let refs: Vec<&Op> = ops.iter().collect();
    let needs = Needs::of(&refs);
    assert_eq!(needs.rooms, vec!["r0_a".to_owned(), "r0_x".to_owned()]);
    let pair = |r: &str, u: &str| (r.to_owned(), u.to_owned());
    assert_eq!(needs.members, vec![pair("r0_a", "u_bob")]);
    assert_eq!(
        needs.senders,
        vec![pair("r0_x", "u_ada"), pair("r0_x", "u_bob")]
    );
    assert_eq!(needs.client_ids.len(), 3);
}

#[test]
fn a_sender_whose_membership_the_batch_changes_is_read_with_the_members() {
    let ops = [append("u_bob", text("c1")), leave_op("u_bob")];
    let refs: Vec<&Op> = ops.iter().collect();
    let needs = Needs::of(&refs);
    assert_eq!(needs.members, vec![("r0_x".to_owned(), "u_bob".to_owned())]);
    assert!(needs.senders.is_empty());
}

#[test]
fn a_sender_known_to_be_a_member_may_send_without_a_marker() {
    let mut view = view();
    let refused = view.apply(&append("u_bob", text("c1")));
    assert!(matches!(
        refused,
        Err(StoreError::Rule(RuleError::Forbidden(_)))
    ));
    let room = view.room("r0_x").expect("the room");
    let senders = vec![("r0_x".to_owned(), "u_bob".to_owned())];
    let mut view = View::new(7, vec![room], Vec::new(), senders, Vec::new(), Vec::new());
    let sent = view.apply(&append("u_bob", text("c1")));
    assert_eq!(seq(&sent), 2);
    let writes = view.into_writes();
    assert!(writes.member_updates.is_empty() && writes.member_inserts.is_empty());
}

#[test]
fn a_new_room_is_written_with_its_final_counts() {
    let mut view = view();
    let create = Op::CreateRoom {
        room_id: "r0_new".into(),
        owner: user("u_ada"),
        name: "New".into(),
        visibility: Visibility::Private,
    };
    let change = view.apply(&create).expect("created");
    let Outcome::Change(change) = change else {
        panic!("a change")
    };
    assert_eq!(
        (
            change.room.last_seq,
            change.room.read_seq,
            change.room.created_ts
        ),
        (1, Some(1), 7)
    );
    let writes = view.into_writes();
    assert_eq!(writes.new_rooms.len(), 1);
    assert_eq!(writes.new_rooms[0].room.member_count, 1);
    assert!(writes.room_counts.is_empty());
}
