//! Helpers shared by the tests that run the real `nexus` binary.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::Path;
use std::process::{Command, Output};

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
