//! The delivery guarantee: every subscribed session gets each event once, in seq order, with
//! no gap — under concurrency, across `sync`, and for the sender's own sessions.

use std::collections::BTreeMap;
use std::time::Duration;

use confab_client::protocol::frames::SyncedRoom;
use confab_client::protocol::{EventKind, ServerFrame, Visibility};
use confab_client::{ConnectAuth, SessionTracker, WsClient, build};

use crate::helpers::*;

#[tokio::test]
async fn a_sent_message_is_acked_and_delivered_to_every_member_including_the_sender() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let (bob, _) = app.user("bob").await;
    let r = room(&ada, "general", Visibility::Public).await;
    bob.join(&r.id).await.expect("join");
    let (mut a, ready) = app.ws(&ada).await;
    let (mut b, _) = app.ws(&bob).await;
    assert_eq!(
        ready
            .rooms
            .iter()
            .find(|x| x.id == r.id)
            .map(|x| x.last_seq),
        Some(2)
    );
    let ack = a
        .request(build::send(&r.id, "c1", "hello"), WAIT)
        .await
        .expect("reply");
    let ServerFrame::Ack { seq, client_id, .. } = ack else {
        panic!("expected ack, got {ack:?}")
    };
    assert_eq!((seq, client_id.as_deref()), (3, Some("c1")));
    for ws in [&mut a, &mut b] {
        let e = next_msg(ws).await;
        assert_eq!(
            (e.seq, e.kind, e.body.as_deref(), e.from.name.as_str()),
            (3, EventKind::Text, Some("hello"), "ada")
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn many_clients_sending_at_once_are_seen_by_every_receiver_once_in_order() {
    const SENDERS: usize = 8;
    const EACH: usize = 16;
    let app = spawn_with(|c| {
        c.rate_per_s = 1000;
        c.burst = 1000;
    })
    .await;
    let (owner, _) = app.user("owner").await;
    let rooms = [
        room(&owner, "one", Visibility::Public).await,
        room(&owner, "two", Visibility::Public).await,
    ];
    let mut users = Vec::new();
    for i in 0..SENDERS {
        let (http, _) = app.user(&format!("user{i}")).await;
        for r in &rooms {
            http.join(&r.id).await.expect("join");
        }
        users.push(http);
    }
    // Receivers connect before anyone sends, and check every seq as it arrives.
    let mut receivers = Vec::new();
    for http in users.iter().take(4) {
        let (ws, ready) = app.ws(http).await;
        receivers.push((ws, SessionTracker::from_ready(&ready)));
    }
    let mut tasks = Vec::new();
    for (i, http) in users.iter().enumerate() {
        let (mut ws, _) = app.ws(http).await;
        let rooms = rooms.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                let r = &rooms[n % 2];
                let reply = ws
                    .request(
                        build::send(&r.id, &format!("s{i}-{n}"), &format!("m {i} {n}")),
                        WAIT,
                    )
                    .await
                    .expect("reply");
                assert!(matches!(reply, ServerFrame::Ack { .. }), "{reply:?}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let total_msgs = SENDERS * EACH;
    for (ws, tracker) in &mut receivers {
        let mut texts = 0;
        while texts < total_msgs {
            let e = next_msg(ws).await;
            tracker.observe(&e).expect("in order, no gap, no repeat");
            if e.kind == EventKind::Text {
                texts += 1;
            }
        }
        assert_eq!(tracker.violations(), 0);
    }
    // History agrees: seqs 1..=last contiguous in both rooms.
    for r in &rooms {
        let mut seqs = Vec::new();
        let mut after = 0;
        loop {
            let page = owner
                .messages(&r.id, None, Some(after), Some(100))
                .await
                .expect("history");
            seqs.extend(page.events.iter().map(|e| e.seq));
            after = seqs.last().copied().unwrap_or(0);
            if !page.has_more {
                break;
            }
        }
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        assert_eq!(seqs.len(), 1 + SENDERS + SENDERS * EACH / 2);
    }
    app.stop().await;
}

#[tokio::test]
async fn auth_with_sync_replays_exactly_what_was_missed_then_goes_live() {
    let app = spawn_app().await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    for i in 0..5 {
        ada.publish(&r.id, &format!("c{i}"), &format!("m{i}"))
            .await
            .expect("publish");
    }
    // The client last saw seq 3 (of 6).
    let token = ada.token().expect("token").to_owned();
    let sync = BTreeMap::from([(r.id.clone(), 3u64)]);
    let (mut ws, ready) = WsClient::connect(
        &app.base,
        ConnectAuth::Frame {
            token,
            sync: Some(sync),
        },
    )
    .await
    .expect("connect");
    assert_eq!(ready.rooms[0].last_seq, 6);
    let seqs: Vec<u64> = [
        next_msg(&mut ws).await.seq,
        next_msg(&mut ws).await.seq,
        next_msg(&mut ws).await.seq,
    ]
    .into();
    assert_eq!(seqs, vec![4, 5, 6]);
    let synced = wait_for(&mut ws, "synced", |f| {
        matches!(f, ServerFrame::Synced { .. })
    })
    .await;
    let ServerFrame::Synced { rooms, .. } = synced else {
        unreachable!()
    };
    assert_eq!(
        rooms.get(&r.id),
        Some(&SyncedRoom::Done {
            last_seq: 6,
            complete: true
        })
    );
    ada.publish(&r.id, "live", "live").await.expect("publish");
    assert_eq!(next_msg(&mut ws).await.seq, 7);
    assert!(
        quiet(&mut ws, Duration::from_millis(200))
            .await
            .iter()
            .all(|f| !matches!(f, ServerFrame::Msg(_)))
    );
    app.stop().await;
}

#[tokio::test]
async fn sync_caps_at_500_a_room_and_says_it_is_incomplete() {
    let app = spawn_with(|c| {
        c.rate_per_s = 100_000;
        c.burst = 100_000;
    })
    .await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "big", Visibility::Public).await;
    let (mut ws, _) = app.ws(&ada).await;
    for i in 0..510 {
        ws.send_frame(build::send(&r.id, &format!("c{i}"), "x"))
            .await
            .expect("send");
    }
    let mut acks = 0;
    while acks < 510 {
        if let ServerFrame::Ack { .. } = next(&mut ws).await {
            acks += 1;
        }
    }
    let (mut late, _) = WsClient::connect(
        &app.base,
        ConnectAuth::Frame {
            token: ada.token().expect("t").into(),
            sync: Some(BTreeMap::from([(r.id.clone(), 0)])),
        },
    )
    .await
    .expect("connect");
    let mut got = Vec::new();
    let synced = loop {
        match next(&mut late).await {
            ServerFrame::Msg(e) => got.push(e.seq),
            f @ ServerFrame::Synced { .. } => break f,
            _ => {}
        }
    };
    assert_eq!(got, (1..=500).collect::<Vec<_>>());
    let ServerFrame::Synced { rooms, .. } = synced else {
        unreachable!()
    };
    assert_eq!(
        rooms.get(&r.id),
        Some(&SyncedRoom::Done {
            last_seq: 511,
            complete: false
        })
    );
    app.stop().await;
}
