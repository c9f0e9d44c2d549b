//! A worker: opens its share of the connections and runs them through the phases the
//! coordinator commands. The same code runs in the coordinator's process (over channels) or in
//! a child process (`confab bench worker`, JSON lines on stdin and stdout) when one process's
//! open-file limit cannot hold every connection.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::link::{self, Target};
use crate::spec::{Cmd, Report, WorkerSpec};
use crate::stats::{Kind, Stats};
use crate::user::{Phase, Shared, User};

/// Time allowed for one connection attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The coordinator's handle on a worker, wherever it runs.
pub struct WorkerHandle {
    pub tx: mpsc::Sender<Cmd>,
    pub rx: mpsc::Receiver<Report>,
    child: Option<Child>,
}

impl WorkerHandle {
    /// Runs a worker as a task of this process.
    pub fn in_process(spec: WorkerSpec) -> WorkerHandle {
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (rep_tx, rep_rx) = mpsc::channel(64);
        tokio::spawn(run(spec, cmd_rx, rep_tx));
        WorkerHandle {
            tx: cmd_tx,
            rx: rep_rx,
            child: None,
        }
    }

    /// The worker's process id, if it runs in a process of its own.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Runs a worker as `<this executable> bench worker`, fed the spec on its first stdin line.
    pub async fn child_process(spec: &WorkerSpec) -> anyhow::Result<WorkerHandle> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["bench", "worker"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<Cmd>(16);
        let (rep_tx, rep_rx) = mpsc::channel(64);
        let first = serde_json::to_string(spec)?;
        tokio::spawn(async move {
            let mut line = first;
            loop {
                line.push('\n');
                if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
                match cmd_rx.recv().await {
                    Some(cmd) => line = serde_json::to_string(&cmd).unwrap_or_default(),
                    None => break,
                }
            }
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let report = serde_json::from_str::<Report>(&line)
                    .unwrap_or_else(|e| Report::Failed(format!("bad report from worker: {e}")));
                if rep_tx.send(report).await.is_err() {
                    break;
                }
            }
            let _ = rep_tx
                .send(Report::Failed("worker process ended".into()))
                .await;
        });
        Ok(WorkerHandle {
            tx: cmd_tx,
            rx: rep_rx,
            child: Some(child),
        })
    }

    /// Waits for a child process to exit (killing it after `wait`).
    pub async fn reap(&mut self, wait: Duration) {
        if let Some(child) = self.child.as_mut()
            && tokio::time::timeout(wait, child.wait()).await.is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// The body of `confab bench worker`: a worker speaking JSON lines on stdin and stdout.
pub async fn process_main() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no worker spec on stdin"))?;
    let spec: WorkerSpec = serde_json::from_str(&first)?;
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (rep_tx, mut rep_rx) = mpsc::channel::<Report>(64);
    let worker = tokio::spawn(run(spec, cmd_rx, rep_tx));
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Cmd>(&line) {
                Ok(cmd) => {
                    if cmd_tx.send(cmd).await.is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("worker: bad command: {e}"),
            }
        }
    });
    let mut stdout = tokio::io::stdout();
    while let Some(report) = rep_rx.recv().await {
        let done = matches!(report, Report::Done(_) | Report::Failed(_));
        let mut line = serde_json::to_string(&report)?;
        line.push('\n');
        stdout.write_all(line.as_bytes()).await?;
        stdout.flush().await?;
        if done {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), worker).await;
    Ok(())
}

/// Runs one worker until it reports `Done` (or the coordinator goes away).
pub async fn run(spec: WorkerSpec, mut cmds: mpsc::Receiver<Cmd>, reports: mpsc::Sender<Report>) {
    let stats = Arc::new(Stats::default());
    let shared = Arc::new(Shared {
        target: Target {
            base_url: spec.base_url.clone(),
            dialect: spec.dialect,
            timeout: CONNECT_TIMEOUT,
        },
        stats: stats.clone(),
        run: spec.run.clone(),
        size: spec.size,
        reconnect: spec.reconnect,
        unacked: AtomicU64::new(0),
        unfinished: AtomicU64::new(0),
        max_acked: std::sync::Mutex::new(Default::default()),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let progress = {
        let stats = stats.clone();
        let reports = reports.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if reports
                    .send(Report::Progress(stats.snapshot()))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    };
    let users = Arc::new(Mutex::new(JoinSet::new()));
    let first_error = connect_all(&spec, &shared, &phase_rx, &users).await;
    let snap = stats.snapshot();
    let _ = reports
        .send(Report::Connected {
            ok: snap.connected,
            failed: spec.conns.len() as u64 - snap.connected.min(spec.conns.len() as u64),
            first_error,
        })
        .await;
    let mut storm = 0;
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            Cmd::Go {
                t0_ns,
                record_from_ns,
            } => {
                let _ = phase_tx.send(Phase::Running {
                    t0_ns,
                    record_from_ns,
                    storm,
                    storm_max_ms: 0,
                });
            }
            Cmd::Drop { max_ms } => {
                storm += 1;
                phase_tx.send_modify(|p| {
                    if let Phase::Running {
                        storm: s,
                        storm_max_ms,
                        ..
                    } = p
                    {
                        *s = storm;
                        *storm_max_ms = max_ms;
                    }
                });
            }
            Cmd::Mark => {
                let _ = reports.send(Report::Mark(stats.snapshot())).await;
            }
            Cmd::StopSending => {
                let _ = phase_tx.send(Phase::Stopping);
                let deadline = Instant::now() + Duration::from_secs(15);
                while shared.unacked.load(Relaxed) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let max_acked = shared
                    .max_acked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let unacked = shared.unacked.load(Relaxed);
                let _ = reports.send(Report::Stopped { max_acked, unacked }).await;
            }
            Cmd::Finish { finals, wait_ms } => {
                let deadline = Instant::now() + Duration::from_millis(wait_ms);
                let _ = phase_tx.send(Phase::Finish {
                    finals: Arc::new(finals),
                    deadline,
                });
                let hard = deadline + Duration::from_secs(2);
                while shared.unfinished.load(Relaxed) > 0 && Instant::now() < hard {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                break;
            }
        }
    }
    let _ = phase_tx.send(Phase::Close);
    let mut users = users.lock().await;
    let closing = async { while users.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), closing)
        .await
        .is_err()
    {
        stats.note("connections still open after 10 s at close");
        users.abort_all();
    }
    progress.abort();
    let _ = reports.send(Report::Done(Box::new(stats.result()))).await;
}

/// Opens every connection (at most `connect_concurrency` at once, each tried up to three
/// times) and starts its user; returns the first error seen.
async fn connect_all(
    spec: &WorkerSpec,
    shared: &Arc<Shared>,
    phase: &watch::Receiver<Phase>,
    users: &Arc<Mutex<JoinSet<()>>>,
) -> Option<String> {
    let sem = Arc::new(Semaphore::new(spec.connect_concurrency.max(1)));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut connecting = JoinSet::new();
    for (i, conn) in spec.conns.iter().cloned().enumerate() {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let bind = (!spec.bind.is_empty()).then(|| spec.bind[i % spec.bind.len()]);
        let shared = shared.clone();
        let phase = phase.clone();
        let users = users.clone();
        let first_error = first_error.clone();
        connecting.spawn(async move {
            let mut last = String::new();
            for attempt in 0..3u64 {
                let started = Instant::now();
                match link::open(&shared.target, &conn, bind, None).await {
                    Ok(opened) => {
                        drop(permit);
                        let us = started.elapsed().as_micros() as u64;
                        shared.stats.record(Kind::Connect, &[us]);
                        let user = User::new(shared.clone(), conn, bind, &opened);
                        users
                            .lock()
                            .await
                            .spawn(user.run(opened.tx, opened.rx, phase));
                        return;
                    }
                    Err(e) => {
                        shared.stats.note(format!("connect: {}", short(&e)));
                        last = e;
                        tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                    }
                }
            }
            shared.stats.connect_failed.fetch_add(1, Relaxed);
            shared.stats.errors.fetch_add(1, Relaxed);
            first_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get_or_insert(last);
        });
        // Reap finished connectors as we go so the set stays small.
        while connecting.try_join_next().is_some() {}
    }
    while connecting.join_next().await.is_some() {}
    first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

fn short(s: &str) -> String {
    s.chars().take(100).collect()
}
