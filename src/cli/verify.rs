//! `odelt verify`: checks an export folder against its manifest (`odelt_export::verify`).

use std::path::PathBuf;

/// Check an export: every file present, every weight reference inside its file, and every
/// length's content hash.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Export folder written by `odelt export` (and `odelt engines build`).
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// Only the cheap checks (files, sizes, references): skip re-hashing the graphs and the
    /// weights they use.
    #[arg(long)]
    pub no_hash: bool,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let verified = odelt_export::verify(&args.engines, !args.no_hash)?;
    let hashed = if args.no_hash {
        "content hashes not checked (--no-hash)".to_string()
    } else {
        format!(
            "content hashes match for lengths {}",
            odelt_format::join(&verified.hashed)
        )
    };
    println!(
        "{}: {} file(s) complete, {hashed}",
        args.engines.display(),
        verified.files.len()
    );
    Ok(())
}
