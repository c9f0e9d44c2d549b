//! The server under test: one started by the bench (confab, the floor, or the Socket.IO peer),
//! or one already running at `--target`. The bench needs its address, its process id (for CPU
//! and memory), and for the storm a way to drain or kill it and start it again.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use tokio::process::{Child, Command};

use crate::procstat;

/// A server the bench talks to.
#[async_trait]
pub trait Node: Send + Sync {
    /// `http://host:port`.
    fn base_url(&self) -> String;
    /// The server's process id, when it is known and visible.
    fn pid(&self) -> Option<u32>;
    /// What it is, for reports.
    fn label(&self) -> String;
    /// Drains (`kill = false`: SIGTERM, which tells sessions to reconnect) or kills (SIGKILL)
    /// the node, then starts it again on the same address with the same data.
    async fn restart(&mut self, kill: bool) -> anyhow::Result<()>;
    /// Stops the node if the bench started it.
    async fn stop(&mut self);
    /// Whether `restart` keeps the server's data (users, tokens, rooms).
    fn restartable(&self) -> bool {
        false
    }
    /// Every node's `http://host:port`: one, or a cluster's nodes.
    fn base_urls(&self) -> Vec<String> {
        vec![self.base_url()]
    }
    /// The process ids of every node that are known (CPU and memory are summed over them).
    fn pids(&self) -> Vec<u32> {
        self.pid().into_iter().collect()
    }
}

/// A server someone else runs.
pub struct External {
    pub url: String,
    pub pid: Option<u32>,
}

impl External {
    /// A server at `url`; its pid is `pid` or else the process listening on its port.
    pub fn new(url: &str, pid: Option<u32>) -> External {
        let url = url.trim_end_matches('/').to_string();
        let pid = pid.or_else(|| {
            let port = url.rsplit(':').next()?.parse().ok()?;
            procstat::pid_listening_on(port)
        });
        External { url, pid }
    }
}

#[async_trait]
impl Node for External {
    fn base_url(&self) -> String {
        self.url.clone()
    }
    fn pid(&self) -> Option<u32> {
        self.pid
    }
    fn label(&self) -> String {
        format!("external {}", self.url)
    }
    async fn restart(&mut self, _kill: bool) -> anyhow::Result<()> {
        anyhow::bail!("the bench cannot restart a server it did not start (use --storm drop)")
    }
    async fn stop(&mut self) {}
}

/// A server process the bench started and owns.
pub struct Spawned {
    label: String,
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    port: u16,
    child: Option<Child>,
    /// The data directory (confab only): restarts keep the data.
    dir: Option<tempfile::TempDir>,
}

/// A free TCP port on 127.0.0.1 (bound and released; a race is possible but rare).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Spawned {
    /// `confab serve` from `bin` (default: this executable) with a fresh data directory and
    /// limits opened up for load (rate, burst and flood limits; each only if not set already).
    pub async fn confab(
        bin: Option<PathBuf>,
        extra_env: &[(String, String)],
    ) -> anyhow::Result<Spawned> {
        let program = match bin {
            Some(b) => b,
            None => std::env::current_exe()?,
        };
        let dir = tempfile::Builder::new().prefix("confab-bench-").tempdir()?;
        let port = free_port()?;
        let mut envs: Vec<(String, String)> = Vec::new();
        for (k, v) in [
            ("CONFAB_RATE_PER_S", "1000000"),
            ("CONFAB_BURST", "1000000"),
            ("CONFAB_FLOOD_COUNT", "1000000"),
            ("CONFAB_LOG", "warn"),
        ] {
            if std::env::var_os(k).is_none() {
                envs.push((k.into(), v.into()));
            }
        }
        envs.extend(extra_env.iter().cloned());
        let args = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            dir.path().display().to_string(),
        ];
        Self::start("confab".into(), program, args, envs, port, Some(dir)).await
    }

    /// The same node under another name in reports (`confab (postgres)`).
    pub fn labelled(mut self, label: String) -> Spawned {
        self.label = label;
        self
    }

    /// The floor (`confab-floor`), found beside this executable unless `bin` is given.
    pub async fn floor(bin: Option<PathBuf>) -> anyhow::Result<Spawned> {
        let program = match bin {
            Some(b) => b,
            None => sibling("confab-floor")?,
        };
        let port = free_port()?;
        let args = vec!["--listen".into(), format!("127.0.0.1:{port}")];
        Self::start("floor".into(), program, args, Vec::new(), port, None).await
    }

    /// The Socket.IO peer: `node server.js` in `dir` (default benches/peers/socketio).
    pub async fn socketio(dir: Option<PathBuf>) -> anyhow::Result<Spawned> {
        let dir = dir.unwrap_or_else(socketio_dir);
        let script = dir.join("server.js");
        anyhow::ensure!(
            dir.join("node_modules").join("socket.io").exists(),
            "{} has no node_modules/socket.io: run `npm ci` there",
            dir.display()
        );
        let port = free_port()?;
        let envs = vec![
            ("PORT".to_string(), port.to_string()),
            ("HOST".to_string(), "127.0.0.1".to_string()),
        ];
        let args = vec![script.display().to_string()];
        Self::start("socketio".into(), "node".into(), args, envs, port, None).await
    }

    async fn start(
        label: String,
        program: PathBuf,
        args: Vec<String>,
        envs: Vec<(String, String)>,
        port: u16,
        dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Spawned> {
        let mut node = Spawned {
            label,
            program,
            args,
            envs,
            port,
            child: None,
            dir,
        };
        node.launch().await?;
        Ok(node)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.program.display()))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                anyhow::bail!("{} exited at start: {status}", self.label);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "{} did not listen on port {} within 30 s",
                self.label,
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn terminate(&mut self, wait: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(wait, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

#[async_trait]
impl Node for Spawned {
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
    fn label(&self) -> String {
        self.label.clone()
    }
    async fn restart(&mut self, kill: bool) -> anyhow::Result<()> {
        if kill {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill().await;
            }
        } else {
            self.terminate(Duration::from_secs(30)).await;
        }
        self.launch().await
    }
    async fn stop(&mut self) {
        self.terminate(Duration::from_secs(10)).await;
    }
    fn restartable(&self) -> bool {
        self.dir.is_some()
    }
}

/// A binary in the same directory as this executable (cargo puts workspace binaries together).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dirs = vec![];
    if let Some(d) = exe.parent() {
        dirs.push(d.to_path_buf());
        if let Some(up) = d.parent() {
            dirs.push(up.to_path_buf());
        }
    }
    for d in dirs {
        let p = d.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "cannot find {name} beside {}: build it (`cargo build -p confab-floor`) or pass its path",
        exe.display()
    )
}

/// benches/peers/socketio in this source tree.
pub fn socketio_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers/socketio")
}
