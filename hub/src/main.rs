//! `relais`: the hub server, its admin CLI and a partner-side client.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = relais_hub::cli::Cli::parse();
    // RUST_LOG wins; otherwise the configured filter applies (read again by `serve`).
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let configured = relais_hub::Config::load(None)
            .map(|c| c.log.filter)
            .unwrap_or_else(|_| "info".into());
        EnvFilter::new(configured)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(relais_hub::cli::run(cli))
}
