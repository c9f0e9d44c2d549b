//! The Redis cache survives a Redis restart that loses every key: calls fail fast while it is
//! down, and presence comes back by itself from the nodes' heartbeats. The test owns its
//! redis-server (killed when the test ends) and runs only when `CONFAB_TEST_REDIS_URL` is set.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use confab_cache::{Cache, CacheError, Rate};

use crate::{redis_node, unique};

/// A redis-server on a loopback port that keeps nothing on disk; dropping it kills it.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let mut redis = Redis { port, child: None };
        redis.restart();
        redis
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        let program =
            std::env::var("CONFAB_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let port = self.port.to_string();
        let args = [
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        let child = Command::new(&program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server not listening after 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn redis_cache_fails_fast_while_down_and_restores_presence_after_a_restart() {
    if std::env::var("CONFAB_TEST_REDIS_URL").is_err() {
        println!("skipped: Redis cache restart test (CONFAB_TEST_REDIS_URL is not set)");
        return;
    }
    let mut server = Redis::start();
    let url = format!("redis://127.0.0.1:{}", server.port);
    let ttl = Duration::from_millis(1500);
    let (a, b) = (redis_node(&url, ttl).await, redis_node(&url, ttl).await);
    let (node, user, key) = (unique("node"), unique("user"), unique("rate"));
    let rate = Rate {
        per_s: 100,
        burst: 100,
    };
    assert!(a.session_opened(&user, &node).await.expect("cache"));
    assert_eq!(a.take_token(&key, rate, 0).await.expect("cache"), Ok(()));

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let got = a.take_token(&key, rate, 0).await;
        assert!(matches!(got, Err(CacheError::Unavailable(_))), "{got:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        let online = b.online(std::slice::from_ref(&user)).await;
        assert!(
            matches!(online, Err(CacheError::Unavailable(_))),
            "{online:?}"
        );
    }

    server.restart(); // empty: every key is gone
    let back = Instant::now();
    loop {
        if let Ok(online) = b.online(std::slice::from_ref(&user)).await
            && online == vec![user.clone()]
        {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "presence not restored 10 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "redis cache: presence restored {:?} after the restart",
        back.elapsed()
    );
    assert_eq!(
        a.take_token(&key, rate, 0).await.expect("cache is back"),
        Ok(())
    );
    assert!(a.session_closed(&user, &node).await.expect("cache"));
    assert!(b.online(&[user]).await.expect("cache").is_empty());
}
