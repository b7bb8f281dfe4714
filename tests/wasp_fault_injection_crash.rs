//! Crash test (a) of the storage engines: a fault-injecting file layer crashes the process at
//! the N-th write or sync (the write is torn in half, every later I/O fails) across a workload
//! of transactions and checkpoints; then everything not synced is dropped (power loss) and the
//! database is reopened. Every acknowledged commit must be present, the transaction that was
//! in flight all or nothing, and the integrity check clean. Run for N = 1, 2, ... against
//! `wasp` (and `wal`), so every I/O of commits, checkpoints and log resets is a crash point.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)] // test arithmetic on small values

use bson::{doc, Bson};
use nexus::{Database, Document, FaultPlan, OpenOptions, StorageEngine, SyncMode};

fn opts(engine: StorageEngine) -> OpenOptions {
    OpenOptions {
        storage: Some(engine),
        checkpoint_log_bytes: Some(16 * 1024),
        page_cache_bytes: Some(128 * 1024),
        sync: SyncMode::Full,
        sweeper: Some(nexus::SweeperConfig {
            interval_ms: 0,
            ..Default::default()
        }),
        ..OpenOptions::default()
    }
}

/// One transaction `t`: inserts `t{t}a`, `t{t}b` (one of them large every 7th time) and sets
/// the counter to `t`. Returns whether it was acknowledged.
fn txn(db: &Database, t: u32) -> bool {
    let r = db.transaction(|db| {
        let c = db.collection("c");
        let pad = if t.is_multiple_of(7) { 20_000 } else { 150 };
        for s in ["a", "b"] {
            c.insert(
                Document::builder()
                    .field("_id", format!("t{t}{s}"))
                    .field("t", i64::from(t))
                    .field("s", s)
                    .field("pad", "p".repeat(pad))
                    .build(),
            )?;
        }
        if t.is_multiple_of(5) && t > 10 {
            c.delete(&doc! {"_id": format!("t{}a", t - 10)}, false)?;
        }
        db.collection("meta").update(
            &doc! {"_id": "counter"},
            &doc! {"$set": {"t": t as i64}},
            nexus::UpdateOptions {
                upsert: true,
                ..Default::default()
            },
        )?;
        Ok(())
    });
    r.is_ok()
}

fn present(db: &Database, id: &str) -> bool {
    db.collection("c")
        .find_one(&doc! {"_id": id})
        .unwrap()
        .is_some()
}

fn run(engine: StorageEngine, crash_at: u64) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    let db = Database::open(&path, opts(engine)).unwrap();
    db.create_collection("c", None).unwrap();
    // A unique secondary index rides along: the check after recovery compares its entries
    // with the documents.
    db.collection("c")
        .create_index(&doc! {"t": 1, "s": 1}, &doc! {"unique": true})
        .unwrap();
    db.inject_faults(FaultPlan {
        crash_after_ios: Some(crash_at),
        track_unsynced: true,
        ..FaultPlan::default()
    });
    let mut acked = 0u32;
    let mut failed = None;
    for t in 1..400 {
        let ok = txn(&db, t);
        if std::env::var("WASP_DEBUG").is_ok() {
            let st = db.stats().unwrap();
            let p = db.fault_plan();
            eprintln!(
                "t{t} ok={ok} ios_left={:?} lsn={} log={} ckpts={} unsynced={:?}",
                p.crash_after_ios,
                st["storage"]["last_lsn"],
                st["storage"]["log_bytes"],
                st["storage"]["checkpoints"],
                p.unsynced
                    .iter()
                    .map(|(p, o, old, l)| (p.file_name().unwrap().to_owned(), *o, old.len(), *l))
                    .collect::<Vec<_>>()
            );
        }
        if ok {
            acked = t;
        } else {
            failed = Some(t);
            break;
        }
        if t.is_multiple_of(25) && db.checkpoint().is_err() {
            failed = Some(t + 1);
            break;
        }
    }
    let mut plan = db.fault_plan();
    drop(db);
    plan.simulate_power_loss().unwrap();

    let db = Database::open(&path, opts(engine))
        .unwrap_or_else(|e| panic!("{engine:?} crash at I/O {crash_at}: reopen failed: {e}"));
    let ctx = format!("{engine:?} crash at I/O {crash_at} (acked {acked}, failed {failed:?})");
    if std::env::var("WASP_DEBUG").is_ok() {
        let ids: Vec<String> = db
            .collection("c")
            .find(&doc! {}, Default::default())
            .unwrap()
            .map(|d| d.unwrap().id().unwrap().to_string())
            .collect();
        eprintln!(
            "{ctx}: {ids:?}\n{}\n{}",
            db.stats().unwrap(),
            db.check_report().unwrap()
        );
    }
    // The failed transaction may have become durable before its failure was reported.
    let last = match failed {
        Some(f) if present(&db, &format!("t{f}b")) => f,
        _ => acked,
    };
    for t in 1..=acked {
        let deleted_later = t + 10 <= last && (t + 10).is_multiple_of(5);
        if !deleted_later {
            assert!(present(&db, &format!("t{t}a")), "{ctx}: t{t}a lost");
        }
        assert!(present(&db, &format!("t{t}b")), "{ctx}: t{t}b lost");
    }
    if let Some(f) = failed {
        let a = present(&db, &format!("t{f}a"));
        let b = present(&db, &format!("t{f}b"));
        assert_eq!(a, b, "{ctx}: the failed transaction is half there");
        let counter = db
            .collection("meta")
            .find_one(&doc! {"_id": "counter"})
            .unwrap()
            .and_then(|d| d.get("t").cloned());
        let want = if b { f } else { acked };
        if want > 0 {
            assert_eq!(counter, Some(Bson::Int64(want as i64)), "{ctx}");
        }
        assert!(!present(&db, &format!("t{}b", f + 1)), "{ctx}");
    }
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], true, "{ctx}: {report}");
    assert_eq!(report["indexes"][0]["name"], "t_1_s_1", "{ctx}: {report}");
    if acked > 0 {
        let hits = db
            .collection("c")
            .count(&doc! {"t": i64::from(acked), "s": "b"})
            .unwrap();
        assert_eq!(hits, 1, "{ctx}: the index lost t{acked}b");
    }
    db.collection("c")
        .insert(Document::builder().field("_id", "after").build())
        .unwrap();
    acked
}

#[test]
fn wasp_every_io_is_a_safe_crash_point() {
    let mut max = 0;
    let mut n = 1;
    if let Ok(v) = std::env::var("WASP_CRASH_AT") {
        run(StorageEngine::Wasp, v.parse().unwrap());
        return;
    }
    while n < 1500 {
        max = max.max(run(StorageEngine::Wasp, n));
        n += if n < 100 { 1 } else { 29 };
    }
    assert!(max > 30, "the workload never got far: {max}");
}

#[test]
fn wal_every_io_is_a_safe_crash_point() {
    let mut n = 1;
    while n < 600 {
        run(StorageEngine::MemLog, n);
        n += if n < 60 { 1 } else { 31 };
    }
}
