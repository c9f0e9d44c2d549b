//! `confab bench compare`: the same scenarios, same sizes, same generator, on confab, the floor
//! (the ceiling) and Socket.IO (what a user would pick instead), each on a fresh server, one
//! after the other on this machine; then the table (Markdown), the plots (PNG) and every report
//! (JSON) in `--out-dir`.

use std::path::PathBuf;
use std::time::Duration;

use crate::append::{self, AppendOpts};
use crate::cli::{Common, ServerKind};
use crate::node::Node;
use crate::report::RunReport;
use crate::scenarios::{self, Shape};
use crate::table;

/// Flags of `confab bench compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Scenarios to run: fanout, hot-room, idle, connect, storm, capacity, append.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fanout,hot-room,idle,connect,storm,capacity,append"
    )]
    pub scenarios: Vec<String>,
    /// Servers to compare.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "confab,floor,socketio"
    )]
    pub servers: Vec<ServerKind>,
    /// Where the table, plots and JSON go.
    #[arg(long, default_value = "benches/results")]
    pub out_dir: PathBuf,
    /// fanout: rooms × members, one sender per room at --rate.
    #[arg(long, default_value_t = 20)]
    pub rooms: usize,
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// hot-room: members, senders, rate each.
    #[arg(long, default_value_t = 1000)]
    pub hot_members: usize,
    #[arg(long, default_value_t = 4)]
    pub hot_senders: usize,
    #[arg(long, default_value_t = 5.0)]
    pub hot_rate: f64,
    /// idle: connections held (over --idle-users users).
    #[arg(long, default_value_t = 19_000)]
    pub idle_conns: usize,
    #[arg(long, default_value_t = 500)]
    pub idle_users: usize,
    /// connect: connections opened.
    #[arg(long, default_value_t = 2000)]
    pub connect_conns: usize,
    /// capacity: per-sender rates tried in turn on the fanout shape, until one fails
    /// (loss, < 95% of the offered rate delivered, or delivery p99 over 50 ms).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,20,40,60,80,120,160,240,320"
    )]
    pub capacity_rates: Vec<f64>,
    /// Stores: `append` runs on each; confab's `fanout` and `hot-room` runs too, one row per
    /// store (`sqlite` is a fresh temporary SQLite file; a PostgreSQL database must exist).
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    pub stores: Vec<String>,
    /// Only rewrite the table and plots from `--out-dir`/results.json.
    #[arg(long)]
    pub replot: bool,
    /// Options shared by the load scenarios (--duration, --warmup, --size, binaries, ...).
    #[command(flatten)]
    pub common: Common,
}

/// Runs the comparison and writes its files.
pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out_dir)?;
    if args.replot {
        let reports = RunReport::load_all(&args.out_dir.join("results.json"))?;
        return write_outputs(&reports, &args);
    }
    let mut reports: Vec<RunReport> = Vec::new();
    for scenario in &args.scenarios {
        if scenario == "append" {
            for store in &args.stores {
                let opts = AppendOpts {
                    store: (store != "sqlite").then(|| store.clone()),
                    rooms: 100,
                    writers: 512,
                    duration: args.common.duration.min(Duration::from_secs(10)),
                    count: None,
                    size: args.common.size,
                    max_batch: 1024,
                    progress: !args.common.quiet,
                };
                match append::run(&opts).await {
                    Ok(r) => finish(&mut reports, r, &args),
                    Err(e) => eprintln!("append on {store}: {e:#}"),
                }
            }
            continue;
        }
        for (server, store) in runs(scenario, &args) {
            if server == ServerKind::Socketio && scenario == "storm" {
                eprintln!("storm on socketio: skipped (the peer has no resume)");
                continue;
            }
            let mut common = args.common.clone();
            common.server = server;
            common.store = store;
            common.target = None;
            common.dialect = None;
            let mut node = match common.node().await {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("{scenario} on {server:?}: cannot start the server: {e:#}");
                    continue;
                }
            };
            let result = one(scenario, node.as_mut(), &common, &args).await;
            node.stop().await;
            match result {
                Ok(rs) => {
                    for r in rs {
                        finish(&mut reports, r, &args);
                    }
                }
                Err(e) => eprintln!("{scenario} on {server:?}: {e:#}"),
            }
        }
    }
    std::fs::write(
        args.out_dir.join("results.json"),
        serde_json::to_string_pretty(&reports)?,
    )?;
    write_outputs(&reports, &args)
}

/// The servers a scenario runs on, with the store of each confab run: confab once per store
/// in the fan-out scenarios (where what a message costs is the point), on SQLite elsewhere.
fn runs(scenario: &str, args: &CompareArgs) -> Vec<(ServerKind, Option<String>)> {
    let per_store = matches!(scenario, "fanout" | "hot-room");
    let mut runs = Vec::new();
    for server in &args.servers {
        if *server != ServerKind::Confab {
            runs.push((*server, None));
            continue;
        }
        runs.push((*server, args.common.store.clone()));
        if per_store {
            for store in args.stores.iter().filter(|s| s.as_str() != "sqlite") {
                runs.push((*server, Some(store.clone())));
            }
        }
    }
    runs
}

/// Writes the table and the plots.
fn write_outputs(reports: &[RunReport], args: &CompareArgs) -> anyhow::Result<()> {
    let md = table::markdown(reports);
    std::fs::write(args.out_dir.join("table.md"), &md)?;
    println!("{md}");
    for (name, res) in table::plots(reports, &args.out_dir) {
        match res {
            Ok(()) => eprintln!("wrote {}", args.out_dir.join(name).display()),
            Err(e) => eprintln!("plot {name}: {e:#}"),
        }
    }
    Ok(())
}

fn finish(reports: &mut Vec<RunReport>, r: RunReport, args: &CompareArgs) {
    if !args.common.quiet {
        eprint!("{}", r.text());
    }
    reports.push(r);
}

/// One scenario on one (fresh) server.
async fn one(
    scenario: &str,
    node: &mut dyn Node,
    common: &Common,
    a: &CompareArgs,
) -> anyhow::Result<Vec<RunReport>> {
    let setup = common.setup_concurrency;
    let fanout = Shape {
        rooms: a.rooms,
        members: a.members,
        senders: 1,
        rate: a.rate,
    };
    Ok(match scenario {
        "fanout" => {
            let opts = common.load_opts(a.rooms * a.members)?;
            vec![scenarios::run_shape("fanout", node, &fanout, &opts, setup).await?]
        }
        "hot-room" => {
            let shape = Shape {
                rooms: 1,
                members: a.hot_members,
                senders: a.hot_senders,
                rate: a.hot_rate,
            };
            let opts = common.load_opts(a.hot_members)?;
            vec![scenarios::run_shape("hot-room", node, &shape, &opts, setup).await?]
        }
        "idle" => {
            let opts = common.load_opts(a.idle_conns)?;
            vec![scenarios::idle(node, a.idle_users, a.idle_conns, &opts, setup).await?]
        }
        "connect" => {
            let opts = common.load_opts(a.connect_conns)?;
            vec![
                scenarios::connect(
                    node,
                    a.idle_users.min(a.connect_conns),
                    a.connect_conns,
                    &opts,
                    setup,
                )
                .await?,
            ]
        }
        "storm" => {
            let opts = common.load_opts(a.rooms * a.members)?;
            // A node that keeps its data is drained; the floor (memory only) sees a client-side
            // storm instead.
            let how = if node.restartable() {
                crate::driver::StormHow::Drain
            } else {
                crate::driver::StormHow::Drop
            };
            let at = common.duration / 3;
            vec![scenarios::storm(node, &fanout, at, how, &opts, setup).await?]
        }
        "capacity" => {
            let opts = common.load_opts(a.rooms * a.members)?;
            scenarios::capacity(node, &fanout, &a.capacity_rates, &opts, setup).await?
        }
        other => anyhow::bail!("unknown scenario `{other}`"),
    })
}
