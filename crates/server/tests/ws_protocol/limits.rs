//! Limits: `max_body`, `max_frame` (1009), the rate limit shared across sessions and the HTTP
//! publish call, the flood close (4008), the slow-consumer close (4009), and heartbeats (1001).

use std::collections::BTreeMap;
use std::time::Duration;

use confab_client::protocol::frames::SyncedRoom;
use confab_client::protocol::{ErrorCode, ServerFrame, Visibility};
use confab_client::{ClientError, ConnectAuth, Method, SessionTracker, WsClient, build};
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::helpers::*;
use crate::util::*;

fn error_codes(frames: &[ServerFrame]) -> Vec<ErrorCode> {
    frames
        .iter()
        .filter_map(|f| match f {
            ServerFrame::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_body_over_max_body_unicode_scalars_is_bad_request_and_stays_open() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, ready) = app.ws(&p.ada).await;
    assert_eq!(ready.limits.max_body, 4000);
    let (code, _) = refused(&mut a, build::send(&p.room.id, "c1", &"é".repeat(4001))).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert_open(&mut a).await;
    // Exactly max_body scalars (8,000 bytes) is fine; so is an edit of that length.
    let ack = acked(&mut a, build::send(&p.room.id, "c2", &"é".repeat(4000))).await;
    let (code, _) = refused(&mut a, build::edit(&p.room.id, ack.seq, &"x".repeat(4001))).await;
    assert_eq!(code, ErrorCode::BadRequest);
    acked(&mut a, build::edit(&p.room.id, ack.seq, &"x".repeat(4000))).await;
    app.stop().await;
}

#[tokio::test]
async fn a_configured_max_body_applies_to_websocket_sends() {
    let app = spawn_with(|c| c.max_body = 10).await;
    let p = pair(&app).await;
    let (mut a, ready) = app.ws(&p.ada).await;
    assert_eq!(ready.limits.max_body, 10);
    let (code, _) = refused(&mut a, build::send(&p.room.id, "c1", "01234567890")).await;
    assert_eq!(code, ErrorCode::BadRequest);
    acked(&mut a, build::send(&p.room.id, "c2", "0123456789")).await;
    app.stop().await;
}

#[tokio::test]
async fn a_frame_over_max_frame_gets_too_large_then_close_1009() {
    let app = spawn_with(|c| c.max_frame = 1024).await;
    let p = pair(&app).await;
    let (mut a, ready) = app.ws(&p.ada).await;
    assert_eq!(ready.limits.max_frame, 1024);
    // A frame just under the limit is fine.
    let under = build::send(&p.room.id, "c1", &"x".repeat(900));
    assert!(under.to_string().len() < 1024);
    acked(&mut a, under).await;
    a.send_frame(build::send(&p.room.id, "c2", &"x".repeat(2000)))
        .await
        .expect("send");
    let (frames, code) = until_close(&mut a).await;
    assert_eq!(code, 1009, "{frames:?}");
    let errors = error_codes(&frames);
    assert!(
        errors.iter().all(|c| *c == ErrorCode::TooLarge),
        "only too_large may precede the close: {frames:?}"
    );
    assert_eq!(
        my_room(&p.ada, &p.room.id).await.last_seq,
        3,
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_message_whose_fragments_together_exceed_max_frame_is_closed_with_1009() {
    let app = spawn_with(|c| c.max_frame = 1024).await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    // Two fragments of 600 bytes: each under the limit, together over it.
    let text = build::send(&p.room.id, "c1", &"x".repeat(1150)).to_string();
    let (first, second) = text.as_bytes().split_at(600);
    let frames = [
        Frame::message(first.to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(second.to_vec(), OpCode::Data(Data::Continue), true),
    ];
    for f in frames {
        // The server may close as soon as the total passes the limit.
        if a.sender().send_message(Message::Frame(f)).await.is_err() {
            break;
        }
    }
    let (frames, code) = until_close(&mut a).await;
    assert_eq!(code, 1009, "{frames:?}");
    assert!(
        error_codes(&frames)
            .iter()
            .all(|c| *c == ErrorCode::TooLarge)
    );
    assert_eq!(
        my_room(&p.ada, &p.room.id).await.last_seq,
        2,
        "nothing stored"
    );
    app.stop().await;
}

#[tokio::test]
async fn fragments_that_together_fit_max_frame_are_one_accepted_message() {
    let app = spawn_with(|c| c.max_frame = 1024).await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let text = serde_json::to_string(&json!({
        "type": "send", "room": p.room.id, "client_id": "frag", "body": "y".repeat(700), "ref": "f"
    }))
    .expect("json");
    let (first, second) = text.as_bytes().split_at(400);
    for f in [
        Frame::message(first.to_vec(), OpCode::Data(Data::Text), false),
        Frame::message(second.to_vec(), OpCode::Data(Data::Continue), true),
    ] {
        a.sender()
            .send_message(Message::Frame(f))
            .await
            .expect("send fragment");
    }
    let ack = wait_for(&mut a, "ack", |f| matches!(f, ServerFrame::Ack { .. })).await;
    assert!(matches!(ack, ServerFrame::Ack { seq: 3, .. }), "{ack:?}");
    app.stop().await;
}

#[tokio::test]
async fn rate_limited_carries_retry_after_ms_and_is_shared_by_all_sessions_and_http_publish() {
    let app = spawn_with(|c| {
        c.rate_per_s = 1;
        c.burst = 1;
        c.flood_count = 1_000;
    })
    .await;
    let p = pair(&app).await;
    let (mut a1, _) = app.ws(&p.ada).await;
    let (mut a2, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    // The HTTP publish call takes ada's only token...
    let (status, first) = p
        .ada
        .publish(&p.room.id, "h1", "via http")
        .await
        .expect("publish");
    assert_eq!(status, 201);
    // ...so both her sessions are over the limit, for every kind of write.
    for (i, frame) in [
        build::send(&p.room.id, "w1", "x"),
        build::send(&p.room.id, "w2", "x"),
        build::edit(&p.room.id, first.seq, "y"),
        build::react(&p.room.id, first.seq, "👍"),
        build::delete(&p.room.id, first.seq),
    ]
    .into_iter()
    .enumerate()
    {
        let ws = if i % 2 == 0 { &mut a1 } else { &mut a2 };
        match ws.request(frame.clone(), WAIT).await {
            Err(ClientError::Api {
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(ms),
                ..
            }) => assert!((1..=1000).contains(&ms), "retry_after_ms {ms}"),
            other => panic!("{frame}: expected rate_limited with retry_after_ms, got {other:?}"),
        }
    }
    // A malformed request is refused for that before the rate limit is looked at.
    assert_eq!(
        refused(&mut a1, build::send(&p.room.id, "w3", "")).await.0,
        ErrorCode::BadRequest
    );
    // Other users have their own bucket; non-writes are not limited; the connections stay open.
    acked(&mut b, build::send(&p.room.id, "b1", "mine")).await;
    a1.read(&p.room.id, 3).await.expect("read");
    a1.typing(&p.room.id).await.expect("typing");
    assert_open(&mut a1).await;
    assert_open(&mut a2).await;
    let got = quiet(&mut a1, Duration::ZERO).await;
    assert!(
        error_codes(&got).is_empty(),
        "read and typing are not limited: {got:?}"
    );

    // The rate limit is time-based: let a token come back, spend it over WebSocket...
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    acked(&mut a2, build::send(&p.room.id, "w4", "x")).await;
    // ...and now the HTTP publish call is the one refused.
    let raw = p
        .ada
        .raw(
            Method::POST,
            &format!("/v1/rooms/{}/messages", p.room.id),
            Some(json!({"client_id": "h2", "body": "x"})),
        )
        .await
        .expect("publish");
    assert_eq!(raw.status, 429, "{}", raw.text());
    assert!(raw.headers.contains_key("retry-after"));
    let e = raw.error().expect("error body");
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after_ms.is_some_and(|ms| ms > 0));
    app.stop().await;
}

#[tokio::test]
async fn a_connection_that_gets_flood_count_rate_limited_errors_in_the_window_is_closed_4008() {
    let app = spawn_with(|c| {
        c.rate_per_s = 1;
        c.burst = 1;
        c.flood_count = 5;
        c.flood_window_ms = 10_000;
    })
    .await;
    let p = pair(&app).await;
    let (mut a1, ready) = app.ws(&p.ada).await;
    assert_eq!(ready.limits.flood_close.count, 5);
    let (mut a2, _) = app.ws(&p.ada).await;
    acked(&mut a1, build::send(&p.room.id, "c0", "x")).await;
    // Four rate_limited errors: still open.
    for i in 1..5 {
        let (code, _) = refused(&mut a1, build::send(&p.room.id, &format!("c{i}"), "x")).await;
        assert_eq!(code, ErrorCode::RateLimited);
    }
    assert_open(&mut a1).await;
    // The fifth closes the connection.
    a1.send_frame(build::send(&p.room.id, "c5", "x"))
        .await
        .expect("send");
    let (frames, code) = until_close(&mut a1).await;
    assert_eq!(code, 4008, "{frames:?}");
    assert!(
        error_codes(&frames)
            .iter()
            .all(|c| *c == ErrorCode::RateLimited),
        "{frames:?}"
    );
    // The flood count is per connection: the user's other session is open.
    assert_open(&mut a2).await;
    app.stop().await;
}

#[tokio::test]
async fn a_session_that_stops_reading_while_its_room_floods_is_closed_4009_and_loses_nothing() {
    let app = spawn_with(|c| {
        c.outbox = 16;
        c.rate_per_s = 100_000;
        c.burst = 100_000;
        c.max_body = 60_000;
    })
    .await;
    let (ada, _) = app.user("ada").await;
    let (sloth, sloth_user) = app.user("sloth").await;
    let (carol, _) = app.user("carol").await;
    let loud = room(&ada, "loud", Visibility::Public).await;
    let calm = room(&carol, "calm", Visibility::Public).await;
    sloth.join(&loud.id).await.expect("join"); // seq 2
    sloth.join(&calm.id).await.expect("join");
    let (mut c, _) = app.ws(&carol).await;
    let (mut s, ready) = app.ws(&sloth).await;
    assert!(online(&mut c, &calm.id).await.contains(&sloth_user.id));
    let mut tracker = SessionTracker::from_ready(&ready);

    // From here on `s` is not read. Large events fill the socket buffers, then the outbox.
    let body = "z".repeat(60_000);
    let mut published = 0u64;
    let mut kicked = false;
    while published < 2_000 && !kicked {
        ada.publish(&loud.id, &format!("c{published}"), &body)
            .await
            .expect("publish");
        published += 1;
        // carol shares a room with sloth: she sees when sloth's session has ended.
        if published.is_multiple_of(4) {
            kicked = !online(&mut c, &calm.id).await.contains(&sloth_user.id);
        }
    }
    assert!(
        kicked,
        "sloth was never closed after {published} large events"
    );

    let (frames, code) = until_close(&mut s).await;
    assert_eq!(code, 4009);
    let mut last = 2;
    for e in msgs_in(&frames, &loud.id) {
        tracker
            .observe(e)
            .expect("what did arrive is in order without gaps");
        last = e.seq;
    }
    assert!(
        last < 2 + published,
        "the sloth cannot have read everything"
    );

    // Nothing is lost: reconnecting with `sync` from the last seq seen fills the rest.
    let (mut again, _) = WsClient::connect(
        &app.base,
        ConnectAuth::Frame {
            token: sloth.token().expect("token").into(),
            sync: Some(BTreeMap::from([(loud.id.clone(), last)])),
        },
    )
    .await
    .expect("reconnect");
    let mut seqs = Vec::new();
    let synced = loop {
        match next(&mut again).await {
            ServerFrame::Msg(e) if e.room == loud.id => seqs.push(e.seq),
            ServerFrame::Synced { rooms, .. } => break rooms,
            _ => {}
        }
    };
    assert_eq!(seqs, (last + 1..=2 + published).collect::<Vec<_>>());
    assert_eq!(
        synced.get(&loud.id),
        Some(&SyncedRoom::Done {
            last_seq: 2 + published,
            complete: true
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_silent_for_three_heartbeats_is_closed_1001_while_one_that_reads_stays_open() {
    let app = spawn_with(|c| c.heartbeat_ms = 200).await;
    let p = pair(&app).await;
    let (mut a, ready) = app.ws(&p.ada).await;
    assert_eq!(ready.heartbeat_ms, 200);
    // bob never writes after the upgrade, so he never answers the server's pings.
    let mut b = SilentSession::open(&app.base, p.bob.token().expect("token")).await;
    let started = Instant::now();
    until_offline(&mut a, &p.room.id, &p.bob_user.id).await;
    let silent_for = started.elapsed();
    assert!(
        silent_for >= Duration::from_millis(500),
        "closed after {silent_for:?}: before three heartbeats"
    );
    b.read_to_end().await;
    let frames = b.frames();
    assert_eq!(b.close_code(), Some(1001), "{frames:?}");
    let pings = frames.iter().filter(|(op, _)| *op == 0x9).count();
    assert!(
        (1..=5).contains(&pings),
        "about three pings before the close: {pings}"
    );
    // ada read all along (answering pings): well past three heartbeats, she is still served.
    quiet(&mut a, Duration::from_millis(800)).await;
    assert_open(&mut a).await;
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_without_reading_is_not_closed_for_silence() {
    let app = spawn_with(|c| c.heartbeat_ms = 200).await;
    let (ada, _) = app.user("ada").await;
    let (mut a, _) = app.ws(&ada).await;
    // Any frame counts as a sign of life; sleeping stands in for the heartbeats passing.
    for _ in 0..10 {
        a.ping(None).await.expect("ping");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_open(&mut a).await;
    assert_eq!(a.closed(), None);
    app.stop().await;
}
