//! Crash test (a) of the storage engines: a fault-injecting file layer crashes the process at
//! the N-th write or sync (the write is torn in half, every later I/O fails) across a workload
//! of transactions and checkpoints; then everything not synced is dropped (power loss) and the
//! database is reopened. Every acknowledged commit must be present, the transaction that was
//! in flight all or nothing, and the integrity check clean. Run for N = 1, 2, ... against
//! `wasp` (and `wal`), so every I/O of commits, checkpoints and log resets is a crash point.
//! WASP's log is recycled: each checkpoint restarts it in place (a header slot rewritten, new
//! records overwriting the last lap's), so crashes land in laps shorter and longer than the
//! one before, and in the header rewrite itself; the test requires runs that crossed many
//! laps before their crash.
//!
//! With `wasp` a second process reads throughout (several processes on one database): a
//! read_only reader opens once the collection and its index exist, checks every snapshot
//! while the workload runs and crashes (every acknowledged transaction whole, the counter
//! and the documents agreeing), and is SIGKILLed before the power loss and the reopen.
//!
//! A vector index (#24) rides along too: every document carries a 3-dimensional vector, the
//! check after recovery compares the HNSW graph with the documents, and the newest
//! acknowledged document is its own nearest neighbor.
//!
//! The encrypted variant (#20) runs a sample of the crash points on a `wasp` database created
//! with a key (the reader process reads the key's PEM from a file the parent names); every
//! document carries a marker string, which after recovery must be in no byte of `NAME.db` or
//! `NAME.wasp`.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)] // test arithmetic on small values

mod common;

use bson::{doc, Bson};
use common::procs::{int, reader_fail, Lifetime, Proc};
use nexus::{Database, Document, FaultPlan, OpenOptions, StorageEngine, SyncMode};
use std::collections::BTreeSet;
use std::path::Path;

const READER_ENV: &str = "NEXUS_FAULT_CRASH_READER_DB";
/// The path of the private key file of an encrypted run (the reader only).
const KEY_ENV: &str = "NEXUS_FAULT_CRASH_KEY_FILE";
/// Every document of an encrypted run carries it; no file may show it.
const MARKER: &str = "Pangolin3FaultMarker";

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
/// `marked`: each document also carries the field `m` with [`MARKER`].
fn txn(db: &Database, t: u32, marked: bool) -> bool {
    let r = db.transaction(|db| {
        let c = db.collection("c");
        let pad = if t.is_multiple_of(7) { 20_000 } else { 150 };
        for s in ["a", "b"] {
            let mut d = Document::builder()
                .field("_id", format!("t{t}{s}"))
                .field("t", i64::from(t))
                .field("s", s)
                .field("pad", "p".repeat(pad))
                .field("v", vector_of(t, s))
                .field("vq", vector_of(t, s));
            if marked {
                d = d.field("m", format!("{MARKER} t{t}{s}"));
            }
            c.insert(d.build())?;
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

/// Document `t{t}{s}`'s vector: distinct for every document of a run.
fn vector_of(t: u32, s: &str) -> Bson {
    let side = if s == "a" { 0.0 } else { 1.0 };
    Bson::Array(vec![
        Bson::Double(f64::from(t)),
        Bson::Double(side),
        Bson::Double(1.0),
    ])
}

/// What one snapshot must hold after the transactions 1..=`t` (the counter says `t`): the
/// documents `t{i}b` for every i, `t{i}a` for every i not deleted by transaction i + 10 (a
/// multiple of 5), each well formed; nothing else.
fn snapshot_problem(t: u32, docs: &[Document]) -> Option<String> {
    let mut seen = BTreeSet::new();
    for d in docs {
        let (Some(n), Some(Bson::String(s))) = (int(d.get("t")), d.get("s")) else {
            return Some(format!("malformed document {:?}", d.id()));
        };
        let id = format!("t{n}{s}");
        if d.id().and_then(Bson::as_str) != Some(id.as_str()) {
            return Some(format!("document {id} has the _id {:?}", d.id()));
        }
        let pad = d.get("pad").and_then(Bson::as_str).map(str::len);
        let want = if n % 7 == 0 { 20_000 } else { 150 };
        if pad != Some(want) {
            return Some(format!("{id} has a pad of {pad:?} bytes, not {want}"));
        }
        seen.insert(id);
    }
    let mut want = BTreeSet::new();
    for i in 1..=t {
        want.insert(format!("t{i}b"));
        let deleted = i + 10 <= t && (i + 10).is_multiple_of(5);
        if !deleted {
            want.insert(format!("t{i}a"));
        }
    }
    if seen != want {
        let extra: Vec<_> = seen.difference(&want).take(5).collect();
        let missing: Vec<_> = want.difference(&seen).take(5).collect();
        return Some(format!(
            "with the counter at {t}: missing {missing:?}, unexpected {extra:?}"
        ));
    }
    None
}

/// The reader. Runs only inside a child process (the env var names its database): opens
/// read_only and reads until it is killed, checking every snapshot.
#[test]
fn fault_crash_child_reader() {
    let Ok(path) = std::env::var(READER_ENV) else {
        return;
    };
    let life = Lifetime::start();
    let db = match Database::open(
        &path,
        OpenOptions {
            read_only: true,
            encryption_key: common::key_from_env(KEY_ENV),
            ..opts(StorageEngine::Wasp)
        },
    ) {
        Ok(db) => db,
        Err(e) => {
            println!("reader open failed: {}", e.to_string().replace('\n', " "));
            panic!("reader open failed: {e}");
        }
    };
    println!("reader opened");
    let (c, meta) = (db.collection("c"), db.collection("meta"));
    let counter = || -> u32 {
        match meta.find_one(&doc! {"_id": "counter"}) {
            Ok(None) => 0,
            Ok(Some(d)) => int(d.get("t"))
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or_else(|| reader_fail(format!("a malformed counter {d:?}"))),
            Err(e) => reader_fail(format!("read the counter: {e}")),
        }
    };
    let mut last = 0;
    loop {
        life.check("reader");
        let outside = counter();
        if outside < last {
            reader_fail(format!("the counter went back from {last} to {outside}"));
        }
        db.begin_read()
            .unwrap_or_else(|e| reader_fail(format!("begin_read: {e}")));
        let t = counter();
        let docs: Vec<Document> = c
            .find(&doc! {}, Default::default())
            .and_then(|cur| cur.collect())
            .unwrap_or_else(|e| reader_fail(format!("find in a read transaction: {e}")));
        let counted = c
            .count(&doc! {})
            .unwrap_or_else(|e| reader_fail(format!("count in a read transaction: {e}")));
        let indexed = if t > 0 {
            c.count(&doc! {"t": i64::from(t), "s": "b"})
                .unwrap_or_else(|e| reader_fail(format!("count through the index: {e}")))
        } else {
            0
        };
        db.commit()
            .unwrap_or_else(|e| reader_fail(format!("end a read transaction: {e}")));
        if t < outside {
            reader_fail(format!(
                "a read transaction saw the counter at {t} after a read saw {outside}"
            ));
        }
        if let Some(p) = snapshot_problem(t, &docs) {
            reader_fail(format!("in one read transaction: {p}"));
        }
        if counted != docs.len() as u64 {
            reader_fail(format!(
                "count {counted} but find {} in one read transaction",
                docs.len()
            ));
        }
        if t > 0 && indexed != 1 {
            reader_fail(format!("the index finds t{t}b {indexed} times"));
        }
        last = t;
        println!("read {t} {}", docs.len());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Starts the reader on `path` and waits until it has opened the database and read once.
fn start_reader(path: &Path, key_file: Option<&Path>, crash_at: u64) -> Proc {
    let mut envs = vec![(READER_ENV, path.as_os_str())];
    if let Some(k) = key_file {
        envs.push((KEY_ENV, k.as_os_str()));
    }
    Proc::spawn_reader(
        &format!("crash at I/O {crash_at}: reader"),
        "fault_crash_child_reader",
        &envs,
    )
}

/// SIGKILLs the reader (after the crash, before the power loss); panics when it failed a
/// check or died before.
fn kill_reader(mut reader: Proc, ctx: &str) {
    reader.assert_running(ctx);
    reader.kill();
    reader.assert_reader_held(ctx);
}

fn present(db: &Database, id: &str) -> bool {
    db.collection("c")
        .find_one(&doc! {"_id": id})
        .unwrap()
        .is_some()
}

/// One crash run; returns the last acknowledged transaction and the checkpoints (log laps)
/// made before the crash.
fn run(engine: StorageEngine, crash_at: u64) -> (u32, u64) {
    run_with(engine, crash_at, None)
}

/// One crash run; with `key` on a database encrypted to it, the documents marked, and the
/// files checked for the marker after recovery.
fn run_with(
    engine: StorageEngine,
    crash_at: u64,
    key: Option<&nexus::crypto::PrivatePem>,
) -> (u32, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.db");
    // Every open below, the reopen after the power loss too, presents the key.
    let opts = |engine| OpenOptions {
        encryption_key: key.cloned(),
        ..opts(engine)
    };
    let key_file = key.map(|k| common::write_key_file(dir.path(), "key.pem", k));
    let marked = key.is_some();
    let db = Database::open(&path, opts(engine)).unwrap();
    db.create_collection("c", None).unwrap();
    // A unique secondary index rides along: the check after recovery compares its entries
    // with the documents.
    db.collection("c")
        .create_index(&doc! {"t": 1, "s": 1}, &doc! {"unique": true})
        .unwrap();
    db.collection("c")
        .create_index(
            &doc! {"v": "hnsw"},
            &doc! {"numDimensions": 3, "m": 4, "efConstruction": 16},
        )
        .unwrap();
    // The same vectors under a scalar-quantized index: its range grows with `t`, so some
    // transactions re-encode every node (from the documents) before they crash.
    db.collection("c")
        .create_index(
            &doc! {"vq": "hnsw"},
            &doc! {"numDimensions": 3, "m": 4, "efConstruction": 16, "quantization": "scalar"},
        )
        .unwrap();
    // The second process reads throughout the workload and the crash.
    let reader =
        (engine == StorageEngine::Wasp).then(|| start_reader(&path, key_file.as_deref(), crash_at));
    db.inject_faults(FaultPlan {
        crash_after_ios: Some(crash_at),
        track_unsynced: true,
        ..FaultPlan::default()
    });
    let mut acked = 0u32;
    let mut failed = None;
    for t in 1..400 {
        let ok = txn(&db, t, marked);
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
    let laps = db.stats().unwrap()["storage"]["checkpoints"]
        .as_u64()
        .unwrap_or(0);
    let mut plan = db.fault_plan();
    drop(db);
    if let Some(reader) = reader {
        kill_reader(
            reader,
            &format!("{engine:?} crash at I/O {crash_at} (acked {acked}, failed {failed:?})"),
        );
    }
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
        // The `_id` of the first result of a vector search.
        let top = |spec: bson::Document| {
            let best = db
                .collection("c")
                .vector_search(&spec)
                .unwrap()
                .next()
                .unwrap()
                .unwrap();
            best.get("_id").and_then(Bson::as_str).map(str::to_owned)
        };
        let want = Some(format!("t{acked}b"));
        let spec = doc! {"path": "v", "queryVector": vector_of(acked, "b"), "limit": 1};
        assert_eq!(top(spec), want, "{ctx}: the vector index lost t{acked}b");
        // Exact over the quantized index: every node's document compared by its own vector
        // (its approximate search is not asserted here: one code range for the three
        // dimensions, the widest 0..t, leaves the second, 0 or 1, no resolution, and
        // neighbors of equal codes are what an 8-bit range cannot tell apart; see
        // docs/FORMAT.md).
        let spec =
            doc! {"path": "vq", "queryVector": vector_of(acked, "b"), "limit": 1, "exact": true};
        assert_eq!(
            top(spec),
            want,
            "{ctx}: the quantized vector index lost t{acked}b"
        );
    }
    assert_eq!(report["indexes"][1]["name"], "v_hnsw", "{ctx}: {report}");
    assert_eq!(report["indexes"][2]["name"], "vq_hnsw", "{ctx}: {report}");
    db.collection("c")
        .insert(Document::builder().field("_id", "after").build())
        .unwrap();
    if marked {
        assert_eq!(db.stats().unwrap()["storage"]["encrypted"], true, "{ctx}");
        if acked > 0 {
            let d = db
                .collection("c")
                .find_one(&doc! {"_id": format!("t{acked}b")})
                .unwrap()
                .unwrap();
            let want = format!("{MARKER} t{acked}b");
            assert_eq!(
                d.get("m").and_then(Bson::as_str),
                Some(want.as_str()),
                "{ctx}"
            );
        }
        common::assert_marker_absent(&path, MARKER, &format!("{ctx}, reopened"));
        drop(db);
        common::assert_marker_absent(&path, MARKER, &format!("{ctx}, closed"));
    }
    (acked, laps)
}

#[test]
fn wasp_every_io_is_a_safe_crash_point() {
    let (mut max, mut max_laps) = (0, 0);
    let mut n = 1;
    if let Ok(v) = std::env::var("WASP_CRASH_AT") {
        run(StorageEngine::Wasp, v.parse().unwrap());
        return;
    }
    while n < 1500 {
        let (acked, laps) = run(StorageEngine::Wasp, n);
        max = max.max(acked);
        max_laps = max_laps.max(laps);
        n += if n < 100 { 1 } else { 29 };
    }
    assert!(max > 30, "the workload never got far: {max}");
    assert!(
        max_laps >= 8,
        "no run crossed many laps of the recycled log before its crash: {max_laps}"
    );
}

/// #20: a sample of the crash points on an encrypted database (each of the first 4 I/Os,
/// then every 290th to the end of the workload: 9 runs); `WASP_CRASH_AT` picks one.
#[test]
fn wasp_encrypted_crash_points_are_safe() {
    if !common::encrypted_tests_run("wasp_encrypted_crash_points_are_safe") {
        return;
    }
    let key = common::new_key();
    if let Ok(v) = std::env::var("WASP_CRASH_AT") {
        run_with(StorageEngine::Wasp, v.parse().unwrap(), Some(&key));
        return;
    }
    let (mut max, mut max_laps) = (0, 0);
    let mut n = 1;
    while n < 1500 {
        let (acked, laps) = run_with(StorageEngine::Wasp, n, Some(&key));
        max = max.max(acked);
        max_laps = max_laps.max(laps);
        n += if n < 4 { 1 } else { 290 };
    }
    assert!(max > 30, "the workload never got far: {max}");
    assert!(
        max_laps >= 8,
        "no run crossed many laps of the recycled log before its crash: {max_laps}"
    );
}

#[test]
fn wal_every_io_is_a_safe_crash_point() {
    let mut n = 1;
    while n < 600 {
        run(StorageEngine::MemLog, n);
        n += if n < 60 { 1 } else { 31 };
    }
}

/// #20: a rekey crashed at each of its writes and syncs (the write torn, then everything not
/// synced lost) leaves the database as it was before or rekeyed: it opens with its key, every
/// document present and the check clean. The loop ends with the first crash point past the
/// rekey's last I/O (the rekey then succeeds).
#[test]
fn wasp_rekey_every_io_is_a_safe_crash_point() {
    if !common::encrypted_tests_run("wasp_rekey_every_io_is_a_safe_crash_point") {
        return;
    }
    let key = common::new_key();
    let opts = || OpenOptions {
        encryption_key: Some(key.clone()),
        ..opts(StorageEngine::Wasp)
    };
    let (mut n, mut rolled_back) = (1, 0);
    loop {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let db = Database::open(&path, opts()).unwrap();
        let c = db.collection("c");
        db.begin().unwrap();
        for i in 0..150 {
            let big = "y".repeat(if i % 30 == 0 { 9000 } else { 40 });
            c.insert(doc! {"_id": i, "m": MARKER, "big": big}.into())
                .unwrap();
        }
        db.commit().unwrap();
        db.checkpoint().unwrap();
        db.inject_faults(FaultPlan {
            crash_after_ios: Some(n),
            track_unsynced: true,
            ..FaultPlan::default()
        });
        let r = db.rekey();
        let mut plan = db.fault_plan();
        drop(db);
        plan.simulate_power_loss().unwrap();
        let ctx = format!("rekey crashed at I/O {n}: {r:?}");
        let db = Database::open(&path, opts()).expect(&ctx);
        let c = db.collection("c");
        assert_eq!(c.count(&doc! {}).unwrap(), 150, "{ctx}");
        assert_eq!(
            c.find_one(&doc! {"_id": 120}).unwrap().unwrap().get("m"),
            Some(&Bson::String(MARKER.into())),
            "{ctx}"
        );
        let report = db.check().unwrap();
        assert_eq!(report["ok"], true, "{ctx}: {report}");
        db.close().unwrap();
        assert!(
            !Path::new(&format!("{}-rekey", path.display())).exists(),
            "{ctx}: the journal was rolled back and removed at the open"
        );
        for f in [path.clone(), path.with_extension("wasp")] {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                "{ctx}: {} holds the marker",
                f.display()
            );
        }
        if r.is_ok() {
            break;
        }
        rolled_back += 1;
        n += 1;
        assert!(n < 5000, "the rekey never finished");
    }
    eprintln!("{rolled_back} crash points rolled back");
    assert!(rolled_back > 20, "only {rolled_back} crash points");
}

/// The last close's compaction (free pages at least an eighth of the file) crashed at its
/// writes and syncs (the write torn, every later I/O failing, as a killed process leaves the
/// files): the database reopens with every document and its last value, the check clean. The
/// crash points are each of the first 40 I/Os, then every 7th, until the first run whose close
/// finished (the file compacted, the log cut to its empty lap).
#[test]
fn wasp_compaction_at_close_every_io_is_a_safe_crash_point() {
    const DOCS: i64 = 10_000;
    // Checkpoints only where the test says (a log and a page cache larger than the file).
    let opts = |compact_on_close| OpenOptions {
        compact_on_close: Some(compact_on_close),
        sync: SyncMode::Normal,
        checkpoint_log_bytes: None,
        page_cache_bytes: Some(16 << 20),
        ..opts(StorageEngine::Wasp)
    };
    // The template: documents, then updates with checkpoints between them, so a good part of
    // the file is free pages; closed without compacting.
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.db");
    let total: i64 = {
        let db = Database::open(&template, opts(false)).unwrap();
        let c = db.collection("c");
        db.begin().unwrap();
        for i in 0..DOCS {
            c.insert(doc! {"_id": i, "n": 0i64, "pad": "p".repeat(200)}.into())
                .unwrap();
        }
        db.commit().unwrap();
        let mut total = 0;
        for round in 0..4i64 {
            for i in (round..DOCS).step_by(3) {
                c.update(
                    &doc! {"_id": i},
                    &doc! {"$inc": {"n": 1i64}},
                    nexus::UpdateOptions::default(),
                )
                .unwrap();
                total += 1;
            }
            db.checkpoint().unwrap();
        }
        let st = &db.stats().unwrap()["storage"];
        let spare = st["free_pages"].as_u64().unwrap() + st["pending_free_pages"].as_u64().unwrap();
        let pages = st["total_pages"].as_u64().unwrap();
        assert!(
            spare * 8 >= pages && spare >= 128,
            "{spare} of {pages} pages free"
        );
        total
    };
    let template_len = std::fs::metadata(&template).unwrap().len();
    let (mut n, mut crashed) = (1u64, 0);
    loop {
        let path = dir.path().join(format!("c{n}.db"));
        std::fs::copy(&template, &path).unwrap();
        std::fs::copy(template.with_extension("wasp"), path.with_extension("wasp")).unwrap();
        let db = Database::open(&path, opts(true)).unwrap();
        db.inject_faults(FaultPlan {
            crash_after_ios: Some(n),
            ..FaultPlan::default()
        });
        let closed = db.close();
        let ctx = format!("close crashed at I/O {n} ({closed:?})");
        let len = std::fs::metadata(&path).unwrap().len();
        let log_len = std::fs::metadata(path.with_extension("wasp"))
            .unwrap()
            .len();
        let db = Database::open(&path, opts(false)).expect(&ctx);
        let c = db.collection("c");
        assert_eq!(c.count(&doc! {}).unwrap(), DOCS as u64, "{ctx}");
        let sum: i64 = c
            .find(&doc! {}, nexus::FindOptions::default())
            .unwrap()
            .map(|d| d.unwrap().get("n").and_then(Bson::as_i64).unwrap())
            .sum();
        assert_eq!(sum, total, "{ctx}");
        let report = db.check().unwrap();
        assert_eq!(report["ok"], true, "{ctx}: {report}");
        drop(db);
        std::fs::remove_file(&path).unwrap();
        let _ = std::fs::remove_file(path.with_extension("wasp"));
        let _ = std::fs::remove_file(path.with_extension("wasp-shm"));
        if len < template_len * 7 / 8 && log_len == 72 {
            break;
        }
        crashed += 1;
        n += if n < 40 { 1 } else { 7 };
        assert!(n < 20_000, "the close never finished compacting");
    }
    eprintln!("{crashed} crash points in the close's compaction");
    assert!(crashed > 40, "only {crashed} crash points");
}
