//! The coordinator: splits the connections among workers, paces them through connect, warm-up,
//! steady phase (where the server's CPU time is measured), stop and finish, shows progress,
//! and merges what they recorded.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::node::Node;
use crate::procstat;
use crate::spec::{Cmd, ConnSpec, Dialect, Report, WorkerSpec};
use crate::stats::{Merged, Snapshot, WorkerResult};
use crate::user::now_ns;
use crate::worker::WorkerHandle;

/// How the server is disturbed during a storm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StormHow {
    /// SIGTERM the node (it tells every session to reconnect, then exits) and start it again.
    Drain,
    /// SIGKILL the node and start it again.
    Kill,
    /// Every client drops its connection at once and reconnects (works with any target).
    Drop,
}

/// Options of one load run.
#[derive(Debug, Clone)]
pub struct LoadOpts {
    pub dialect: Dialect,
    pub duration: Duration,
    pub warmup: Duration,
    pub size: usize,
    pub bind: Vec<IpAddr>,
    pub per_process: usize,
    pub connect_concurrency: usize,
    pub reconnect: bool,
    pub storm: Option<(Duration, StormHow)>,
    /// How long receivers get to reach the final seqs after sending stopped.
    pub finish_wait: Duration,
    /// Whether to send at all (idle and connect runs do not).
    pub send: bool,
    pub progress: bool,
}

/// What one load run measured.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub merged: Merged,
    pub conns: usize,
    pub connected: u64,
    pub connect_secs: f64,
    pub window_secs: f64,
    pub window: Snapshot,
    pub server_cpu_us: Option<u64>,
    /// CPU time of the server's engines on this machine (`engines::engines_of`) in the window.
    pub engine_cpu_us: Option<u64>,
    /// How many engine processes that is.
    pub engine_processes: usize,
    /// CPU time of the generator itself (this process and its worker processes) in the window.
    pub generator_cpu_us: Option<u64>,
    pub rss_before: Option<u64>,
    pub rss_connected: Option<u64>,
    pub rss_end: Option<u64>,
    pub unacked: u64,
    pub storm_recover_secs: Option<f64>,
    pub workers: usize,
}

struct Coordinator {
    workers: Vec<WorkerHandle>,
    last: Vec<Snapshot>,
    progress: Progress,
}

/// Runs `conns` against `node`.
pub async fn run_load(
    node: &mut dyn Node,
    conns: Vec<ConnSpec>,
    opts: &LoadOpts,
) -> anyhow::Result<LoadResult> {
    let n = conns.len();
    let pids = node.pids();
    let rss_before = procstat::rss_of(&pids);
    let per = opts.per_process.max(1);
    let chunks = n.div_ceil(per).max(1);
    let mut workers = Vec::new();
    let mut rest = conns;
    crate::cluster::spread_over(&mut rest, &node.base_urls());
    let run = format!("{:x}", rand::random::<u32>());
    for index in 0..chunks {
        let take = rest.len().div_ceil(chunks - index);
        let mine: Vec<ConnSpec> = rest.drain(..take).collect();
        let mut bind = opts.bind.clone();
        if !bind.is_empty() {
            let shift = (index * per) % bind.len();
            bind.rotate_left(shift);
        }
        let spec = WorkerSpec {
            index,
            run: run.clone(),
            base_url: node.base_url(),
            dialect: opts.dialect,
            bind,
            conns: mine,
            size: opts.size,
            connect_concurrency: opts.connect_concurrency.div_ceil(chunks),
            reconnect: opts.reconnect,
        };
        workers.push(if chunks == 1 {
            WorkerHandle::in_process(spec)
        } else {
            WorkerHandle::child_process(&spec).await?
        });
    }
    let mut c = Coordinator {
        last: vec![Snapshot::default(); workers.len()],
        workers,
        progress: Progress::new(opts.progress, pids.clone(), n),
    };
    let started = Instant::now();
    let connected = c
        .collect(
            "connecting",
            Duration::from_secs(120 + n as u64 / 50),
            |r| match r {
                Report::Connected {
                    ok,
                    failed,
                    first_error,
                } => Some((ok, failed, first_error)),
                _ => None,
            },
        )
        .await?;
    let connect_secs = started.elapsed().as_secs_f64();
    let ok: u64 = connected.iter().map(|c| c.0).sum();
    if ok == 0 {
        let err = connected.into_iter().find_map(|c| c.2).unwrap_or_default();
        anyhow::bail!("no connection could be opened: {err}");
    }
    c.pump("settling", Duration::from_millis(500)).await?;
    let rss_connected = procstat::rss_of(&pids);

    let mut window = Snapshot::default();
    let mut window_secs = 0.0;
    let mut server_cpu_us = None;
    let mut engine_cpu_us = None;
    let mut generator_cpu_us = None;
    let engines = crate::engines::engines_of(&pids);
    let generator: Vec<u32> = std::iter::once(std::process::id())
        .chain(c.workers.iter().filter_map(WorkerHandle::pid))
        .collect();
    let mut storm_recover_secs = None;
    if opts.send || opts.duration > Duration::ZERO {
        let t0 = now_ns() + 200_000_000;
        let record_from = t0 + opts.warmup.as_nanos() as u64;
        c.broadcast(Cmd::Go {
            t0_ns: t0,
            record_from_ns: record_from,
        })
        .await;
        c.pump(
            "warm-up",
            Duration::from_nanos(record_from - now_ns().min(record_from)),
        )
        .await?;
        let start = c.mark().await?;
        let cpu0 = procstat::sample_of(&pids);
        let engine_cpu0 = procstat::cpu_us_of(&engines);
        let generator_cpu0 = procstat::cpu_us_of(&generator);
        let w0 = Instant::now();
        match opts.storm {
            Some((at, how)) => {
                c.pump("steady", at.min(opts.duration)).await?;
                storm_recover_secs = Some(c.storm(node, how, ok).await?);
                let left = opts.duration.saturating_sub(w0.elapsed());
                c.pump("after storm", left).await?;
            }
            None => c.pump("steady", opts.duration).await?,
        }
        let end = c.mark().await?;
        window_secs = w0.elapsed().as_secs_f64();
        let same_pids = node.pids() == pids;
        if let (Some(a), Some(b), true) = (cpu0, procstat::sample_of(&pids), same_pids) {
            server_cpu_us = Some(b.cpu_us.saturating_sub(a.cpu_us));
            window_secs = (b.at - a.at).as_secs_f64();
        }
        engine_cpu_us = procstat::cpu_us_since(&engines, engine_cpu0);
        generator_cpu_us = procstat::cpu_us_since(&generator, generator_cpu0);
        window = diff(&end, &start);
    }
    c.broadcast(Cmd::StopSending).await;
    let stopped = c
        .collect("stopping", Duration::from_secs(30), |r| match r {
            Report::Stopped { max_acked, unacked } => Some((max_acked, unacked)),
            _ => None,
        })
        .await?;
    let mut finals: HashMap<String, u64> = HashMap::new();
    let mut unacked = 0;
    for (max, u) in stopped {
        unacked += u;
        for (room, seq) in max {
            let e = finals.entry(room).or_insert(0);
            *e = (*e).max(seq);
        }
    }
    let wait_ms = opts.finish_wait.as_millis() as u64;
    c.broadcast(Cmd::Finish { finals, wait_ms }).await;
    let results: Vec<WorkerResult> = c
        .collect(
            "finishing",
            Duration::from_millis(wait_ms) + Duration::from_secs(30),
            |r| match r {
                Report::Done(result) => Some(*result),
                _ => None,
            },
        )
        .await?;
    for w in &mut c.workers {
        w.reap(Duration::from_secs(5)).await;
    }
    c.progress.done();
    let rss_end = procstat::rss_of(&node.pids());
    Ok(LoadResult {
        merged: Merged::from_results(&results)?,
        conns: n,
        connected: ok,
        connect_secs,
        window_secs,
        window,
        server_cpu_us,
        engine_cpu_us,
        engine_processes: engines.len(),
        generator_cpu_us,
        rss_before,
        rss_connected,
        rss_end,
        unacked,
        storm_recover_secs,
        workers: c.workers.len(),
    })
}

fn diff(a: &Snapshot, b: &Snapshot) -> Snapshot {
    Snapshot {
        connected: a.connected,
        connect_failed: a.connect_failed - b.connect_failed.min(a.connect_failed),
        reconnects: a.reconnects.saturating_sub(b.reconnects),
        sent: a.sent.saturating_sub(b.sent),
        acked: a.acked.saturating_sub(b.acked),
        delivered: a.delivered.saturating_sub(b.delivered),
        lost: a.lost.saturating_sub(b.lost),
        duplicates: a.duplicates.saturating_sub(b.duplicates),
        errors: a.errors.saturating_sub(b.errors),
    }
}

impl Coordinator {
    async fn broadcast(&self, cmd: Cmd) {
        for w in &self.workers {
            let _ = w.tx.send(cmd.clone()).await;
        }
    }

    fn total(&self) -> Snapshot {
        self.last.iter().fold(Snapshot::default(), |a, b| a.add(b))
    }

    /// Takes what the workers reported, keeping progress; `pick` selects the awaited reports.
    fn drain<T>(
        &mut self,
        answers: &mut [Option<T>],
        pick: &mut impl FnMut(Report) -> Option<T>,
    ) -> anyhow::Result<()> {
        for (i, w) in self.workers.iter_mut().enumerate() {
            while let Ok(report) = w.rx.try_recv() {
                match report {
                    Report::Progress(s) => self.last[i] = s,
                    Report::Failed(e) => anyhow::bail!("worker {i} failed: {e}"),
                    other => {
                        if let Some(t) = pick(other) {
                            answers[i] = Some(t);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits until every worker sent the report `pick` accepts.
    async fn collect<T>(
        &mut self,
        phase: &str,
        timeout: Duration,
        mut pick: impl FnMut(Report) -> Option<T>,
    ) -> anyhow::Result<Vec<T>> {
        let deadline = Instant::now() + timeout;
        let mut answers: Vec<Option<T>> = (0..self.workers.len()).map(|_| None).collect();
        loop {
            self.drain(&mut answers, &mut pick)?;
            if answers.iter().all(Option::is_some) {
                return Ok(answers.into_iter().flatten().collect());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "workers did not finish {phase} in time"
            );
            let total = self.total();
            self.progress.show(phase, &total);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets time pass while showing progress.
    async fn pump(&mut self, phase: &str, dur: Duration) -> anyhow::Result<()> {
        let end = Instant::now() + dur;
        let mut none: Vec<Option<()>> = vec![None; self.workers.len()];
        while Instant::now() < end {
            self.drain(&mut none, &mut |_| None)?;
            let total = self.total();
            self.progress.show(phase, &total);
            tokio::time::sleep(Duration::from_millis(20).min(end - Instant::now().min(end))).await;
        }
        Ok(())
    }

    async fn mark(&mut self) -> anyhow::Result<Snapshot> {
        self.broadcast(Cmd::Mark).await;
        let marks = self
            .collect("marking", Duration::from_secs(10), |r| match r {
                Report::Mark(s) => Some(s),
                _ => None,
            })
            .await?;
        Ok(marks.iter().fold(Snapshot::default(), |a, b| a.add(b)))
    }

    /// Disturbs the server and returns how long until every connection was back.
    async fn storm(
        &mut self,
        node: &mut dyn Node,
        how: StormHow,
        want: u64,
    ) -> anyhow::Result<f64> {
        let t = Instant::now();
        self.progress.note(&format!("storm: {how:?}"));
        match how {
            StormHow::Drop => self.broadcast(Cmd::Drop { max_ms: 2000 }).await,
            StormHow::Drain | StormHow::Kill => {
                // Progress keeps flowing while the node restarts.
                let restart = node.restart(how == StormHow::Kill);
                tokio::pin!(restart);
                loop {
                    tokio::select! {
                        r = &mut restart => { r?; break; }
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {
                            let mut none: Vec<Option<()>> = vec![None; self.workers.len()];
                            self.drain(&mut none, &mut |_| None)?;
                            let total = self.total();
                            self.progress.show("storm", &total);
                        }
                    }
                }
            }
        }
        // A restarted node is a new process: follow its CPU from now on.
        self.progress.pids = node.pids();
        self.progress.last_cpu = procstat::cpu_us_of(&self.progress.pids);
        // Wait for the drop to show, then for everyone to be back.
        self.pump("storm", Duration::from_millis(600)).await?;
        let deadline = Instant::now() + Duration::from_secs(90);
        while self.total().connected < want && Instant::now() < deadline {
            self.pump("reconnecting", Duration::from_millis(100))
                .await?;
        }
        Ok(t.elapsed().as_secs_f64())
    }
}

/// The progress line on stderr (rewritten in place on a terminal), about once a second.
struct Progress {
    on: bool,
    tty: bool,
    pids: Vec<u32>,
    conns: usize,
    started: Instant,
    last_at: Instant,
    last: Snapshot,
    last_cpu: Option<u64>,
}

impl Progress {
    fn new(on: bool, pids: Vec<u32>, conns: usize) -> Self {
        Progress {
            on,
            tty: std::io::stderr().is_terminal(),
            last_cpu: procstat::cpu_us_of(&pids),
            pids,
            conns,
            started: Instant::now(),
            last_at: Instant::now(),
            last: Snapshot::default(),
        }
    }

    fn show(&mut self, phase: &str, s: &Snapshot) {
        let dt = self.last_at.elapsed().as_secs_f64();
        if !self.on || dt < 1.0 {
            return;
        }
        let cpu = procstat::cpu_us_of(&self.pids);
        let cpu_pct = match (cpu, self.last_cpu) {
            (Some(a), Some(b)) => format!("{:.0}%", a.saturating_sub(b) as f64 / dt / 1e4),
            _ => "?".into(),
        };
        let line = format!(
            "[{:6.1}s {:<12}] conns {}/{}  sent {:.0}/s  acked {:.0}/s  delivered {:.0}/s  lost {} dup {} err {}  server cpu {}",
            self.started.elapsed().as_secs_f64(),
            phase,
            s.connected,
            self.conns,
            (s.sent.saturating_sub(self.last.sent)) as f64 / dt,
            (s.acked.saturating_sub(self.last.acked)) as f64 / dt,
            (s.delivered.saturating_sub(self.last.delivered)) as f64 / dt,
            s.lost,
            s.duplicates,
            s.errors,
            cpu_pct,
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.last = *s;
        self.last_at = Instant::now();
        self.last_cpu = cpu;
    }

    fn note(&mut self, text: &str) {
        if self.on {
            if self.tty {
                eprintln!();
            }
            eprintln!("  {text}");
        }
    }

    fn done(&mut self) {
        if self.on && self.tty {
            eprintln!();
        }
    }
}
