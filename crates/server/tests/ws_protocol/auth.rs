//! Authentication (bearer header, first `auth` frame, timeout), the `Origin` check, the
//! content of `ready`, and logging out.

use std::collections::BTreeMap;
use std::time::Duration;

use confab_client::protocol::frames::SyncedRoom;
use confab_client::protocol::{ErrorCode, ServerFrame, Visibility};
use confab_client::{ConnectAuth, ConnectOptions, WsClient, build};
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::*;
use crate::origin::upgrade_status;
use crate::util::*;

fn token(http: &confab_client::HttpClient) -> String {
    http.token().expect("a token").to_owned()
}

/// Opens a connection without authenticating (no header, no frame).
async fn open_bare(app: &TestApp) -> WsClient {
    WsClient::open(&app.base, None, &ConnectOptions::default())
        .await
        .expect("upgrade")
}

#[tokio::test]
async fn a_bearer_header_authenticates_and_ready_is_the_first_frame() {
    let app = spawn_app().await;
    let (ada, user) = app.user("ada").await;
    let mut ws = WsClient::open(&app.base, Some(&token(&ada)), &ConnectOptions::default())
        .await
        .expect("upgrade");
    match next(&mut ws).await {
        ServerFrame::Ready { user: u, .. } => assert_eq!(u, user),
        other => panic!("expected ready first, got {other:?}"),
    }
    assert_open(&mut ws).await;
    app.stop().await;
}

#[tokio::test]
async fn a_first_auth_frame_authenticates_a_connection_without_a_header() {
    let app = spawn_app().await;
    let (ada, user) = app.user("ada").await;
    let mut ws = open_bare(&app).await;
    ws.send_frame(json!({"type": "auth", "token": token(&ada)}))
        .await
        .expect("send auth");
    match next(&mut ws).await {
        ServerFrame::Ready { user: u, .. } => assert_eq!(u, user),
        other => panic!("expected ready, got {other:?}"),
    }
    assert_open(&mut ws).await;
    app.stop().await;
}

#[tokio::test]
async fn an_auth_frame_with_sync_replays_the_missed_events_then_synced_then_goes_live() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for i in 0..3 {
        ada.publish(&r.id, &format!("c{i}"), "x")
            .await
            .expect("publish");
    }
    let sync = BTreeMap::from([(r.id.clone(), 1u64), ("r_nowhere".to_string(), 0)]);
    let (mut ws, ready) = WsClient::connect(
        &app.base,
        ConnectAuth::Frame {
            token: token(&ada),
            sync: Some(sync),
        },
    )
    .await
    .expect("connect");
    assert_eq!(ready.rooms[0].last_seq, 4);
    let mut seqs = Vec::new();
    let synced = loop {
        match next(&mut ws).await {
            ServerFrame::Msg(e) => seqs.push(e.seq),
            f @ ServerFrame::Synced { .. } => break f,
            other => panic!("unexpected before synced: {other:?}"),
        }
    };
    assert_eq!(seqs, vec![2, 3, 4]);
    let ServerFrame::Synced { rooms, .. } = synced else {
        unreachable!()
    };
    assert_eq!(
        rooms.get(&r.id),
        Some(&SyncedRoom::Done {
            last_seq: 4,
            complete: true
        })
    );
    assert_eq!(
        rooms.get("r_nowhere"),
        Some(&SyncedRoom::Failed {
            error: ErrorCode::NotFound
        })
    );
    ada.publish(&r.id, "live", "live").await.expect("publish");
    assert_eq!(next_msg(&mut ws).await.seq, 5);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_expired_or_revoked_token_in_the_header_is_refused_with_http_401_before_the_upgrade()
{
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    assert_eq!(
        upgrade_status(&app, Some("not-a-token"), None).await,
        Some(401)
    );
    assert_eq!(
        upgrade_status(&app, Some(&"0".repeat(64)), None).await,
        Some(401)
    );
    let revoked = token(&ada);
    ada.logout().await.expect("logout");
    assert_eq!(upgrade_status(&app, Some(&revoked), None).await, Some(401));
    match WsClient::open(&app.base, Some(&revoked), &ConnectOptions::default()).await {
        Err(e) => assert_eq!(e.code(), Some(ErrorCode::Unauthorized), "{e}"),
        Ok(_) => panic!("a revoked token was upgraded"),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_bad_token_in_the_auth_frame_gets_unauthorized_then_close_4001() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let revoked = token(&ada);
    ada.logout().await.expect("logout");
    for bad in ["nope".to_string(), "0".repeat(64), revoked] {
        let mut ws = open_bare(&app).await;
        ws.send_frame(json!({"type": "auth", "token": bad}))
            .await
            .expect("send auth");
        let (frames, code) = until_close(&mut ws).await;
        assert_eq!(code, 4001, "token {bad}");
        assert!(
            matches!(
                frames.as_slice(),
                [ServerFrame::Error {
                    code: ErrorCode::Unauthorized,
                    ..
                }]
            ),
            "expected one unauthorized error before the close, got {frames:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn any_other_frame_before_auth_gets_unauthorized_then_close_4001() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let firsts = [
        build::ping().to_string(),
        build::send("r", "c", "hi").to_string(),
        "not json".to_string(),
        json!({"type": "auth"}).to_string(),
        json!({"type": "auth", "token": token(&ada), "extra": 1}).to_string(),
    ];
    for first in firsts {
        let mut ws = open_bare(&app).await;
        ws.send_text(first.clone()).await.expect("send");
        let (frames, code) = until_close(&mut ws).await;
        assert_eq!(code, 4001, "first frame {first}");
        assert!(
            frames.iter().any(|f| matches!(
                f,
                ServerFrame::Error {
                    code: ErrorCode::Unauthorized,
                    ..
                }
            )),
            "first frame {first}: {frames:?}"
        );
        assert!(
            !frames
                .iter()
                .any(|f| matches!(f, ServerFrame::Ready { .. })),
            "{frames:?}"
        );
    }
    // A binary first frame is no auth frame either.
    let mut ws = open_bare(&app).await;
    ws.send_binary(b"{}".to_vec()).await.expect("send");
    assert_eq!(until_close(&mut ws).await.1, 4001);
    app.stop().await;
}

#[tokio::test]
async fn no_auth_frame_within_auth_timeout_gets_unauthorized_then_close_4001() {
    let app = spawn_with(|c| c.auth_timeout_ms = 300).await;
    let started = Instant::now();
    let mut ws = open_bare(&app).await;
    let (frames, code) = until_close(&mut ws).await;
    let waited = started.elapsed();
    assert_eq!(code, 4001);
    assert!(
        matches!(
            frames.as_slice(),
            [ServerFrame::Error {
                code: ErrorCode::Unauthorized,
                ..
            }]
        ),
        "{frames:?}"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}, before the 300 ms auth timeout"
    );
    app.stop().await;
}

#[tokio::test]
async fn sending_auth_again_on_an_authenticated_connection_is_bad_request_and_stays_open() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (mut ws, _) = app.ws(&ada).await;
    let (code, message) = refused(&mut ws, json!({"type": "auth", "token": token(&ada)})).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("already authenticated"), "{message}");
    assert_open(&mut ws).await;
    app.stop().await;
}

#[tokio::test]
async fn ready_names_the_session_user_rooms_heartbeat_and_limits() {
    let app = spawn_with(|c| {
        c.heartbeat_ms = 12_345;
        c.max_body = 3_000;
        c.max_frame = 40_000;
        c.rate_per_s = 7;
        c.burst = 9;
        c.flood_count = 11;
        c.flood_window_ms = 5_000;
    })
    .await;
    let p = pair(&app).await;
    let (carol, _) = app.user("carol").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    room(&carol, "elsewhere", Visibility::Public).await;
    p.ada
        .publish(&p.room.id, "c1", "one")
        .await
        .expect("publish");
    p.ada
        .publish(&p.room.id, "c2", "two")
        .await
        .expect("publish");

    let (_a1, ready) = app.ws(&p.ada).await;
    let (_a2, ready2) = app.ws(&p.ada).await;
    assert!(!ready.session_id.is_empty());
    assert_ne!(
        ready.session_id, ready2.session_id,
        "each session has its own id"
    );
    assert_eq!(ready.user, p.ada_user);
    assert_eq!(ready.heartbeat_ms, 12_345);
    let l = &ready.limits;
    assert_eq!(
        (l.max_body, l.max_frame, l.rate_per_s, l.burst),
        (3_000, 40_000, 7, 9)
    );
    assert_eq!((l.flood_close.count, l.flood_close.window_ms), (11, 5_000));

    // The user's rooms only, ordered by id, as GET /v1/rooms lists them.
    let mut ids = vec![p.room.id.clone(), private.id.clone()];
    ids.sort();
    assert_eq!(
        ready.rooms.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids
    );
    assert_eq!(ready.rooms, p.ada.rooms().await.expect("rooms"));
    let general = ready
        .rooms
        .iter()
        .find(|r| r.id == p.room.id)
        .expect("general");
    assert_eq!(general.name, "general");
    assert_eq!(general.visibility, Visibility::Public);
    assert_eq!(general.owner, p.ada_user.id);
    assert_eq!(general.member_count, 2);
    assert_eq!(general.last_seq, 4);
    assert_eq!(
        general.read_seq,
        Some(1),
        "ada's read marker is at her join"
    );

    let (_b, bready) = app.ws(&p.bob).await;
    assert_eq!(bready.rooms.len(), 1);
    assert_eq!(
        bready.rooms[0].read_seq,
        Some(2),
        "bob's read marker is at his join"
    );
    assert_eq!(bready.rooms[0].last_seq, 4);
    app.stop().await;
}

#[tokio::test]
async fn logging_out_closes_every_live_session_of_that_token_with_4001_and_no_error_frame() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let other = app.http().login("ada", "password123").await.expect("login");
    let ada2 = app.http().with_token(&other.token);
    let (mut header_session, _) = app.ws(&ada).await;
    let (mut frame_session, _) = WsClient::connect(
        &app.base,
        ConnectAuth::Frame {
            token: token(&ada),
            sync: None,
        },
    )
    .await
    .expect("connect");
    let (mut other_token, _) = app.ws(&ada2).await;

    ada.logout().await.expect("logout");
    for ws in [&mut header_session, &mut frame_session] {
        let (frames, code) = until_close(ws).await;
        assert_eq!(code, 4001);
        assert!(
            !frames
                .iter()
                .any(|f| matches!(f, ServerFrame::Error { .. })),
            "no error frame on logout: {frames:?}"
        );
    }
    // Another token of the same user is not logged out.
    assert_open(&mut other_token).await;
    app.stop().await;
}
