//! Generates the Open Inference Protocol gRPC service from
//! `proto/grpc_predict_v2.proto` with the pure-Rust `protox` compiler, so
//! building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(["proto/grpc_predict_v2.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(false).compile_fds(descriptors)?;
    Ok(())
}
