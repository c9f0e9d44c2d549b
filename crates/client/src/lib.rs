//! The typed confab client: the HTTP API and WebSocket sessions of PROTOCOL.md, and the
//! receiver-side delivery check. Used by the server's integration tests, the load generator and
//! the terminal client.

pub mod connect;
pub mod error;
pub mod frames;
pub mod http;
pub mod tracker;
pub mod ws;

pub use confab_protocol as protocol;
pub use connect::{ConnectAuth, ConnectOptions, Ready};
pub use error::{ApiErrorBody, ClientError, Result};
pub use frames::{Ack, build, decode, frame_ref, frame_type, with_ref};
pub use http::{HttpClient, MessagesPage, Method, Published, RawResponse, Session};
pub use tracker::{SeqViolation, SessionTracker};
pub use ws::{WsClient, WsReceiver, WsSender};

#[cfg(test)]
mod stub_tests;
