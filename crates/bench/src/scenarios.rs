//! The scenarios: who is in which room, who sends how fast, and what each one reports.
//! `fanout`, `hot-room` and `storm` share one shape (rooms × members, senders at a fixed
//! rate); `idle` and `connect` only connect; `append` (in [`crate::append`]) has no server.

use std::time::Duration;

use serde_json::json;

use crate::driver::{LoadOpts, StormHow, run_load};
use crate::node::Node;
use crate::report::RunReport;
use crate::setup::{Population, populate};
use crate::spec::{ConnSpec, SendSpec};

/// Rooms × members, with `senders` members of each room sending `rate` messages a second.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Shape {
    pub rooms: usize,
    pub members: usize,
    pub senders: usize,
    pub rate: f64,
}

impl Shape {
    /// Deliveries a second the shape asks for.
    pub fn offered(&self) -> f64 {
        (self.rooms * self.senders.min(self.members) * self.members) as f64 * self.rate
    }
}

/// Connections for a shape: one per user, user `r * members + i` in room `r`, the first
/// `senders` of each room sending, their schedules spread evenly over one interval.
pub fn shape_conns(shape: &Shape, pop: &Population) -> Vec<ConnSpec> {
    let interval_ns = (1e9 / shape.rate.max(1e-3)) as u64;
    let senders_total = (shape.rooms * shape.senders.min(shape.members)).max(1) as u64;
    let mut conns = Vec::with_capacity(pop.users.len());
    let mut sender = 0u32;
    for (r, room) in pop.rooms.iter().enumerate() {
        for i in 0..shape.members {
            let user = &pop.users[r * shape.members + i];
            let send = (i < shape.senders).then(|| {
                let s = SendSpec {
                    room: room.clone(),
                    interval_ns,
                    offset_ns: interval_ns * sender as u64 / senders_total,
                    sender,
                };
                sender += 1;
                s
            });
            conns.push(ConnSpec {
                name: user.name.clone(),
                token: user.token.clone(),
                rooms: vec![room.clone()],
                send,
                url: None,
            });
        }
    }
    conns
}

/// Runs a rooms × members shape (fanout, hot-room, storm).
pub async fn run_shape(
    scenario: &str,
    node: &mut dyn Node,
    shape: &Shape,
    opts: &LoadOpts,
    setup_concurrency: usize,
) -> anyhow::Result<RunReport> {
    let members: Vec<Vec<usize>> = (0..shape.rooms)
        .map(|r| (r * shape.members..(r + 1) * shape.members).collect())
        .collect();
    say(
        opts,
        &format!(
            "{scenario}: setting up {} users in {} rooms on {}",
            shape.rooms * shape.members,
            shape.rooms,
            node.label()
        ),
    );
    let pop = populate(
        &node.base_url(),
        opts.dialect,
        shape.rooms * shape.members,
        &members,
        setup_concurrency,
    )
    .await?;
    let conns = shape_conns(shape, &pop);
    let r = run_load(node, conns, opts).await?;
    let mut params = json!({
        "rooms": shape.rooms, "members": shape.members, "senders": shape.senders,
        "rate": shape.rate, "offered_deliveries_per_s": shape.offered(),
        "size": opts.size, "duration_s": opts.duration.as_secs_f64(),
    });
    if let Some((at, how)) = opts.storm {
        params["storm"] = json!({"how": how, "at_s": at.as_secs_f64()});
    }
    Ok(RunReport::from_load(scenario, &node.label(), params, &r))
}

/// `users` users, each in one room of up to ten, and `conns` connections spread over them.
async fn spread(
    node: &dyn Node,
    opts: &LoadOpts,
    users: usize,
    conns: usize,
    setup_concurrency: usize,
) -> anyhow::Result<Vec<ConnSpec>> {
    let users = users.clamp(1, conns.max(1));
    let rooms = users.div_ceil(10);
    let members: Vec<Vec<usize>> = (0..rooms)
        .map(|r| (r * 10..((r + 1) * 10).min(users)).collect())
        .collect();
    let pop = populate(
        &node.base_url(),
        opts.dialect,
        users,
        &members,
        setup_concurrency,
    )
    .await?;
    Ok((0..conns)
        .map(|i| {
            let u = i % users;
            ConnSpec {
                name: pop.users[u].name.clone(),
                token: pop.users[u].token.clone(),
                rooms: vec![pop.rooms[u / 10].clone()],
                send: None,
                url: None,
            }
        })
        .collect())
}

/// `idle`: holds `conns` authenticated connections for `opts.duration`; the report's
/// `rss_per_conn` is the server's memory growth per connection.
pub async fn idle(
    node: &mut dyn Node,
    users: usize,
    conns: usize,
    opts: &LoadOpts,
    setup_concurrency: usize,
) -> anyhow::Result<RunReport> {
    say(
        opts,
        &format!(
            "idle: {conns} connections over {users} users on {}",
            node.label()
        ),
    );
    let specs = spread(node, opts, users, conns, setup_concurrency).await?;
    // Setup hashes passwords (argon2 takes ~19 MiB a hash), and the allocator keeps that
    // memory: new connections would reuse it and look free. Measure a fresh process instead.
    let fresh = node.restartable();
    if fresh {
        say(
            opts,
            "idle: restarting the server so setup memory does not hide connection memory",
        );
        node.restart(false).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let opts = LoadOpts {
        send: false,
        warmup: Duration::ZERO,
        ..opts.clone()
    };
    let r = run_load(node, specs, &opts).await?;
    let params = json!({"conns": conns, "users": users, "hold_s": opts.duration.as_secs_f64(),
                        "fresh_server": fresh});
    Ok(RunReport::from_load("idle", &node.label(), params, &r))
}

/// `connect`: opens `conns` connections as fast as `connect_concurrency` allows.
pub async fn connect(
    node: &mut dyn Node,
    users: usize,
    conns: usize,
    opts: &LoadOpts,
    setup_concurrency: usize,
) -> anyhow::Result<RunReport> {
    say(
        opts,
        &format!(
            "connect: {conns} connections over {users} users on {}",
            node.label()
        ),
    );
    let specs = spread(node, opts, users, conns, setup_concurrency).await?;
    let opts = LoadOpts {
        send: false,
        warmup: Duration::ZERO,
        duration: Duration::ZERO,
        ..opts.clone()
    };
    let r = run_load(node, specs, &opts).await?;
    let params = json!({
        "conns": conns, "users": users, "concurrency": opts.connect_concurrency,
    });
    Ok(RunReport::from_load("connect", &node.label(), params, &r))
}

/// `storm`: a shape under load, then the node is drained or killed (or every client drops)
/// at `at`; everyone reconnects with backoff and jitter and resumes with `sync`.
pub async fn storm(
    node: &mut dyn Node,
    shape: &Shape,
    at: Duration,
    how: StormHow,
    opts: &LoadOpts,
    setup_concurrency: usize,
) -> anyhow::Result<RunReport> {
    let opts = LoadOpts {
        reconnect: true,
        storm: Some((at, how)),
        ..opts.clone()
    };
    run_shape("storm", node, shape, &opts, setup_concurrency).await
}

/// The delivery p99 a capacity step may reach and pass: the definition of capacity
/// (the highest delivered rate with p99 <= 50 ms and zero loss).
pub const CAPACITY_P99_US: u64 = 50_000;

/// `capacity`: the shape at each per-sender rate in turn, on one population, until a step
/// fails (loss or a broken check, under 95% of the offered rate delivered, or delivery p99
/// over `CAPACITY_P99_US`); then one run at half the best passing rate (`half-load`).
pub async fn capacity(
    node: &mut dyn Node,
    shape: &Shape,
    rates: &[f64],
    opts: &LoadOpts,
    setup_concurrency: usize,
) -> anyhow::Result<Vec<RunReport>> {
    let members: Vec<Vec<usize>> = (0..shape.rooms)
        .map(|r| (r * shape.members..(r + 1) * shape.members).collect())
        .collect();
    say(
        opts,
        &format!(
            "capacity: setting up {} users on {}",
            shape.rooms * shape.members,
            node.label()
        ),
    );
    let pop = populate(
        &node.base_url(),
        opts.dialect,
        shape.rooms * shape.members,
        &members,
        setup_concurrency,
    )
    .await?;
    let mut out = Vec::new();
    let mut best: Option<f64> = None;
    for &rate in rates {
        let s = Shape { rate, ..*shape };
        say(
            opts,
            &format!(
                "capacity: {rate}/s per sender ({:.0} deliveries/s offered)",
                s.offered()
            ),
        );
        let r = run_load(node, shape_conns(&s, &pop), opts).await?;
        let params = json!({"rooms": s.rooms, "members": s.members, "senders": s.senders,
            "rate": rate, "offered_deliveries_per_s": s.offered(), "size": opts.size});
        let mut rep = RunReport::from_load("capacity", &node.label(), params, &r);
        let pass = rep.ok
            && rep.delivered_per_s >= 0.95 * s.offered()
            && rep.delivery.p99_us <= CAPACITY_P99_US;
        rep.params["pass"] = json!(pass);
        if opts.progress {
            eprint!("{}", rep.text());
        }
        out.push(rep);
        if !pass {
            break;
        }
        best = Some(rate);
    }
    if let Some(rate) = best {
        let s = Shape {
            rate: rate / 2.0,
            ..*shape
        };
        say(opts, &format!("half-load: {}/s per sender", s.rate));
        let r = run_load(node, shape_conns(&s, &pop), opts).await?;
        let params = json!({"rooms": s.rooms, "members": s.members, "senders": s.senders,
            "rate": s.rate, "offered_deliveries_per_s": s.offered(), "size": opts.size});
        out.push(RunReport::from_load("half-load", &node.label(), params, &r));
    }
    Ok(out)
}

fn say(opts: &LoadOpts, text: &str) {
    if opts.progress {
        eprintln!("{text}");
    }
}
