//! The `relais` program, built inside the test crate so that process-level tests (crash,
//! restart) can start it by path (`CARGO_BIN_EXE_relais-under-test`).

fn main() -> std::process::ExitCode {
    relais_hub::cli::main()
}
