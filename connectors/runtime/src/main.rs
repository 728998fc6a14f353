//! `relais-connector`: run a connector next to a partner's software, see its status, inspect
//! and replay what the hub refused.

use clap::{Parser, Subcommand};
use relais_connector::Connector;
use relais_connector::config::ConnectorConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "relais-connector", version, about = "Relais connector runtime")]
struct Cli {
    /// The connector's profile.
    #[arg(
        long,
        env = "RELAIS_CONNECTOR_CONFIG",
        global = true,
        default_value = "partner.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run: read the partner's system, send the outbox, follow the feed.
    Run,
    /// The cursor and its lag behind the hub, the outbox size, the dead-letter count.
    Status,
    /// Writes the hub refused, with its reason.
    #[command(subcommand)]
    Dlq(Dlq),
}

#[derive(Subcommand)]
enum Dlq {
    List,
    /// Put dead letters back in the outbox (after the cause was fixed).
    Replay {
        #[arg(long, conflicts_with = "all")]
        seq: Option<i64>,
        #[arg(long)]
        all: bool,
    },
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let connector = Connector::open(ConnectorConfig::load(&cli.config)?).await?;
    match cli.command {
        Command::Run => connector.run().await,
        Command::Status => {
            let s = connector.status().await?;
            match s.head {
                Some(head) => println!(
                    "cursor {} of {head} (lag {})",
                    s.cursor,
                    head.saturating_sub(s.cursor)
                ),
                None => println!("cursor {} (hub out of reach)", s.cursor),
            }
            println!(
                "outbox {} waiting, dead letters {}, local copies {}",
                s.outbox, s.dead_letters, s.copies
            );
            Ok(())
        }
        Command::Dlq(Dlq::List) => {
            for d in connector.state.dead_letters().await? {
                println!(
                    "#{:<6} {:<18} {:<40} {}  ({})",
                    d.seq,
                    d.code,
                    d.write.describe(),
                    d.reason,
                    d.source
                );
            }
            for (target, _, reason, attempts) in connector.state.outbound_failures().await? {
                println!("delivery to {target} failed after {attempts} attempts: {reason}");
            }
            Ok(())
        }
        Command::Dlq(Dlq::Replay { seq, all }) => {
            anyhow::ensure!(seq.is_some() || all, "say --seq N or --all");
            let n = connector.state.replay(seq).await?;
            println!("{n} write(s) back in the outbox");
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
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
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
