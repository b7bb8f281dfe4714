//! The recycled log of WASP (`NAME.wasp`, log version 2): after a checkpoint the log restarts
//! in place, its next lap overwriting the records of the one before. A crash image is taken
//! by copying the files while the writer has them open (what a killed process leaves: every
//! commit here is `sync=full`, so acknowledged records are in the files). Checks: a shorter
//! lap after a longer one never resurrects the longer lap's tail; a stale record right after
//! a torn record of the current lap is neither replayed nor counted as a lost commit; a
//! version-1 log (earlier builds) still opens, and its first checkpoint makes it a recycled
//! log.
#![allow(clippy::cast_possible_truncation)] // offsets of small test logs

use bson::{doc, Bson};
use nexus::{Database, Document, OpenOptions, StorageEngine, UpdateOptions};
use std::path::Path;

fn wasp() -> OpenOptions {
    OpenOptions {
        storage: Some(StorageEngine::Wasp),
        ..OpenOptions::default()
    }
}

fn storage(db: &Database) -> serde_json::Value {
    db.stats().unwrap()["storage"].clone()
}

fn log_end(db: &Database) -> usize {
    storage(db)["log_bytes"].as_u64().unwrap() as usize
}

/// Sets the counter document to `v` (a record of the same size whatever `v`).
fn set(db: &Database, v: i64) {
    db.collection("meta")
        .update(
            &doc! {"_id": "c"},
            &doc! {"$set": {"v": v}},
            UpdateOptions {
                upsert: true,
                ..Default::default()
            },
        )
        .unwrap();
}

fn counter(db: &Database) -> Option<i64> {
    db.collection("meta")
        .find_one(&doc! {"_id": "c"})
        .unwrap()
        .and_then(|d| d.get("v").and_then(Bson::as_i64))
}

/// Inserts `n` documents `{_id: 0..n, pad: 2,000 bytes}` into `items`, one commit each.
fn insert_padded(db: &Database, n: i64) {
    let items = db.collection("items");
    for i in 0..n {
        items
            .insert(
                Document::builder()
                    .field("_id", i)
                    .field("pad", "p".repeat(2000))
                    .build(),
            )
            .unwrap();
    }
}

/// Copies `from` and its log to `to` (a crash image of an open database).
fn crash_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::copy(from.with_extension("wasp"), to.with_extension("wasp")).unwrap();
}

#[test]
fn a_shorter_lap_never_resurrects_the_longer_lap_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live.db"), dir.path().join("crashed.db"));
    let db = Database::open(&live, wasp()).unwrap();
    set(&db, 0);
    db.checkpoint().unwrap();
    // Lap N: 300 commits (counter updates and inserts).
    let items = db.collection("items");
    for i in 1..=150i64 {
        set(&db, i);
        items
            .insert(Document::builder().field("_id", format!("n{i:04}")).build())
            .unwrap();
    }
    let long_lap = log_end(&db);
    db.checkpoint().unwrap();
    assert_eq!(
        log_end(&db),
        64,
        "the next lap starts right after the header"
    );
    // Lap N+1: 6 commits, overwriting the start of lap N.
    for i in 151..=153i64 {
        set(&db, i);
        items
            .insert(Document::builder().field("_id", format!("m{i:04}")).build())
            .unwrap();
    }
    let short_lap = log_end(&db);
    assert!(short_lap * 10 < long_lap, "{short_lap} vs {long_lap}");
    let st = storage(&db);
    assert!(
        st["log_file_bytes"].as_u64().unwrap() >= long_lap as u64,
        "the file keeps its length (recycled, not cut): {st}"
    );
    crash_copy(&live, &crashed);
    drop(db);

    let db = Database::open(&crashed, wasp()).unwrap();
    let r = &storage(&db)["recovery"];
    assert_eq!(r["records_replayed"], 6, "exactly lap N+1's commits: {r}");
    assert_eq!(r["stop_reason"], serde_json::Value::Null, "{r}");
    assert_eq!(r["dropped_bytes"], 0, "{r}");
    assert_eq!(r["commits_dropped"], 0, "{r}");
    assert_eq!(counter(&db), Some(153));
    let items = db.collection("items");
    assert_eq!(items.count(&doc! {}).unwrap(), 153);
    // The database goes on in the same lap, and the next crash image holds it all.
    set(&db, 154);
    assert!(log_end(&db) > short_lap);
    let again = dir.path().join("again.db");
    crash_copy(&crashed, &again);
    drop(db);
    let db = Database::open(&again, wasp()).unwrap();
    assert_eq!(counter(&db), Some(154));
    assert_eq!(storage(&db)["recovery"]["records_replayed"], 7);
    assert_eq!(db.check_report().unwrap()["ok"], true);
}

#[test]
fn a_stale_record_right_after_a_torn_record_is_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live.db"), dir.path().join("crashed.db"));
    let db = Database::open(&live, wasp()).unwrap();
    set(&db, 0);
    db.checkpoint().unwrap();
    // Lap N: 40 counter updates.
    let mut ends = vec![log_end(&db)];
    for v in 1..=40i64 {
        set(&db, 1000 + v);
        ends.push(log_end(&db));
    }
    let lap_n = std::fs::read(live.with_extension("wasp")).unwrap();
    db.checkpoint().unwrap();
    // Lap N+1: 5 updates over the start of lap N.
    let mut new_ends = vec![log_end(&db)];
    for v in 1..=5i64 {
        set(&db, 2000 + v);
        new_ends.push(log_end(&db));
    }
    crash_copy(&live, &crashed);
    drop(db);

    // The fifth record of lap N+1 torn: its second half, and the 8-byte end mark written
    // after it in the same write, are still lap N's bytes. And right after it lies a whole
    // record of lap N (its sixth, setting the counter to 1006), as when the records of the
    // two laps have the same sizes.
    let log = crashed.with_extension("wasp");
    let mut bytes = std::fs::read(&log).unwrap();
    let (start, end) = (new_ends[4], new_ends[5]);
    let torn_from = start + (end - start) / 2;
    bytes[torn_from..end + 8].copy_from_slice(&lap_n[torn_from..end + 8]);
    let stale = &lap_n[ends[5]..ends[6]];
    bytes[end..end + stale.len()].copy_from_slice(stale);
    std::fs::write(&log, &bytes).unwrap();

    let db = Database::open(&crashed, wasp()).unwrap();
    let r = &storage(&db)["recovery"];
    assert_eq!(counter(&db), Some(2004), "{r}");
    assert_eq!(r["records_replayed"], 4, "{r}");
    assert!(r["stop_reason"].as_str().is_some(), "a torn record: {r}");
    assert_eq!(
        r["commits_dropped"], 0,
        "a torn tail, not damage (lap N's records are no lost commits): {r}"
    );
    // The next commits overwrite the torn record; a crash then replays them and nothing else.
    set(&db, 3000);
    set(&db, 3001);
    let again = dir.path().join("again.db");
    crash_copy(&crashed, &again);
    drop(db);
    let db = Database::open(&again, wasp()).unwrap();
    let r = &storage(&db)["recovery"];
    assert_eq!(counter(&db), Some(3001), "{r}");
    assert_eq!(r["records_replayed"], 6, "{r}");
    assert_eq!(
        r["stop_reason"],
        serde_json::Value::Null,
        "the torn record was erased at the previous open: {r}"
    );
    assert_eq!(db.check_report().unwrap()["ok"], true);
}

/// The version-1 layout of `log` (records from offset 64 up to `end`, version 2): one
/// 32-byte header, version 1, and every record's checksum the plain CRC32 of its payload.
fn as_version_1(log: &[u8], end: usize) -> Vec<u8> {
    let lap = u32::from_le_bytes(log[24..28].try_into().unwrap())
        .max(u32::from_le_bytes(log[56..60].try_into().unwrap()));
    let slot = if u32::from_le_bytes(log[24..28].try_into().unwrap()) == lap {
        0
    } else {
        32
    };
    let mut out = log[slot..slot + 32].to_vec();
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    out[24..28].copy_from_slice(&0u32.to_le_bytes());
    let crc = crc32fast::hash(&out[0..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut at = 64;
    while at < end {
        let len = u32::from_le_bytes(log[at..at + 4].try_into().unwrap()) as usize;
        let payload = &log[at + 8..at + 8 + len];
        out.extend_from_slice(&log[at..at + 4]);
        out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        out.extend_from_slice(payload);
        at += 8 + len;
    }
    assert_eq!(at, end);
    out
}

#[test]
fn a_version_1_log_opens_and_its_first_checkpoint_recycles_it() {
    let dir = tempfile::tempdir().unwrap();
    let (live, old) = (dir.path().join("live.db"), dir.path().join("old.db"));
    let db = Database::open(&live, wasp()).unwrap();
    set(&db, 1);
    db.checkpoint().unwrap();
    for v in 2..=20i64 {
        set(&db, v);
    }
    let end = log_end(&db);
    crash_copy(&live, &old);
    drop(db);
    let log = old.with_extension("wasp");
    let v1 = as_version_1(&std::fs::read(&log).unwrap(), end);
    std::fs::write(&log, &v1).unwrap();

    let db = Database::open(&old, wasp()).unwrap();
    assert_eq!(counter(&db), Some(20));
    assert_eq!(storage(&db)["recovery"]["records_replayed"], 19);
    // Still version 1 until a checkpoint: commits append to it as earlier builds did.
    set(&db, 21);
    let st = storage(&db);
    assert!(log_end(&db) > v1.len(), "{st}");
    assert_eq!(
        st["log_file_bytes"].as_u64(),
        Some(log_end(&db) as u64),
        "appended at the end of the file: no end mark, nothing preallocated: {st}"
    );
    let copy = dir.path().join("copy.db");
    crash_copy(&old, &copy);
    let bytes = std::fs::read(copy.with_extension("wasp")).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    db.checkpoint().unwrap();
    let bytes = std::fs::read(&log).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    assert_eq!(log_end(&db), 64);
    set(&db, 22);
    let again = dir.path().join("again.db");
    crash_copy(&old, &again);
    drop(db);
    for (path, want) in [(copy, 21), (again, 22)] {
        let db = Database::open(&path, wasp()).unwrap();
        assert_eq!(counter(&db), Some(want));
        assert_eq!(db.check_report().unwrap()["ok"], true);
    }
}

#[test]
fn compaction_alone_gives_back_the_space_of_earlier_laps() {
    let dir = tempfile::tempdir().unwrap();
    let (live, crashed) = (dir.path().join("live.db"), dir.path().join("crashed.db"));
    let db = Database::open(&live, wasp()).unwrap();
    insert_padded(&db, 400);
    db.checkpoint().unwrap();
    let file_bytes = |db: &Database| storage(db)["log_file_bytes"].as_u64().unwrap();
    assert!(file_bytes(&db) > 800_000, "{}", storage(&db));
    db.compact().unwrap();
    assert_eq!(file_bytes(&db), 64 + 8, "the empty lap and its end mark");
    // The log goes on after it, and a crash image holds the commits after the compaction.
    set(&db, 7);
    assert!(file_bytes(&db) >= 1 << 20, "preallocated again");
    crash_copy(&live, &crashed);
    drop(db);
    let db = Database::open(&crashed, wasp()).unwrap();
    assert_eq!(counter(&db), Some(7));
    assert_eq!(db.collection("items").count(&doc! {}).unwrap(), 400);
    assert_eq!(db.check_report().unwrap()["ok"], true);
}

#[test]
fn the_last_close_leaves_the_log_empty_and_short() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.db");
    let log = path.with_extension("wasp");
    let items_of = |db: &Database| db.collection("items").count(&doc! {}).unwrap();
    let db = Database::open(&path, wasp()).unwrap();
    insert_padded(&db, 300);
    // A checkpoint restarts the lap in place: the file keeps the earlier lap's length.
    db.checkpoint().unwrap();
    set(&db, 1);
    assert!(std::fs::metadata(&log).unwrap().len() > 600_000);
    // A second connection of the same process: its close is not the last one.
    let other = Database::open(&path, wasp()).unwrap();
    other.close().unwrap();
    assert!(std::fs::metadata(&log).unwrap().len() > 600_000);
    db.close().unwrap();
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        64 + 8,
        "the empty lap's header and end mark"
    );
    // It opens as it was, goes on, and a crash image of the next session holds its commits.
    let db = Database::open(&path, wasp()).unwrap();
    assert_eq!(counter(&db), Some(1));
    assert_eq!(items_of(&db), 300);
    set(&db, 2);
    let crashed = dir.path().join("crashed.db");
    crash_copy(&path, &crashed);
    db.close().unwrap();
    // A close with nothing committed since the open cuts it too.
    let db = Database::open(&crashed, wasp()).unwrap();
    assert_eq!(counter(&db), Some(2));
    assert_eq!(storage(&db)["recovery"]["records_replayed"], 1);
    db.close().unwrap();
    let db = Database::open(&crashed, wasp()).unwrap();
    db.close().unwrap();
    assert_eq!(
        std::fs::metadata(crashed.with_extension("wasp"))
            .unwrap()
            .len(),
        72
    );
    let db = Database::open(&crashed, wasp()).unwrap();
    assert_eq!(counter(&db), Some(2));
    assert_eq!(items_of(&db), 300);
    assert_eq!(db.check_report().unwrap()["ok"], true);
}
