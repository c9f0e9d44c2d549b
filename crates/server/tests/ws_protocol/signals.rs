//! `typing`, `read`, `presence` (request and unasked events) and `ping`.

use std::time::Duration;

use confab_client::protocol::{ErrorCode, Presence, ServerFrame, Visibility};
use confab_client::{WsClient, build, frame_ref, with_ref};
use serde_json::json;

use crate::helpers::*;
use crate::util::*;

fn typings(frames: &[ServerFrame]) -> usize {
    frames
        .iter()
        .filter(|f| matches!(f, ServerFrame::Typing { .. }))
        .count()
}

fn reads(frames: &[ServerFrame]) -> Vec<(String, u64)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Read { room, seq } => Some((room.clone(), *seq)),
            _ => None,
        })
        .collect()
}

/// Unasked presence changes among `frames`: `(user name, status)`.
fn presence_changes(frames: &[ServerFrame]) -> Vec<(String, String)> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Presence(Presence {
                user: Some(u),
                status: Some(s),
                ..
            }) => Some((u.name.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn typing_reaches_other_members_but_not_the_typists_own_sessions() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a1, _) = app.ws(&p.ada).await;
    let (mut a2, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    a1.typing(&p.room.id).await.expect("typing");
    match wait_for(&mut b, "typing", |f| {
        matches!(f, ServerFrame::Typing { .. })
    })
    .await
    {
        ServerFrame::Typing { room, user } => {
            assert_eq!((room, user), (p.room.id.clone(), p.ada_user.clone()));
        }
        _ => unreachable!(),
    }
    assert_open(&mut a1).await; // typing itself answers nothing
    for ws in [&mut a1, &mut a2] {
        let got = quiet(ws, QUIET).await;
        assert_eq!(typings(&got), 0, "{got:?}");
        assert!(
            !got.iter().any(|f| matches!(f, ServerFrame::Error { .. })),
            "{got:?}"
        );
    }
    // Never stored.
    assert_eq!(my_room(&p.ada, &p.room.id).await.last_seq, 2);
    app.stop().await;
}

#[tokio::test]
async fn at_most_one_typing_a_second_per_user_and_room_is_forwarded() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let other = room(&p.ada, "other", Visibility::Public).await;
    p.bob.join(&other.id).await.expect("join");
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    for _ in 0..5 {
        a.typing(&p.room.id).await.expect("typing");
    }
    a.typing(&other.id).await.expect("typing"); // another room: its own allowance
    assert_open(&mut a).await; // all of them were read
    let got = quiet(&mut b, Duration::from_millis(500)).await;
    let per_room = |id: &str| {
        got.iter()
            .filter(|f| matches!(f, ServerFrame::Typing { room, .. } if room == id))
            .count()
    };
    assert_eq!(
        (per_room(&p.room.id), per_room(&other.id)),
        (1, 1),
        "{got:?}"
    );
    // A second later the allowance is back (a time-based limit: let it pass).
    tokio::time::sleep(Duration::from_millis(600)).await;
    a.typing(&p.room.id).await.expect("typing");
    wait_for(&mut b, "typing after a second", |f| {
        matches!(f, ServerFrame::Typing { .. })
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn typing_or_read_in_a_room_the_user_is_not_in_is_an_error_with_the_ref() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (carol, _) = app.user("carol").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    let (mut c, _) = app.ws(&carol).await;
    for (frame, want) in [
        (build::typing(&p.room.id), ErrorCode::Forbidden),
        (build::read(&p.room.id, 1), ErrorCode::Forbidden),
        (build::typing(&private.id), ErrorCode::NotFound),
        (build::read(&private.id, 1), ErrorCode::NotFound),
        (build::typing("r_nope"), ErrorCode::NotFound),
    ] {
        assert_eq!(refused(&mut c, frame.clone()).await.0, want, "{frame}");
    }
    assert_open(&mut c).await;
    app.stop().await;
}

/// `ada` with two sessions in `general` at seq 6 (four texts after the joins).
async fn read_setup(app: &TestApp) -> (Pair, WsClient, WsClient) {
    let p = pair(app).await;
    for i in 0..4 {
        p.bob
            .publish(&p.room.id, &format!("c{i}"), "x")
            .await
            .expect("publish");
    }
    let (a1, _) = app.ws(&p.ada).await;
    let (a2, _) = app.ws(&p.ada).await;
    (p, a1, a2)
}

#[tokio::test]
async fn read_moves_the_marker_forward_and_tells_only_the_users_other_sessions() {
    let app = spawn_app().await;
    let (p, mut a1, mut a2) = read_setup(&app).await;
    let (mut b, _) = app.ws(&p.bob).await;
    a1.read(&p.room.id, 4).await.expect("read");
    match wait_for(&mut a2, "read", |f| matches!(f, ServerFrame::Read { .. })).await {
        ServerFrame::Read { room, seq } => assert_eq!((room, seq), (p.room.id.clone(), 4)),
        _ => unreachable!(),
    }
    assert_open(&mut a1).await; // read answers nothing
    assert!(
        reads(&quiet(&mut a1, QUIET).await).is_empty(),
        "not to the reader"
    );
    assert!(
        reads(&quiet(&mut b, QUIET).await).is_empty(),
        "not to other users"
    );
    assert_eq!(my_room(&p.ada, &p.room.id).await.read_seq, Some(4));
    assert_eq!(
        my_room(&p.bob, &p.room.id).await.read_seq,
        Some(2),
        "bob's is his own"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_read_seq_lower_than_or_equal_to_the_marker_is_ignored_entirely() {
    let app = spawn_app().await;
    let (p, mut a1, mut a2) = read_setup(&app).await;
    a1.read(&p.room.id, 5).await.expect("read");
    wait_for(&mut a2, "read", |f| {
        matches!(f, ServerFrame::Read { seq: 5, .. })
    })
    .await;
    for seq in [3, 5, 0] {
        a1.read(&p.room.id, seq).await.expect("read");
    }
    assert_open(&mut a1).await;
    let got = quiet(&mut a2, QUIET).await;
    assert!(reads(&got).is_empty(), "{got:?}");
    assert_eq!(my_room(&p.ada, &p.room.id).await.read_seq, Some(5));
    app.stop().await;
}

#[tokio::test]
async fn a_read_seq_past_the_newest_is_taken_as_the_newest() {
    let app = spawn_app().await;
    let (p, mut a1, mut a2) = read_setup(&app).await;
    a1.read(&p.room.id, 1_000_000).await.expect("read");
    match wait_for(&mut a2, "read", |f| matches!(f, ServerFrame::Read { .. })).await {
        ServerFrame::Read { seq, .. } => assert_eq!(seq, 6),
        _ => unreachable!(),
    }
    assert_eq!(my_room(&p.ada, &p.room.id).await.read_seq, Some(6));
    // Sending does not move the marker.
    acked(&mut a1, build::send(&p.room.id, "mine", "x")).await;
    assert_eq!(my_room(&p.ada, &p.room.id).await.read_seq, Some(6));
    app.stop().await;
}

#[tokio::test]
async fn a_presence_request_lists_the_members_with_a_live_session() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (carol, carol_user) = app.user("carol").await;
    carol.join(&p.room.id).await.expect("join");
    let (dave, _) = app.user("dave").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (_b, _) = app.ws(&p.bob).await;
    let (mut d, _) = app.ws(&dave).await; // online, but not a member
    let reply = a
        .request(build::presence(&p.room.id), WAIT)
        .await
        .expect("presence");
    let ServerFrame::Presence(Presence {
        reference,
        room,
        online: Some(mut online),
        ..
    }) = reply
    else {
        panic!("expected the presence reply, got {reply:?}")
    };
    assert!(reference.is_some());
    assert_eq!(room.as_deref(), Some(p.room.id.as_str()));
    online.sort();
    let mut want = vec![p.ada_user.id.clone(), p.bob_user.id.clone()];
    want.sort();
    assert_eq!(online, want, "carol ({}) is offline", carol_user.id);
    // Members only.
    assert_eq!(
        refused(&mut d, build::presence(&p.room.id)).await.0,
        ErrorCode::Forbidden
    );
    assert_eq!(
        refused(&mut d, build::presence(&private.id)).await.0,
        ErrorCode::NotFound
    );
    app.stop().await;
}

#[tokio::test]
async fn members_of_a_shared_room_are_told_when_a_user_comes_online_and_goes_offline() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (dave, _) = app.user("dave").await;
    room(&dave, "dave's", Visibility::Public).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut d, _) = app.ws(&dave).await;

    let (mut b1, _) = app.ws(&p.bob).await;
    let f = wait_for(&mut a, "bob online", |f| {
        matches!(f, ServerFrame::Presence(_))
    })
    .await;
    assert_eq!(
        presence_changes(&[f]),
        vec![("bob".into(), "online".into())]
    );
    // A second session is not a change.
    let (mut b2, _) = app.ws(&p.bob).await;
    assert_open(&mut b2).await;
    assert!(presence_changes(&quiet(&mut a, QUIET).await).is_empty());
    b1.close(1000, "bye").await.expect("close");
    drop(b1);
    assert!(
        presence_changes(&quiet(&mut a, QUIET).await).is_empty(),
        "bob still has a session"
    );
    b2.close(1000, "bye").await.expect("close");
    drop(b2);
    let f = wait_for(&mut a, "bob offline", |f| {
        matches!(f, ServerFrame::Presence(_))
    })
    .await;
    assert_eq!(
        presence_changes(&[f]),
        vec![("bob".into(), "offline".into())]
    );
    // dave shares no room with bob or ada; ada's own sessions hear nothing of ada.
    assert!(presence_changes(&quiet(&mut d, QUIET).await).is_empty());
    let (mut a2, _) = app.ws(&p.ada).await;
    assert!(presence_changes(&quiet(&mut a2, QUIET).await).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_users_own_sessions_get_no_presence_events_about_that_user() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a1, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await; // bob online: ada is told, bob is not about bob
    wait_for(&mut a1, "bob online", |f| {
        matches!(f, ServerFrame::Presence(_))
    })
    .await;
    // ada's second session is no change for anyone; her first session never hears of herself.
    let (_a2, _) = app.ws(&p.ada).await;
    let got = presence_changes(&quiet(&mut b, QUIET).await);
    assert!(got.iter().all(|(name, _)| name != "bob"), "{got:?}");
    let got = presence_changes(&quiet(&mut a1, QUIET).await);
    assert!(got.iter().all(|(name, _)| name != "ada"), "{got:?}");
    app.stop().await;
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_ref_or_none() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    for reference in [
        json!("p-1"),
        json!(0),
        json!(9_007_199_254_740_993u64),
        json!(-1),
    ] {
        a.send_frame(with_ref(build::ping(), Some(reference.clone())))
            .await
            .expect("ping");
        let f = wait_for(&mut a, "pong", |f| matches!(f, ServerFrame::Pong { .. })).await;
        assert_eq!(frame_ref(&f), Some(&reference));
    }
    a.ping(None).await.expect("ping");
    let f = wait_for(&mut a, "pong", |f| matches!(f, ServerFrame::Pong { .. })).await;
    assert_eq!(f, ServerFrame::Pong { reference: None });
    app.stop().await;
}

#[tokio::test]
async fn rooms_over_the_presence_limit_send_no_presence_events_but_answer_presence_requests() {
    // The limit is 500 members by default; one member makes a two-member room "large".
    let app = spawn_with(|c| c.presence_max_members = 1).await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (_b, _) = app.ws(&p.bob).await;
    assert!(presence_changes(&quiet(&mut a, QUIET).await).is_empty());
    let reply = a
        .request(build::presence(&p.room.id), WAIT)
        .await
        .expect("reply");
    let ServerFrame::Presence(Presence {
        online: Some(mut online),
        ..
    }) = reply
    else {
        panic!("expected the online list, got {reply:?}")
    };
    online.sort();
    let mut both = vec![p.ada_user.id.clone(), p.bob_user.id.clone()];
    both.sort();
    assert_eq!(online, both);
    app.stop().await;
}
