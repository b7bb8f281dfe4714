//! Group commit under `sync=full`: while one committer's `fdatasync` is in flight (made slow
//! by the fault layer), the others queue behind it and share the next one, so there are
//! fewer syncs than commits; and every commit is there after reopening.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

mod common;

use bson::doc;
use nexus::{Database, Document, FaultPlan};
use std::time::Duration;

#[test]
fn concurrent_committers_share_fdatasync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let first = Database::open(&path, common::open_options()).unwrap();
    first.inject_faults(FaultPlan {
        sync_delay: Some(Duration::from_millis(20)),
        ..FaultPlan::default()
    });
    const THREADS: usize = 6;
    const EACH: usize = 10;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let path = path.clone();
            s.spawn(move || {
                let db = Database::open(&path, common::open_options()).unwrap();
                for i in 0..EACH {
                    db.collection("c")
                        .insert(Document::from(doc! {"t": t as i32, "i": i as i32}))
                        .unwrap();
                }
            });
        }
    });
    let stats = first.stats().unwrap();
    let commits = stats["storage"]["commits"].as_u64().unwrap();
    let syncs = stats["storage"]["syncs"].as_u64().unwrap();
    assert_eq!(commits, (THREADS * EACH) as u64, "{stats}");
    assert!(
        syncs < commits,
        "no fdatasync was shared: {syncs} syncs for {commits} commits"
    );
    eprintln!("group commit: {commits} commits, {syncs} fdatasyncs");
    first.inject_faults(FaultPlan::default());
    first.close().unwrap();
    let db = Database::open(&path, common::open_options()).unwrap();
    assert_eq!(
        db.collection("c").count(&doc! {}).unwrap(),
        (THREADS * EACH) as u64
    );
}
