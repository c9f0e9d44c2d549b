//! The real binary, killed: `kill -9` under load loses no acknowledged event, and SIGTERM
//! drains and exits 0.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_client::protocol::{ServerFrame, Visibility};
use confab_client::{ConnectAuth, HttpClient, WsClient, build};

const WAIT: Duration = Duration::from_secs(10);

/// A `confab serve` process on a free port, and the base URL it printed.
fn start(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_confab"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("CONFAB_LOG", "info")
        .env("CONFAB_RATE_PER_S", "100000")
        .env("CONFAB_BURST", "100000")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("confab starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(addr) = line
            .split("listen=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
        {
            // Keep draining the log so the process never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, format!("http://{addr}"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("confab did not print its address");
}

async fn wait_ready(base: &str) {
    let http = HttpClient::new(base);
    for _ in 0..500 {
        if http.readyz().await.ok() == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acked_event() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut child, base) = start(dir.path());
    wait_ready(&base).await;
    let http = HttpClient::new(&base);
    http.register("ada", "password123").await.expect("register");
    let token = http.login("ada", "password123").await.expect("login").token;
    let ada = http.with_token(&token);
    let rooms = [
        ada.create_room("one", Visibility::Public)
            .await
            .expect("room"),
        ada.create_room("two", Visibility::Public)
            .await
            .expect("room"),
    ];

    // Four senders pipeline sends as fast as acks come back, recording every ack.
    let acked: Arc<Mutex<Vec<(String, u64, String)>>> = Arc::default();
    let mut senders = Vec::new();
    for s in 0..4 {
        let (mut ws, _) = WsClient::connect(&base, ConnectAuth::Bearer(token.clone()))
            .await
            .expect("ws");
        let room = rooms[s % 2].id.clone();
        let acked = acked.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..100_000 {
                let cid = format!("s{s}-{n}");
                if ws
                    .send_frame(build::send(&room, &cid, "payload"))
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    match ws.next_frame(WAIT).await {
                        Ok(ServerFrame::Ack {
                            room,
                            seq,
                            client_id,
                            ..
                        }) => {
                            acked.lock().expect("lock").push((
                                room,
                                seq,
                                client_id.unwrap_or_default(),
                            ));
                            break;
                        }
                        Ok(_) => continue,
                        Err(_) => return,
                    }
                }
            }
        }));
    }
    // Let the load run, then kill without warning.
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.lock().expect("lock").len() < 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    for s in senders {
        let _ = tokio::time::timeout(WAIT, s).await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 300, "load ran: {} acks", acked.len());

    let (mut child, base) = start(dir.path());
    wait_ready(&base).await;
    let ada = HttpClient::new(&base).with_token(&token);
    let mut stored: BTreeMap<(String, u64), String> = BTreeMap::new();
    for r in &rooms {
        let mut after = 0;
        loop {
            let page = ada
                .messages(&r.id, None, Some(after), Some(100))
                .await
                .expect("history");
            for e in &page.events {
                assert_eq!(e.seq, after + 1, "seqs contiguous after the crash");
                after = e.seq;
                stored.insert(
                    (r.id.clone(), e.seq),
                    e.client_id.clone().unwrap_or_default(),
                );
            }
            if !page.has_more {
                break;
            }
        }
        let (_, p) = ada
            .publish(&r.id, "after-crash", "x")
            .await
            .expect("publish after restart");
        assert_eq!(p.seq, after + 1, "seqs continue without a gap");
    }
    for (room, seq, cid) in &acked {
        assert_eq!(
            stored.get(&(room.clone(), *seq)),
            Some(cid),
            "acked event {room}/{seq} survived"
        );
    }
    // A retry after the crash gets the first answer, not a second message. The newest acks
    // were committed less than a second before the kill, before the writer merged their client
    // ids into the client-id table: the restart recovers them from the events.
    for (room, seq, cid) in acked.iter().rev().take(8) {
        let (status, p) = ada.publish(room, cid, "payload").await.expect("retry");
        assert_eq!(
            (status, p.seq),
            (200, *seq),
            "retry of {cid} is the original"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_drains_and_exits_0() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut child, base) = start(dir.path());
    wait_ready(&base).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(code) = child.try_wait().expect("wait") {
            assert!(code.success(), "exit status {code}");
            return;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
