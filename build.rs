//! Build script: gives the shared library its SONAME and regenerates `include/nexus.h` from
//! `src/ffi/` with cbindgen. The header is committed; CI rebuilds and fails on any difference
//! (`git diff --exit-code include/nexus.h`). With the feature `server`, it also generates the
//! gRPC code of `nexus serve --grpc` from `proto/nexus/v1/nexus.proto` (protox parses it, no
//! protoc needed) into OUT_DIR, with the file descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnexus.so.{major}");
    }
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    #[cfg(feature = "server")]
    grpc();

    let crate_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = match cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            // A syntax error elsewhere surfaces from rustc with a better message.
            println!("cargo:warning=cbindgen could not generate include/nexus.h: {e}");
            return;
        }
    };
    bindings.write_to_file(crate_dir.join("include/nexus.h"));
}

/// The messages and service of proto/nexus/v1/nexus.proto (`nexus serve --grpc`).
#[cfg(feature = "server")]
fn grpc() {
    use protox::prost::Message;
    println!("cargo:rerun-if-changed=proto");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let fds = protox::compile(["nexus/v1/nexus.proto"], ["proto"])
        .unwrap_or_else(|e| panic!("proto/nexus/v1/nexus.proto: {e}"));
    std::fs::write(out.join("nexus_v1_descriptor.bin"), fds.encode_to_vec())
        .expect("OUT_DIR is writable");
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating the gRPC code: {e}"));
}
