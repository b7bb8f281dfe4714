//! Build script: gives the shared library its SONAME and regenerates `include/nexus.h` from
//! `src/ffi/` with cbindgen. The header is committed; CI rebuilds and fails on any difference
//! (`git diff --exit-code include/nexus.h`).

use std::path::PathBuf;

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libnexus.so.{major}");
    }
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error");
    println!("cargo:rerun-if-changed=cbindgen.toml");

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
