//! The Store contract, written once against `Arc<dyn Store>` and run against every back end.
//!
//! Each contract test is an `async fn NAME(b: Backend)`; `contract_tests!` turns it into one
//! test per back end: `sqlite::NAME` (a fresh temporary directory), `postgres::NAME` (a fresh
//! database) and `postgres_two_shards::NAME` (two fresh databases). The PostgreSQL variants run
//! when `CONFAB_TEST_POSTGRES_URL` names a server (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`) and otherwise say that they skipped.

/// Generates, for each contract test named, one `#[tokio::test]` per back end.
macro_rules! contract_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(crate::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(b) = crate::Backend::postgres(1, stringify!($name)) {
                        super::$name(b).await;
                    }
                }
            )+
        }
        mod postgres_two_shards {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(b) = crate::Backend::postgres(2, stringify!($name)) {
                        super::$name(b).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use contract_tests;

mod bench;
mod concurrency;
mod dms;
mod history;
mod messages;
mod pg;
mod pg_cluster;
mod pg_kept;
mod pg_outage;
mod pg_plans;
mod props;
mod rooms;
mod users;

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use confab_domain::RuleError;
use confab_domain::text::{RoomName, UserName};
use confab_protocol::{Room, UserRef, Visibility};
use confab_store::{Append, Appended, Store, StoreError, StoreOptions, StoreResult};

/// Which back end a contract test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// PostgreSQL with this many shards, each a fresh database.
    Postgres {
        shards: usize,
    },
}

impl Backend {
    /// PostgreSQL with `shards` shards if `CONFAB_TEST_POSTGRES_URL` is set; otherwise says,
    /// past the test harness's capture, that `test` skipped and why.
    pub fn postgres(shards: usize, test: &str) -> Option<Backend> {
        if pg::server_url().is_some() {
            return Some(Backend::Postgres { shards });
        }
        pg::say_skipped(test);
        None
    }
}

/// A store and what it takes to open it again.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// Dropped last: drops the test's databases.
    _databases: Option<pg::Databases>,
}

impl Fixture {
    pub async fn open(backend: Backend) -> Fixture {
        let (url, dir, databases) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("data/confab.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres { shards } => {
                let databases = pg::Databases::create(shards).await;
                (databases.url_list(), None, Some(databases))
            }
        };
        let store = confab_store::connect(&url, &StoreOptions::default())
            .await
            .expect("the store opens");
        Fixture {
            store,
            url,
            _dir: dir,
            _databases: databases,
        }
    }

    /// The URL the store was opened with (PostgreSQL: the shards' list).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the store and opens the same data again.
    pub async fn reopen(&mut self) {
        self.store.close().await;
        self.store = confab_store::connect(&self.url, &StoreOptions::default())
            .await
            .expect("the store opens again");
    }

    pub async fn user(&self, name: &str) -> UserRef {
        let name = UserName::parse(name).expect("a valid name");
        self.store
            .create_user(&name, "hash")
            .await
            .expect("the user is created")
    }

    pub async fn room(&self, owner: &UserRef, name: &str, visibility: Visibility) -> Room {
        let name = RoomName::parse(name).expect("a valid room name");
        self.store
            .create_room(owner, &name, visibility)
            .await
            .expect("the room is created")
            .room
    }

    pub async fn say(&self, room: &Room, user: &UserRef, client_id: &str) -> Appended {
        self.store
            .append(
                &room.id,
                user,
                text(client_id, &format!("body of {client_id}")),
            )
            .await
            .expect("the message is stored")
    }

    /// Every event of a room, oldest first.
    pub async fn all_events(&self, room_id: &str) -> Vec<confab_protocol::Event> {
        self.store
            .events(room_id, confab_store::EventRange::After(0), 100_000)
            .await
            .expect("history reads")
            .events
    }
}

pub fn text(client_id: &str, body: &str) -> Append {
    Append::Text {
        client_id: client_id.to_owned(),
        body: body.to_owned(),
    }
}

/// The rule that refused `result`; panics on success or another error.
pub fn rule<T: Debug>(result: StoreResult<T>) -> RuleError {
    match result {
        Err(StoreError::Rule(e)) => e,
        other => panic!("expected a rule refusal, got {other:?}"),
    }
}

pub fn is_not_found<T: Debug>(result: StoreResult<T>) -> bool {
    matches!(rule(result), RuleError::NotFound(_))
}

pub fn is_forbidden<T: Debug>(result: StoreResult<T>) -> bool {
    matches!(rule(result), RuleError::Forbidden(_))
}

pub fn is_bad_request<T: Debug>(result: StoreResult<T>) -> bool {
    matches!(rule(result), RuleError::BadRequest(_))
}

/// Waits for `fut`, failing the test after 60 seconds.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("finished in time")
}

#[tokio::test]
async fn an_unknown_url_scheme_is_a_configuration_error() {
    let result = confab_store::connect("mysql://x", &StoreOptions::default()).await;
    assert!(matches!(result, Err(StoreError::Config(_))));
}

#[tokio::test]
async fn a_synchronous_setting_other_than_full_or_normal_is_a_configuration_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let bad = StoreOptions {
        sqlite_synchronous: "off".into(),
        ..StoreOptions::default()
    };
    assert!(matches!(
        confab_store::connect(&url, &bad).await,
        Err(StoreError::Config(_))
    ));
    let normal = StoreOptions {
        sqlite_synchronous: "normal".into(),
        ..StoreOptions::default()
    };
    let store = confab_store::connect(&url, &normal)
        .await
        .expect("normal is allowed");
    store.close().await;
}

#[tokio::test]
async fn a_memory_url_opens_a_private_store() {
    let store = confab_store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .expect("the store opens");
    let name = UserName::parse("ada").expect("a valid name");
    let ada = store.create_user(&name, "h").await.expect("created");
    assert_eq!(store.find_user("ada").await.expect("reads"), Some(ada));
    let other = confab_store::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .expect("the store opens");
    assert_eq!(other.find_user("ada").await.expect("reads"), None);
}
