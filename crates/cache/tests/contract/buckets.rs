//! Rate-limit buckets: shared by every node, with `TokenBucket`'s arithmetic.

use confab_cache::Rate;
use confab_domain::limits::TokenBucket;

use crate::{Backend, unique};

/// A clock far from zero, as real milliseconds since the epoch are.
const T0: u64 = 1_790_000_000_000;

#[tokio::test]
async fn a_bucket_is_shared_by_every_node() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let key = unique("rate");
        let rate = Rate { per_s: 1, burst: 3 };
        for i in 0..3 {
            let got = nodes[i % 2]
                .take_token(&key, rate, T0)
                .await
                .expect("cache");
            assert_eq!(got, Ok(()), "{name}: take {i}");
        }
        // Three taken between the two nodes: the burst is spent for both.
        for node in &nodes {
            assert_eq!(
                node.take_token(&key, rate, T0).await.expect("cache"),
                Err(1000),
                "{name}"
            );
        }
    }
}

#[tokio::test]
async fn retry_after_is_the_time_until_the_next_token() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let key = unique("rate");
        let rate = Rate {
            per_s: 10,
            burst: 3,
        };
        for _ in 0..3 {
            assert_eq!(
                a.take_token(&key, rate, T0).await.expect("cache"),
                Ok(()),
                "{name}"
            );
        }
        assert_eq!(
            b.take_token(&key, rate, T0).await.expect("cache"),
            Err(100),
            "{name}"
        );
        assert_eq!(
            a.take_token(&key, rate, T0 + 50).await.expect("cache"),
            Err(50),
            "{name}"
        );
        assert_eq!(
            b.take_token(&key, rate, T0 + 100).await.expect("cache"),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            a.take_token(&key, rate, T0 + 100).await.expect("cache"),
            Err(100),
            "{name}"
        );
        // A long idle spell fills the bucket to its burst, not beyond.
        for _ in 0..3 {
            let got = b.take_token(&key, rate, T0 + 60_000).await.expect("cache");
            assert_eq!(got, Ok(()), "{name}");
        }
        assert!(
            a.take_token(&key, rate, T0 + 60_000)
                .await
                .expect("cache")
                .is_err(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_bucket_with_no_rate_never_refills_and_keys_do_not_share() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(1).await;
        let (key, other) = (unique("rate"), unique("rate"));
        let rate = Rate { per_s: 0, burst: 1 };
        assert_eq!(
            nodes[0].take_token(&key, rate, T0).await.expect("cache"),
            Ok(()),
            "{name}"
        );
        let later = nodes[0]
            .take_token(&key, rate, T0 + 3_600_000)
            .await
            .expect("cache");
        assert_eq!(later, Err(u64::MAX), "{name}");
        assert_eq!(
            nodes[0].take_token(&other, rate, T0).await.expect("cache"),
            Ok(()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn two_nodes_together_answer_exactly_as_one_token_bucket_would() {
    for backend in Backend::all() {
        let name = backend.name();
        let nodes = backend.nodes(2).await;
        let key = unique("rate");
        let rate = Rate { per_s: 7, burst: 5 };
        let mut model = TokenBucket::full(rate.burst, T0);
        // A fixed pseudo-random walk: which node asks, and how much later.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = T0;
        for step in 0..300 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            now += (seed >> 33) % 250;
            let node = &nodes[((seed >> 20) & 1) as usize];
            let want = model.take(now, rate.per_s, rate.burst);
            let got = node.take_token(&key, rate, now).await.expect("cache");
            assert_eq!(got, want, "{name}: step {step} at +{} ms", now - T0);
        }
    }
}
