//! The file layer's fault injection: a torn log write and a failed fsync each fail the
//! commit, poison the engine (later writes fail until reopen: no "retry and hope"), and after
//! reopening every earlier commit is present and the failed one is not. Each test also runs
//! on an encrypted `wasp` database (#20), whose files must then show none of the documents'
//! marker string.

mod common;

use bson::doc;
use nexus::{Database, Document, Error, FaultPlan, OpenOptions, StorageEngine};
use std::path::Path;
use std::sync::OnceLock;

/// Every document carries it; an encrypted database's files may not show it.
const MARKER: &str = "Axolotl5TornMarker";

fn doc(id: &str) -> Document {
    Document::builder()
        .field("_id", id)
        .field("v", 1)
        .field("m", format!("{MARKER} {id}"))
        .build()
}

/// How a test opens its database: the harness's engine, or encrypted (`wasp` with a key).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Encrypted,
}

impl Mode {
    fn options(self) -> OpenOptions {
        match self {
            Mode::Plain => common::open_options(),
            Mode::Encrypted => {
                static KEY: OnceLock<nexus::crypto::PrivatePem> = OnceLock::new();
                OpenOptions {
                    storage: Some(StorageEngine::Wasp),
                    encryption_key: Some(KEY.get_or_init(common::new_key).clone()),
                    ..OpenOptions::default()
                }
            }
        }
    }

    fn engine(self) -> StorageEngine {
        match self {
            Mode::Plain => common::engine(),
            Mode::Encrypted => StorageEngine::Wasp,
        }
    }

    /// Encrypted: the database is, and its files show no marker.
    fn check_files(self, db: &Database, path: &Path, context: &str) {
        if self == Mode::Encrypted {
            let st = db.stats().unwrap();
            assert_eq!(st["storage"]["encrypted"], true, "{context}: {st}");
            common::assert_marker_absent(path, MARKER, context);
        }
    }
}

#[test]
fn torn_write_poisons_then_recovery_drops_the_torn_tail() {
    torn_write(Mode::Plain);
}

#[test]
fn encrypted_torn_write_poisons_then_recovery_drops_the_torn_tail() {
    if common::encrypted_tests_run("encrypted_torn_write_poisons_then_recovery_drops_the_torn_tail")
    {
        torn_write(Mode::Encrypted);
    }
}

fn torn_write(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torn.db");
    let db = Database::open(&path, mode.options()).unwrap();
    let c = db.collection("c");
    for i in 0..5 {
        c.insert(doc(&format!("ok{i}"))).unwrap();
    }
    db.inject_faults(FaultPlan {
        fail_writes_after_bytes: Some(11),
        ..FaultPlan::default()
    });
    let e = c.insert(doc("torn")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    db.inject_faults(FaultPlan::default());
    let e = c.insert(doc("after")).unwrap_err();
    assert!(
        matches!(e, Error::PreviousIo(_)),
        "writes must stay refused: {e:?}"
    );
    assert_eq!(e.code(), nexus::ffi::status::NEXUS_IO);
    drop(db);
    if mode == Mode::Encrypted {
        common::assert_marker_absent(&path, MARKER, "after the torn write");
    }

    let db = Database::open(&path, mode.options()).unwrap();
    mode.check_files(&db, &path, "recovered after the torn write");
    let c = db.collection("c");
    assert_eq!(c.count(&doc! {}).unwrap(), 5);
    assert!(c.find_one(&doc! {"_id": "torn"}).unwrap().is_none());
    let stats = db.stats().unwrap();
    let dropped = stats["storage"]["recovery"]["dropped_bytes"]
        .as_u64()
        .unwrap();
    if mode.engine() == nexus::StorageEngine::Wasp {
        // The recycled log is not cut: what is dropped is the torn record, as long as its
        // head (among the 11 bytes written) says; the rest of it was never written.
        assert!((11..200).contains(&dropped), "{stats}");
    } else {
        assert_eq!(dropped, 11, "{stats}");
    }
    c.insert(doc("after")).unwrap();
    drop(db);
    let db = Database::open(&path, mode.options()).unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 6);
    mode.check_files(&db, &path, "reopened after the torn write");
}

#[test]
fn failed_fsync_is_sticky() {
    failed_fsync(Mode::Plain);
}

#[test]
fn encrypted_failed_fsync_is_sticky() {
    if common::encrypted_tests_run("encrypted_failed_fsync_is_sticky") {
        failed_fsync(Mode::Encrypted);
    }
}

fn failed_fsync(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fsync.db");
    let db = Database::open(&path, mode.options()).unwrap();
    let c = db.collection("c");
    c.insert(doc("a")).unwrap();
    db.inject_faults(FaultPlan {
        fail_syncs: true,
        ..FaultPlan::default()
    });
    assert!(matches!(c.insert(doc("b")), Err(Error::Io { .. })));
    db.inject_faults(FaultPlan::default());
    assert!(matches!(c.insert(doc("c")), Err(Error::PreviousIo(_))));
    assert!(db.begin().is_err());
    drop(db);
    let db = Database::open(&path, mode.options()).unwrap();
    let c = db.collection("c");
    assert!(c.find_one(&doc! {"_id": "a"}).unwrap().is_some());
    c.insert(doc("c")).unwrap();
    mode.check_files(&db, &path, "after the failed fsync");
}

#[test]
fn failed_checkpoint_keeps_the_old_log() {
    failed_checkpoint(Mode::Plain);
}

#[test]
fn encrypted_failed_checkpoint_keeps_the_old_log() {
    if common::encrypted_tests_run("encrypted_failed_checkpoint_keeps_the_old_log") {
        failed_checkpoint(Mode::Encrypted);
    }
}

fn failed_checkpoint(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.db");
    let db = Database::open(&path, mode.options()).unwrap();
    let c = db.collection("c");
    for i in 0..20 {
        c.insert(doc(&format!("d{i}"))).unwrap();
    }
    db.inject_faults(FaultPlan {
        fail_writes_after_bytes: Some(100),
        ..FaultPlan::default()
    });
    assert!(db.checkpoint().is_err());
    db.inject_faults(FaultPlan::default());
    c.insert(doc("later")).unwrap();
    drop(db);
    let db = Database::open(&path, mode.options()).unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 21);
    assert!(!dir.path().join("ckpt.wasp.tmp").exists());
    mode.check_files(&db, &path, "after the failed checkpoint");
    db.checkpoint().unwrap();
    mode.check_files(&db, &path, "after a checkpoint");
}
