//! The node's life: restarts on the same data directory, and draining on shutdown.

use std::time::Duration;

use confab_client::build;
use confab_client::protocol::{CloseCode, ServerFrame, Visibility};

use crate::helpers::*;

#[tokio::test]
async fn acked_events_survive_a_graceful_restart_and_seqs_continue() {
    let dir = tempfile::tempdir().expect("dir");
    let app = spawn_in(dir.path(), |_| {}).await;
    let (ada, _) = app.user("ada").await;
    let r = room(&ada, "general", Visibility::Public).await;
    let (mut ws, _) = app.ws(&ada).await;
    let mut acked = Vec::new();
    for i in 0..10 {
        let reply = ws
            .request(build::send(&r.id, &format!("c{i}"), &format!("m{i}")), WAIT)
            .await
            .expect("reply");
        let ServerFrame::Ack { seq, .. } = reply else {
            panic!("{reply:?}")
        };
        acked.push(seq);
    }
    let token = ada.token().expect("token").to_owned();
    app.stop().await;

    let app = spawn_in(dir.path(), |_| {}).await;
    let ada = app.http().with_token(&token);
    let page = ada
        .messages(&r.id, None, Some(0), Some(100))
        .await
        .expect("history after restart");
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=11).collect::<Vec<_>>(),
        "the join and every acked message, no gap"
    );
    for seq in acked {
        assert!(seqs.contains(&seq));
    }
    let (_, published) = ada
        .publish(&r.id, "after", "after restart")
        .await
        .expect("publish");
    assert_eq!(published.seq, 12);
    app.stop().await;
}

#[tokio::test]
async fn draining_tells_sessions_to_reconnect_answers_not_ready_then_closes_with_1012() {
    let mut app = spawn_with(|c| {
        c.shutdown_grace_ms = 1500;
        c.reconnect_max_ms = 300;
    })
    .await;
    let (ada, _) = app.user("ada").await;
    let (mut ws, _) = app.ws(&ada).await;
    let http = app.http();
    app.signal_stop();
    let f = wait_for(&mut ws, "reconnect", |f| {
        matches!(f, ServerFrame::Reconnect { .. })
    })
    .await;
    let ServerFrame::Reconnect { after_ms } = f else {
        unreachable!()
    };
    assert!(after_ms <= 300);
    assert_eq!(
        http.readyz().await.expect("readyz answers while draining"),
        503
    );
    let (code, _) = ws
        .next_close(Duration::from_secs(5))
        .await
        .expect("closed after the grace period");
    assert_eq!(code, CloseCode::RESTART);
    app.stop().await;
}
