//! `confab bench compare`: the same scenarios on confab, the floor and Socket.IO.

/// Flags of `confab bench compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {}

/// Runs the comparison.
pub async fn run(_args: CompareArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
