//! `spawn_app()` and the small conveniences every test uses. Every wait has a timeout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use confab_client::protocol::{Event, Room, ServerFrame, UserRef, Visibility};
use confab_client::{ConnectAuth, HttpClient, Ready, WsClient};
use confab_server::{App, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running node and the directory it keeps its data in.
pub struct TestApp {
    pub base: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A node on defaults, in a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// A node with changed settings, in a fresh data directory.
pub async fn spawn_with(change: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut app = spawn_in(dir.path(), change).await;
    app._dir = Some(dir);
    app
}

/// A node on the data directory `dir` (which outlives it).
pub async fn spawn_in(dir: &Path, change: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        shutdown_grace_ms: 200,
        log: "warn".into(),
        ..Config::default()
    };
    change(&mut config);
    let app = App::build(config).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let t = TestApp {
        base,
        data_dir: dir.to_owned(),
        _dir: None,
        stop: Some(stop),
        handle: Some(handle),
    };
    for _ in 0..200 {
        if t.http().readyz().await.ok() == Some(200) {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("node did not become ready");
}

impl TestApp {
    /// An anonymous HTTP client.
    pub fn http(&self) -> HttpClient {
        HttpClient::new(&self.base)
    }

    /// Registers `name` and logs in: an authenticated client and the user.
    pub async fn user(&self, name: &str) -> (HttpClient, UserRef) {
        let http = self.http();
        http.register(name, "password123").await.expect("register");
        let session = http.login(name, "password123").await.expect("login");
        (http.with_token(&session.token), session.user)
    }

    /// A WebSocket session authenticated by header.
    pub async fn ws(&self, http: &HttpClient) -> (WsClient, Ready) {
        let token = http.token().expect("client has a token").to_owned();
        WsClient::connect(&self.base, ConnectAuth::Bearer(token))
            .await
            .expect("ws connects")
    }

    /// Starts draining, as SIGTERM does, without waiting.
    pub fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Drains gracefully and waits for the node to stop.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(15), handle)
                .await
                .expect("stops in time")
                .expect("task")
                .expect("stops cleanly");
        }
    }
}

/// Creates a room and returns it.
pub async fn room(http: &HttpClient, name: &str, visibility: Visibility) -> Room {
    http.create_room(name, visibility)
        .await
        .expect("create room")
}

/// The next frame, failing the test after `WAIT`.
pub async fn next(ws: &mut WsClient) -> ServerFrame {
    ws.next_frame(WAIT).await.expect("a frame in time")
}

/// The next `msg` event, skipping other frames (typing, presence, read, …).
pub async fn next_msg(ws: &mut WsClient) -> Event {
    loop {
        if let ServerFrame::Msg(e) = next(ws).await {
            return e;
        }
    }
}

/// Waits for a frame matching `pred`, skipping others.
pub async fn wait_for(
    ws: &mut WsClient,
    what: &str,
    mut pred: impl FnMut(&ServerFrame) -> bool,
) -> ServerFrame {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.next_frame(left).await {
            Ok(f) if pred(&f) => return f,
            Ok(_) => continue,
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    }
}

/// Nothing but the frames `allowed` arrives within `d`.
pub async fn quiet(ws: &mut WsClient, d: Duration) -> Vec<ServerFrame> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return got;
        }
        match ws.next_frame(left).await {
            Ok(f) => got.push(f),
            Err(_) => return got,
        }
    }
}
