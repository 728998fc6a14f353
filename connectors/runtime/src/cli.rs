//! `relais-connector`: run a connector next to a partner's software, see its status, inspect
//! and replay what the hub refused.

use crate::Connector;
use crate::config::ConnectorConfig;
use clap::{Parser, Subcommand};
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
    /// The writes the hub refused and that wait for a decision (replay or discard): number,
    /// file and line they came from, what they were, the hub's reason.
    List {
        /// List the discarded ones instead, with who decided why.
        #[arg(long)]
        discarded: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back in the outbox (after the cause was fixed at the hub or in the
    /// partner's data).
    Replay {
        /// The dead letter's number (`dlq list`).
        #[arg(long, conflicts_with = "all")]
        seq: Option<i64>,
        /// Every dead letter waiting.
        #[arg(long)]
        all: bool,
    },
    /// Set a dead letter aside for good (a test row, a person who left): kept with the
    /// reason, never replayed.
    Discard {
        /// The dead letter's number (`dlq list`).
        #[arg(long)]
        seq: i64,
        /// Why, for whoever reads the list later.
        #[arg(long)]
        reason: String,
    },
}

/// A time of the connector's state (microseconds) as the partner's staff read it.
fn local_time(micros: i64) -> String {
    relais_hub::domain::paris(relais_hub::domain::Timestamp::from_micros(micros))
}

/// Where a dead letter came from: `registre.csv, ligne 4`.
fn origin(d: &relais_connector_sdk::state::DeadLetter) -> String {
    let file = d
        .source
        .rsplit_once('#')
        .map_or(d.source.as_str(), |(name, _)| name);
    match d.line {
        Some(l) => format!("{file}, ligne {l}"),
        None => file.to_string(),
    }
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
        Command::Dlq(Dlq::List { discarded, json }) => {
            let letters = if discarded {
                connector.state.discarded().await?
            } else {
                connector.state.dead_letters().await?
            };
            if json {
                let rows: Vec<serde_json::Value> = letters
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "seq": d.seq,
                            "source": d.source.rsplit_once('#').map_or(d.source.as_str(), |(name, _)| name),
                            "line": d.line,
                            "write": d.write.describe(),
                            "code": d.code,
                            "reason": d.reason,
                            "failed_at": relais_hub::domain::Timestamp::from_micros(d.failed_at).to_string(),
                            "discarded_at": d.discarded.as_ref().map(|(at, _)| relais_hub::domain::Timestamp::from_micros(*at).to_string()),
                            "discard_reason": d.discarded.as_ref().map(|(_, why)| why),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            if letters.is_empty() {
                println!(
                    "{}",
                    if discarded {
                        "no discarded write"
                    } else {
                        "no refused write waiting"
                    }
                );
            }
            for d in &letters {
                println!(
                    "#{}  {}  {}  ({})",
                    d.seq,
                    local_time(d.failed_at),
                    d.write.describe_fr(),
                    origin(d)
                );
                println!("    {}: {}", d.code, d.reason);
                if let Some((at, why)) = &d.discarded {
                    println!("    discarded {}: {why}", local_time(*at));
                }
            }
            if !discarded {
                for (target, _, reason, attempts) in connector.state.outbound_failures().await? {
                    println!("delivery to {target} failed after {attempts} attempts: {reason}");
                }
            }
            Ok(())
        }
        Command::Dlq(Dlq::Discard { seq, reason }) => {
            anyhow::ensure!(
                !reason.trim().is_empty(),
                "say why with --reason (it is kept with the write)"
            );
            if connector.state.discard(seq, reason.trim()).await? {
                println!("#{seq} discarded; `dlq list --discarded` shows it with the reason");
                Ok(())
            } else {
                anyhow::bail!("no dead letter #{seq} waiting (see `relais-connector dlq list`)")
            }
        }
        Command::Dlq(Dlq::Replay { seq, all }) => {
            anyhow::ensure!(seq.is_some() || all, "say --seq N or --all");
            let n = connector.state.replay(seq).await?;
            if let (Some(seq), 0) = (seq, n) {
                anyhow::bail!(
                    "no dead letter #{seq} waiting (see `relais-connector dlq list`; a discarded one stays aside)"
                );
            }
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

/// The `relais-connector` program: parses the command line, runs it, prints its error.
pub fn main() -> std::process::ExitCode {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_and_option_is_described() {
        let missing = relais_hub::cli::undescribed(&super::Cli::command());
        assert!(missing.is_empty(), "without help:\n{}", missing.join("\n"));
    }
}
