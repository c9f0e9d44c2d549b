//! Presence: a user is online while any live node has a session of theirs.

use std::time::{Duration, Instant};

use crate::{Backend, redis_node, unique};

#[tokio::test]
async fn a_user_is_online_while_either_node_has_a_session() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let (na, nb) = (unique("node"), unique("node"));
        let (u, v) = (unique("user"), unique("user"));
        let both = [u.clone(), v.clone()];
        assert!(a.online(&both).await.expect("cache").is_empty(), "{name}");
        assert!(
            a.session_opened(&u, &na).await.expect("cache"),
            "{name}: first session comes online"
        );
        assert!(
            !b.session_opened(&u, &nb).await.expect("cache"),
            "{name}: second node's session"
        );
        for node in [a, b] {
            assert_eq!(
                node.online(&both).await.expect("cache"),
                vec![u.clone()],
                "{name}"
            );
        }
        assert!(
            !a.session_closed(&u, &na).await.expect("cache"),
            "{name}: still on b"
        );
        assert_eq!(
            a.online(&both).await.expect("cache"),
            vec![u.clone()],
            "{name}"
        );
        assert!(
            b.session_closed(&u, &nb).await.expect("cache"),
            "{name}: last session goes offline"
        );
        for node in [a, b] {
            assert!(
                node.online(&both).await.expect("cache").is_empty(),
                "{name}"
            );
        }
        // And back again.
        assert!(
            b.session_opened(&u, &nb).await.expect("cache"),
            "{name}: online again"
        );
        assert!(b.session_closed(&u, &nb).await.expect("cache"), "{name}");
    }
}

#[tokio::test]
async fn several_sessions_on_one_node_count_one_by_one() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(1).await;
        let a = &nodes[0];
        let (n, u) = (unique("node"), unique("user"));
        assert!(a.session_opened(&u, &n).await.expect("cache"), "{name}");
        assert!(!a.session_opened(&u, &n).await.expect("cache"), "{name}");
        assert!(!a.session_opened(&u, &n).await.expect("cache"), "{name}");
        assert!(!a.session_closed(&u, &n).await.expect("cache"), "{name}");
        assert!(!a.session_closed(&u, &n).await.expect("cache"), "{name}");
        assert_eq!(
            a.online(std::slice::from_ref(&u)).await.expect("cache"),
            vec![u.clone()],
            "{name}"
        );
        assert!(a.session_closed(&u, &n).await.expect("cache"), "{name}");
        // A close without an open is not an error and changes nothing.
        assert!(!a.session_closed(&u, &n).await.expect("cache"), "{name}");
        assert!(a.online(&[u]).await.expect("cache").is_empty(), "{name}");
    }
}

#[tokio::test]
async fn online_answers_for_many_users_in_the_order_asked() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let users: Vec<String> = (0..1200).map(|i| unique(&format!("user{i}"))).collect();
        let (na, nb) = (unique("node"), unique("node"));
        let mut expected = Vec::new();
        for (i, u) in users.iter().enumerate() {
            if i % 3 == 0 {
                nodes[i % 2]
                    .session_opened(u, if i % 2 == 0 { &na } else { &nb })
                    .await
                    .expect("cache");
                expected.push(u.clone());
            }
        }
        assert_eq!(
            nodes[0].online(&users).await.expect("cache"),
            expected,
            "{name}"
        );
        assert!(
            nodes[1].online(&[]).await.expect("cache").is_empty(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_node_whose_heartbeat_stops_no_longer_holds_its_users_online() {
    let Ok(url) = std::env::var("CONFAB_TEST_REDIS_URL") else {
        println!("skipped: presence expiry on redis (CONFAB_TEST_REDIS_URL is not set)");
        println!("skipped: presence expiry on memory (an in-process cache dies with its node)");
        return;
    };
    println!("skipped: presence expiry on memory (an in-process cache dies with its node)");
    let ttl = Duration::from_millis(1000);
    let (a, b) = (redis_node(&url, ttl).await, redis_node(&url, ttl).await);
    let (na, nb) = (unique("node"), unique("node"));
    let (u, v) = (unique("user"), unique("user"));
    use confab_cache::Cache;
    assert!(a.session_opened(&u, &na).await.expect("cache"));
    assert!(a.session_opened(&v, &na).await.expect("cache"));
    assert!(!b.session_opened(&v, &nb).await.expect("cache"));
    // A live node's heartbeat keeps its users online well past the TTL.
    tokio::time::sleep(ttl * 5 / 2).await;
    let both = [u.clone(), v.clone()];
    assert_eq!(
        b.online(&both).await.expect("cache"),
        both.to_vec(),
        "a live node's users expired"
    );

    drop(a); // node a dies: its heartbeat stops.
    let died = Instant::now();
    loop {
        let online = b.online(&both).await.expect("cache");
        if online == vec![v.clone()] {
            break;
        }
        assert!(
            died.elapsed() < ttl * 5,
            "a dead node's user still online after {:?}: {online:?}",
            died.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "redis: a dead node's user went offline {:?} after it died",
        died.elapsed()
    );
    // The user had no live session left, so a new one brings them online.
    assert!(b.session_opened(&u, &nb).await.expect("cache"));
    // v is still b's; closing it takes v offline even though the dead node's field lingered.
    assert!(b.session_closed(&v, &nb).await.expect("cache"));
}
