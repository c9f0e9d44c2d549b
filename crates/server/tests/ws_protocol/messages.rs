//! `send` and its `ack`: refs, retries with the same `client_id` (shared with the HTTP publish
//! call), the `msg` every member receives, and who may send.

use confab_client::protocol::{ErrorCode, EventKind, ServerFrame, Visibility};
use confab_client::{Ack, build, frame_ref, with_ref};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::util::*;

/// Sends `frame` with `reference` and waits for the reply carrying it.
async fn reply_to(ws: &mut confab_client::WsClient, frame: Value, reference: Value) -> ServerFrame {
    ws.send_frame(with_ref(frame, Some(reference.clone())))
        .await
        .expect("send");
    wait_for(ws, "the reply", |f| frame_ref(f) == Some(&reference)).await
}

#[tokio::test]
async fn send_is_acked_once_durable_and_every_member_gets_the_msg_including_the_sender() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut a2, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let ack = acked(&mut a, build::send(&p.room.id, "c-17", "hello")).await;
    assert_eq!(ack.room, p.room.id);
    assert_eq!(ack.seq, 3);
    assert_eq!(ack.client_id.as_deref(), Some("c-17"));
    assert!(!ack.id.is_empty());
    assert!(
        ack.ts > 1_600_000_000_000,
        "ts is ms since the epoch: {}",
        ack.ts
    );
    // Durable: history has it as soon as the ack is out.
    let page = p
        .bob
        .messages(&p.room.id, None, None, Some(1))
        .await
        .expect("history");
    let stored = &page.events[0];
    assert_eq!((stored.seq, &stored.id, stored.ts), (3, &ack.id, ack.ts));
    for ws in [&mut a, &mut a2, &mut b] {
        let e = next_msg(ws).await;
        assert_eq!(e.kind, EventKind::Text);
        assert_eq!((e.seq, e.id.as_str(), e.ts), (3, ack.id.as_str(), ack.ts));
        assert_eq!(e.room, p.room.id);
        assert_eq!(e.from, p.ada_user);
        assert_eq!(e.body.as_deref(), Some("hello"));
        assert_eq!(e.client_id.as_deref(), Some("c-17"));
        assert_eq!(e.target, None);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_string_ref_and_an_integer_ref_are_echoed_in_the_ack() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    for (i, reference) in [json!("my-ref"), json!(42), json!(-7), json!("x".repeat(64))]
        .into_iter()
        .enumerate()
    {
        let frame = build::send(&p.room.id, &format!("c{i}"), "hi");
        match reply_to(&mut a, frame, reference.clone()).await {
            ServerFrame::Ack { reference: r, .. } => assert_eq!(r, Some(reference)),
            other => panic!("expected ack, got {other:?}"),
        }
    }
    // Without a ref the ack carries none.
    a.send_frame(build::send(&p.room.id, "bare", "hi"))
        .await
        .expect("send");
    match wait_for(&mut a, "ack", |f| matches!(f, ServerFrame::Ack { .. })).await {
        ServerFrame::Ack { reference, .. } => assert_eq!(reference, None),
        _ => unreachable!(),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_retried_send_gets_the_first_ack_with_the_retrys_ref_and_delivers_nothing_new() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    match reply_to(&mut a, build::send(&p.room.id, "dup", "once"), json!(1)).await {
        ServerFrame::Ack { .. } => {}
        other => panic!("expected ack, got {other:?}"),
    }
    let e = next_msg(&mut b).await;
    assert_eq!(e.seq, 3);
    // Same client_id, even with another body: not stored again.
    for (reference, body) in [(json!(2), "once"), (json!("retry"), "changed")] {
        match reply_to(
            &mut a,
            build::send(&p.room.id, "dup", body),
            reference.clone(),
        )
        .await
        {
            ServerFrame::Ack {
                reference: r,
                seq,
                id,
                ts,
                client_id,
                ..
            } => {
                assert_eq!(r, Some(reference));
                assert_eq!((seq, id.as_str(), ts), (3, e.id.as_str(), e.ts));
                assert_eq!(client_id.as_deref(), Some("dup"));
            }
            other => panic!("expected the first ack again, got {other:?}"),
        }
    }
    // The HTTP publish call shares client_ids: it answers 200 with the original.
    let (status, published) = p
        .ada
        .publish(&p.room.id, "dup", "once")
        .await
        .expect("publish");
    assert_eq!(
        (status, published.seq, published.id),
        (200, 3, e.id.clone())
    );
    no_msg(&mut b).await;
    let page = p
        .ada
        .messages(&p.room.id, None, None, None)
        .await
        .expect("history");
    assert_eq!(
        page.events.len(),
        3,
        "join, join, one text: {:?}",
        page.events
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_id_first_used_by_the_http_publish_call_is_a_retry_over_websocket() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (status, published) = p
        .ada
        .publish(&p.room.id, "h1", "via http")
        .await
        .expect("publish");
    assert_eq!(status, 201);
    assert_eq!(next_msg(&mut a).await.seq, published.seq);
    let ack = acked(&mut a, build::send(&p.room.id, "h1", "via ws")).await;
    assert_eq!(
        (ack.seq, ack.id, ack.ts),
        (published.seq, published.id, published.ts)
    );
    no_msg(&mut a).await;
    app.stop().await;
}

#[tokio::test]
async fn the_same_client_id_by_another_user_or_in_another_room_is_a_new_message() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let other = room(&p.ada, "other", Visibility::Public).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let first = acked(&mut a, build::send(&p.room.id, "same", "a")).await;
    let by_bob = acked(&mut b, build::send(&p.room.id, "same", "b")).await;
    let elsewhere = acked(&mut a, build::send(&other.id, "same", "c")).await;
    assert_eq!((first.seq, by_bob.seq, elsewhere.seq), (3, 4, 2));
    assert_ne!(first.id, by_bob.id);
    app.stop().await;
}

#[tokio::test]
async fn a_client_id_must_be_1_to_64_bytes() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    for bad in [String::new(), "x".repeat(65), "é".repeat(33)] {
        let (code, _) = refused(&mut a, build::send(&p.room.id, &bad, "hi")).await;
        assert_eq!(
            code,
            ErrorCode::BadRequest,
            "client_id of {} bytes",
            bad.len()
        );
    }
    let ack = acked(&mut a, build::send(&p.room.id, &"x".repeat(64), "hi")).await;
    assert_eq!(ack.seq, 3, "nothing was stored for the refused ones");
    app.stop().await;
}

#[tokio::test]
async fn an_empty_body_is_bad_request_and_the_connection_stays_open() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (code, _) = refused(&mut a, build::send(&p.room.id, "c", "")).await;
    assert_eq!(code, ErrorCode::BadRequest);
    assert_open(&mut a).await;
    assert_eq!(
        acked(&mut a, build::send(&p.room.id, "c", "x")).await.seq,
        3
    );
    app.stop().await;
}

#[tokio::test]
async fn sending_to_a_room_the_user_is_not_in_is_forbidden_if_public_and_not_found_if_private() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (carol, _) = app.user("carol").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    let (mut c, _) = app.ws(&carol).await;
    let (code, _) = refused(&mut c, build::send(&p.room.id, "c1", "hi")).await;
    assert_eq!(code, ErrorCode::Forbidden);
    let (code, _) = refused(&mut c, build::send(&private.id, "c2", "hi")).await;
    assert_eq!(code, ErrorCode::NotFound);
    for missing in ["r_doesnotexist", "not a valid id!", ""] {
        let (code, _) = refused(&mut c, build::send(missing, "c3", "hi")).await;
        assert_eq!(code, ErrorCode::NotFound, "room {missing:?}");
    }
    assert_open(&mut c).await;
    assert_eq!(
        my_room(&p.ada, &p.room.id).await.last_seq,
        2,
        "nothing written"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_ack_names_only_its_own_request_when_several_are_in_flight() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    for i in 0..10 {
        a.send_frame(with_ref(
            build::send(&p.room.id, &format!("c{i}"), &format!("m{i}")),
            Some(json!(i)),
        ))
        .await
        .expect("send");
    }
    let mut acks: Vec<Ack> = Vec::new();
    let mut refs = Vec::new();
    while acks.len() < 10 {
        if let f @ ServerFrame::Ack { .. } = next(&mut a).await {
            refs.push(frame_ref(&f).cloned());
            acks.push(Ack::from_frame(f).expect("ack"));
        }
    }
    for (ack, r) in acks.iter().zip(&refs) {
        let i = r.as_ref().and_then(Value::as_u64).expect("integer ref");
        assert_eq!(ack.client_id.as_deref(), Some(format!("c{i}").as_str()));
    }
    app.stop().await;
}
