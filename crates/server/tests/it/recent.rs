//! The cache's recent events in use: with Redis as the cache, `sync` and the first history
//! page are answered from it (shown by changing the cached copy behind the node's back), and a
//! delete leaves no erased body there. Skipped without `CONFAB_TEST_REDIS_URL`.

use std::collections::BTreeMap;

use confab_client::build;
use confab_client::protocol::frames::SyncedRoom;
use confab_client::protocol::{Event, ServerFrame, Visibility};

use crate::helpers::*;

fn redis_url() -> Option<String> {
    match std::env::var("CONFAB_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: recent events in Redis (CONFAB_TEST_REDIS_URL is not set)");
            None
        }
    }
}

/// Replaces the cached frame of `event` with one whose body is `body`.
async fn doctor(url: &str, event: &Event, body: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = format!("confab:recent:{{{}}}", event.room);
    let mut changed = event.clone();
    changed.body = Some(body.into());
    let frame = ServerFrame::Msg(changed).to_json();
    let () = redis::pipe()
        .atomic()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&key)
        .arg(event.seq)
        .arg(event.seq)
        .ignore()
        .cmd("ZADD")
        .arg(&key)
        .arg(event.seq)
        .arg(frame)
        .ignore()
        .query_async(&mut conn)
        .await
        .expect("redis write");
}

/// Sends `m0`, `m1`, `m2` and waits for their acks.
async fn send_three(ws: &mut confab_client::WsClient, room: &str) {
    for i in 0..3 {
        let reply = ws
            .request(build::send(room, &format!("c{i}"), &format!("m{i}")), WAIT)
            .await
            .expect("reply");
        assert!(matches!(reply, ServerFrame::Ack { .. }), "{reply:?}");
    }
}

#[tokio::test]
async fn with_redis_sync_and_the_first_history_page_are_read_from_the_cache() {
    let Some(url) = redis_url() else { return };
    let cache_url = url.clone();
    let app = spawn_with(move |c| c.cache = cache_url).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "cached", Visibility::Public).await;
    let (mut ws, _) = app.ws(&ada).await;
    send_three(&mut ws, &r.id).await;
    let page = ada
        .messages(&r.id, None, None, None)
        .await
        .expect("history");
    let newest = page.events[0].clone();
    assert_eq!(newest.body.as_deref(), Some("m2"));
    doctor(&url, &newest, "only in the cache").await;

    let page = ada
        .messages(&r.id, None, None, None)
        .await
        .expect("history");
    assert_eq!(page.events[0].body.as_deref(), Some("only in the cache"));
    // A new connection has sent nothing yet: its sync sends seqs 2 to 4.
    let (mut ws, _) = app.ws(&ada).await;
    let since = BTreeMap::from([(r.id.clone(), 1)]);
    let reply = ws.request(build::sync(&since), WAIT).await;
    let ServerFrame::Synced { rooms, .. } = reply.expect("sync answered") else {
        panic!("expected synced")
    };
    let done = rooms.get(&r.id);
    assert!(
        matches!(
            done,
            Some(SyncedRoom::Done {
                last_seq: 4,
                complete: true
            })
        ),
        "{done:?}"
    );
    // The events came before `synced`; the client kept them for `next_frame`.
    let mut synced = Vec::new();
    for _ in 0..3 {
        synced.push(next_msg(&mut ws).await.body.unwrap_or_default());
    }
    assert_eq!(synced, ["m0", "m1", "only in the cache"]);

    // A delete drops the room from the cache: the erased body is not served again.
    let reply = ws
        .request(build::delete(&r.id, newest.seq), WAIT)
        .await
        .expect("reply");
    assert!(matches!(reply, ServerFrame::Ack { .. }), "{reply:?}");
    let page = ada
        .messages(&r.id, None, None, None)
        .await
        .expect("history");
    let target = page.events.iter().find(|e| e.seq == newest.seq);
    assert!(
        target.is_some_and(|e| e.deleted && e.body.is_none()),
        "{target:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_the_cache_of_events_turned_off_everything_reads_the_store() {
    let app = spawn_with(|c| c.recent_events = 0).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "uncached", Visibility::Public).await;
    let (mut ws, _) = app.ws(&ada).await;
    send_three(&mut ws, &r.id).await;
    let page = ada
        .messages(&r.id, None, None, Some(2))
        .await
        .expect("history");
    let bodies: Vec<_> = page.events.iter().map(|e| e.body.clone()).collect();
    assert_eq!(bodies, [Some("m2".to_owned()), Some("m1".to_owned())]);
    assert!(page.has_more);
    app.stop().await;
}
