//! The confab wire protocol, v1: the JSON objects and frames every client sees (serde only).

pub mod codes;
pub mod frames;
pub mod objects;

pub use codes::{CloseCode, ErrorCode};
pub use frames::{ClientFrame, ClientRequest, FrameError, Presence, ServerFrame};
pub use objects::{Event, EventKind, Limits, Room, UserRef, Visibility};
