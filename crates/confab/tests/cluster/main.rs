//! The cluster suite: HAProxy, three `confab serve` processes, PostgreSQL with two shard
//! databases, NATS and Redis — all real, on this machine — and failures injected under load.
//!
//! It runs when CONFAB_TEST_POSTGRES_URL, CONFAB_TEST_NATS_URL and CONFAB_TEST_REDIS_URL are set
//! (`.ci/run` sets them); otherwise each test prints why it skipped. NATS and Redis are started
//! by the tests themselves on free ports (they kill and restart them); PostgreSQL is the
//! machine's server, reached through a proxy the tests can cut.

mod chatter;
mod procs;
mod scenarios;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chatter::{Chatter, Outcome};
use confab_client::HttpClient;
use confab_client::protocol::{Event, Visibility};
use procs::{Cutter, Databases, Haproxy, Nats, Node, Redis};

/// A running cluster; every process stops when it drops.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub lb: Haproxy,
    pub nats: Vec<Nats>,
    pub redis: Redis,
    pub cutter: Cutter,
    _dbs: Databases,
    _dir: tempfile::TempDir,
    /// (name, token) of each user; every user is a member of every room.
    pub users: Vec<(String, String)>,
    pub rooms: Vec<String>,
}

/// The admin URL of the test PostgreSQL, or None (with the reason printed) to skip.
fn enabled(test: &str) -> Option<String> {
    let missing: Vec<&str> = [
        "CONFAB_TEST_POSTGRES_URL",
        "CONFAB_TEST_NATS_URL",
        "CONFAB_TEST_REDIS_URL",
    ]
    .into_iter()
    .filter(|v| std::env::var(v).is_err())
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "skipped {test}: {} not set (the cluster suite needs real PostgreSQL, NATS and Redis)",
            missing.join(", ")
        );
        return None;
    }
    std::env::var("CONFAB_TEST_POSTGRES_URL").ok()
}

impl Cluster {
    /// Starts everything: `nats_servers` is 1 or 3 (a NATS cluster).
    pub async fn start(test: &str, nats_servers: usize) -> Option<Cluster> {
        let admin = enabled(test)?;
        let dbs = Databases::create(
            &admin,
            &test
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(12)
                .collect::<String>(),
            2,
        );
        let pg = admin
            .split('@')
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or("127.0.0.1:5432")
            .to_owned();
        let cutter = Cutter::start(&pg).await;
        let nats = if nats_servers == 1 {
            vec![Nats::single()]
        } else {
            Nats::cluster()
        };
        let redis = Redis::start();
        let dir = tempfile::tempdir().expect("dir");
        let env = [
            (
                "CONFAB_STORE",
                dbs.urls(&format!("127.0.0.1:{}", cutter.port)).join(","),
            ),
            (
                "CONFAB_BUS",
                nats.iter().map(Nats::url).collect::<Vec<_>>().join(","),
            ),
            ("CONFAB_CACHE", redis.url()),
            ("CONFAB_RATE_PER_S", "1000".into()),
            ("CONFAB_BURST", "1000".into()),
            ("CONFAB_SHUTDOWN_GRACE_MS", "1500".into()),
            ("CONFAB_RECONNECT_MAX_MS", "300".into()),
            ("CONFAB_REPAIR_INTERVAL_MS", "300".into()),
        ];
        let nodes: Vec<Node> = (0..3)
            .map(|i| Node::start(&env, dir.path().join(format!("node{i}"))))
            .collect();
        for n in &nodes {
            wait_ready(&n.base()).await;
        }
        let lb = Haproxy::start(&nodes.iter().map(|n| n.port).collect::<Vec<_>>());
        wait_ready(&lb.base()).await;
        let mut c = Cluster {
            nodes,
            lb,
            nats,
            redis,
            cutter,
            _dbs: dbs,
            _dir: dir,
            users: Vec::new(),
            rooms: Vec::new(),
        };
        c.setup(4, 2).await;
        Some(c)
    }

    async fn setup(&mut self, users: usize, rooms: usize) {
        let http = HttpClient::new(self.lb.base());
        for i in 0..users {
            let name = format!("user{i}");
            http.register(&name, "password123").await.expect("register");
            let token = http.login(&name, "password123").await.expect("login").token;
            self.users.push((name, token));
        }
        let owner = http.with_token(&self.users[0].1);
        for r in 0..rooms {
            let room = owner
                .create_room(&format!("room{r}"), Visibility::Public)
                .await
                .expect("room");
            for (_, token) in &self.users[1..] {
                http.with_token(token).join(&room.id).await.expect("join");
            }
            self.rooms.push(room.id);
        }
    }

    /// A chatter for user `i`, connecting to `base` (and to the load balancer if it is lost).
    pub fn chatter(&self, i: usize, base: &str) -> Chatter {
        let (name, token) = &self.users[i];
        Chatter {
            name: name.clone(),
            bases: vec![base.to_owned(), self.lb.base()],
            token: token.clone(),
            rooms: self.rooms.clone(),
        }
    }
}

async fn wait_ready(base: &str) {
    let http = HttpClient::new(base);
    for _ in 0..1000 {
        if http.readyz().await.ok() == Some(200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{base} not ready");
}

/// A room's whole history as one node serves it.
async fn history(base: &str, token: &str, room: &str) -> Vec<Event> {
    let http = HttpClient::new(base).with_token(token);
    let mut events = Vec::new();
    let mut after = 0;
    for _ in 0..10_000 {
        let page = http
            .messages(room, None, Some(after), Some(100))
            .await
            .expect("history");
        after = page.events.last().map_or(after, |e| e.seq);
        events.extend(page.events);
        if !page.has_more {
            break;
        }
    }
    events
}

/// The guarantees, checked after the chatters finished: nothing acked is lost, every room's
/// history is contiguous and the same on every live node, every message is stored once, and
/// every chatter saw every event of every room once, in order.
pub async fn check(cluster: &Cluster, live_nodes: &[usize], outcomes: &[Outcome]) {
    let token = &cluster.users[0].1;
    let mut histories = BTreeMap::new();
    for room in &cluster.rooms {
        let reference = history(&cluster.nodes[live_nodes[0]].base(), token, room).await;
        let seqs: Vec<u64> = reference.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "room {room}: seqs contiguous"
        );
        for &n in &live_nodes[1..] {
            assert_eq!(
                history(&cluster.nodes[n].base(), token, room).await,
                reference,
                "room {room}: node {n} serves the same history"
            );
        }
        let cids: Vec<&String> = reference
            .iter()
            .filter_map(|e| e.client_id.as_ref())
            .collect();
        assert_eq!(
            cids.len(),
            cids.iter().collect::<HashSet<_>>().len(),
            "room {room}: every message stored once"
        );
        histories.insert(room.clone(), reference);
    }
    for o in outcomes {
        eprintln!(
            "{}: {} acked, {} reconnects, {} unavailable",
            o.name,
            o.acked.len(),
            o.reconnects,
            o.unavailable
        );
        assert!(
            o.violations.is_empty(),
            "{}: {:?}",
            o.name,
            &o.violations[..o.violations.len().min(5)]
        );
        assert_eq!(o.unacked, 0, "{}: messages never acknowledged", o.name);
        assert!(!o.acked.is_empty(), "{}: sent nothing", o.name);
        for (room, seq, cid) in &o.acked {
            let stored = histories[room]
                .get((*seq - 1) as usize)
                .and_then(|e| e.client_id.as_ref());
            assert_eq!(
                stored,
                Some(cid),
                "{}: acked {room}/{seq} is in history",
                o.name
            );
        }
        for (room, h) in &histories {
            let seen = o.seen.get(room).cloned().unwrap_or_default();
            let first = seen.first().copied().unwrap_or(1);
            assert_eq!(
                seen,
                (first..=h.len() as u64).collect::<Vec<_>>(),
                "{}: saw all of {room} once, in order",
                o.name
            );
        }
    }
}
