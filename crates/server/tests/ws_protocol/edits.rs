//! `edit`, `delete` and `react`: who may, which targets, and the `msg` frames with `target`.

use confab_client::protocol::{ErrorCode, EventKind, Visibility};
use confab_client::{HttpClient, build};

use crate::helpers::*;
use crate::util::*;

/// `ada`'s text at seq 3 and `bob`'s at seq 4 in `general`, plus a third member `carol`.
async fn with_texts(app: &TestApp) -> (Pair, HttpClient) {
    let p = pair(app).await;
    let (carol, _) = app.user("carol").await;
    carol.join(&p.room.id).await.expect("carol joins"); // seq 3
    p.ada
        .publish(&p.room.id, "a1", "from ada")
        .await
        .expect("publish"); // seq 4
    p.bob
        .publish(&p.room.id, "b1", "from bob")
        .await
        .expect("publish"); // seq 5
    (p, carol)
}

const ADA_TEXT: u64 = 4;
const BOB_TEXT: u64 = 5;
const CAROL_JOIN: u64 = 3;

#[tokio::test]
async fn the_author_edits_a_message_and_every_member_gets_an_edit_msg_with_target() {
    let app = spawn_app().await;
    let (p, _) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let ack = acked(&mut a, build::edit(&p.room.id, ADA_TEXT, "fixed")).await;
    assert_eq!((ack.seq, ack.client_id), (6, None));
    for ws in [&mut a, &mut b] {
        let e = next_msg(ws).await;
        assert_eq!(e.kind, EventKind::Edit);
        assert_eq!(
            (e.seq, e.target, e.body.as_deref()),
            (6, Some(ADA_TEXT), Some("fixed"))
        );
        assert_eq!(e.from, p.ada_user);
        assert_eq!(e.id, ack.id);
    }
    app.stop().await;
}

#[tokio::test]
async fn only_the_author_may_edit_not_another_member_nor_the_owner() {
    let app = spawn_app().await;
    let (p, carol) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let (mut c, _) = app.ws(&carol).await;
    assert_eq!(
        refused(&mut b, build::edit(&p.room.id, ADA_TEXT, "mine now"))
            .await
            .0,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(&mut c, build::edit(&p.room.id, ADA_TEXT, "mine now"))
            .await
            .0,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(&mut a, build::edit(&p.room.id, BOB_TEXT, "owner edit"))
            .await
            .0,
        ErrorCode::Forbidden,
        "the owner may delete but not edit others' messages"
    );
    assert_open(&mut b).await;
    assert_eq!(
        my_room(&p.ada, &p.room.id).await.last_seq,
        5,
        "nothing written"
    );
    app.stop().await;
}

#[tokio::test]
async fn edit_delete_and_react_of_an_event_that_is_not_text_are_bad_request() {
    let app = spawn_app().await;
    let (p, carol) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut c, _) = app.ws(&carol).await;
    // Seq 1 is ada's own join, seq 3 carol's.
    assert_eq!(
        refused(&mut a, build::edit(&p.room.id, 1, "x")).await.0,
        ErrorCode::BadRequest
    );
    assert_eq!(
        refused(&mut c, build::edit(&p.room.id, CAROL_JOIN, "x"))
            .await
            .0,
        ErrorCode::BadRequest
    );
    assert_eq!(
        refused(&mut a, build::delete(&p.room.id, 1)).await.0,
        ErrorCode::BadRequest
    );
    assert_eq!(
        refused(&mut c, build::react(&p.room.id, 1, "👍")).await.0,
        ErrorCode::BadRequest
    );
    // An edit event is no text either.
    let edit = acked(&mut a, build::edit(&p.room.id, ADA_TEXT, "v2")).await;
    assert_eq!(
        refused(&mut a, build::edit(&p.room.id, edit.seq, "v3"))
            .await
            .0,
        ErrorCode::BadRequest
    );
    assert_open(&mut a).await;
    app.stop().await;
}

#[tokio::test]
async fn edit_delete_and_react_of_a_deleted_or_missing_message_are_not_found() {
    let app = spawn_app().await;
    let (p, _) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    acked(&mut a, build::delete(&p.room.id, ADA_TEXT)).await;
    for frame in [
        build::edit(&p.room.id, ADA_TEXT, "again"),
        build::delete(&p.room.id, ADA_TEXT),
        build::react(&p.room.id, ADA_TEXT, "👍"),
        build::edit(&p.room.id, 999, "x"),
        build::delete(&p.room.id, 999),
        build::react(&p.room.id, 0, "👍"),
    ] {
        assert_eq!(
            refused(&mut a, frame.clone()).await.0,
            ErrorCode::NotFound,
            "{frame}"
        );
    }
    assert_open(&mut a).await;
    app.stop().await;
}

#[tokio::test]
async fn the_author_deletes_a_message_members_get_a_delete_msg_and_history_erases_the_body() {
    let app = spawn_app().await;
    let (p, _) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let ack = acked(&mut b, build::delete(&p.room.id, BOB_TEXT)).await;
    assert_eq!(ack.seq, 6);
    for ws in [&mut a, &mut b] {
        let e = next_msg(ws).await;
        assert_eq!(
            (e.kind, e.seq, e.target, e.from.name.as_str()),
            (EventKind::Delete, 6, Some(BOB_TEXT), "bob")
        );
        assert_eq!(e.body, None);
    }
    let page = p
        .ada
        .messages(&p.room.id, None, Some(BOB_TEXT - 1), Some(1))
        .await
        .expect("history");
    let gone = &page.events[0];
    assert_eq!(
        (gone.seq, gone.deleted, gone.body.as_deref()),
        (BOB_TEXT, true, None)
    );
    app.stop().await;
}

#[tokio::test]
async fn the_owner_may_delete_another_members_message_but_a_plain_member_may_not() {
    let app = spawn_app().await;
    let (p, carol) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut c, _) = app.ws(&carol).await;
    assert_eq!(
        refused(&mut c, build::delete(&p.room.id, BOB_TEXT)).await.0,
        ErrorCode::Forbidden
    );
    let ack = acked(&mut a, build::delete(&p.room.id, BOB_TEXT)).await;
    let e = next_msg(&mut c).await;
    assert_eq!(
        (e.kind, e.seq, e.target, e.from.name.as_str()),
        (EventKind::Delete, ack.seq, Some(BOB_TEXT), "ada")
    );
    app.stop().await;
}

#[tokio::test]
async fn any_member_reacts_with_one_emoji_and_members_get_a_react_msg_with_target_and_body() {
    let app = spawn_app().await;
    let (p, carol) = with_texts(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut c, _) = app.ws(&carol).await;
    for (i, emoji) in ["👍", "1️⃣", "👍🏽"].into_iter().enumerate() {
        let ack = acked(&mut c, build::react(&p.room.id, ADA_TEXT, emoji)).await;
        assert_eq!(ack.seq, 6 + i as u64);
        let e = next_msg(&mut a).await;
        assert_eq!(
            (
                e.kind,
                e.seq,
                e.target,
                e.body.as_deref(),
                e.from.name.as_str()
            ),
            (
                EventKind::React,
                ack.seq,
                Some(ADA_TEXT),
                Some(emoji),
                "carol"
            )
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_reaction_that_is_not_exactly_one_emoji_is_bad_request() {
    let app = spawn_app().await;
    let (p, _) = with_texts(&app).await;
    let (mut b, _) = app.ws(&p.bob).await;
    for body in ["ok", "", "👍👍", "a", "👍 ", "🏳️‍🌈🏳️‍🌈🏳️‍🌈"] {
        let (code, _) = refused(&mut b, build::react(&p.room.id, ADA_TEXT, body)).await;
        assert_eq!(code, ErrorCode::BadRequest, "reaction {body:?}");
    }
    assert_open(&mut b).await;
    assert_eq!(
        my_room(&p.ada, &p.room.id).await.last_seq,
        5,
        "nothing written"
    );
    app.stop().await;
}

#[tokio::test]
async fn edit_delete_and_react_by_a_non_member_are_forbidden_in_a_public_room_and_not_found_in_a_private_one()
 {
    let app = spawn_app().await;
    let (p, _) = with_texts(&app).await;
    let (dave, _) = app.user("dave").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    p.ada
        .publish(&private.id, "s1", "secret")
        .await
        .expect("publish"); // seq 2
    let (mut d, _) = app.ws(&dave).await;
    for (room_id, target, want) in [
        (&p.room.id, ADA_TEXT, ErrorCode::Forbidden),
        (&private.id, 2, ErrorCode::NotFound),
    ] {
        for frame in [
            build::edit(room_id, target, "x"),
            build::delete(room_id, target),
            build::react(room_id, target, "👍"),
        ] {
            assert_eq!(refused(&mut d, frame.clone()).await.0, want, "{frame}");
        }
    }
    assert_open(&mut d).await;
    app.stop().await;
}
