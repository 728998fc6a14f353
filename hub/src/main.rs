//! `relais`: the hub server, its admin CLI and a partner-side client.

fn main() -> std::process::ExitCode {
    relais_hub::cli::main()
}
