//! `odelt sample` (owned by the runtime work; see runtime/).

/// Sample arguments.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {}

pub fn run(_args: SampleArgs) -> anyhow::Result<()> {
    anyhow::bail!("odelt sample is not built yet")
}
