//! The `relais-connector` program, built inside the test crate so that the README's
//! walk-through can run it by path.

fn main() -> std::process::ExitCode {
    relais_connector::cli::main()
}
