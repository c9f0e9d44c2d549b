//! For unit tests: a real SQLite store in a fresh directory with one user and their room.

use std::sync::Arc;

use confab_domain::text::{RoomName, UserName};
use confab_protocol::{UserRef, Visibility};
use confab_store::{Change, Store, StoreOptions};

/// The store, user `ada`, and the creation of her public room `r`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub user: UserRef,
    pub room: Change,
}

/// A fresh store with `ada` and her room.
pub async fn store_with_room() -> Fixture {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = confab_store::connect(&url, &StoreOptions::default())
        .await
        .expect("store");
    let user = store
        .create_user(&UserName::parse("ada").expect("name"), "x")
        .await
        .expect("user");
    let name = RoomName::parse("r").expect("name");
    let room = store
        .create_room(&user, &name, Visibility::Public)
        .await
        .expect("room");
    Fixture {
        dir,
        store,
        user,
        room,
    }
}
