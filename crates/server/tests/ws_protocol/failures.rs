//! The node's own troubles: draining (`reconnect`, then 1012, and 503 to new upgrades) and a
//! store that cannot commit (`unavailable`, nothing stored, the retry succeeds).

use std::process::Stdio;
use std::time::Duration;

use confab_client::protocol::{ErrorCode, ServerFrame};
use confab_client::{ClientError, ConnectOptions, WsClient, build};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::*;
use crate::util::*;

#[tokio::test]
async fn a_draining_node_sends_reconnect_refuses_new_upgrades_with_503_then_closes_1012() {
    let app = spawn_with(|c| {
        c.shutdown_grace_ms = 2_000;
        c.reconnect_max_ms = 500;
    })
    .await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let base = app.base.clone();
    let stopping = tokio::spawn(app.stop());
    for ws in [&mut a, &mut b] {
        match wait_for(ws, "reconnect", |f| {
            matches!(f, ServerFrame::Reconnect { .. })
        })
        .await
        {
            ServerFrame::Reconnect { after_ms } => assert!(after_ms <= 500, "{after_ms}"),
            _ => unreachable!(),
        }
    }
    // While draining, the node takes no new sessions.
    let token = p.ada.token().expect("token");
    match WsClient::open(&base, Some(token), &ConnectOptions::default()).await {
        Err(ClientError::UpgradeRefused { status, code, .. }) => {
            assert_eq!((status, code), (503, Some(ErrorCode::Unavailable)));
        }
        Err(e) => panic!("expected 503, got {e}"),
        Ok(_) => panic!("a draining node accepted a session"),
    }
    // Those who stay past the grace period are closed with 1012.
    for ws in [&mut a, &mut b] {
        let (_, code) = until_close(ws).await;
        assert_eq!(code, 1012);
    }
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("stops in time")
        .expect("stop task");
}

/// A `sqlite3` shell holding the database's write lock until it is told to let go.
struct WriteLock {
    child: tokio::process::Child,
}

impl WriteLock {
    /// `None` when no `sqlite3` program is installed.
    async fn take(db: &std::path::Path) -> Option<WriteLock> {
        let mut child = tokio::process::Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b".timeout 5000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
            .await
            .expect("write to sqlite3");
        stdin.flush().await.expect("flush");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("sqlite3 answers in time")
            .expect("read sqlite3");
        assert_eq!(line.as_deref(), Some("locked"));
        Some(WriteLock { child })
    }

    async fn release(mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"ROLLBACK;\n.quit\n")
            .await
            .expect("write to sqlite3");
        drop(self.child.stdin.take());
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("sqlite3 quits in time")
            .expect("sqlite3 exit");
    }
}

#[tokio::test]
async fn a_store_that_cannot_commit_answers_unavailable_stores_nothing_and_the_retry_succeeds() {
    let app = spawn_app().await;
    let p = pair(&app).await;
    let (mut a, _) = app.ws(&p.ada).await;
    let (mut b, _) = app.ws(&p.bob).await;
    let Some(lock) = WriteLock::take(&app.data_dir.join("confab.db")).await else {
        eprintln!("skipped: no `sqlite3` program to hold the store's write lock");
        return;
    };
    // The store waits out its busy timeout (5 s), then gives up on the write.
    let (code, message) = refused(&mut a, build::send(&p.room.id, "c1", "hello")).await;
    assert_eq!(code, ErrorCode::Unavailable, "{message}");
    assert!(
        !message.to_lowercase().contains("sqlite"),
        "no internals: {message}"
    );
    assert_open(&mut a).await;
    lock.release().await;
    no_msg(&mut b).await;
    // Nothing was stored: the retry with the same client_id is a first write.
    let ack = acked(&mut a, build::send(&p.room.id, "c1", "hello")).await;
    assert_eq!(ack.seq, 3);
    let e = next_msg(&mut b).await;
    assert_eq!((e.seq, e.client_id.as_deref()), (3, Some("c1")));
    app.stop().await;
}
