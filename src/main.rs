use clap::Parser;
use odelt::cli::Cli;
use odelt::error::{exit_code, one_line};

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = cli.command.run() {
        eprintln!("error: {}", one_line(&err));
        std::process::exit(exit_code(&err));
    }
}
