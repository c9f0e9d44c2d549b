//! Creating the users and rooms of a run through the HTTP API (confab dialect), or just naming
//! them (Socket.IO, where a room is joined on connect).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context;
use confab_client::HttpClient;
use confab_protocol::Visibility;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rand::RngExt;

use crate::spec::Dialect;

/// A user the bench can connect as.
#[derive(Debug, Clone)]
pub struct Cred {
    pub name: String,
    pub token: String,
}

/// The users and rooms of a run; `rooms[i]` is a room id.
#[derive(Debug, Clone)]
pub struct Population {
    pub users: Vec<Cred>,
    pub rooms: Vec<String>,
}

const PASSWORD: &str = "bench-password-1";

/// Creates `users` users and one public room per entry of `members` (the first member is the
/// owner and creates it; the others join), at most `concurrency` requests at once.
pub async fn populate(
    base_url: &str,
    dialect: Dialect,
    users: usize,
    members: &[Vec<usize>],
    concurrency: usize,
) -> anyhow::Result<Population> {
    let run: u32 = rand::rng().random_range(0x100000..0xffffff);
    let names: Vec<String> = (0..users).map(|i| format!("b{run:x}u{i}")).collect();
    if dialect == Dialect::Socketio {
        return Ok(Population {
            users: names
                .into_iter()
                .map(|name| Cred {
                    name,
                    token: String::new(),
                })
                .collect(),
            rooms: (0..members.len())
                .map(|i| format!("b{run:x}r{i}"))
                .collect(),
        });
    }
    let http = HttpClient::new(base_url);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let creds = bounded(
        concurrency,
        names.iter().cloned(),
        |name| {
            let http = http.clone();
            let done = done.clone();
            async move {
                http.register(&name, PASSWORD)
                    .await
                    .with_context(|| format!("register {name}"))?;
                let session = http.login(&name, PASSWORD).await.context("login")?;
                done.fetch_add(1, Relaxed);
                Ok(Cred {
                    name,
                    token: session.token,
                })
            }
        },
        || {
            eprintln!(
                "  setup: {} of {users} users ({:.0?})",
                done.load(Relaxed),
                started.elapsed()
            )
        },
    )
    .await?;
    let rooms = bounded(
        concurrency,
        members.iter().enumerate(),
        |(i, m)| {
            let owner = http.with_token(&creds[m[0]].token);
            async move {
                let room = owner
                    .create_room(&format!("bench room {i}"), Visibility::Public)
                    .await
                    .context("create room")?;
                Ok(room.id)
            }
        },
        || {},
    )
    .await?;
    let joins: Vec<(usize, usize)> = members
        .iter()
        .enumerate()
        .flat_map(|(r, m)| m.iter().skip(1).map(move |u| (r, *u)))
        .collect();
    let total = joins.len();
    let joined = Arc::new(AtomicU64::new(0));
    bounded(
        concurrency * 4,
        joins.into_iter(),
        |(r, u)| {
            let client = http.with_token(&creds[u].token);
            let room = rooms[r].clone();
            let joined = joined.clone();
            async move {
                client.join(&room).await.context("join")?;
                joined.fetch_add(1, Relaxed);
                Ok(())
            }
        },
        || eprintln!("  setup: {} of {total} joins", joined.load(Relaxed)),
    )
    .await?;
    Ok(Population {
        users: creds,
        rooms,
    })
}

/// Runs `f` over `items` with at most `n` in flight, keeping the input order in the output;
/// calls `tick` about once a second.
async fn bounded<I, T, F, Fut>(
    n: usize,
    items: impl Iterator<Item = I>,
    mut f: F,
    tick: impl Fn(),
) -> anyhow::Result<Vec<T>>
where
    F: FnMut(I) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut items = items.enumerate();
    let mut running = FuturesUnordered::new();
    let mut out: Vec<(usize, T)> = Vec::new();
    let mut last_tick = Instant::now();
    loop {
        while running.len() < n.max(1) {
            match items.next() {
                Some((i, item)) => {
                    let fut = f(item);
                    running.push(async move { (i, fut.await) });
                }
                None => break,
            }
        }
        let next = tokio::time::timeout(Duration::from_secs(1), running.next()).await;
        match next {
            Ok(Some((i, r))) => out.push((i, r?)),
            Ok(None) => break,
            Err(_) => {}
        }
        if last_tick.elapsed() >= Duration::from_secs(2) {
            last_tick = Instant::now();
            tick();
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}
