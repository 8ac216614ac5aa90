//! Generates the event types from `proto/` with a vendored protoc, so a fresh machine needs none.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = ["events.proto", "account_state.proto"]
        .map(|f| proto_root.join("lifeline/events/v1").join(f));
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    prost_build::Config::new()
        .protoc_executable(protoc_bin_vendored::protoc_bin_path()?)
        .compile_protos(&files, &[proto_root, protoc_bin_vendored::include_path()?])?;
    Ok(())
}
