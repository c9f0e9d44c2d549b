//! SQLite back end (placeholder until written).
