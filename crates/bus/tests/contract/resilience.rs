//! The bus survives its broker: a NATS restart, a NATS cluster member's death, a Redis restart.
//! Each test owns its broker processes (killed when the test ends) and runs only when the
//! matching `CONFAB_TEST_*_URL` says that broker's tools are on this machine.

use std::time::Duration;

use confab_bus::BusError;
use tokio::time::Instant;

use crate::servers::{self, free_port};
use crate::{DELIVERY, Node, bytes, connect, recv_within, topic};

fn enabled(var: &str, test: &str) -> bool {
    let on = std::env::var(var).is_ok_and(|v| !v.is_empty());
    if !on {
        println!("skipped: {test} ({var} is not set)");
    }
    on
}

/// Publishes from `b` until `a` receives one of them again; bounded by `limit`.
async fn until_delivered(a: &mut Node, b: &Node, t: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    for attempt in 0u32.. {
        assert!(
            started.elapsed() < limit,
            "no delivery within {limit:?} ({attempt} attempts)"
        );
        let sent = b.bus.publish(t, bytes(&format!("probe {attempt}"))).await;
        if sent.is_ok()
            && recv_within(&mut a.inbox, Duration::from_millis(200))
                .await
                .is_some()
        {
            return started.elapsed();
        }
        if sent.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    unreachable!()
}

/// Once healthy again, a burst arrives whole and in order.
async fn burst_arrives(a: &mut Node, b: &Node, t: &str, n: usize) {
    // Probes still in flight are not part of the burst.
    while recv_within(&mut a.inbox, Duration::from_millis(300))
        .await
        .is_some()
    {}
    for i in 0..n {
        b.bus
            .publish(t, bytes(&format!("m{i}")))
            .await
            .expect("publish after recovery");
    }
    for i in 0..n {
        let got = recv_within(&mut a.inbox, DELIVERY).await;
        assert_eq!(
            got.map(|d| d.payload),
            Some(bytes(&format!("m{i}"))),
            "message {i} after recovery"
        );
    }
}

/// While the broker is down, publish fails fast instead of hanging.
async fn publish_fails_fast(b: &Node, t: &str) {
    let started = Instant::now();
    loop {
        let call = Instant::now();
        let result = b.bus.publish(t, bytes("while down")).await;
        assert!(
            call.elapsed() < Duration::from_secs(3),
            "publish hung {:?}",
            call.elapsed()
        );
        if let Err(e) = result {
            assert!(matches!(e, BusError::Unavailable(_)), "{e}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "publish still succeeds 10 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A subscription asked for while the broker is away fails at once, and takes effect when the
/// broker is back.
async fn subscribe_fails_fast(a: &Node, t: &str) {
    let started = Instant::now();
    let early = a.bus.subscribe(t).await;
    assert!(matches!(early, Err(BusError::Unavailable(_))), "{early:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "subscribe hung {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn nats_bus_recovers_by_itself_after_the_server_is_killed_and_restarted() {
    if !enabled("CONFAB_TEST_NATS_URL", "NATS restart test") {
        return;
    }
    let port = free_port();
    let mut server = servers::nats(port);
    let url = format!("nats://127.0.0.1:{port}");
    let (mut a, b) = (connect(&url).await, connect(&url).await);
    let t = topic("room.restart");
    a.bus.subscribe(&t).await.expect("subscribe");
    until_delivered(&mut a, &b, &t, Duration::from_secs(5)).await;

    server.kill();
    publish_fails_fast(&b, &t).await;
    let asked_while_down = topic("room.later");
    subscribe_fails_fast(&a, &asked_while_down).await;
    server.restart();
    let took = until_delivered(&mut a, &b, &t, Duration::from_secs(20)).await;
    println!("nats: delivering again {took:?} after the restart");
    burst_arrives(&mut a, &b, &t, 200).await;
    until_delivered(&mut a, &b, &asked_while_down, Duration::from_secs(5)).await;
    // New subscriptions work on the new connection too.
    let fresh = topic("room.fresh");
    a.bus
        .subscribe(&fresh)
        .await
        .expect("subscribe after restart");
    b.bus
        .publish(&fresh, bytes("fresh"))
        .await
        .expect("publish");
    assert!(recv_within(&mut a.inbox, DELIVERY).await.is_some());
}

#[tokio::test]
async fn nats_bus_fails_over_when_a_cluster_member_dies() {
    if !enabled("CONFAB_TEST_NATS_URL", "NATS cluster test") {
        return;
    }
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let monitor: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let member = |i: usize| {
        let routes: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| cluster[j]).collect();
        servers::nats_member(ports[i], cluster[i], monitor[i], &routes)
    };
    // Only the first member runs when the nodes connect, so both are on it and must fail over.
    let mut first = member(0);
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let url = urls.join(",");
    let (mut a, b) = (connect(&url).await, connect(&url).await);
    let _others = [member(1), member(2)];
    for m in &monitor {
        servers::wait_routes(*m, 2);
    }
    let t = topic("room.cluster");
    a.bus.subscribe(&t).await.expect("subscribe");
    until_delivered(&mut a, &b, &t, Duration::from_secs(5)).await;

    first.kill();
    let took = until_delivered(&mut a, &b, &t, Duration::from_secs(20)).await;
    println!("nats cluster: delivering again {took:?} after a member died");
    burst_arrives(&mut a, &b, &t, 200).await;
}

#[tokio::test]
async fn redis_bus_recovers_by_itself_and_resubscribes_after_a_redis_restart() {
    if !enabled("CONFAB_TEST_REDIS_URL", "Redis bus restart test") {
        return;
    }
    let port = free_port();
    let mut server = servers::redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let (mut a, b) = (connect(&url).await, connect(&url).await);
    let t = topic("room.restart");
    a.bus.subscribe(&t).await.expect("subscribe");
    until_delivered(&mut a, &b, &t, Duration::from_secs(5)).await;

    server.kill();
    publish_fails_fast(&b, &t).await;
    let asked_while_down = topic("room.later");
    subscribe_fails_fast(&a, &asked_while_down).await;
    server.restart();
    let took = until_delivered(&mut a, &b, &t, Duration::from_secs(20)).await;
    println!("redis: delivering again {took:?} after the restart");
    burst_arrives(&mut a, &b, &t, 200).await;
    until_delivered(&mut a, &b, &asked_while_down, Duration::from_secs(5)).await;
}
