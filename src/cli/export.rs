//! `odelt export` (owned by the exporter work; see export/).

/// Export arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {}

pub fn run(_args: ExportArgs) -> anyhow::Result<()> {
    anyhow::bail!("odelt export is not built yet")
}
