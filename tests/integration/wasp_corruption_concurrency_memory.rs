//! WASP acceptance beyond crashes: flipped bytes in every kind of page and in the log give
//! `Corrupt` or a clean recovery (never a panic, hang or wrong data); 4 reader threads and 1
//! writer keep a transfer invariant on every snapshot; a database 8x the page-cache budget
//! keeps the cache within its budget; online backup while a writer runs; the integrity check.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson};
use nexus::{Database, Document, Error, OpenOptions, StorageEngine, SyncMode};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn wasp() -> OpenOptions {
    OpenOptions {
        storage: Some(StorageEngine::Wasp),
        sweeper: Some(nexus::SweeperConfig {
            interval_ms: 0,
            ..Default::default()
        }),
        ..OpenOptions::default()
    }
}

/// [`wasp`] with `recover: "discard-damaged-log"`: a damaged log's loss accepted.
fn recovering() -> OpenOptions {
    OpenOptions {
        recover: nexus::LogRecovery::DiscardDamaged,
        ..wasp()
    }
}

const PS: u64 = 8192;

/// Builds a checkpointed database with enough documents for a 2-level tree and one large
/// (overflow) document; returns every document by id.
fn build(path: &Path) -> Vec<(String, Document)> {
    let db = Database::open(path, wasp()).unwrap();
    let c = db.collection("c");
    let mut docs = Vec::new();
    db.transaction(|db| {
        let c = db.collection("c");
        for i in 0..600 {
            let d = Document::builder()
                .field("_id", format!("d{i:04}"))
                .field("v", i)
                .field("pad", "z".repeat(100))
                .build();
            c.insert(d.clone())?;
            docs.push((format!("d{i:04}"), d));
        }
        Ok(())
    })
    .unwrap();
    let big = Document::builder()
        .field("_id", "big")
        .field("pad", "B".repeat(50_000))
        .build();
    c.insert(big.clone()).unwrap();
    docs.push(("big".into(), big));
    db.close().unwrap();
    docs
}

/// Page numbers by kind (byte 4 of each page) of a checkpointed file.
fn pages_of_kind(path: &Path, kind: u8) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    (3..bytes.len() as u64 / PS)
        .filter(|p| bytes[(p * PS + 4) as usize] == kind)
        .collect()
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

/// Opens and reads everything; the outcome must be `Corrupt` somewhere or exactly the
/// original documents. Returns whether corruption was reported.
fn outcome(path: &Path, docs: &[(String, Document)]) -> bool {
    let db = match Database::open(path, wasp()) {
        Ok(db) => db,
        Err(Error::Corrupt(_)) => return true,
        Err(e) => panic!("unexpected error at open: {e:?}"),
    };
    let c = db.collection("c");
    for (id, d) in docs {
        match c.find_one(&doc! {"_id": id.as_str()}) {
            Ok(Some(got)) => assert_eq!(&got, d, "wrong data for {id}"),
            Ok(None) => panic!("{id} vanished without a Corrupt error"),
            Err(Error::Corrupt(_)) => return true,
            Err(e) => panic!("unexpected error reading {id}: {e:?}"),
        }
    }
    match c.find(&doc! {}, Default::default()) {
        Ok(cur) => match cur.collect::<Result<Vec<_>, _>>() {
            Ok(all) => assert_eq!(all.len(), docs.len(), "scan returned wrong data"),
            Err(Error::Corrupt(_)) => return true,
            Err(e) => panic!("unexpected scan error {e:?}"),
        },
        Err(Error::Corrupt(_)) => return true,
        Err(e) => panic!("unexpected error {e:?}"),
    }
    match db.check() {
        Ok(_) => false,
        Err(Error::Corrupt(_)) => true,
        Err(e) => panic!("unexpected check error {e:?}"),
    }
}

#[test]
fn flipped_bytes_give_corrupt_or_clean_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.db");
    let docs = build(&clean);
    let leaves = pages_of_kind(&clean, 1);
    let branches = pages_of_kind(&clean, 2);
    let overflow = pages_of_kind(&clean, 3);
    assert!(!leaves.is_empty() && !branches.is_empty() && !overflow.is_empty());
    let cases: Vec<(&str, u64, bool)> = vec![
        ("header", 20, true),
        ("header crc", 61, true),
        ("manifest slot 1", PS + 10, false),
        ("manifest slot 2", 2 * PS + 10, false),
        ("branch page", branches[0] * PS + 40, true),
        ("leaf page", leaves[leaves.len() / 2] * PS + 100, true),
        ("leaf page header", leaves[0] * PS + 9, true),
        ("overflow page", overflow[0] * PS + 500, true),
    ];
    for (what, offset, must_report) in cases {
        let path = dir.path().join(format!("{}.db", what.replace(' ', "_")));
        std::fs::copy(&clean, &path).unwrap();
        std::fs::copy(clean.with_extension("wasp"), path.with_extension("wasp")).unwrap();
        flip(&path, offset);
        eprintln!("case {what}");
        let reported = outcome(&path, &docs);
        if must_report {
            assert!(reported, "{what}: damage not reported");
        }
    }
    // Both manifest slots damaged: Corrupt at open, file unchanged.
    let path = dir.path().join("both.db");
    std::fs::copy(&clean, &path).unwrap();
    flip(&path, PS + 10);
    flip(&path, 2 * PS + 10);
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        Database::open(&path, wasp()),
        Err(Error::Corrupt(_))
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// A flipped byte in the log: in the last record it is a torn tail (cut, the commits before
/// it kept); anywhere before, intact commits follow it, so open refuses with `Corrupt` and
/// changes nothing, and only `recover: discard-damaged-log` opens, keeping the commits
/// before the damage and reporting how many it dropped.
#[test]
fn flipped_log_bytes_are_a_torn_tail_only_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let db = Database::open(&path, wasp()).unwrap();
    db.collection("c").insert(doc_n(0)).unwrap();
    db.checkpoint().unwrap();
    for i in 1..20 {
        db.collection("c").insert(doc_n(i)).unwrap();
    }
    let log = std::fs::read(path.with_extension("wasp")).unwrap();
    // Simulate a crash: copy the files while open (the log holds 19 records). The log is
    // recycled: its records start after the two 32-byte header slots and end where the
    // current lap ends (`log_bytes`), not at the end of the file.
    let crashed = dir.path().join("crashed.db");
    let end = db.stats().unwrap()["storage"]["log_bytes"]
        .as_u64()
        .unwrap() as usize;
    assert!(end < log.len() && end > 64 + 19 * 20, "{end}");
    for (at, torn) in [
        (64 + 8usize, false),
        ((64 + end) / 2, false),
        (end - 3, true),
    ] {
        std::fs::copy(&path, &crashed).unwrap();
        let mut bad = log.clone();
        bad[at] ^= 0x11;
        std::fs::write(crashed.with_extension("wasp"), &bad).unwrap();
        if !torn {
            let e = Database::open(&crashed, wasp()).unwrap_err();
            assert!(
                matches!(&e, Error::Corrupt(m) if m.contains("intact commit")),
                "{at}: {e}"
            );
            assert_eq!(std::fs::read(crashed.with_extension("wasp")).unwrap(), bad);
        }
        let db2 = Database::open(&crashed, if torn { wasp() } else { recovering() }).unwrap();
        let n = db2.collection("c").count(&doc! {}).unwrap();
        assert!(n < 20, "a damaged record was replayed");
        assert_eq!(n == 19, torn, "{at}: {n}");
        let dropped = &db2.stats().unwrap()["storage"]["recovery"]["commits_dropped"];
        assert_eq!(
            dropped.as_u64().unwrap(),
            if torn { 0 } else { 19 - n },
            "{at}"
        );
        for i in 0..n as i64 {
            assert!(db2
                .collection("c")
                .find_one(&doc! {"_id": i})
                .unwrap()
                .is_some());
        }
        assert!(db2.check().is_ok());
        db2.close().unwrap();
    }
    drop(db);
}

/// A log of another database in place of this one's (even beside a quiet manifest, which
/// needs none) is refused and left as it is: it may hold the other database's commits.
#[test]
fn a_log_of_another_database_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    for p in [&a, &b] {
        let db = Database::open(p, wasp()).unwrap();
        db.collection("c").insert(doc_n(1)).unwrap();
        db.close().unwrap();
    }
    std::fs::copy(b.with_extension("wasp"), a.with_extension("wasp")).unwrap();
    let foreign = std::fs::read(a.with_extension("wasp")).unwrap();
    let e = Database::open(&a, wasp()).unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt(m) if m.contains("belongs to another database")),
        "{e}"
    );
    assert_eq!(std::fs::read(a.with_extension("wasp")).unwrap(), foreign);
    let db = Database::open(&a, recovering()).unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
    db.close().unwrap();
}

/// A backup from a read-only connection, whose log holds commits past the checkpoint (it
/// cannot checkpoint them itself): the copy holds them all, folded into its pages, and
/// opens and checks clean even without its log.
#[test]
fn a_read_only_backup_folds_the_log_into_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live.db"), dir.path().join("crashed.db"));
    let db = Database::open(&live, wasp()).unwrap();
    for i in 0..30 {
        db.collection("c").insert(doc_n(i)).unwrap();
        if i == 9 {
            db.checkpoint().unwrap();
        }
    }
    // A crash image: the last 20 commits only in the log.
    std::fs::copy(&live, &crashed).unwrap();
    std::fs::copy(live.with_extension("wasp"), crashed.with_extension("wasp")).unwrap();
    db.close().unwrap();
    let ro = OpenOptions {
        read_only: true,
        ..wasp()
    };
    let src = Database::open(&crashed, ro).unwrap();
    let copy = dir.path().join("copy.db");
    src.backup(&copy).unwrap();
    drop(src);
    std::fs::remove_file(copy.with_extension("wasp")).unwrap();
    let db = Database::open(&copy, wasp()).unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 30);
    assert!(db.check().is_ok());
    db.close().unwrap();
}

fn doc_n(i: i64) -> Document {
    Document::builder().field("_id", i).field("v", i).build()
}

#[test]
fn four_readers_see_the_transfer_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let opts = OpenOptions {
        sync: SyncMode::Off,
        checkpoint_log_bytes: Some(64 * 1024),
        page_cache_bytes: Some(256 * 1024),
        ..wasp()
    };
    let db = Database::open(&path, opts.clone()).unwrap();
    const ACCOUNTS: i64 = 200;
    db.transaction(|db| {
        for i in 0..ACCOUNTS {
            db.collection("acct").insert(
                Document::builder()
                    .field("_id", i)
                    .field("bal", 100i64)
                    .field("pad", "p".repeat(150))
                    .build(),
            )?;
        }
        Ok(())
    })
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut readers = Vec::new();
    for r in 0..4 {
        let stop = Arc::clone(&stop);
        let db = Database::open(&path, opts.clone()).unwrap();
        readers.push(std::thread::spawn(move || {
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                let sum: i64 = db
                    .collection("acct")
                    .find(&doc! {}, Default::default())
                    .unwrap()
                    .map(|d| match d.unwrap().get("bal") {
                        Some(Bson::Int64(v)) => *v,
                        Some(Bson::Int32(v)) => i64::from(*v),
                        other => panic!("{other:?}"),
                    })
                    .sum();
                assert_eq!(sum, ACCOUNTS * 100, "reader {r} saw a broken invariant");
                checks += 1;
                assert!(Instant::now() < deadline, "reader {r} timed out");
            }
            checks
        }));
    }
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..1500 {
        let (a, b) = (rng.i64(0..ACCOUNTS), rng.i64(0..ACCOUNTS));
        let amt = rng.i64(1..20);
        db.transaction(|db| {
            let c = db.collection("acct");
            c.update(
                &doc! {"_id": a},
                &doc! {"$inc": {"bal": -amt}},
                Default::default(),
            )?;
            c.update(
                &doc! {"_id": b},
                &doc! {"$inc": {"bal": amt}},
                Default::default(),
            )?;
            Ok(())
        })
        .unwrap();
        assert!(Instant::now() < deadline, "writer timed out");
    }
    stop.store(true, Ordering::Relaxed);
    let checks: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(checks >= 4, "readers made {checks} checks");
    let st = db.stats().unwrap();
    assert!(st["storage"]["checkpoints"].as_u64().unwrap() > 0, "{st}");
    db.check().unwrap();
}

#[test]
fn database_8x_the_page_cache_stays_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let budget: u64 = 1024 * 1024;
    let opts = OpenOptions {
        sync: SyncMode::Off,
        page_cache_bytes: Some(budget),
        cache: Some(nexus::CacheConfig {
            capacity: 0,
            ..Default::default()
        }),
        ..wasp()
    };
    let db = Database::open(&path, opts.clone()).unwrap();
    for batch in 0..40 {
        db.transaction(|db| {
            for i in 0..1000 {
                db.collection("c").insert(
                    Document::builder()
                        .field("_id", batch * 1000 + i)
                        .field("pad", "q".repeat(200))
                        .build(),
                )?;
            }
            Ok(())
        })
        .unwrap();
        let st = db.stats().unwrap();
        assert!(
            st["storage"]["page_cache"]["bytes"].as_u64().unwrap() <= budget,
            "{st}"
        );
        assert!(
            st["storage"]["dirty_nodes"].as_u64().unwrap() * 8192 <= budget,
            "dirty memory past half the budget: {st}"
        );
    }
    db.checkpoint().unwrap();
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(file >= 8 * budget, "database is only {file} bytes");
    let mut rng = fastrand::Rng::with_seed(1);
    for _ in 0..2000 {
        let id = rng.i64(0..40_000);
        assert!(db
            .collection("c")
            .find_one(&doc! {"_id": id})
            .unwrap()
            .is_some());
    }
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 40_000);
    let st = db.stats().unwrap();
    assert!(
        st["storage"]["page_cache"]["bytes"].as_u64().unwrap() <= budget,
        "{st}"
    );
    db.close().unwrap();
}

#[test]
fn online_backup_while_writing_opens_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    let db = Database::open(&path, wasp()).unwrap();
    for i in 0..300 {
        db.collection("c").insert(doc_n(i)).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let db = Database::open(&path, wasp()).unwrap();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 1000;
            while !stop.load(Ordering::Relaxed) {
                db.collection("c").insert(doc_n(i)).unwrap();
                i += 1;
                if i % 50 == 0 {
                    db.checkpoint().unwrap();
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let dest = dir.path().join("copy.db");
    db.backup(&dest).unwrap();
    assert!(matches!(db.backup(&dest), Err(Error::InvalidArgument(_))));
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let copy = Database::open(&dest, OpenOptions::default()).unwrap();
    let n = copy.collection("c").count(&doc! {}).unwrap();
    assert!(n >= 300, "{n}");
    for i in 0..300 {
        assert!(copy
            .collection("c")
            .find_one(&doc! {"_id": i})
            .unwrap()
            .is_some());
    }
    let report = copy.check().unwrap();
    assert_eq!(report["backend"], "wasp");
    assert_eq!(report["ok"], true);
}

#[test]
fn wal_files_keep_opening_as_wal_and_options_pick_new_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.db");
    let db = Database::open(
        &p,
        OpenOptions {
            storage: Some(StorageEngine::MemLog),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    db.collection("c").insert(doc_n(1)).unwrap();
    db.close().unwrap();
    let db = Database::open(&p, wasp()).unwrap();
    assert_eq!(db.stats().unwrap()["storage"]["backend"], "memlog");
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
    db.close().unwrap();
    let q = dir.path().join("new.db");
    let db = Database::open(&q, wasp()).unwrap();
    assert_eq!(db.stats().unwrap()["storage"]["backend"], "wasp");
    db.close().unwrap();
    assert!(q.with_extension("wasp").exists());
    let db = Database::open(&q, OpenOptions::default()).unwrap();
    assert_eq!(db.stats().unwrap()["storage"]["backend"], "wasp");
    let o = OpenOptions::from_json(Some(r#"{"storage":"wasp","page_size":16384}"#)).unwrap();
    let r = dir.path().join("p16.db");
    let db = Database::open(&r, o).unwrap();
    assert_eq!(db.stats().unwrap()["storage"]["page_size"], 16384);
    assert!(OpenOptions::from_json(Some(r#"{"page_size":1000}"#)).is_err());
}

/// The `mmap` open option: off by default, on request on 64-bit Unix; the same file reads
/// the same both ways, and damaged leaves are reported both ways (the map verifies a page's
/// checksum the first time a reader meets it).
#[test]
fn mmap_option_reads_the_same_file_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.db");
    let docs = build(&p);
    let opts = |mmap: Option<bool>| OpenOptions { mmap, ..wasp() };
    let can_map = cfg!(all(unix, target_pointer_width = "64"));
    for (mmap, mapped) in [(None, false), (Some(true), can_map), (Some(false), false)] {
        let db = Database::open(&p, opts(mmap)).unwrap();
        assert_eq!(db.stats().unwrap()["storage"]["mmap"], mapped, "{mmap:?}");
        let c = db.collection("c");
        for (id, d) in &docs {
            let got = c.find_one(&doc! {"_id": id.as_str()}).unwrap();
            assert_eq!(got.as_ref(), Some(d), "{mmap:?} {id}");
        }
        db.checkpoint().unwrap();
        db.close().unwrap();
    }
    assert!(OpenOptions::from_json(Some(r#"{"mmap":1}"#)).is_err());

    // A flipped byte in every leaf of the collection (not the catalog's, which open reads):
    // both ways, reading the documents reports corruption.
    let bytes = std::fs::read(&p).unwrap();
    let holds_docs = |page: u64| {
        let at = (page * PS) as usize;
        bytes[at..at + PS as usize]
            .windows(5)
            .any(|w| w == b"d0000" || w == b"d0599")
    };
    let leaves: Vec<u64> = pages_of_kind(&p, 1)
        .into_iter()
        .filter(|&l| holds_docs(l))
        .collect();
    assert!(!leaves.is_empty());
    for leaf in leaves {
        flip(&p, leaf * PS + 100);
    }
    for mmap in [Some(true), None] {
        let db = Database::open(&p, opts(mmap)).unwrap();
        let c = db.collection("c");
        let err = docs
            .iter()
            .find_map(|(id, _)| c.find_one(&doc! {"_id": id.as_str()}).err())
            .unwrap_or_else(|| panic!("{mmap:?}: the damaged leaves were not noticed"));
        assert!(matches!(err, Error::Corrupt(_)), "{mmap:?}: {err}");
    }
}

/// Acceptance of the WASP issue: a database opened with no storage option is a WASP file,
/// `NAME.db` plus the side log `NAME.wasp`. In the suite's `memlog` pass (NEXUSLITE_STORAGE=memlog,
/// read by the tests only) `common::open_options` asks for `memlog`, and the file must be that
/// engine's instead, with the same two names.
#[test]
fn default_storage_is_wasp_with_db_and_side_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("app.db");
    let db = Database::open(&p, common::open_options()).unwrap();
    db.collection("c").insert(doc_n(1)).unwrap();
    let expected = common::engine().as_str();
    assert_eq!(db.stats().unwrap()["storage"]["backend"], expected);
    assert!(p.exists(), "NAME.db missing");
    assert!(dir.path().join("app.wasp").exists(), "NAME.wasp missing");
    db.close().unwrap();
    // Reopened with no storage option: the file keeps the engine that wrote it.
    let db = Database::open(&p, OpenOptions::default()).unwrap();
    assert_eq!(db.stats().unwrap()["storage"]["backend"], expected);
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
    db.close().unwrap();
}
