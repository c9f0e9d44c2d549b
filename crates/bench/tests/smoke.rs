//! The CI form of every scenario: tiny, fast, and asserting correctness only (every
//! connection up, zero loss, no seq violation, every send acknowledged) — never a speed.
//! confab and the floor run in this process; Socket.IO runs when node and its packages are
//! installed (otherwise the test says why it skipped).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use confab_bench::append::{self, AppendOpts};
use confab_bench::node::socketio_dir;
use confab_bench::{
    Cluster, Dialect, LoadOpts, Node, RunReport, Shape, Spawned, StormHow, scenarios,
};
use confab_server::{App, Config};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A confab node served by this process, restartable on the same port and data.
struct InProcess {
    config: Config,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    async fn start() -> InProcess {
        Self::start_with(|_| {}).await
    }

    async fn start_with(change: impl FnOnce(&mut Config)) -> InProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            data_dir: dir.path().to_path_buf(),
            rate_per_s: 1_000_000,
            burst: 1_000_000,
            flood_count: 1_000_000,
            shutdown_grace_ms: 1_000,
            reconnect_max_ms: 300,
            log: "warn".into(),
            ..Config::default()
        };
        change(&mut config);
        let mut node = InProcess {
            config,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stop: None,
            task: None,
            _dir: dir,
        };
        node.launch().await;
        node
    }

    async fn launch(&mut self) {
        let app = App::build(self.config.clone()).await.expect("node builds");
        self.addr = app.local_addr();
        self.config.listen = self.addr.to_string();
        let (tx, rx) = oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        })));
    }
}

#[async_trait]
impl Node for InProcess {
    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn pid(&self) -> Option<u32> {
        Some(std::process::id())
    }
    fn label(&self) -> String {
        "confab (in-process)".into()
    }
    async fn restart(&mut self, _kill: bool) -> anyhow::Result<()> {
        self.stop().await;
        self.launch().await;
        Ok(())
    }
    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
    fn restartable(&self) -> bool {
        true
    }
}

/// The floor, served by this process.
struct Floor {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Floor {
    async fn start() -> Floor {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, confab_floor::router()).await;
        });
        Floor { addr, task }
    }
}

#[async_trait]
impl Node for Floor {
    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn pid(&self) -> Option<u32> {
        Some(std::process::id())
    }
    fn label(&self) -> String {
        "floor (in-process)".into()
    }
    async fn restart(&mut self, _kill: bool) -> anyhow::Result<()> {
        anyhow::bail!("the floor keeps nothing across restarts")
    }
    async fn stop(&mut self) {
        self.task.abort();
    }
}

fn opts(dialect: Dialect) -> LoadOpts {
    LoadOpts {
        dialect,
        duration: Duration::from_secs(1),
        warmup: Duration::from_millis(200),
        size: 64,
        bind: Vec::new(),
        per_process: 10_000,
        connect_concurrency: 16,
        reconnect: dialect == Dialect::Confab,
        storm: None,
        finish_wait: Duration::from_secs(10),
        send: true,
        progress: false,
    }
}

const TINY: Shape = Shape {
    rooms: 2,
    members: 5,
    senders: 1,
    rate: 20.0,
};

fn assert_clean(r: &RunReport) {
    assert!(r.ok, "delivery checks failed:\n{}", r.text());
    assert_eq!(r.lost, 0, "{}", r.text());
    assert_eq!(r.duplicates, 0, "{}", r.text());
    assert_eq!(r.connected, r.conns as u64, "{}", r.text());
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .expect("the scenario finished in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_once_and_in_order() {
    let mut node = InProcess::start().await;
    let r = within(scenarios::run_shape(
        "fanout",
        &mut node,
        &TINY,
        &opts(Dialect::Confab),
        4,
    ))
    .await
    .expect("fanout runs");
    node.stop().await;
    assert_clean(&r);
    assert!(r.delivered > 0 && r.sent > 0, "{}", r.text());
    // Every member of a room receives every message of its room.
    assert_eq!(r.delivered, r.acked * TINY.members as u64, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_room_delivers_to_every_member() {
    let mut node = InProcess::start().await;
    let shape = Shape {
        rooms: 1,
        members: 20,
        senders: 2,
        rate: 10.0,
    };
    let r = within(scenarios::run_shape(
        "hot-room",
        &mut node,
        &shape,
        &opts(Dialect::Confab),
        4,
    ))
    .await
    .expect("hot-room runs");
    node.stop().await;
    assert_clean(&r);
    assert_eq!(r.delivered, r.acked * 20, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_stay_up_and_memory_is_measured() {
    let mut node = InProcess::start().await;
    let r = within(scenarios::idle(
        &mut node,
        10,
        50,
        &opts(Dialect::Confab),
        4,
    ))
    .await
    .expect("idle runs");
    node.stop().await;
    assert_clean(&r);
    assert_eq!(r.conns, 50);
    assert!(r.rss_connected.is_some(), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_opens_every_connection() {
    let mut node = InProcess::start().await;
    let r = within(scenarios::connect(
        &mut node,
        10,
        50,
        &opts(Dialect::Confab),
        4,
    ))
    .await
    .expect("connect runs");
    node.stop().await;
    assert_clean(&r);
    assert_eq!(r.connect.count, 50, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_loses_nothing_while_everyone_reconnects_and_syncs() {
    let mut node = InProcess::start().await;
    let mut o = opts(Dialect::Confab);
    o.duration = Duration::from_secs(4);
    let r = within(scenarios::storm(
        &mut node,
        &TINY,
        Duration::from_millis(500),
        StormHow::Drain,
        &o,
        4,
    ))
    .await
    .expect("storm runs");
    node.stop().await;
    assert_clean(&r);
    assert!(
        r.reconnects >= TINY.rooms as u64 * TINY.members as u64,
        "{}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_all_drop_at_once_resume_without_gaps() {
    let mut node = InProcess::start().await;
    let mut o = opts(Dialect::Confab);
    o.duration = Duration::from_secs(3);
    let r = within(scenarios::storm(
        &mut node,
        &TINY,
        Duration::from_millis(300),
        StormHow::Drop,
        &o,
        4,
    ))
    .await
    .expect("storm runs");
    node.stop().await;
    assert_clean(&r);
    assert!(r.reconnects > 0, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_spreads_connections_over_its_nodes_and_delivers_across_them() {
    let (Ok(store), Ok(bus)) = (
        std::env::var("CONFAB_TEST_POSTGRES_URL"),
        std::env::var("CONFAB_TEST_NATS_URL"),
    ) else {
        eprintln!(
            "skipped: needs CONFAB_TEST_POSTGRES_URL and CONFAB_TEST_NATS_URL (the nodes share a store and a bus)"
        );
        return;
    };
    let mut nodes: Vec<Box<dyn Node>> = Vec::new();
    for _ in 0..2 {
        let (store, bus) = (store.clone(), bus.clone());
        let node = InProcess::start_with(move |c| {
            c.store = store;
            c.bus = bus;
        })
        .await;
        nodes.push(Box::new(node));
    }
    let mut cluster = Cluster::of(nodes, "confab x2 (in-process)");
    assert_eq!(cluster.base_urls().len(), 2);
    // Round-robin puts each room's members on both nodes: every delivery to a member on the
    // other node than the sender's crossed the bus.
    let r = within(scenarios::run_shape(
        "fanout",
        &mut cluster,
        &TINY,
        &opts(Dialect::Confab),
        4,
    ))
    .await
    .expect("fanout over two nodes runs");
    cluster.stop().await;
    assert_clean(&r);
    assert_eq!(r.delivered, r.acked * TINY.members as u64, "{}", r.text());
    // The engines on this machine (PostgreSQL backends, the NATS server) are found and their
    // CPU is reported beside the nodes'.
    assert!(
        r.engine_processes >= 2 && r.engine_cpu_us_per_delivery.is_some(),
        "{}",
        r.text()
    );
    // So is the generator's own (this process; the nodes are processes of their own).
    assert!(r.generator_cpu_us_per_delivery.is_some(), "{}", r.text());
}

/// Runs `count` appends by `writers` over four rooms on `store` and checks that each one is
/// counted in its room's seq.
async fn appends_counted(store: Option<String>, writers: usize, count: u64) {
    let r = within(append::run(&AppendOpts {
        store,
        rooms: 4,
        writers,
        duration: Duration::from_secs(30),
        count: Some(count),
        size: 64,
        max_batch: 1024,
        progress: false,
    }))
    .await
    .expect("append runs");
    assert!(r.ok, "{}", r.text());
    assert_eq!(r.acked, count, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_all_counted_in_the_rooms_seqs() {
    appends_counted(None, 16, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_postgres_are_all_counted_in_the_rooms_seqs() {
    let Ok(store) = std::env::var("CONFAB_TEST_POSTGRES_URL") else {
        eprintln!("skipped: needs CONFAB_TEST_POSTGRES_URL");
        return;
    };
    // Enough writers over few rooms that batches hold several texts, most of them written
    // by the one-statement path once the writers know the rooms.
    appends_counted(Some(store), 32, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_passes_the_same_checks() {
    let mut node = Floor::start().await;
    let r = within(scenarios::run_shape(
        "fanout",
        &mut node,
        &TINY,
        &opts(Dialect::Confab),
        4,
    ))
    .await
    .expect("fanout on the floor runs");
    node.stop().await;
    assert_clean(&r);
    assert_eq!(r.delivered, r.acked * TINY.members as u64, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_passes_the_same_checks_when_node_is_installed() {
    let dir = socketio_dir();
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok || !dir.join("node_modules/socket.io").exists() {
        eprintln!(
            "skipped: needs node and `npm ci` in {} (the Socket.IO peer)",
            dir.display()
        );
        return;
    }
    let mut node = Spawned::socketio(None)
        .await
        .expect("socket.io peer starts");
    let r = within(scenarios::run_shape(
        "fanout",
        &mut node,
        &TINY,
        &opts(Dialect::Socketio),
        4,
    ))
    .await;
    node.stop().await;
    let r = r.expect("fanout on socket.io runs");
    assert_clean(&r);
    assert_eq!(r.delivered, r.acked * TINY.members as u64, "{}", r.text());
}
