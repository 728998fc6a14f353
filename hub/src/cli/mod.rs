//! The `relais` command: `serve` runs the hub, `admin` administers a running hub over gRPC with
//! the administrator certificate, `client` acts as a partner from a shell.

mod admin;
mod client;
pub mod connect;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "relais",
    version,
    about = "Relais: the territory's data-sharing hub"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the hub (creates the data directory, a development CA and the admin bundle on first start).
    Serve {
        /// Configuration file (TOML); see deploy/hub.example.toml. `RELAIS_*` variables override it.
        #[arg(long, env = "RELAIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Administer a running hub.
    Admin(admin::AdminArgs),
    /// Act as a partner: link persons, raise flags, move cases, follow the feed.
    Client(client::ClientArgs),
}

/// The `relais` program: parses the command line, sets up logging and the runtime, runs the
/// command and prints its error, if any, for a person to read.
pub fn main() -> std::process::ExitCode {
    use tracing_subscriber::EnvFilter;
    let cli = Cli::parse();
    // RUST_LOG wins; otherwise the configured filter applies.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let configured = crate::Config::load(None)
            .map(|c| c.log.filter)
            .unwrap_or_else(|_| "info".into());
        EnvFilter::new(configured)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error as a person reads it: a gRPC status with its code and field violations, or the
/// chain of causes.
fn describe(e: &anyhow::Error) -> String {
    use tonic_types::StatusExt;
    if let Some(status) = e.downcast_ref::<tonic::Status>() {
        let mut text = format!("{:?}: {}", status.code(), status.message());
        if let Some(bad) = status.get_details_bad_request() {
            for v in bad.field_violations {
                text.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
        return text;
    }
    format!("{e:#}")
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => serve(config).await,
        Command::Admin(args) => admin::run(args).await,
        Command::Client(args) => client::run(args).await,
    }
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = crate::Config::load(config.as_deref())?;
    let mut hub = crate::start(config).await?;
    let admin = hub.tls.admin_bundle.display().to_string();
    if hub.first_start {
        println!(
            "relais: first start: development CA in {}, administrator identity in {admin}",
            hub.tls.ca_cert.display()
        );
    }
    println!(
        "relais: hub listening on {} (mTLS); administer it with `relais admin --hub {} --identity {admin} partner list`",
        hub.url(),
        hub.url()
    );
    if let Some(stop) = hub.take_shutdown() {
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("shutting down: finishing calls in flight");
                let _ = stop.send(());
            }
        });
    }
    hub.wait().await
}
