//! `nexus check` on a database whose log is damaged or missing: refused with the advice, and
//! `nexus check --repair` accepts the loss on purpose, reports it ("repair" in the JSON
//! report), and leaves a database that checks clean.

use crate::common;
use common::nexus;
use nexus::{Database, Document, OpenOptions, StorageEngine};
use std::path::Path;
use std::process::Output;

/// A WASP database `name` as a crash leaves it: 10 documents checkpointed, 30 more commits
/// only in the log (the files are copied while the writer still has them open).
fn crashed_copy(dir: &Path, name: &str) {
    let live = dir.join(format!("live-{name}"));
    let db = Database::open(
        &live,
        OpenOptions {
            storage: Some(StorageEngine::Wasp),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let c = db.collection("c");
    for i in 0..40i64 {
        c.insert(Document::builder().field("_id", i).field("v", i).build())
            .unwrap();
        if i == 9 {
            db.checkpoint().unwrap();
        }
    }
    let copy = dir.join(name);
    std::fs::copy(&live, &copy).unwrap();
    std::fs::copy(live.with_extension("wasp"), copy.with_extension("wasp")).unwrap();
    db.close().unwrap();
}

fn report(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn check_repair_accepts_a_damaged_log_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crashed_copy(d, "x.db");
    let log = d.join("x.wasp");
    let mut bytes = std::fs::read(&log).unwrap();
    // Inside the first record after the checkpoint (records start after the two 32-byte
    // header slots of the recycled log).
    bytes[64 + 20] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();

    let o = nexus(&["check", "x.db"], d);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("29 intact commit(s)"), "{err}");
    assert!(err.contains("--repair"), "{err}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        bytes,
        "refusing changed nothing"
    );

    let o = nexus(&["check", "--repair", "x.db"], d);
    assert!(o.status.success(), "{o:?}");
    let r = report(&o);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["repair"]["commits_dropped"], 29, "{r}");
    assert_eq!(r["repair"]["mode"], "discard-damaged-log", "{r}");

    let o = nexus(&["check", "x.db"], d);
    assert!(o.status.success(), "{o:?}");
    let o = nexus(&["count", "x.db", "c"], d);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "10");
}

#[test]
fn check_repair_accepts_a_missing_log() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crashed_copy(d, "m.db");
    std::fs::remove_file(d.join("m.wasp")).unwrap();

    let o = nexus(&["count", "m.db", "c"], d);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("is missing"));
    assert!(!d.join("m.wasp").exists(), "refusing made no new log");

    let o = nexus(&["check", "--repair", "m.db"], d);
    assert!(o.status.success(), "{o:?}");
    let r = report(&o);
    assert!(
        r["repair"]["log_replaced"]
            .as_str()
            .is_some_and(|s| s.contains("is missing")),
        "{r}"
    );
    let o = nexus(&["count", "m.db", "c"], d);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "10");
}
