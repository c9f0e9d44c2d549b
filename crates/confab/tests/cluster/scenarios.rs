//! Each scenario: four chatters under load, one failure injected two seconds in, then `check`.

use std::time::Duration;

use crate::chatter::Outcome;
use crate::{Cluster, check};

const SEND_FOR: Duration = Duration::from_secs(6);
const EVERY: Duration = Duration::from_millis(40);
const SETTLE: Duration = Duration::from_secs(2);

/// Runs four chatters, one on each node and one through HAProxy; `fault` runs two seconds
/// into the load.
async fn chat(c: &mut Cluster, fault: impl AsyncFnOnce(&mut Cluster)) -> Vec<Outcome> {
    let bases = [
        c.nodes[0].base(),
        c.nodes[1].base(),
        c.nodes[2].base(),
        c.lb.base(),
    ];
    let runs: Vec<_> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| tokio::spawn(c.chatter(i, b).run(SEND_FOR, EVERY, SETTLE)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    fault(c).await;
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("chatter"));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_nodes_share_rooms_and_see_everything_once_in_order() {
    let Some(mut c) = Cluster::start("shared_rooms", 1).await else {
        return;
    };
    let outcomes = chat(&mut c, async |_| {}).await;
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_under_load_loses_no_acked_event() {
    let Some(mut c) = Cluster::start("kill_node", 1).await else {
        return;
    };
    // Chatter 2 starts on node 2, which is killed: it must come back through HAProxy.
    let outcomes = chat(&mut c, async |c| c.nodes[2].kill()).await;
    assert!(
        outcomes[2].reconnects > 0,
        "the killed node's client reconnected elsewhere"
    );
    check(&c, &[0, 1], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_load_loses_nothing_and_delivery_resumes() {
    let Some(mut c) = Cluster::start("nats_restart", 1).await else {
        return;
    };
    let outcomes = chat(&mut c, async |c| {
        c.nats[0].kill();
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.nats[0].start();
    })
    .await;
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_of_a_nats_cluster_killed_under_load_loses_nothing() {
    let Some(mut c) = Cluster::start("nats_cluster", 3).await else {
        return;
    };
    let outcomes = chat(&mut c, async |c| c.nats[0].kill()).await;
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_loses_nothing() {
    let Some(mut c) = Cluster::start("redis_restart", 1).await else {
        return;
    };
    let outcomes = chat(&mut c, async |c| {
        c.redis.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.redis.restart();
    })
    .await;
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_briefly_unreachable_gives_unavailable_never_a_false_ack() {
    let Some(mut c) = Cluster::start("pg_cut", 1).await else {
        return;
    };
    let outcomes = chat(&mut c, async |c| {
        c.cutter.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.cutter.restore();
    })
    .await;
    let refused: u32 = outcomes.iter().map(|o| o.unavailable).sum();
    assert!(
        refused > 0,
        "sends during the cut were refused as unavailable"
    );
    check(&c, &[0, 1, 2], &outcomes).await;
}
