//! The importer on fuzzed bytes: `data[0]` bits 0-2 pick the format ("auto" sniffing,
//! csv, ndjson, json, bson), bit 3 skip_errors, bit 4 a real import (else dry_run), bit 5
//! the JSON array mode given; the rest is the file. Imported into a collection of an
//! in-memory database that is dropped after each input. Any error is fine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus::io::{Format, ImportOptions};
use nexus::Database;
use std::sync::OnceLock;

struct State {
    db: Database,
    dir: tempfile::TempDir,
}

fn state() -> &'static State {
    static S: OnceLock<State> = OnceLock::new();
    S.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let dir = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        };
        State {
            db: Database::open_in_memory().expect("in-memory database"),
            dir: dir.expect("temporary directory"),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let s = state();
    // No extension: auto detection sniffs the bytes.
    let path = s.dir.path().join("input");
    std::fs::write(&path, file).expect("write input");
    let format = [
        "auto", "csv", "ndjson", "json", "bson", "auto", "tsv", "jsonl",
    ][usize::from(flags & 7)];
    let options = ImportOptions {
        format: Format::parse(format).expect("format"),
        skip_errors: flags & 8 != 0,
        error_sidecar: Some(s.dir.path().join("errors.jsonl")),
        dry_run: flags & 16 == 0,
        array_mode: (flags & 32 != 0).then_some(flags & 64 != 0),
        batch_size: 50,
        ..ImportOptions::default()
    };
    let c = s.db.collection("imp");
    let _ = c.import(&path, &options);
    let _ = s.db.drop_collection("imp");
});
