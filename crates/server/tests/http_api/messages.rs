//! `GET` and `POST /v1/rooms/{id}/messages`, and edits, deletes and reactions as history shows
//! them.

use confab_client::protocol::{ErrorCode, EventKind, Room, Visibility};
use confab_client::{Ack, HttpClient, Method, RawResponse, build};
use serde_json::json;

use crate::helpers::*;
use crate::*;

async fn publish_raw(http: &HttpClient, room: &str, body: serde_json::Value) -> RawResponse {
    call(http, Method::POST, &messages_path(room), Some(body)).await
}

async fn history_raw(http: &HttpClient, room: &str, query: &str) -> RawResponse {
    call(
        http,
        Method::GET,
        &format!("{}?{query}", messages_path(room)),
        None,
    )
    .await
}

/// A public room of ada's whose log is her join (seq 1) and `n` messages (seqs 2..=n+1).
async fn room_with_messages(app: &TestApp, n: usize) -> (HttpClient, Room) {
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for i in 0..n {
        ada.publish(&r.id, &format!("c{i}"), &format!("m{i}"))
            .await
            .expect("publish");
    }
    (ada, r)
}

/// The seqs of a page, and its `has_more`.
async fn page(
    http: &HttpClient,
    room: &str,
    before: Option<u64>,
    after: Option<u64>,
    limit: Option<u64>,
) -> (Vec<u64>, bool) {
    let p = http
        .messages(room, before, after, limit)
        .await
        .expect("history");
    (p.events.iter().map(|e| e.seq).collect(), p.has_more)
}

fn fast(c: &mut confab_server::Config) {
    c.rate_per_s = 1000;
    c.burst = 1000;
    c.sqlite_synchronous = "normal".into();
}

#[tokio::test]
async fn publishing_answers_201_with_seq_id_and_ts_and_the_event_is_in_history() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let raw = publish_raw(&ada, &r.id, json!({"client_id": "c-17", "body": "hello"})).await;
    assert_eq!(raw.status, 201, "{}", raw.text());
    let body = json(&raw);
    assert_eq!(keys(&body), set(&["seq", "id", "ts"]));
    assert_eq!(body["seq"], 2);
    assert_recent(body["ts"].as_i64().expect("ts"));
    let log = raw_log(&ada, &r.id).await;
    let e = &log[1];
    assert_eq!(
        keys(e),
        set(&[
            "room",
            "seq",
            "id",
            "kind",
            "from",
            "body",
            "ts",
            "client_id"
        ])
    );
    assert_eq!(e["room"], r.id.as_str());
    assert_eq!(e["seq"], 2);
    assert_eq!(e["id"], body["id"]);
    assert_eq!(e["ts"], body["ts"]);
    assert_eq!(e["kind"], "text");
    assert_eq!(e["from"], json!({"id": ada_ref.id, "name": "ada"}));
    assert_eq!(e["body"], "hello");
    assert_eq!(e["client_id"], "c-17");
    let (_, second) = ada.publish(&r.id, "c-18", "again").await.expect("publish");
    assert_eq!(second.seq, 3);
    assert_ne!(
        second.id,
        body["id"].as_str().expect("id"),
        "ids are unique"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_client_id_answers_200_with_the_original_and_stores_nothing() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let other = room(&ada, "other", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    let (status, first) = ada.publish(&r.id, "c1", "hello").await.expect("publish");
    assert_eq!(status, 201);
    let (status, again) = ada
        .publish(&r.id, "c1", "a different body")
        .await
        .expect("repeat");
    assert_eq!(status, 200);
    assert_eq!(again, first, "the original seq, id and ts");
    let texts: Vec<_> = log(&ada, &r.id)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::Text)
        .map(|e| e.body)
        .collect();
    assert_eq!(texts, [Some("hello".to_owned())]);
    // The same client_id from another user, or in another room, is another message.
    let (status, bobs) = bob.publish(&r.id, "c1", "bob's").await.expect("publish");
    assert_eq!((status, bobs.seq), (201, 4));
    let (status, elsewhere) = ada.publish(&other.id, "c1", "x").await.expect("publish");
    assert_eq!((status, elsewhere.seq), (201, 2));
    // client_ids are shared with the WebSocket `send`: a send repeating it gets the first ack.
    let (mut ws, _) = app.ws(&ada).await;
    let ack = ws
        .request(build::send(&r.id, "c1", "via ws"), WAIT)
        .await
        .expect("ack");
    let ack = Ack::from_frame(ack).expect("ack");
    assert_eq!((ack.seq, ack.id, ack.ts), (first.seq, first.id, first.ts));
    assert_eq!(log(&ada, &r.id).await.len(), 4, "nothing stored");
    app.stop().await;
}

#[tokio::test]
async fn an_empty_missing_or_ill_typed_message_body_is_400() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for body in [
        json!({"client_id": "c1", "body": ""}),
        json!({"client_id": "c1"}),
        json!({"client_id": "c1", "body": null}),
        json!({"client_id": "c1", "body": 42}),
        json!({"body": "no client id"}),
        json!({"client_id": 1, "body": "x"}),
        // The fields in order, as an array, are not the object.
        json!(["c1", "hello"]),
    ] {
        assert_error(&publish_raw(&ada, &r.id, body).await, 400, "bad_request");
    }
    let raw = publish_raw(&ada, &r.id, json!({"client_id": "c1", "bdy": "typo"})).await;
    let error = assert_error(&raw, 400, "bad_request");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("bdy"),
        "the unknown field is named: {message}"
    );
    assert_eq!(log(&ada, &r.id).await.len(), 1, "nothing stored");
    app.stop().await;
}

#[tokio::test]
async fn a_body_may_hold_exactly_4000_unicode_scalar_values_counted_not_as_bytes() {
    let app = spawn_with(fast).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    // `e` + combining acute: 2 scalar values, one grapheme.
    let accent = "e\u{301}";
    let cases = [
        ("ascii-4000", "a".repeat(4000), true),
        ("ascii-4001", "a".repeat(4001), false),
        ("emoji-4000", "😀".repeat(4000), true), // 16,000 bytes
        ("emoji-4001", "😀".repeat(4001), false),
        ("e-4000", "é".repeat(4000), true),
        ("combining-4000", accent.repeat(2000), true), // 2,000 graphemes
        ("combining-4001", format!("{}e", accent.repeat(2000)), false),
    ];
    for (client_id, body, ok) in cases {
        let raw = publish_raw(&ada, &r.id, json!({"client_id": client_id, "body": body})).await;
        if ok {
            assert_eq!(raw.status, 201, "{client_id}: {}", raw.text());
            let seq = json(&raw)["seq"].as_u64().expect("seq");
            let stored = ada
                .messages(&r.id, Some(seq + 1), None, Some(1))
                .await
                .expect("history");
            assert_eq!(
                stored.events[0].body.as_deref(),
                Some(body.as_str()),
                "{client_id} is stored intact"
            );
        } else {
            assert_error(&raw, 400, "bad_request");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_client_id_must_be_1_to_64_bytes() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let cases = [
        (String::new(), false),
        ("x".repeat(64), true),
        ("y".repeat(65), false),
        ("é".repeat(32), true),  // 64 bytes
        ("ü".repeat(33), false), // 33 characters, 66 bytes
    ];
    for (client_id, ok) in cases {
        let raw = publish_raw(&ada, &r.id, json!({"client_id": client_id, "body": "hi"})).await;
        if ok {
            assert_eq!(raw.status, 201, "{} bytes: {}", client_id.len(), raw.text());
        } else {
            assert_error(&raw, 400, "bad_request");
        }
    }
    assert_eq!(log(&ada, &r.id).await.len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn history_without_before_or_after_is_the_newest_events_newest_first() {
    let app = spawn_with(fast).await;
    let (ada, r) = room_with_messages(&app, 10).await; // seqs 1..=11
    assert_eq!(
        page(&ada, &r.id, None, None, Some(3)).await,
        (vec![11, 10, 9], true)
    );
    assert_eq!(
        page(&ada, &r.id, None, None, None).await,
        ((1..=11).rev().collect(), false)
    );
    assert_eq!(
        page(&ada, &r.id, None, None, Some(11)).await,
        ((1..=11).rev().collect(), false),
        "exactly all: nothing more"
    );
    assert_eq!(
        page(&ada, &r.id, None, None, Some(10)).await,
        ((2..=11).rev().collect(), true)
    );
    let raw = history_raw(&ada, &r.id, "limit=2").await;
    assert_eq!(raw.status, 200);
    assert_eq!(keys(&json(&raw)), set(&["events", "has_more"]));
    app.stop().await;
}

#[tokio::test]
async fn history_before_a_seq_is_the_events_below_it_newest_first() {
    let app = spawn_with(fast).await;
    let (ada, r) = room_with_messages(&app, 10).await;
    assert_eq!(
        page(&ada, &r.id, Some(5), None, None).await,
        (vec![4, 3, 2, 1], false)
    );
    assert_eq!(
        page(&ada, &r.id, Some(5), None, Some(2)).await,
        (vec![4, 3], true)
    );
    assert_eq!(
        page(&ada, &r.id, Some(3), None, Some(2)).await,
        (vec![2, 1], false)
    );
    assert_eq!(
        page(&ada, &r.id, Some(1), None, None).await,
        (vec![], false)
    );
    assert_eq!(
        page(&ada, &r.id, Some(1000), None, Some(3)).await,
        (vec![11, 10, 9], true)
    );
    // Paging backwards from the newest reaches every event once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let (seqs, more) = page(&ada, &r.id, before, None, Some(4)).await;
        before = seqs.last().copied();
        seen.extend(seqs);
        if !more {
            break;
        }
    }
    assert_eq!(seen, (1..=11).rev().collect::<Vec<_>>());
    app.stop().await;
}

#[tokio::test]
async fn history_after_a_seq_is_the_events_above_it_oldest_first() {
    let app = spawn_with(fast).await;
    let (ada, r) = room_with_messages(&app, 10).await;
    assert_eq!(
        page(&ada, &r.id, None, Some(8), None).await,
        (vec![9, 10, 11], false)
    );
    assert_eq!(
        page(&ada, &r.id, None, Some(0), Some(3)).await,
        (vec![1, 2, 3], true)
    );
    assert_eq!(
        page(&ada, &r.id, None, Some(7), Some(4)).await,
        (vec![8, 9, 10, 11], false)
    );
    assert_eq!(
        page(&ada, &r.id, None, Some(11), None).await,
        (vec![], false)
    );
    assert_eq!(
        page(&ada, &r.id, None, Some(500), None).await,
        (vec![], false)
    );
    app.stop().await;
}

#[tokio::test]
async fn history_limit_defaults_to_50_and_outside_1_to_100_is_400() {
    let app = spawn_with(fast).await;
    let (ada, r) = room_with_messages(&app, 104).await; // seqs 1..=105
    let (seqs, more) = page(&ada, &r.id, None, None, None).await;
    assert_eq!((seqs, more), ((56..=105).rev().collect::<Vec<_>>(), true));
    let (seqs, more) = page(&ada, &r.id, None, Some(0), None).await;
    assert_eq!((seqs, more), ((1..=50).collect::<Vec<_>>(), true));
    let (seqs, more) = page(&ada, &r.id, None, Some(0), Some(100)).await;
    assert_eq!((seqs, more), ((1..=100).collect::<Vec<_>>(), true));
    let (seqs, _) = page(&ada, &r.id, None, None, Some(1)).await;
    assert_eq!(seqs, [105]);
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1e2",
        "after=0&limit=0",
        "before=50&limit=101",
    ] {
        let raw = history_raw(&ada, &r.id, query).await;
        assert_eq!(raw.status, 400, "{query}: {}", raw.text());
        assert_error(&raw, 400, "bad_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn history_with_both_before_and_after_or_a_malformed_seq_is_400() {
    let app = spawn_with(fast).await;
    let (ada, r) = room_with_messages(&app, 3).await;
    for query in [
        "before=3&after=1",
        "after=1&before=3&limit=10",
        "before=0&after=0",
        "before=-1",
        "after=x",
        "after=1.0",
    ] {
        let raw = history_raw(&ada, &r.id, query).await;
        assert_eq!(raw.status, 400, "{query}: {}", raw.text());
        assert_error(&raw, 400, "bad_request");
    }
    // Unknown query parameters are ignored.
    let raw = history_raw(&ada, &r.id, "limit=2&colour=blue").await;
    assert_eq!(raw.status, 200, "{}", raw.text());
    app.stop().await;
}

#[tokio::test]
async fn history_and_publishing_are_for_members_only_403_public_404_private() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let public = room(&ada, "general", Visibility::Public).await;
    let private = room(&ada, "secret", Visibility::Private).await;
    for (r, status, code) in [(&public, 403, "forbidden"), (&private, 404, "not_found")] {
        let raw = history_raw(&bob, &r.id, "limit=5").await;
        assert_error(&raw, status, code);
        let raw = publish_raw(&bob, &r.id, json!({"client_id": "c", "body": "hi"})).await;
        assert_error(&raw, status, code);
    }
    bob.join(&public.id).await.expect("join");
    bob.messages(&public.id, None, None, None)
        .await
        .expect("a member reads");
    let (status, _) = bob
        .publish(&public.id, "c", "hi")
        .await
        .expect("a member writes");
    assert_eq!(status, 201);
    app.stop().await;
}

/// An `ack`'s seq, failing on anything else.
async fn acked(ws: &mut confab_client::WsClient, frame: serde_json::Value) -> u64 {
    let reply = ws.request(frame, WAIT).await.expect("ack");
    Ack::from_frame(reply).expect("an ack").seq
}

#[tokio::test]
async fn edits_and_reactions_append_events_naming_their_target_and_leave_the_original() {
    let app = spawn_app().await;
    let (ada, ada_ref) = app.user("ada").await;
    let (bob, bob_ref) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    let (_, text) = ada.publish(&r.id, "c1", "helo").await.expect("publish"); // seq 3
    let (mut a, _) = app.ws(&ada).await;
    let (mut b, _) = app.ws(&bob).await;
    let edit = acked(&mut a, build::edit(&r.id, text.seq, "hello")).await;
    let react = acked(&mut b, build::react(&r.id, text.seq, "👍")).await;
    assert_eq!((edit, react), (4, 5));
    let log = raw_log(&bob, &r.id).await;
    assert_eq!(log[2]["body"], "helo", "the original is unchanged");
    assert_eq!(log[2]["kind"], "text");
    assert_eq!(
        (
            &log[3]["kind"],
            &log[3]["target"],
            &log[3]["body"],
            &log[3]["from"]["id"]
        ),
        (
            &json!("edit"),
            &json!(3),
            &json!("hello"),
            &json!(ada_ref.id)
        )
    );
    assert_eq!(
        (
            &log[4]["kind"],
            &log[4]["target"],
            &log[4]["body"],
            &log[4]["from"]["id"]
        ),
        (&json!("react"), &json!(3), &json!("👍"), &json!(bob_ref.id))
    );
    for e in &log[3..] {
        assert!(e.get("client_id").is_none(), "no client_id on {e}");
        assert!(e.get("deleted").is_none(), "not deleted: {e}");
    }
    // Each arrived live, too, exactly as history shows it.
    let mut live = Vec::new();
    while live.len() < 2 {
        let e = next_msg(&mut b).await;
        if e.seq > 3 {
            live.push(e);
        }
    }
    let from_history = crate::log(&bob, &r.id).await;
    assert_eq!(live, from_history[3..]);
    app.stop().await;
}

#[tokio::test]
async fn deleting_erases_the_body_and_history_shows_deleted_true_and_no_body() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    let (_, mine) = ada.publish(&r.id, "c1", "secret plans").await.expect("p"); // 3
    let (_, bobs) = bob.publish(&r.id, "c2", "bob's words").await.expect("p"); // 4
    let (_, kept) = bob.publish(&r.id, "c3", "kept").await.expect("p"); // 5
    let (mut a, _) = app.ws(&ada).await;
    let (mut b, _) = app.ws(&bob).await;
    let edit = acked(&mut a, build::edit(&r.id, mine.seq, "more secret plans")).await; // 6
    let del = acked(&mut a, build::delete(&r.id, mine.seq)).await; // 7, by the author
    let del_other = acked(&mut a, build::delete(&r.id, bobs.seq)).await; // 8, by the owner
    assert_eq!((edit, del, del_other), (6, 7, 8));
    let log = raw_log(&bob, &r.id).await;
    for seq in [mine.seq, bobs.seq, edit] {
        let e = &log[seq as usize - 1];
        assert_eq!(e["deleted"], true, "{e}");
        assert!(e.get("body").is_none(), "the body is erased: {e}");
    }
    let k = &log[kept.seq as usize - 1];
    assert_eq!(k["body"], "kept", "other messages keep their bodies");
    assert!(k.get("deleted").is_none());
    assert_eq!(
        (&log[6]["kind"], &log[6]["target"]),
        (&json!("delete"), &json!(mine.seq))
    );
    assert_eq!(
        (&log[7]["kind"], &log[7]["target"]),
        (&json!("delete"), &json!(bobs.seq))
    );
    let text = serde_json::to_string(&log).expect("json");
    assert!(!text.contains("secret plans") && !text.contains("bob's words"));
    // A deleted message can no longer be edited, deleted or reacted to; bob may not delete
    // ada's message.
    for frame in [
        build::edit(&r.id, mine.seq, "x"),
        build::delete(&r.id, mine.seq),
        build::react(&r.id, mine.seq, "👍"),
    ] {
        let e = a.request(frame, WAIT).await.expect_err("refused");
        assert_eq!(e.code(), Some(ErrorCode::NotFound));
    }
    let (_, adas) = ada.publish(&r.id, "c4", "ada again").await.expect("p");
    let e = b
        .request(build::delete(&r.id, adas.seq), WAIT)
        .await
        .expect_err("refused");
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    app.stop().await;
}
