//! Compiles `relais/v1/*.proto` with protox (pure Rust, no system `protoc`) and generates the
//! prost messages and tonic services, plus the descriptor set served by reflection.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "relais/v1/common.proto",
        "relais/v1/persons.proto",
        "relais/v1/flags.proto",
        "relais/v1/cases.proto",
        "relais/v1/sync.proto",
        "relais/v1/admin.proto",
        "relais/v1/consent.proto",
        "relais/v1/territory.proto",
    ];
    println!("cargo:rerun-if-changed=relais");
    let fds = protox::compile(files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("relais_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable bytes are the caller's bad input (INVALID_ARGUMENT), not INTERNAL.
        .codec_path("crate::codec::StrictCodec")
        .compile_fds_with_config(fds, {
            // `prost::Name`: the JSON form of any message is found by its full name.
            let mut config = tonic_prost_build::Config::new();
            config.enable_type_names();
            config
        })?;
    Ok(())
}
