//! Integration tests of delivery and of the node's life: a real node on 127.0.0.1:0 with its
//! own data directory, driven over real HTTP and WebSocket connections by the typed client.

mod helpers;

mod delivery;
mod lifecycle;
mod recent;
