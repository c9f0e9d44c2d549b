//! A confab chat node: the HTTP API, the WebSocket gateway, the rooms fan-out, auth and metrics.
//!
//! `App::build(config)` opens the store, bus and cache the configuration names and binds the
//! listener; `App::run_until_stopped(shutdown)` serves until the shutdown future completes,
//! then drains: sessions are told to reconnect, the store is flushed.

pub mod actions;
mod api;
mod app;
pub mod auth;
mod bus_msg;
pub mod config;
pub mod error;
mod events;
#[cfg(test)]
mod fixture;
mod gateway;
mod hub;
pub mod metrics;
mod state;
mod web;

pub use app::App;
pub use config::Config;
