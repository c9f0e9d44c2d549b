//! The `sync` request after `ready` and the `history` request.

use std::collections::BTreeMap;

use confab_client::protocol::frames::SyncedRoom;
use confab_client::protocol::{ErrorCode, Event, ServerFrame, Visibility};
use confab_client::{WsClient, build};

use crate::helpers::*;
use crate::util::*;

/// Reads `msg` frames until `synced`: the events and the `synced` frame's rooms and ref.
async fn until_synced(
    ws: &mut WsClient,
) -> (
    Vec<Event>,
    BTreeMap<String, SyncedRoom>,
    Option<serde_json::Value>,
) {
    let mut events = Vec::new();
    loop {
        match next(ws).await {
            ServerFrame::Msg(e) => events.push(e),
            ServerFrame::Synced { reference, rooms } => return (events, rooms, reference),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_sync_request_after_ready_sends_the_missed_events_in_order_then_synced() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (carol, _) = app.user("carol").await;
    let not_mine = room(&carol, "carol's", Visibility::Public).await;
    let hidden = room(&carol, "hidden", Visibility::Private).await;
    for i in 0..4 {
        p.bob
            .publish(&p.room.id, &format!("c{i}"), &format!("m{i}"))
            .await
            .expect("publish"); // seqs 3..=6
    }
    let (mut a, ready) = app.ws(&p.ada).await;
    assert_eq!(ready.rooms[0].last_seq, 6);
    // The client had seen up to seq 2.
    let rooms = BTreeMap::from([
        (p.room.id.clone(), 2u64),
        (not_mine.id.clone(), 0),
        (hidden.id.clone(), 0),
        ("r_nope".to_string(), 0),
    ]);
    a.send_frame(confab_client::with_ref(
        build::sync(&rooms),
        Some(serde_json::json!("s1")),
    ))
    .await
    .expect("sync");
    let (events, synced, reference) = until_synced(&mut a).await;
    assert_eq!(reference, Some(serde_json::json!("s1")));
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5, 6],
        "the missed events, oldest first"
    );
    assert_eq!(events[0].body.as_deref(), Some("m0"));
    assert_eq!(
        synced.get(&p.room.id),
        Some(&SyncedRoom::Done {
            last_seq: 6,
            complete: true
        })
    );
    for id in [&not_mine.id, &hidden.id, &"r_nope".to_string()] {
        assert_eq!(
            synced.get(id),
            Some(&SyncedRoom::Failed {
                error: ErrorCode::NotFound
            }),
            "room {id}"
        );
    }
    // Live events follow, each once.
    p.bob
        .publish(&p.room.id, "live", "live")
        .await
        .expect("publish");
    assert_eq!(next_msg(&mut a).await.seq, 7);
    no_msg(&mut a).await;
    app.stop().await;
}

#[tokio::test]
async fn a_sync_naming_the_newest_seq_or_past_it_sends_nothing_but_synced() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    for since in [2u64, 1_000] {
        let rooms = BTreeMap::from([(p.room.id.clone(), since)]);
        let reply = a.request(build::sync(&rooms), WAIT).await.expect("sync");
        let ServerFrame::Synced { rooms, .. } = reply else {
            panic!("expected synced, got {reply:?}")
        };
        assert_eq!(
            rooms.get(&p.room.id),
            Some(&SyncedRoom::Done {
                last_seq: 2,
                complete: true
            })
        );
        no_msg(&mut a).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn live_events_around_a_sync_request_still_arrive_exactly_once_in_order() {
    let app = spawn_roomy().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    for i in 0..20 {
        b.send(&p.room.id, &format!("c{i}"), "x", None)
            .await
            .expect("send");
        if i == 10 {
            a.sync(&BTreeMap::from([(p.room.id.clone(), 0)]), None)
                .await
                .expect("sync");
        }
    }
    let mut seqs = Vec::new();
    let mut synced = false;
    while seqs.len() < 22 || !synced {
        match next(&mut a).await {
            ServerFrame::Msg(e) => seqs.push(e.seq),
            ServerFrame::Synced { .. } => synced = true,
            _ => {}
        }
    }
    // A sync from 0 resends what was never sent on this connection (1, 2) and nothing twice.
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (1..=22).collect::<Vec<_>>(), "{seqs:?}");
    assert_eq!(seqs.len(), 22, "no repeats: {seqs:?}");
    let live: Vec<u64> = seqs.iter().copied().filter(|&s| s > 2).collect();
    assert!(live.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_history_request_answers_the_same_page_as_the_http_call() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    for i in 0..8 {
        p.ada
            .publish(&p.room.id, &format!("c{i}"), &format!("m{i}"))
            .await
            .expect("publish"); // seqs 3..=10
    }
    let (mut a, _) = app.ws(&p.ada).await;
    acked(&mut a, build::delete(&p.room.id, 4)).await;
    let queries = [
        (None, None, None),
        (None, None, Some(3)),
        (Some(5), None, None),
        (Some(5), None, Some(2)),
        (None, Some(5), None),
        (None, Some(5), Some(2)),
        (None, Some(100), None),
        (Some(1), None, None),
        (None, None, Some(100)),
    ];
    for (before, after, limit) in queries {
        let reply = a
            .request(build::history(&p.room.id, before, after, limit), WAIT)
            .await
            .expect("history");
        let ServerFrame::History {
            room,
            events,
            has_more,
            reference,
        } = reply
        else {
            panic!("expected history, got {reply:?}")
        };
        assert!(reference.is_some());
        assert_eq!(room, p.room.id);
        let http = p
            .ada
            .messages(&p.room.id, before, after, limit)
            .await
            .expect("http history");
        assert_eq!(
            (&events, has_more),
            (&http.events, http.has_more),
            "before={before:?} after={after:?} limit={limit:?}"
        );
    }
    // Spot checks of the semantics themselves.
    let newest = a
        .request(build::history(&p.room.id, None, None, Some(2)), WAIT)
        .await
        .expect("history");
    let ServerFrame::History {
        events, has_more, ..
    } = newest
    else {
        unreachable!()
    };
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![11, 10]
    );
    assert!(has_more);
    let after = a
        .request(build::history(&p.room.id, None, Some(8), None), WAIT)
        .await
        .expect("history");
    let ServerFrame::History {
        events, has_more, ..
    } = after
    else {
        unreachable!()
    };
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![9, 10, 11]
    );
    assert!(!has_more);
    let deleted = a
        .request(build::history(&p.room.id, Some(5), None, Some(1)), WAIT)
        .await
        .expect("history");
    let ServerFrame::History { events, .. } = deleted else {
        unreachable!()
    };
    assert_eq!(
        (events[0].seq, events[0].deleted, events[0].body.as_deref()),
        (4, true, None)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_history_request_is_refused_as_the_http_call_is() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (carol, _) = app.user("carol").await;
    let private = room(&p.ada, "secret", Visibility::Private).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut c, _) = app.ws(&carol).await;
    for (before, after, limit) in [
        (Some(5), Some(1), None),
        (None, None, Some(0)),
        (None, None, Some(101)),
    ] {
        let (code, _) = refused(&mut a, build::history(&p.room.id, before, after, limit)).await;
        assert_eq!(
            code,
            ErrorCode::BadRequest,
            "{before:?} {after:?} {limit:?}"
        );
    }
    assert_eq!(
        refused(&mut c, build::history(&p.room.id, None, None, None))
            .await
            .0,
        ErrorCode::Forbidden
    );
    for id in [private.id.as_str(), "r_nope"] {
        assert_eq!(
            refused(&mut c, build::history(id, None, None, None))
                .await
                .0,
            ErrorCode::NotFound
        );
    }
    assert_open(&mut c).await;
    app.stop().await;
}
