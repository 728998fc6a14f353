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
    let config = ConnectorConfig::load(&cli.config)?;
    if let Command::Run = cli.command {
        let (telemetry, spans) = relais_hub::telemetry::Telemetry::export(&config.telemetry)?;
        init_logging(spans);
        let connector = Connector::open(config).await?;
        if relais_connector_sdk::telemetry::enabled() {
            let partner = relais_hub::pki::Bundle::read(&connector.config.identity)?
                .common_name()
                .unwrap_or_default();
            relais_connector_sdk::telemetry::register(&partner);
        }
        let ran = connector.run().await;
        telemetry.flush().await;
        return ran;
    }
    init_logging(None);
    let connector = Connector::open(config).await?;
    match cli.command {
        Command::Run => unreachable!("handled above"),
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

/// Logs to stderr (`RUST_LOG`, `info` by default); with `spans`, the send spans are also
/// exported.
fn init_logging(spans: Option<relais_hub::telemetry::SpanLayer>) {
    relais_hub::cli::init_logging("info", spans);
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
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
