//! Store errors: rule refusals the client may see, and failures it must not see the cause of.

use confab_domain::RuleError;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A membership or authorship rule refused the write; nothing was written.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(&'static str),
    /// The store cannot commit right now (busy, I/O, closed); nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A bad store URL or option.
    #[error("store configuration: {0}")]
    Config(String),
    /// Data that breaks the schema's promises.
    #[error("store corrupt: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}
