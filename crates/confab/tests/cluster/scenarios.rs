//! Each scenario: chatters under load, one failure injected while they chat, then `check`.

use std::time::Duration;

use crate::{Cluster, check};

const SEND_FOR: Duration = Duration::from_secs(6);
const EVERY: Duration = Duration::from_millis(40);
const SETTLE: Duration = Duration::from_secs(2);

/// Runs four chatters (two direct to nodes 0 and 1, two through HAProxy) while `fault` runs.
async fn chat_through<F: std::future::Future<Output = ()>>(
    c: &Cluster,
    fault: F,
) -> Vec<crate::chatter::Outcome> {
    let bases = [
        c.nodes[0].base(),
        c.nodes[1].base(),
        c.lb.base(),
        c.lb.base(),
    ];
    let runs: Vec<_> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| tokio::spawn(c.chatter(i, b).run(SEND_FOR, EVERY, SETTLE)))
        .collect();
    fault.await;
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("chatter"));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_nodes_share_rooms_and_see_everything_once_in_order() {
    let Some(c) = Cluster::start("shared_rooms", 1).await else {
        return;
    };
    let outcomes = chat_through(&c, async {}).await;
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_under_load_loses_no_acked_event() {
    let Some(mut c) = Cluster::start("kill_node", 1).await else {
        return;
    };
    // Chatters 2 and 3 go through HAProxy; node 2 is the one killed, and chatters 0 and 1
    // (connected to nodes 0 and 1 directly) must keep seeing everything.
    let bases = [
        c.nodes[0].base(),
        c.nodes[1].base(),
        c.lb.base(),
        c.lb.base(),
    ];
    let runs: Vec<_> = bases
        .iter()
        .enumerate()
        .map(|(i, b)| tokio::spawn(c.chatter(i, b).run(SEND_FOR, EVERY, SETTLE)))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.nodes[2].kill();
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("chatter"));
    }
    assert!(
        outcomes.iter().map(|o| o.reconnects).sum::<u32>() > 0,
        "the killed node's clients reconnected"
    );
    check(&c, &[0, 1], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_load_loses_nothing_and_delivery_resumes() {
    let Some(mut c) = Cluster::start("nats_restart", 1).await else {
        return;
    };
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
    c.nats[0].kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.nats[0].start();
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("chatter"));
    }
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_of_a_nats_cluster_killed_under_load_loses_nothing() {
    let Some(mut c) = Cluster::start("nats_cluster", 3).await else {
        return;
    };
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
    c.nats[0].kill();
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("chatter"));
    }
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_loses_nothing() {
    let Some(mut c) = Cluster::start("redis_restart", 1).await else {
        return;
    };
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
    c.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.redis.restart();
    let mut outcomes = Vec::new();
    for r in runs {
        outcomes.push(r.await.expect("chatter"));
    }
    check(&c, &[0, 1, 2], &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_briefly_unreachable_gives_unavailable_never_a_false_ack() {
    let Some(c) = Cluster::start("pg_cut", 1).await else {
        return;
    };
    let outcomes = chat_through(&c, async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.cutter.cut();
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.cutter.restore();
    })
    .await;
    assert!(
        outcomes.iter().map(|o| o.unavailable).sum::<u32>() > 0,
        "sends during the cut were refused as unavailable"
    );
    check(&c, &[0, 1, 2], &outcomes).await;
}
