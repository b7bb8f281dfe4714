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

/// Under `sync=full` a commit is visible to readers only once it is durable: the committer
/// releases the writer gate before its group's `fdatasync` (so that others can join it), but
/// a reader that found the document meanwhile could act on a write that then fails. Here the
/// sync is slow and then fails: no reader ever finds the document, the committer gets the
/// error, and the commit before it stays readable.
#[test]
fn a_commit_is_visible_only_once_durable() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("visible.db");
    let db = Database::open(&path, common::open_options()).unwrap();
    let coll = db.collection("c");
    coll.insert(Document::from(doc! {"_id": "durable"}))
        .unwrap();
    let found = |id: &str| matches!(coll.find_one(&doc! {"_id": id}), Ok(Some(_)));
    assert!(
        found("durable"),
        "a sync=full commit is visible once it returns"
    );

    db.inject_faults(FaultPlan {
        sync_delay: Some(Duration::from_millis(300)),
        fail_syncs: true,
        ..FaultPlan::default()
    });
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let seen_pending = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if found("pending") {
                    seen_pending.store(true, Ordering::SeqCst);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
        });
        let r = coll.insert(Document::from(doc! {"_id": "pending"}));
        done.store(true, Ordering::SeqCst);
        r
    });
    assert!(result.is_err(), "the failed sync must fail the commit");
    assert!(reads.load(Ordering::Relaxed) > 0, "the reader never ran");
    assert!(
        !seen_pending.load(Ordering::SeqCst),
        "a reader found a sync=full commit before it was durable (and it never was)"
    );
    assert!(!found("pending"));
}
