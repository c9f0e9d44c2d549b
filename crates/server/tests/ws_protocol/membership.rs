//! `join` and `leave` frames, and the unasked `room` and `removed` frames (joins from any
//! session, adds by the owner, DMs, leaves and removals).

use confab_client::protocol::{ErrorCode, EventKind, Room, ServerFrame, Visibility};
use confab_client::{WsClient, build};

use crate::helpers::*;
use crate::util::*;

async fn room_frame(ws: &mut WsClient, id: &str) -> Room {
    match wait_for(
        ws,
        "room",
        |f| matches!(f, ServerFrame::Room { room } if room.id == id),
    )
    .await
    {
        ServerFrame::Room { room } => room,
        _ => unreachable!(),
    }
}

async fn removed_frame(ws: &mut WsClient, id: &str) {
    wait_for(
        ws,
        "removed",
        |f| matches!(f, ServerFrame::Removed { room } if room == id),
    )
    .await;
}

#[tokio::test]
async fn a_join_frame_answers_ok_with_its_ref_and_every_session_of_the_user_gets_room() {
    let app = spawn_app().await;
    let (ada, ada_user) = app.user("ada").await;
    let (bob, bob_user) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let (mut a, _) = app.ws(&ada).await;
    let (mut b1, _) = app.ws(&bob).await;
    let (mut b2, _) = app.ws(&bob).await;
    let reply = b1.request(build::join(&r.id), WAIT).await.expect("join");
    assert!(
        matches!(reply, ServerFrame::Ok { reference: Some(_) }),
        "{reply:?}"
    );
    for ws in [&mut b1, &mut b2] {
        let got = room_frame(ws, &r.id).await;
        assert_eq!(got.name, "general");
        assert_eq!(got.owner, ada_user.id);
        assert_eq!(got.member_count, 2);
        assert_eq!(got.last_seq, 2);
        assert_eq!(
            got.read_seq,
            Some(2),
            "read marker at the member's own join"
        );
        // The joining member's sessions receive their own join event, then live events.
        let join = next_msg(ws).await;
        assert_eq!(
            (join.kind, join.seq, &join.from),
            (EventKind::Join, 2, &bob_user)
        );
        assert_eq!(join.by, None);
    }
    let join = next_msg(&mut a).await;
    assert_eq!((join.kind, join.seq), (EventKind::Join, 2));
    acked(&mut a, build::send(&r.id, "c1", "welcome")).await;
    for ws in [&mut b1, &mut b2] {
        assert_eq!(next_msg(ws).await.seq, 3);
    }
    app.stop().await;
}

#[tokio::test]
async fn joining_again_as_a_member_is_ok_and_writes_nothing() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let (mut a, _) = app.ws(&p.ada).await;
    for ws in [&mut b, &mut a] {
        let reply = ws
            .request(build::join(&p.room.id), WAIT)
            .await
            .expect("join");
        assert!(matches!(reply, ServerFrame::Ok { .. }), "{reply:?}");
    }
    let got = quiet(&mut b, QUIET).await;
    assert!(
        got.iter()
            .all(|f| !matches!(f, ServerFrame::Msg(_) | ServerFrame::Room { .. })),
        "{got:?}"
    );
    assert_eq!(my_room(&p.bob, &p.room.id).await.last_seq, 2);
    app.stop().await;
}

#[tokio::test]
async fn joining_a_private_room_as_a_non_member_or_an_unknown_room_is_not_found() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let private = room(&ada, "secret", Visibility::Private).await;
    let (mut b, _) = app.ws(&bob).await;
    for id in [private.id.as_str(), "r_nope", "bad id"] {
        let (code, _) = refused(&mut b, build::join(id)).await;
        assert_eq!(code, ErrorCode::NotFound, "room {id}");
    }
    let got = quiet(&mut b, QUIET).await;
    assert!(
        got.iter().all(|f| !matches!(f, ServerFrame::Room { .. })),
        "{got:?}"
    );
    assert_eq!(my_room(&ada, &private.id).await.member_count, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_join_over_http_subscribes_every_live_session_of_the_user() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let (mut b, _) = app.ws(&bob).await;
    bob.join(&r.id).await.expect("join");
    assert_eq!(room_frame(&mut b, &r.id).await.last_seq, 2);
    ada.publish(&r.id, "c", "hi").await.expect("publish");
    let seqs: Vec<u64> = [next_msg(&mut b).await.seq, next_msg(&mut b).await.seq].into();
    assert_eq!(seqs, vec![2, 3]);
    app.stop().await;
}

#[tokio::test]
async fn a_member_added_by_the_owner_or_to_a_dm_gets_room_on_every_session() {
    let app = spawn_app().await;
    let (ada, ada_user) = app.user("ada").await;
    let (bob, bob_user) = app.user("bob").await;
    let private = room(&ada, "secret", Visibility::Private).await;
    let (mut b1, _) = app.ws(&bob).await;
    let (mut b2, _) = app.ws(&bob).await;
    let (mut a, _) = app.ws(&ada).await;
    ada.add_member(&private.id, "bob").await.expect("add");
    for ws in [&mut b1, &mut b2] {
        let got = room_frame(ws, &private.id).await;
        assert_eq!(
            (got.visibility, got.read_seq),
            (Visibility::Private, Some(2))
        );
        let join = next_msg(ws).await;
        assert_eq!((join.kind, &join.from), (EventKind::Join, &bob_user));
        assert_eq!(join.by.as_ref(), Some(&ada_user), "added by the owner");
    }
    // A DM subscribes both sides.
    let dm = ada.open_dm("bob").await.expect("dm");
    for ws in [&mut a, &mut b1, &mut b2] {
        let got = room_frame(ws, &dm.id).await;
        assert_eq!((got.member_count, got.last_seq), (2, 2));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_leave_frame_answers_ok_then_every_session_gets_its_leave_event_and_removed() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b1, _) = app.ws(&p.bob).await;
    let (mut b2, _) = app.ws(&p.bob).await;
    let reply = b1
        .request(build::leave(&p.room.id), WAIT)
        .await
        .expect("leave");
    assert!(
        matches!(reply, ServerFrame::Ok { reference: Some(_) }),
        "{reply:?}"
    );
    for ws in [&mut b1, &mut b2] {
        let leave = next_msg(ws).await;
        assert_eq!(
            (leave.kind, leave.seq, &leave.from),
            (EventKind::Leave, 3, &p.bob_user)
        );
        assert_eq!(leave.by, None);
        // The leave is the last of the room they get, and `removed` follows it.
        match next(ws).await {
            ServerFrame::Removed { room } => assert_eq!(room, p.room.id),
            other => panic!("expected removed, got {other:?}"),
        }
    }
    acked(&mut a, build::send(&p.room.id, "after", "gone?")).await;
    no_msg(&mut b1).await;
    no_msg(&mut b2).await;
    assert_eq!(
        refused(&mut b1, build::send(&p.room.id, "c", "back?"))
            .await
            .0,
        ErrorCode::Forbidden
    );
    app.stop().await;
}

#[tokio::test]
async fn leave_follows_the_http_rules() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (carol, _) = app.user("carol").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut c, _) = app.ws(&carol).await;
    // The owner leaves only as the last member.
    assert_eq!(
        refused(&mut a, build::leave(&p.room.id)).await.0,
        ErrorCode::Forbidden
    );
    // A non-member: 403 for a public room, 404 for a private one or an unknown one.
    assert_eq!(
        refused(&mut c, build::leave(&p.room.id)).await.0,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(&mut c, build::leave(&private.id)).await.0,
        ErrorCode::NotFound
    );
    assert_eq!(
        refused(&mut c, build::leave("r_nope")).await.0,
        ErrorCode::NotFound
    );
    // Alone in the private room, the owner may leave.
    let reply = a
        .request(build::leave(&private.id), WAIT)
        .await
        .expect("leave");
    assert!(matches!(reply, ServerFrame::Ok { .. }));
    removed_frame(&mut a, &private.id).await;
    assert_open(&mut a).await;
    app.stop().await;
}

#[tokio::test]
async fn a_member_removed_by_the_owner_gets_removed_and_nothing_more_of_that_room() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let other = room(&p.ada, "other", Visibility::Public).await;
    p.bob.join(&other.id).await.expect("join other");
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    p.ada
        .remove_member(&p.room.id, "bob")
        .await
        .expect("remove");
    // Sent right after the removal: bob must not see it.
    acked(&mut a, build::send(&p.room.id, "c1", "after bob")).await;
    let leave = wait_for(&mut b, "bob's leave", |f| matches!(f, ServerFrame::Msg(_))).await;
    let ServerFrame::Msg(leave) = leave else {
        unreachable!()
    };
    assert_eq!(
        (leave.kind, leave.seq, &leave.from),
        (EventKind::Leave, 3, &p.bob_user)
    );
    assert_eq!(leave.by.as_ref(), Some(&p.ada_user), "removed by the owner");
    match next(&mut b).await {
        ServerFrame::Removed { room } => assert_eq!(room, p.room.id),
        other => panic!("expected removed, got {other:?}"),
    }
    let got = quiet(&mut b, QUIET).await;
    assert!(
        msgs_in(&got, &p.room.id).is_empty(),
        "after removed: {got:?}"
    );
    // Bob's other rooms are not disturbed.
    acked(&mut a, build::send(&other.id, "c2", "still here")).await;
    let e = next_msg(&mut b).await;
    assert_eq!((e.room.as_str(), e.seq), (other.id.as_str(), 3));
    app.stop().await;
}
