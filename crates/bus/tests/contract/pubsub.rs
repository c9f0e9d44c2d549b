//! What every bus promises on a healthy broker.

use std::time::Duration;

use confab_bus::BusError;

use crate::{Backend, DELIVERY, QUIET, bytes, recv_within, topic};

#[tokio::test]
async fn a_message_published_after_subscribe_reaches_the_subscriber_once() {
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let mut b = backend.node().await;
        let t = topic("room.r1");
        a.bus.subscribe(&t).await.expect("subscribe");
        b.bus.publish(&t, bytes("hello")).await.expect("publish");
        let got = recv_within(&mut a.inbox, DELIVERY).await;
        let got = got.unwrap_or_else(|| panic!("{name}: not delivered"));
        assert_eq!(&*got.topic, t, "{name}");
        assert_eq!(&got.payload[..], b"hello", "{name}");
        assert!(
            recv_within(&mut a.inbox, QUIET).await.is_none(),
            "{name}: delivered twice"
        );
        assert!(
            b.inbox.try_recv().is_err(),
            "{name}: the unsubscribed publisher got it"
        );
    }
}

#[tokio::test]
async fn every_subscribed_node_gets_its_own_copy() {
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let mut c = backend.node().await;
        let b = backend.node().await;
        let t = topic("presence");
        a.bus.subscribe(&t).await.expect("subscribe a");
        c.bus.subscribe(&t).await.expect("subscribe c");
        b.bus.publish(&t, bytes("x")).await.expect("publish");
        for inbox in [&mut a.inbox, &mut c.inbox] {
            let got = recv_within(inbox, DELIVERY).await;
            assert_eq!(got.map(|d| d.payload), Some(bytes("x")), "{name}");
            assert!(
                recv_within(inbox, QUIET).await.is_none(),
                "{name}: delivered twice"
            );
        }
    }
}

#[tokio::test]
async fn nothing_arrives_after_unsubscribe_returned() {
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let b = backend.node().await;
        let (gone, kept) = (topic("room.gone"), topic("room.kept"));
        a.bus.subscribe(&gone).await.expect("subscribe");
        a.bus.subscribe(&kept).await.expect("subscribe");
        b.bus
            .publish(&gone, bytes("before"))
            .await
            .expect("publish");
        let got = recv_within(&mut a.inbox, DELIVERY).await;
        assert_eq!(got.map(|d| d.payload), Some(bytes("before")), "{name}");
        a.bus.unsubscribe(&gone).await.expect("unsubscribe");
        b.bus.publish(&gone, bytes("after")).await.expect("publish");
        // A marker on a topic still subscribed, sent after: once it is here, "after" had its chance.
        b.bus
            .publish(&kept, bytes("marker"))
            .await
            .expect("publish");
        let got = recv_within(&mut a.inbox, DELIVERY).await;
        let got = got.unwrap_or_else(|| panic!("{name}: marker not delivered"));
        assert_eq!(
            &*got.topic, kept,
            "{name}: {:?} arrived after unsubscribe",
            got.payload
        );
        assert!(recv_within(&mut a.inbox, QUIET).await.is_none(), "{name}");
        // Unsubscribing twice, or from a topic never subscribed, is not an error.
        a.bus.unsubscribe(&gone).await.expect("unsubscribe again");
        a.bus
            .unsubscribe(&topic("never"))
            .await
            .expect("unsubscribe unknown");
    }
}

#[tokio::test]
async fn topics_a_node_did_not_subscribe_are_not_delivered_to_it() {
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let b = backend.node().await;
        let (mine, other) = (topic("user.u1"), topic("user.u2"));
        a.bus.subscribe(&mine).await.expect("subscribe");
        b.bus
            .publish(&other, bytes("not for a"))
            .await
            .expect("publish");
        b.bus.publish(&mine, bytes("for a")).await.expect("publish");
        let got = recv_within(&mut a.inbox, DELIVERY).await;
        let got = got.unwrap_or_else(|| panic!("{name}: not delivered"));
        assert_eq!(&got.payload[..], b"for a", "{name}");
        assert!(recv_within(&mut a.inbox, QUIET).await.is_none(), "{name}");
    }
}

#[tokio::test]
async fn many_messages_from_one_publisher_all_arrive_in_order_on_a_healthy_bus() {
    const N: usize = 2000;
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let b = backend.node().await;
        let t = topic("room.busy");
        a.bus.subscribe(&t).await.expect("subscribe");
        for i in 0..N {
            b.bus
                .publish(&t, bytes(&i.to_string()))
                .await
                .expect("publish");
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        for i in 0..N {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let got = recv_within(&mut a.inbox, left).await;
            let got = got.unwrap_or_else(|| panic!("{name}: only {i} of {N} arrived"));
            assert_eq!(got.payload, bytes(&i.to_string()), "{name}: out of order");
        }
        assert_eq!(b.bus.dropped() + a.bus.dropped(), 0, "{name}");
    }
}

#[tokio::test]
async fn subscribing_twice_delivers_once_and_one_unsubscribe_ends_it() {
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let b = backend.node().await;
        let t = topic("room.twice");
        a.bus.subscribe(&t).await.expect("subscribe");
        a.bus.subscribe(&t).await.expect("subscribe again");
        b.bus.publish(&t, bytes("one")).await.expect("publish");
        assert!(
            recv_within(&mut a.inbox, DELIVERY).await.is_some(),
            "{name}"
        );
        assert!(
            recv_within(&mut a.inbox, QUIET).await.is_none(),
            "{name}: delivered twice"
        );
        a.bus.unsubscribe(&t).await.expect("unsubscribe");
        b.bus.publish(&t, bytes("two")).await.expect("publish");
        assert!(recv_within(&mut a.inbox, QUIET).await.is_none(), "{name}");
    }
}

#[tokio::test]
async fn topics_outside_the_alphabet_are_refused() {
    for backend in Backend::all() {
        let name = backend.name();
        let a = backend.node().await;
        for bad in ["", "room.*", "room.>", "room..x", "a b", "room.x\n"] {
            assert!(
                matches!(
                    a.bus.publish(bad, bytes("x")).await,
                    Err(BusError::Topic(_))
                ),
                "{name}: {bad:?}"
            );
            assert!(
                matches!(a.bus.subscribe(bad).await, Err(BusError::Topic(_))),
                "{name}: {bad:?}"
            );
        }
    }
}

#[tokio::test]
async fn describe_names_the_back_end() {
    for backend in Backend::all() {
        let a = backend.node().await;
        let described = a.bus.describe();
        assert!(described.starts_with(backend.name()), "{described}");
    }
}

#[tokio::test]
async fn an_unknown_or_unreachable_bus_url_is_an_error_not_a_hang() {
    assert!(matches!(
        confab_bus::connect("kafka://x").await,
        Err(BusError::Config(_))
    ));
    let port = crate::servers::free_port();
    let started = std::time::Instant::now();
    let nats = confab_bus::connect(&format!("nats://127.0.0.1:{port}")).await;
    assert!(matches!(nats, Err(BusError::Unavailable(_))));
    let redis = confab_bus::connect(&format!("redis://127.0.0.1:{port}")).await;
    assert!(matches!(redis, Err(BusError::Unavailable(_))));
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_full_inbox_drops_and_counts_and_never_blocks_the_bus() {
    // One more than the inbox holds, published without reading the inbox.
    let n = confab_bus::INBOX + 100;
    for backend in Backend::all() {
        let name = backend.name();
        let mut a = backend.node().await;
        let b = backend.node().await;
        let t = topic("room.flood");
        a.bus.subscribe(&t).await.expect("subscribe");
        let started = std::time::Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(512) {
            let sends = chunk
                .iter()
                .map(|i| b.bus.publish(&t, bytes(&i.to_string())));
            for sent in futures_util::future::join_all(sends).await {
                sent.expect("publish");
            }
        }
        while a.bus.dropped() == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{name}: nothing dropped"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut held = 0;
        while recv_within(&mut a.inbox, QUIET).await.is_some() {
            held += 1;
        }
        assert!(held <= confab_bus::INBOX, "{name}: {held} held");
        // Drained, the node receives again.
        b.bus.publish(&t, bytes("after")).await.expect("publish");
        let got = recv_within(&mut a.inbox, DELIVERY).await;
        assert_eq!(got.map(|d| d.payload), Some(bytes("after")), "{name}");
        println!(
            "{name}: flood of {n} took {:?}, {} dropped",
            started.elapsed(),
            a.bus.dropped()
        );
    }
}
