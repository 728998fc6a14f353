//! The `relais` command: `serve` runs the hub, `admin` administers a running hub over gRPC with
//! the administrator certificate, `client` acts as a partner from a shell.

mod admin;
mod client;
pub mod connect;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// `--json` was given: answers are printed as JSON for scripts.
static JSON: AtomicBool = AtomicBool::new(false);

fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Reads an identity bundle; when there is none at `path`, says where it was looked for and
/// what to give instead (`hint`).
fn read_identity(path: &std::path::Path, hint: &str) -> anyhow::Result<crate::pki::Bundle> {
    if !path.exists() {
        let here = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        anyhow::bail!(
            "no identity bundle at {} (from {here}): {hint}",
            path.display()
        );
    }
    crate::pki::Bundle::read(path)
}

/// Whether `--json` was given.
fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// With `--json`, prints the hub's answer as JSON (the protobuf mapping: RFC 3339 times, enum
/// names, the `.proto` field names, every field) and says so; without, does nothing.
fn json_shown<M: prost::Message + prost::Name>(answer: &M) -> bool {
    if !JSON.load(Ordering::Relaxed) {
        return false;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&relais_proto::json::to_json(answer)).unwrap_or_default()
    );
    true
}

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
        /// Only check the configuration (file and `RELAIS_*` variables) and print it, then exit.
        #[arg(long)]
        check: bool,
    },
    /// Administer a running hub.
    Admin(admin::AdminArgs),
    /// Act as a partner: link persons, raise flags, move cases, follow the feed.
    Client(client::ClientArgs),
}

/// The `relais` program: parses the command line, sets up logging and the runtime, runs the
/// command and prints its error, if any, for a person to read.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let result = rt.block_on(run(cli));
            // What is still running (a telemetry export to a collector that does not answer)
            // does not hold the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            result
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The log filter of the configuration read from the environment alone (commands other than
/// `serve` have no configuration file).
fn configured_filter() -> String {
    crate::Config::load(None)
        .map(|c| c.log.filter)
        .unwrap_or_else(|_| "info".into())
}

/// Logs to stderr, filtered by `RUST_LOG` or else `filter`; with `spans`, the call spans are
/// also exported (see `telemetry`), whatever the log filter. (The connector runtime too.)
pub fn init_logging(filter: &str, spans: Option<crate::telemetry::SpanLayer>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let _ = tracing_subscriber::registry()
        .with(spans)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                // Colours for a person at a terminal; plain text for journald, files and pipes
                // (and never when NO_COLOR is set).
                .with_ansi(colours(
                    std::io::IsTerminal::is_terminal(&std::io::stderr()),
                    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
                ))
                .with_filter(filter),
        )
        .try_init();
}

/// Whether logs carry ANSI colours: on a terminal, unless `NO_COLOR` is set.
fn colours(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
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
    // The chain of causes, each said once: transport errors repeat their cause in their own
    // message ("invalid peer certificate: X: invalid peer certificate: X").
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, check } => {
            let config = crate::Config::load(config.as_deref())?;
            if check {
                print!("{}", toml::to_string(&config)?);
                eprintln!("relais: the configuration is valid");
                return Ok(());
            }
            let (telemetry, spans) = crate::telemetry::Telemetry::start(&config.telemetry)?;
            init_logging(&config.log.filter, spans);
            let served = serve(config).await;
            telemetry.flush().await;
            served
        }
        Command::Admin(args) => {
            init_logging(&configured_filter(), None);
            admin::run(args).await
        }
        Command::Client(args) => {
            init_logging(&configured_filter(), None);
            client::run(args).await
        }
    }
}

async fn serve(config: crate::Config) -> anyhow::Result<()> {
    // Files the hub creates (database, keys, bundles) are its own, whatever umask it got.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let hub = crate::start(config).await?;
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
    if let Some(console) = hub.console_addr {
        println!(
            "relais: administrators' console on https://{console}; make an account with `relais admin --hub {} --identity {admin} account add --name … --full-name … --role administrateur`",
            hub.url()
        );
    }
    if let Some(health) = hub.health_addr {
        println!(
            "relais: health (plaintext grpc.health.v1) on {health}; check it with `relais admin --hub http://{health} health`"
        );
    }
    // SIGTERM (systemd, Kubernetes) or SIGINT (Ctrl-C) stops the hub cleanly; a second one
    // exits at once.
    let life = hub.lifecycle();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for SIGTERM and SIGINT");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
        life.stop();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        eprintln!("relais: second signal: exiting now");
        std::process::exit(130);
    });
    hub.wait().await?;
    println!("relais: hub stopped");
    Ok(())
}

/// Every command and option of `cmd` without a description, as its `--help` would show it
/// (`relais admin partner show (command)`, `relais client link --local-id`): what a test of
/// each program's command line keeps empty.
pub fn undescribed(cmd: &clap::Command) -> Vec<String> {
    fn walk(cmd: &clap::Command, path: &str, root: bool, out: &mut Vec<String>) {
        let here = format!("{path} {}", cmd.get_name()).trim().to_string();
        if cmd.get_about().is_none() && !root {
            out.push(format!("{here} (command)"));
        }
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if ["help", "version"].contains(&id) || a.is_hide_set() {
                continue;
            }
            if a.get_help().is_none() && a.get_long_help().is_none() {
                out.push(format!("{here} --{}", a.get_long().unwrap_or(id)));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_name() != "help" {
                walk(sub, &here, false, out);
            }
        }
    }
    let mut out = vec![];
    walk(cmd, "", true, &mut out);
    out
}

#[cfg(test)]
mod help {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn every_command_and_option_is_described() {
        let missing = super::undescribed(&Cli::command());
        assert!(
            missing.is_empty(),
            "{} without help:\n{}",
            missing.len(),
            missing.join("\n")
        );
    }
}
