//! Group-commit throughput, measured not asserted: 64 appenders into 16 rooms for 5 seconds.
//! Run with `cargo test -p confab-store --release --test contract -- --ignored --nocapture
//! throughput` (the PostgreSQL one needs `CONFAB_TEST_POSTGRES_URL`).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use confab_domain::text::{RoomName, UserName};
use confab_protocol::Visibility;
use confab_store::postgres::PgStore;
use confab_store::{Store, StoreOptions};
use tokio::task::JoinSet;

use crate::pg::Databases;
use crate::{Backend, text};

const APPENDERS: usize = 64;
const ROOMS: usize = 16;
const RUN: Duration = Duration::from_secs(5);

/// Appends for `RUN` and returns the appends acknowledged per second.
async fn measure(store: Arc<dyn Store>) -> f64 {
    let mut users = Vec::new();
    for i in 0..APPENDERS {
        let name = UserName::parse(&format!("user{i}")).expect("valid");
        users.push(store.create_user(&name, "h").await.expect("created"));
    }
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let name = RoomName::parse(&format!("room{i}")).expect("valid");
        let change = store
            .create_room(&users[0], &name, Visibility::Public)
            .await
            .expect("created");
        rooms.push(change.room.id);
    }
    for (i, user) in users.iter().enumerate() {
        store.join(&rooms[i % ROOMS], user).await.expect("joined");
    }
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut tasks = JoinSet::new();
    for (i, user) in users.into_iter().enumerate() {
        let (store, room) = (Arc::clone(&store), rooms[i % ROOMS].clone());
        let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
        tasks.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let client = format!("c{n}");
                store
                    .append(&room, &user, text(&client, "hello"))
                    .await
                    .expect("stored");
                acked.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        });
    }
    let started = Instant::now();
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let count = acked.load(Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    store.close().await;
    count as f64 / elapsed
}

fn report(backend: &str, rate: f64) {
    let _ = writeln!(
        std::io::stderr(),
        "{backend}: {rate:.0} appends/s ({APPENDERS} appenders, {ROOMS} rooms, {}s)",
        RUN.as_secs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on purpose"]
async fn throughput_of_group_committed_appends_on_sqlite() {
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = confab_store::connect(&url, &StoreOptions::default())
        .await
        .expect("opens");
    report("sqlite", measure(store).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on purpose"]
async fn throughput_of_group_committed_appends_on_postgres() {
    for shards in [1, 2] {
        if Backend::postgres(shards, "throughput…").is_none() {
            return;
        }
        let dbs = Databases::create(shards).await;
        let store = Arc::new(
            PgStore::connect(&dbs.urls(), &StoreOptions::default())
                .await
                .expect("connects"),
        );
        let rate = measure(store.clone()).await;
        report(&format!("postgres, {shards} shard(s)"), rate);
        let stats = store.writer_stats();
        let _ = writeln!(
            std::io::stderr(),
            "  {} commits, {:.1} writes per commit",
            stats.commits,
            stats.writes as f64 / stats.commits.max(1) as f64
        );
    }
}
