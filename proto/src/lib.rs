//! The Relais wire contract: the `relais.v1` protobuf package compiled with `protox` and
//! `tonic-prost-build`, so that no system `protoc` is needed.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod codec;
pub mod json;

pub mod v1 {
    tonic::include_proto!("relais.v1");

    /// Encoded `FileDescriptorSet` of the package, served by gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("relais_descriptor");
}
