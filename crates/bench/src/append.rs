//! `append`: the store alone. Many writers append text events through the `Store` port (which
//! group-commits them); the run reports appends per second and append latency, then checks
//! that every room's `last_seq` grew by exactly the number of appends acknowledged in it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::Context;
use confab_domain::text::{RoomName, UserName};
use confab_protocol::{UserRef, Visibility};
use confab_store::{Append, Store, StoreOptions};
use serde_json::json;

use crate::procstat;
use crate::report::{Machine, RunReport, per_item, share_of_core};
use crate::stats::{Latency, new_histogram};

/// What to append to, how hard and how long.
#[derive(Debug, Clone)]
pub struct AppendOpts {
    /// Store URL; `None` is SQLite in a fresh temporary directory.
    pub store: Option<String>,
    pub rooms: usize,
    pub writers: usize,
    pub duration: Duration,
    /// Stop after this many appends in all (whichever comes first).
    pub count: Option<u64>,
    pub size: usize,
    pub max_batch: usize,
    pub progress: bool,
}

/// Runs the store-only benchmark.
pub async fn run(opts: &AppendOpts) -> anyhow::Result<RunReport> {
    let dir = tempfile::Builder::new()
        .prefix("confab-append-")
        .tempdir()?;
    let url = match &opts.store {
        Some(u) => u.clone(),
        None => format!("sqlite://{}", dir.path().join("append.db").display()),
    };
    let options = StoreOptions {
        max_batch: opts.max_batch,
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = confab_store::connect(&url, &options)
        .await
        .with_context(|| {
            format!(
                "cannot open store {}",
                url.split('@').next_back().unwrap_or("")
            )
        })?;
    let label = url.split("://").next().unwrap_or("store").to_string();
    if opts.progress {
        eprintln!(
            "append: {} writers over {} rooms on {label}",
            opts.writers, opts.rooms
        );
    }
    let run_id: u32 = rand::random::<u32>() >> 8;
    let rooms = opts.rooms.max(1);
    let mut users: Vec<UserRef> = Vec::new();
    for w in 0..opts.writers.max(1) {
        let name =
            UserName::parse(&format!("a{run_id:x}w{w}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        users.push(store.create_user(&name, "not-a-hash").await?);
    }
    let mut room_ids = Vec::new();
    for r in 0..rooms {
        let name = RoomName::parse(&format!("append {r}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let change = store
            .create_room(&users[0], &name, Visibility::Public)
            .await?;
        room_ids.push(change.room.id);
    }
    for (w, user) in users.iter().enumerate().skip(1) {
        store.join(&room_ids[w % rooms], user).await?;
    }
    let before = store.last_seqs(&room_ids).await?;
    let me = std::process::id();
    let cpu0 = procstat::cpu_us_of(&[me]);
    let engines = crate::engines::engines_of(&[me]);
    let engine_cpu0 = procstat::cpu_us_of(&engines);
    let started = Instant::now();
    let deadline = started + opts.duration;
    let total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let body: String = "x".repeat(opts.size.max(1));
    let limit = opts.count.unwrap_or(u64::MAX);
    let mut tasks = tokio::task::JoinSet::new();
    for (w, user) in users.iter().cloned().enumerate() {
        let store = store.clone();
        let room = room_ids[w % rooms].clone();
        let (total, errors, body) = (total.clone(), errors.clone(), body.clone());
        tasks.spawn(async move {
            let mut hist = new_histogram();
            let mut n = 0u64;
            let mut appended = 0u64;
            while Instant::now() < deadline && total.fetch_add(1, Relaxed) < limit {
                let t = Instant::now();
                let a = Append::Text {
                    client_id: format!("w{w}-{n}"),
                    body: body.clone(),
                };
                n += 1;
                match store.append(&room, &user, a).await {
                    Ok(_) => {
                        appended += 1;
                        let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                    }
                    Err(_) => {
                        errors.fetch_add(1, Relaxed);
                    }
                }
            }
            (room, appended, hist)
        });
    }
    let mut hist = new_histogram();
    let mut per_room: std::collections::HashMap<String, u64> = Default::default();
    let mut appended = 0;
    while let Some(joined) = tasks.join_next().await {
        let (room, n, h) = joined?;
        appended += n;
        *per_room.entry(room).or_insert(0) += n;
        hist.add(h)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = procstat::cpu_us_since(&[me], cpu0);
    let engine_cpu = procstat::cpu_us_since(&engines, engine_cpu0);
    let after = store.last_seqs(&room_ids).await?;
    store.close().await;
    let (mut lost, mut duplicates) = (0u64, 0u64);
    for ((room, b), (_, a)) in before.iter().zip(after.iter()) {
        let expected = b + per_room.get(room).copied().unwrap_or(0);
        lost += expected.saturating_sub(*a);
        duplicates += a.saturating_sub(expected);
    }
    let errors = errors.load(Relaxed);
    Ok(RunReport {
        scenario: "append".into(),
        server: format!("store {label} (in-process)"),
        params: json!({"rooms": rooms, "writers": opts.writers, "size": opts.size,
                        "max_batch": opts.max_batch, "duration_s": opts.duration.as_secs_f64()}),
        machine: Machine::now(),
        ok: lost == 0 && duplicates == 0 && errors == 0,
        conns: 0,
        connected: 0,
        workers: 1,
        connect_secs: 0.0,
        connects_per_s: 0.0,
        window_secs: secs,
        sent_per_s: appended as f64 / secs,
        delivered_per_s: 0.0,
        server_cpu_pct: share_of_core(cpu, secs),
        cpu_us_per_delivery: per_item(cpu, appended),
        engine_cpu_pct: share_of_core(engine_cpu, secs),
        engine_cpu_us_per_delivery: per_item(engine_cpu, appended),
        engine_processes: engines.len(),
        // The store runs in this process: the CPU above is the generator's too.
        generator_cpu_pct: None,
        generator_cpu_us_per_delivery: None,
        ack: Latency::of(&hist),
        delivery: Latency::default(),
        connect: Latency::default(),
        sent: appended + errors,
        acked: appended,
        delivered: 0,
        lost,
        duplicates,
        errors,
        unacked: 0,
        reconnects: 0,
        storm_recover_secs: None,
        rss_before: None,
        rss_connected: None,
        rss_end: procstat::rss_bytes(me),
        rss_per_conn: None,
        notes: Default::default(),
        appends_per_s: Some(appended as f64 / secs),
        delivery_hdr: String::new(),
        delivery_hist: None,
    })
}
