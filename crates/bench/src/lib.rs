//! confab's load generator (`confab bench`): scenarios, the driver that paces worker
//! connections (in this process or in `confab bench worker` children), the per-receiver
//! sequence checks, the report and plots, and the Socket.IO adapter that lets the same
//! generator measure a Socket.IO server.
//!
//! Every receiver checks each room's seqs (no gap, no repeat, in order) and records end-to-end
//! latency from the due time carried in each message body; senders follow a fixed schedule
//! and latency counts from when a message was due, not when it went out, so a stalled server
//! shows up as latency instead of as fewer samples (coordinated omission).

pub mod append;
pub mod cli;
pub mod cluster;
pub mod compare;
pub mod driver;
pub mod engines;
pub mod link;
pub mod node;
pub mod plot;
pub mod procstat;
pub mod report;
pub mod scenarios;
pub mod sending;
pub mod setup;
pub mod sio;
pub mod spec;
pub mod stats;
pub mod table;
pub mod user;
pub mod worker;

pub use cli::{BenchArgs, BenchCommand, Common};
pub use cluster::{Cluster, Engines};
pub use driver::{LoadOpts, LoadResult, StormHow, run_load};
pub use node::{External, Node, Spawned};
pub use report::RunReport;
pub use scenarios::Shape;
pub use spec::Dialect;

/// Runs `confab bench ...` on its own multi-threaded runtime.
pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::dispatch(args.command))
}
