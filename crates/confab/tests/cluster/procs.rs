//! The processes of a cluster test, each killed when its guard drops: NATS servers, a Redis,
//! confab nodes, HAProxy, fresh PostgreSQL databases, and a TCP proxy that can cut PostgreSQL off.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// A free loopback port (bound and released; good enough on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Whether something accepts connections on the port.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
        .is_ok()
}

/// Waits until the port accepts connections.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !listening(port) {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Guard(Option<Child>);

impl Guard {
    fn spawn(cmd: &mut Command) -> Guard {
        Guard(Some(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("process starts"),
        ))
    }

    /// Kills it now (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits up to `within` for it to exit; true if it exited 0.
    pub fn terminate(&mut self, within: Duration) -> bool {
        let Some(mut c) = self.0.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One nats-server, alone or in a cluster.
pub struct Nats {
    pub port: u16,
    cluster_port: u16,
    routes: Vec<u16>,
    proc: Guard,
}

impl Nats {
    /// A single server.
    pub fn single() -> Nats {
        let mut n = Nats {
            port: free_port(),
            cluster_port: 0,
            routes: Vec::new(),
            proc: Guard(None),
        };
        n.start();
        n
    }

    /// Three servers routed to each other.
    pub fn cluster() -> Vec<Nats> {
        let cports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut nodes: Vec<Nats> = (0..3)
            .map(|i| Nats {
                port: free_port(),
                cluster_port: cports[i],
                routes: cports.iter().copied().filter(|&p| p != cports[i]).collect(),
                proc: Guard(None),
            })
            .collect();
        for n in &mut nodes {
            n.start();
        }
        nodes
    }

    /// Starts (or restarts) the server on its port.
    pub fn start(&mut self) {
        let mut cmd = Command::new("/usr/sbin/nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        if self.cluster_port != 0 {
            let routes: Vec<String> = self
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args([
                "--cluster_name",
                "confab-test",
                "--cluster",
                &format!("nats://127.0.0.1:{}", self.cluster_port),
                "--routes",
                &routes.join(","),
            ]);
        }
        self.proc = Guard::spawn(&mut cmd);
        wait_listening(self.port, "nats-server");
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// A throwaway redis-server.
pub struct Redis {
    pub port: u16,
    proc: Guard,
}

impl Redis {
    /// Starts one on a free port.
    pub fn start() -> Redis {
        let mut r = Redis {
            port: free_port(),
            proc: Guard(None),
        };
        r.restart();
        r
    }

    /// Starts (or restarts, empty) the server on its port.
    pub fn restart(&mut self) {
        self.proc.kill();
        self.proc = Guard::spawn(Command::new("redis-server").args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]));
        wait_listening(self.port, "redis-server");
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Fresh databases on the test PostgreSQL server, dropped on drop.
pub struct Databases {
    admin: String,
    pub names: Vec<String>,
}

impl Databases {
    /// Creates `n` databases named after `prefix` on the server of `admin_url`.
    pub fn create(admin_url: &str, prefix: &str, n: usize) -> Databases {
        let tag: u32 = rand_u32();
        let names: Vec<String> = (0..n)
            .map(|i| format!("confab_{prefix}_{tag:x}_{i}"))
            .collect();
        for name in &names {
            psql(admin_url, &format!("CREATE DATABASE {name}"));
        }
        Databases {
            admin: admin_url.to_owned(),
            names,
        }
    }

    /// The URLs of the databases on host:port `addr` (a proxy, or the server itself).
    pub fn urls(&self, addr: &str) -> Vec<String> {
        self.names
            .iter()
            .map(|n| format!("postgres://postgres@{addr}/{n}"))
            .collect()
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for name in &self.names {
            psql(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

fn psql(url: &str, sql: &str) {
    let ok = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "psql {sql}");
}

fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones.
pub struct Cutter {
    pub port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<JoinSet<()>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Cutter {
    /// Proxies a free port to `upstream` (host:port).
    pub async fn start(upstream: &str) -> Cutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<JoinSet<()>>> = Arc::default();
        let (c, set, up) = (cut.clone(), conns.clone(), upstream.to_owned());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused in effect
                }
                let up = up.clone();
                set.lock().expect("lock").spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&up).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Cutter {
            port,
            cut,
            conns,
            accept,
        }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.conns.lock().expect("lock").abort_all();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.accept.abort();
        self.conns.lock().expect("lock").abort_all();
    }
}

/// A `confab serve` process on a fixed port (so it can restart behind the load balancer).
pub struct Node {
    pub port: u16,
    env: Vec<(String, String)>,
    dir: PathBuf,
    proc: Guard,
}

impl Node {
    /// Starts a node with these `CONFAB_*` settings.
    pub fn start(env: &[(&str, String)], dir: PathBuf) -> Node {
        let mut n = Node {
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            dir,
            proc: Guard(None),
        };
        n.restart();
        n
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--data-dir",
        ])
        .arg(&self.dir)
        .env_remove("RUST_LOG")
        .env("CONFAB_LOG", "warn");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.proc = Guard::spawn(&mut cmd);
        wait_listening(self.port, "confab");
    }

    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// SIGTERM; true if it drained and exited 0 within `within`.
    pub fn terminate(&mut self, within: Duration) -> bool {
        self.proc.terminate(within)
    }

    /// Its base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// HAProxy in front of the nodes, configured like deploy/haproxy.cfg with faster checks.
pub struct Haproxy {
    pub port: u16,
    _dir: tempfile::TempDir,
    _proc: Guard,
}

impl Haproxy {
    /// Starts HAProxy balancing over the nodes' ports.
    pub fn start(node_ports: &[u16]) -> Haproxy {
        let port = free_port();
        let template = include_str!("../../../../deploy/haproxy.cfg");
        let mut cfg = String::new();
        for line in template.lines() {
            let t = line.trim_start();
            if t.starts_with("server ")
                || t.starts_with("maxconn")
                || t.starts_with("hard-stop-after")
            {
                continue;
            }
            if t.starts_with("bind ") {
                cfg.push_str(&format!("    bind 127.0.0.1:{port}\n"));
            } else if t.starts_with("default-server ") {
                cfg.push_str("    default-server check inter 300ms fall 2 rise 1\n");
            } else {
                cfg.push_str(line);
                cfg.push('\n');
            }
        }
        for (i, p) in node_ports.iter().enumerate() {
            cfg.push_str(&format!("    server node{i} 127.0.0.1:{p}\n"));
        }
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write cfg");
        let proc = Guard::spawn(Command::new("haproxy").arg("-db").arg("-f").arg(&path));
        wait_listening(port, "haproxy");
        Haproxy {
            port,
            _dir: dir,
            _proc: proc,
        }
    }

    /// Its base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
