//! What the fuzz targets of `fuzz/` (`make fuzz`) found, each crasher as a test with its input
//! inline; and the committed seeds of the targets that go through the public API, which must
//! stay valid inputs (a seed the library refuses would leave its target fuzzing error paths
//! only).

use nexus::{Database, FindOptions, OpenOptions};
use std::path::Path;

/// A seed of fuzz/corpus/<target>/<name>.
fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Opens the database of a `db_file` seed (its layout: fuzz/fuzz_targets/db_file.rs) and
/// returns how many documents each collection holds, after a clean `check`.
fn open_db_seed(name: &str) -> Vec<(String, usize)> {
    let data = seed("db_file", name);
    let (flags, rest) = data.split_first().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fz.db");
    if flags & 2 != 0 {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        std::fs::write(&path, &rest[4..4 + n]).unwrap();
        std::fs::write(dir.path().join("fz.wasp"), &rest[4 + n..]).unwrap();
    } else {
        std::fs::write(&path, rest).unwrap();
    }
    let options = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    let db = Database::open(&path, options).unwrap();
    let report = db.check().unwrap();
    assert_eq!(report["ok"], serde_json::json!(true), "{report}");
    let mut out = Vec::new();
    for name in db.list_collections().unwrap() {
        let n = db
            .collection(&name)
            .find(&bson::Document::new(), FindOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .count();
        out.push((name, n));
    }
    db.close().unwrap();
    out
}

#[test]
fn database_file_seeds_open_and_check_clean() {
    assert_eq!(open_db_seed("clean"), [("people".to_owned(), 3)]);
    // Copied while open: the log holds an insert and a delete after the checkpoint.
    let mut with_log = open_db_seed("with_log");
    with_log.sort();
    assert_eq!(
        with_log,
        [("events".to_owned(), 1), ("people".to_owned(), 3)]
    );
}
