//! Compiles `proto/assay/v1/*.proto` to Rust with protox (pure Rust; these machines have no
//! `protoc`) and tonic-prost-build, and writes the descriptor set server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/assay/v1/engine.proto",
        "proto/assay/v1/registry.proto",
        "proto/assay/v1/keys.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // `file_descriptor_set_path` is only honoured when protoc runs; write the set ourselves.
    std::fs::write(
        out.join("assay_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
