//! `relais-connector`: run a connector next to a partner's software, see its status, inspect,
//! replay or discard what the hub refused.

fn main() -> std::process::ExitCode {
    relais_connector::cli::main()
}
