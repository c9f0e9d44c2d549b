//! `confab bench`'s flags and the dispatch to scenarios.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::append::{self, AppendOpts};
use crate::cluster::{Cluster, Engines};
use crate::driver::{LoadOpts, StormHow};
use crate::node::{External, Node, Spawned};
use crate::report::RunReport;
use crate::scenarios::{self, Shape};
use crate::spec::Dialect;

/// `confab bench`: measure a server speaking PROTOCOL.md (or Socket.IO) under load.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The scenarios.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// R rooms × M members, S senders per room at a fixed rate each.
    Fanout {
        #[arg(long, default_value_t = 20)]
        rooms: usize,
        #[arg(long, default_value_t = 50)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
        /// Messages a second per sender.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[command(flatten)]
        common: Common,
    },
    /// One room with thousands of members.
    HotRoom {
        #[arg(long, default_value_t = 2000)]
        members: usize,
        #[arg(long, default_value_t = 4)]
        senders: usize,
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        #[command(flatten)]
        common: Common,
    },
    /// Hold N authenticated connections (for --duration); report server RSS per connection.
    Idle {
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        /// Users the connections are spread over (each in one room of ten).
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Connection setup rate: open N connections (upgrade, auth, `ready`).
    Connect {
        #[arg(long, default_value_t = 2000)]
        conns: usize,
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Under fan-out load, drain or kill the node (or drop every client); everyone reconnects
    /// with backoff + jitter and resumes with `sync`.
    Storm {
        #[arg(long, default_value_t = 10)]
        rooms: usize,
        #[arg(long, default_value_t = 50)]
        members: usize,
        #[arg(long, default_value_t = 1)]
        senders: usize,
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// How to disturb [default: drain for a server the bench starts, drop for --target].
        #[arg(long, value_enum)]
        how: Option<StormHow>,
        /// When, after the warm-up.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        at: Duration,
        #[command(flatten)]
        common: Common,
    },
    /// Store throughput alone: group-committed appends a second (no server, no network).
    Append {
        /// Store URL (`sqlite://PATH`, `postgres://...`) [default: SQLite in a temp dir].
        #[arg(long)]
        store: Option<String>,
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Concurrent writers (each waits for its append before the next).
        #[arg(long, default_value_t = 512)]
        writers: usize,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Stop after this many appends.
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, default_value_t = 100)]
        size: usize,
        #[arg(long, default_value_t = 1024)]
        max_batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Run scenarios on confab, the floor and Socket.IO; write the table and the plots.
    Compare(crate::compare::CompareArgs),
    /// (internal) a worker process: JSON lines on stdin and stdout.
    #[command(hide = true)]
    Worker,
}

/// Options every load scenario takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Server to measure (`http://host:port`, or a comma-separated list of a cluster's nodes);
    /// without it the bench starts one (--server).
    #[arg(long)]
    pub target: Option<String>,
    /// confab nodes to start (more than one needs a shared --store and --bus).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Store of the confab nodes the bench starts (`postgres://...`) [default: SQLite].
    #[arg(long)]
    pub store: Option<String>,
    /// Bus of the confab nodes the bench starts (`nats://...`, `redis://...`).
    #[arg(long)]
    pub bus: Option<String>,
    /// Cache of the confab nodes the bench starts (`redis://...`).
    #[arg(long)]
    pub cache: Option<String>,
    /// Which server to start when there is no --target.
    #[arg(long, value_enum, default_value = "confab")]
    pub server: ServerKind,
    /// The protocol --target speaks [default: socketio for --server socketio, else confab].
    #[arg(long, value_enum)]
    pub dialect: Option<Dialect>,
    /// The server's process id, for CPU and memory [default: whoever listens on its port].
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The steady (measured) phase.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Sending before the measured phase.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Local source addresses, round-robin: `127.0.0.1-127.0.0.8`, or `auto` (one address per
    /// 10,000 connections, from 127.0.0.1; the ephemeral ports give ~28,000 per address).
    #[arg(long, default_value = "auto")]
    pub bind: String,
    /// Most connections in one process; more start `confab bench worker` processes.
    #[arg(long, default_value_t = 15_000)]
    pub per_process: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// HTTP setup requests at once (registration hashes passwords: keep it near the cores).
    #[arg(long, default_value_t = 4)]
    pub setup_concurrency: usize,
    /// How long receivers may take to catch up after sending stops.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub finish_wait: Duration,
    /// `confab` binary to start [default: this executable].
    #[arg(long)]
    pub confab_bin: Option<PathBuf>,
    /// `confab-floor` binary [default: beside this executable].
    #[arg(long)]
    pub floor_bin: Option<PathBuf>,
    /// Directory of the Socket.IO peer [default: benches/peers/socketio of this source tree].
    #[arg(long)]
    pub socketio_dir: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// A server the bench can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    Confab,
    Floor,
    Socketio,
}

impl Common {
    /// The dialect of the server measured.
    pub fn dialect(&self) -> Dialect {
        self.dialect.unwrap_or(match self.server {
            ServerKind::Socketio if self.target.is_none() => Dialect::Socketio,
            _ => Dialect::Confab,
        })
    }

    /// The load options these flags give, for `conns` connections.
    pub fn load_opts(&self, conns: usize) -> anyhow::Result<LoadOpts> {
        Ok(LoadOpts {
            dialect: self.dialect(),
            duration: self.duration,
            warmup: self.warmup,
            size: self.size.max(24),
            bind: parse_bind(&self.bind, conns)?,
            per_process: self.per_process,
            connect_concurrency: self.connect_concurrency,
            reconnect: self.dialect() == Dialect::Confab,
            storm: None,
            finish_wait: self.finish_wait,
            send: true,
            progress: !self.quiet,
        })
    }

    /// The server to measure: --target, or one started now.
    pub async fn node(&self) -> anyhow::Result<Box<dyn Node>> {
        if let Some(url) = &self.target {
            let urls: Vec<&str> = url.split(',').map(str::trim).collect();
            if urls.len() > 1 {
                return Ok(Box::new(Cluster::external(&urls)));
            }
            return Ok(Box::new(External::new(url, self.server_pid)));
        }
        let engines = Engines {
            store: self.store.clone(),
            bus: self.bus.clone(),
            cache: self.cache.clone(),
        };
        if self.nodes > 1 {
            anyhow::ensure!(
                self.server == ServerKind::Confab,
                "--nodes starts confab nodes only"
            );
            let cluster = Cluster::confab(self.confab_bin.clone(), self.nodes, &engines).await?;
            return Ok(Box::new(cluster));
        }
        Ok(match self.server {
            ServerKind::Confab => {
                let node = Spawned::confab(self.confab_bin.clone(), &engines.env()).await?;
                match self.store.as_deref().and_then(|u| u.split_once("://")) {
                    Some((scheme, _)) => Box::new(node.labelled(format!("confab ({scheme})"))),
                    None => Box::new(node),
                }
            }
            ServerKind::Floor => Box::new(Spawned::floor(self.floor_bin.clone()).await?),
            ServerKind::Socketio => Box::new(Spawned::socketio(self.socketio_dir.clone()).await?),
        })
    }
}

/// `auto`, one address, or `FIRST-LAST` (IPv4, same /24).
pub fn parse_bind(spec: &str, conns: usize) -> anyhow::Result<Vec<IpAddr>> {
    let range = |a: Ipv4Addr, n: usize| -> Vec<IpAddr> {
        let [w, x, y, z] = a.octets();
        (0..n)
            .map(|i| IpAddr::V4(Ipv4Addr::new(w, x, y, z.saturating_add(i as u8))))
            .collect()
    };
    if spec == "auto" {
        let n = conns.div_ceil(10_000);
        return Ok(if n <= 1 {
            Vec::new()
        } else {
            range(Ipv4Addr::new(127, 0, 0, 1), n)
        });
    }
    match spec.split_once('-') {
        None => Ok(vec![spec.parse()?]),
        Some((a, b)) => {
            let (a, b): (Ipv4Addr, Ipv4Addr) = (a.parse()?, b.parse()?);
            anyhow::ensure!(
                a.octets()[..3] == b.octets()[..3] && a.octets()[3] <= b.octets()[3],
                "--bind range must stay within one /24 and go upwards"
            );
            Ok(range(a, (b.octets()[3] - a.octets()[3]) as usize + 1))
        }
    }
}

/// Runs one `confab bench` command.
pub async fn dispatch(command: BenchCommand) -> anyhow::Result<()> {
    let (report, json) = match command {
        BenchCommand::Worker => return crate::worker::process_main().await,
        BenchCommand::Compare(args) => return crate::compare::run(args).await,
        BenchCommand::Append {
            store,
            rooms,
            writers,
            duration,
            count,
            size,
            max_batch,
            json,
        } => {
            let opts = AppendOpts {
                store,
                rooms,
                writers,
                duration,
                count,
                size,
                max_batch,
                progress: !json,
            };
            (append::run(&opts).await?, json)
        }
        other => {
            let common = match &other {
                BenchCommand::Fanout { common, .. }
                | BenchCommand::HotRoom { common, .. }
                | BenchCommand::Idle { common, .. }
                | BenchCommand::Connect { common, .. }
                | BenchCommand::Storm { common, .. } => common.clone(),
                _ => unreachable!("handled above"),
            };
            let mut node = common.node().await?;
            let result = run_load_command(other, node.as_mut(), &common).await;
            node.stop().await;
            (result?, common.json)
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    anyhow::ensure!(report.ok, "the run broke a delivery check (see above)");
    Ok(())
}

async fn run_load_command(
    command: BenchCommand,
    node: &mut dyn Node,
    common: &Common,
) -> anyhow::Result<RunReport> {
    let setup = common.setup_concurrency;
    match command {
        BenchCommand::Fanout {
            rooms,
            members,
            senders,
            rate,
            ..
        } => {
            let shape = Shape {
                rooms,
                members,
                senders,
                rate,
            };
            let opts = common.load_opts(rooms * members)?;
            scenarios::run_shape("fanout", node, &shape, &opts, setup).await
        }
        BenchCommand::HotRoom {
            members,
            senders,
            rate,
            ..
        } => {
            let shape = Shape {
                rooms: 1,
                members,
                senders,
                rate,
            };
            let opts = common.load_opts(members)?;
            scenarios::run_shape("hot-room", node, &shape, &opts, setup).await
        }
        BenchCommand::Idle { conns, users, .. } => {
            let opts = common.load_opts(conns)?;
            scenarios::idle(node, users, conns, &opts, setup).await
        }
        BenchCommand::Connect { conns, users, .. } => {
            let opts = common.load_opts(conns)?;
            scenarios::connect(node, users, conns, &opts, setup).await
        }
        BenchCommand::Storm {
            rooms,
            members,
            senders,
            rate,
            how,
            at,
            ..
        } => {
            let shape = Shape {
                rooms,
                members,
                senders,
                rate,
            };
            let how = how.unwrap_or(if common.target.is_some() {
                StormHow::Drop
            } else {
                StormHow::Drain
            });
            let opts = common.load_opts(rooms * members)?;
            scenarios::storm(node, &shape, at, how, &opts, setup).await
        }
        _ => anyhow::bail!("not a load scenario"),
    }
}
