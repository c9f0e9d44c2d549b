//! Fresh PostgreSQL databases for one test, created on the server `CONFAB_TEST_POSTGRES_URL`
//! names and dropped when the test ends, even by a panic.

use std::io::Write;

use rand::RngExt;
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};

/// The environment variable naming the test server.
pub const VAR: &str = "CONFAB_TEST_POSTGRES_URL";

/// The URL of the test server's database, if set.
pub fn server_url() -> Option<String> {
    std::env::var(VAR).ok().filter(|u| !u.trim().is_empty())
}

/// Tells, outside the harness's output capture, that a PostgreSQL test did not run.
pub fn say_skipped(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "postgres test `{test}` skipped: {VAR} is not set \
         (e.g. {VAR}=postgres://postgres@127.0.0.1:5432/test)"
    );
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{name}{query}", &base[..host_end])
}

/// Databases that exist for as long as this value does.
pub struct Databases {
    server: String,
    names: Vec<String>,
}

impl Databases {
    /// Creates `n` empty databases named `confab_t_<random>`.
    pub async fn create(n: usize) -> Databases {
        let server = server_url().expect("CONFAB_TEST_POSTGRES_URL is set");
        let mut admin = PgConnection::connect(&server)
            .await
            .expect("the test server accepts connections");
        let mut names = Vec::new();
        for _ in 0..n {
            let suffix: u64 = rand::rng().random();
            let name = format!("confab_t_{suffix:016x}");
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .expect("a test database is created");
            names.push(name);
        }
        let _ = admin.close().await;
        Databases { server, names }
    }

    /// The URL of each database, shard 0 first.
    pub fn urls(&self) -> Vec<String> {
        self.names
            .iter()
            .map(|n| with_database(&self.server, n))
            .collect()
    }

    /// The store URL: the databases' URLs joined by commas.
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// Runs `sql` on the server, outside any test database.
    pub async fn admin(&self, sql: String) {
        let mut admin = PgConnection::connect(&self.server)
            .await
            .expect("the test server accepts connections");
        sqlx::query(AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("the admin statement runs");
        let _ = admin.close().await;
    }

    /// The name of database `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        let server = self.server.clone();
        let names = std::mem::take(&mut self.names);
        // Drop runs inside the test's runtime: use a thread with its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let Ok(mut admin) = PgConnection::connect(&server).await else {
                    return;
                };
                for name in names {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await {
                        let _ = writeln!(std::io::stderr(), "could not drop {name}: {e}");
                    }
                }
                let _ = admin.close().await;
            });
        });
        let _ = dropper.join();
    }
}

#[test]
fn a_database_name_replaces_the_one_in_the_url() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://h:1/test?sslmode=disable", "x"),
        "postgres://h:1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
}
