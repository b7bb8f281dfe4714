//! Helpers shared by the integration tests: the storage engine the test harness asks for
//! (`open_options` and friends), running the real `nexus` binary, and child processes of the
//! multi-process tests ([`procs`]).
#![allow(dead_code)] // each test crate uses its own subset

pub mod procs;

use nexus::{Database, OpenOptions, StorageEngine};
use std::path::Path;
use std::process::{Command, Output};

/// The engine the test harness wants new database files to get: `scripts/test.sh` runs the
/// suite a second time with `NEXUSLITE_STORAGE=memlog`. That variable is a switch of the tests,
/// not of the library: they pass the choice on as the `storage` open option. `None`: the
/// library's default engine (`wasp`).
pub fn storage() -> Option<StorageEngine> {
    match std::env::var("NEXUSLITE_STORAGE").as_deref() {
        Ok("memlog") | Ok("wal") => Some(StorageEngine::MemLog),
        _ => None,
    }
}

/// The engine a database created by [`open_options`] gets.
pub fn engine() -> StorageEngine {
    storage().unwrap_or(StorageEngine::Wasp)
}

/// `OpenOptions::default()` with the harness's engine for new files; use it (or
/// `..common::open_options()`) wherever a test creates a database file.
pub fn open_options() -> OpenOptions {
    with_storage(OpenOptions::default())
}

/// `options` with the harness's engine for new files, unless they already name one.
pub fn with_storage(options: OpenOptions) -> OpenOptions {
    OpenOptions {
        storage: options.storage.or_else(storage),
        ..options
    }
}

/// The JSON options of `nexus_open` that ask for the harness's engine (`None`: defaults).
pub fn open_options_json() -> Option<&'static str> {
    storage().map(|e| match e {
        StorageEngine::MemLog => r#"{"storage":"wal"}"#,
        StorageEngine::Wasp => r#"{"storage":"wasp"}"#,
    })
}

/// Opens (creating if needed) the database at `path` with [`open_options`].
pub fn open(path: impl AsRef<Path>) -> Database {
    Database::open(path, open_options()).expect("open the database")
}

/// Runs `nexus ARGS` in `cwd` and returns what it did.
pub fn nexus(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run nexus")
}

/// Runs `nexus ARGS`, which must succeed; returns its stdout.
pub fn ok(args: &[&str], cwd: &Path) -> String {
    let o = nexus(args, cwd);
    assert!(
        o.status.success(),
        "nexus {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}
