//! confab's domain: the rules of rooms, membership, sequencing and limits, as plain Rust with no I/O.
//!
//! Nothing here depends on tokio, a database or a web framework (Cargo enforces it): every
//! rule is a function of plain data and is tested without a server.

pub mod limits;
pub mod reorder;
pub mod rules;
pub mod text;

pub use rules::RuleError;
pub use text::TextError;
