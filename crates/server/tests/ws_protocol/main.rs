//! Tests of the whole WebSocket protocol (PROTOCOL.md, "WebSocket: `GET /v1/ws`", and the
//! choices of docs/protocol.md): every client frame, every unasked server frame, every error
//! row and every close code, against a real node on 127.0.0.1:0 driven by the typed client.

#[path = "../it/helpers.rs"]
mod helpers;

mod util;

mod auth;
mod edits;
mod failures;
mod limits;
mod malformed;
mod membership;
mod messages;
mod origin;
mod signals;
mod sync_history;
