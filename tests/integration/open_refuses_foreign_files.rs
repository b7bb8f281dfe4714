//! Opening what is not (or not yet) a NexusLite database: a foreign file is `Corrupt` and
//! left byte-for-byte as it was; a newer format version is `Unsupported` and untouched; a
//! damaged header is `Corrupt`; a missing file with `create: false` is `NotFound`; a second
//! process gets `Busy`; read-only connections refuse writes.

use crate::common;

use nexus::{Database, Document, Error, OpenOptions};
use std::process::Command;

#[test]
fn foreign_file_is_refused_and_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let content = b"SQLite format 3\0 this is somebody else's file".repeat(20);
    std::fs::write(&path, &content).unwrap();
    let e = Database::open(&path, common::open_options()).unwrap_err();
    assert!(matches!(e, Error::Corrupt(_)), "{e:?}");
    assert!(e.to_string().contains("not a NexusLite database"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert!(!dir.path().join("notes.wasp").exists());
}

#[test]
fn newer_format_is_unsupported_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    Database::open(&path, common::open_options())
        .unwrap()
        .close()
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[16] = 9; // format version 9
    let crc = crc32fast::hash(&bytes[0..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = Database::open(&path, common::open_options()).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn damaged_header_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dmg.db");
    Database::open(&path, common::open_options())
        .unwrap()
        .close()
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[30] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        Database::open(&path, common::open_options()),
        Err(Error::Corrupt(_))
    ));
}

#[test]
fn create_false_on_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let opts = OpenOptions {
        create: false,
        ..common::open_options()
    };
    let e = Database::open(dir.path().join("missing.db"), opts).unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
}

#[test]
fn read_only_connection_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    let db = Database::open(&path, common::open_options()).unwrap();
    db.collection("c")
        .insert(Document::from_json(r#"{"_id":"a"}"#).unwrap())
        .unwrap();
    db.close().unwrap();
    let ro = Database::open(
        &path,
        OpenOptions {
            read_only: true,
            ..common::open_options()
        },
    )
    .unwrap();
    assert_eq!(ro.collection("c").count_json("{}").unwrap(), 1);
    let e = ro
        .collection("c")
        .insert(Document::from_json("{}").unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e:?}");
}

const LOCK_CHILD_ENV: &str = "NEXUS_LOCK_CHILD_DB";

/// Runs only in the child process: tries to open the database the parent holds.
#[test]
fn lock_child_opener() {
    let Ok(path) = std::env::var(LOCK_CHILD_ENV) else {
        return;
    };
    let opts = OpenOptions {
        busy_timeout_ms: 50,
        storage: Some(nexus::StorageEngine::MemLog),
        ..common::open_options()
    };
    match Database::open(&path, opts) {
        Err(e @ Error::Busy(_)) => println!("child: busy: {e}"),
        other => println!("child: unexpected {other:?}"),
    }
}

/// `memlog` holds its tables in one process: a second process is refused, and told which
/// storage shares a database (WASP's several processes: tests/integration/multiprocess.rs).
#[test]
fn second_process_gets_busy_on_memlog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let db = Database::open(
        &path,
        OpenOptions {
            storage: Some(nexus::StorageEngine::MemLog),
            ..common::open_options()
        },
    )
    .unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            common::test_name("lock_child_opener").as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_CHILD_ENV, &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("child: busy: database"), "{text}");
    assert!(text.contains("open in another process"), "{text}");
    assert!(
        text.contains("one process at a time") && text.contains("\"storage\": \"wasp\""),
        "says why and what to do: {text}"
    );
    db.close().unwrap();
}
