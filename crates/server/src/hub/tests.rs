//! The hub against a real SQLite store and the in-process bus, with a session's outbox read
//! directly: reordering, gaps, and events the bus lost entirely.

use std::sync::Arc;
use std::time::Duration;

use confab_bus::Bus;
use confab_protocol::{ServerFrame, UserRef};
use confab_store::{Append, Store};

use super::{Hub, Out, Outbox, Session};
use crate::bus_msg::{self, BusMsg};

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    hub: Hub,
    user: UserRef,
    room: Arc<str>,
    rx: Arc<Outbox>,
}

async fn rig() -> Rig {
    let crate::fixture::Fixture {
        dir,
        store,
        user,
        room: change,
    } = crate::fixture::store_with_room().await;
    let (bus, inbox) = confab_bus::connect("memory://").await.expect("bus");
    let cache: Arc<dyn confab_cache::Cache> =
        Arc::new(confab_cache::memory::MemoryCache::default());
    let events = Arc::new(crate::events::RoomEvents::new(store.clone(), cache, 200));
    let hub = Hub::new(bus.clone(), store.clone(), events, 20);
    hub.run(inbox);
    let room: Arc<str> = Arc::from(change.room.id.as_str());
    let outbox = Arc::new(Outbox::new(64));
    let rx = outbox.clone();
    let tx = Arc::new(Session {
        id: 1,
        sid: Arc::from("s"),
        user: user.clone(),
        token_hash: Arc::from("h"),
        outbox: outbox.clone(),
    });
    hub.add_session(&tx).await;
    hub.attach_rooms(&tx, std::slice::from_ref(&room));
    let mut rig = Rig {
        _dir: dir,
        store,
        bus,
        hub,
        user,
        room,
        rx,
    };
    assert!(
        matches!(rig.next().await, Out::CatchUp { .. }),
        "a new session catches up once the room is live"
    );
    rig
}

impl Rig {
    async fn next(&mut self) -> Out {
        tokio::time::timeout(Duration::from_secs(5), self.rx.next())
            .await
            .expect("an item in time")
            .expect("open")
    }

    async fn next_seq(&mut self) -> u64 {
        match self.next().await {
            Out::Event(e) => e.seq,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Commits a message without publishing it: as if the bus lost it.
    async fn commit(&self, n: u32) -> (u64, String) {
        let a = Append::Text {
            client_id: format!("c{n}"),
            body: format!("m{n}"),
        };
        let e = self
            .store
            .append(&self.room, &self.user, a)
            .await
            .expect("append")
            .event;
        (e.seq, ServerFrame::Msg(e).to_json())
    }

    async fn publish(&self, seq: u64, frame: String) {
        let msg = BusMsg::Event {
            room: self.room.to_string(),
            seq,
            frame,
        };
        self.bus
            .publish(&bus_msg::room_topic(&self.room), msg.encode())
            .await
            .expect("publish");
    }
}

#[tokio::test]
async fn events_published_out_of_order_are_delivered_in_order() {
    let mut r = rig().await;
    let (s2, f2) = r.commit(2).await;
    let (s3, f3) = r.commit(3).await;
    r.publish(s3, f3).await;
    r.publish(s2, f2).await;
    assert_eq!((r.next_seq().await, r.next_seq().await), (2, 3));
}

#[tokio::test]
async fn a_gap_that_does_not_close_is_read_from_the_store() {
    let mut r = rig().await;
    r.commit(2).await;
    let (s3, f3) = r.commit(3).await;
    r.publish(s3, f3).await;
    assert_eq!((r.next_seq().await, r.next_seq().await), (2, 3));
}

#[tokio::test]
async fn newest_events_lost_on_the_bus_arrive_within_two_repair_ticks() {
    let mut r = rig().await;
    r.hub.start_repair(Duration::from_millis(50));
    r.commit(2).await;
    r.commit(3).await;
    assert_eq!((r.next_seq().await, r.next_seq().await), (2, 3));
    assert!(r.rx.try_next().is_none(), "each seq once");
}
