//! Free space at the last close (WASP): copy-on-write updates leave the pages of the old
//! copies free, reused only by later checkpoints, so a file that takes many updates holds up
//! to two checkpoints' worth of free pages. The last connection's close compacts the file when
//! those pages are at least an eighth of it (and between 1 and 64 MiB); `compact_on_close:
//! false` keeps them. Either way every document reads back as committed.

use bson::{doc, Bson};
use nexus::{Database, Document, OpenOptions, StorageEngine, SyncMode, UpdateOptions};
use std::path::Path;

const DOCS: i64 = 20_000;
/// In every document; an encrypted file must not show it.
const MARKER: &str = "Okapi7CloseMarker";

fn options(compact_on_close: bool) -> OpenOptions {
    OpenOptions {
        storage: Some(StorageEngine::Wasp),
        sync: SyncMode::Normal,
        // A small page cache: a checkpoint every megabyte of dirty pages, so the updates
        // below leave free pages behind as they would in a large database.
        page_cache_bytes: Some(2 << 20),
        compact_on_close: Some(compact_on_close),
        ..OpenOptions::default()
    }
}

fn storage(db: &Database) -> serde_json::Value {
    db.stats().unwrap()["storage"].clone()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Loads `DOCS` documents, then updates 6,000 at random one commit each; returns the free
/// pages (free now or once no snapshot needs them), at least an eighth of the file (checked),
/// and the pages of the file before close.
fn load_and_churn(path: &Path, compact_on_close: bool) -> (u64, u64) {
    let (spare, total, _) = load_and_churn_with(path, options(compact_on_close));
    (spare, total)
}

/// [`load_and_churn`] with `options`; also returns the file's length before the close.
fn load_and_churn_with(path: &Path, options: OpenOptions) -> (u64, u64, u64) {
    let db = Database::open(path, options).unwrap();
    let items = db.collection("items");
    db.begin().unwrap();
    for i in 0..DOCS {
        items
            .insert(
                Document::builder()
                    .field("_id", format!("id{i:06}"))
                    .field("n", 0i64)
                    .field("pad", format!("{MARKER} {}", "p".repeat(180)))
                    .build(),
            )
            .unwrap();
    }
    db.commit().unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..6_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = x % DOCS as u64;
        items
            .update(
                &doc! {"_id": format!("id{i:06}")},
                &doc! {"$inc": {"n": 1i64}},
                UpdateOptions::default(),
            )
            .unwrap();
    }
    db.checkpoint().unwrap();
    let st = storage(&db);
    let spare = st["free_pages"].as_u64().unwrap() + st["pending_free_pages"].as_u64().unwrap();
    let total = st["total_pages"].as_u64().unwrap();
    assert!(
        spare * 8 >= total,
        "the updates left {spare} of {total} pages free"
    );
    let before = file_len(path);
    db.close().unwrap();
    (spare, total, before)
}

fn counters(db: &Database) -> i64 {
    let items = db.collection("items");
    assert_eq!(items.count(&doc! {}).unwrap(), DOCS as u64);
    let mut sum = 0;
    for i in 0..DOCS {
        let d = items
            .find_one(&doc! {"_id": format!("id{i:06}")})
            .unwrap()
            .unwrap();
        sum += d.get("n").and_then(Bson::as_i64).unwrap();
    }
    sum
}

#[test]
fn the_last_close_gives_back_the_pages_updates_left_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("churn.db");
    let (spare, total) = load_and_churn(&path, true);
    let page = 8192;
    // The close compacted: the file holds the live pages and a few for the free list.
    assert!(
        file_len(&path) <= (total - spare + 16) * page,
        "{} bytes after close, {} live pages",
        file_len(&path),
        total - spare
    );
    assert_eq!(file_len(&path.with_extension("wasp")), 72);
    let db = Database::open(&path, options(true)).unwrap();
    assert_eq!(counters(&db), 6_000, "every update is there");
    assert_eq!(db.check_report().unwrap()["ok"], true);
    assert!(storage(&db)["free_pages"].as_u64().unwrap() < 16);
    // A close with nothing to give back leaves the file as it is.
    let len = file_len(&path);
    db.close().unwrap();
    assert_eq!(file_len(&path), len);
}

#[test]
fn compact_on_close_false_keeps_the_free_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.db");
    let (_, total) = load_and_churn(&path, false);
    assert!(file_len(&path) >= total * 8192, "nothing given back");
    let db = Database::open(&path, options(false)).unwrap();
    assert_eq!(counters(&db), 6_000);
    assert_eq!(db.check_report().unwrap()["ok"], true);
    // The explicit compaction still does it.
    db.compact().unwrap();
    assert!(file_len(&path) < total * 8192 * 7 / 8);
    drop(db);
    let db = Database::open(&path, options(false)).unwrap();
    assert_eq!(counters(&db), 6_000);
}

#[test]
fn an_encrypted_database_compacts_at_close_and_stays_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed.db");
    let key = crate::common::new_key();
    let opts = || OpenOptions {
        encryption_key: Some(key.clone()),
        ..options(true)
    };
    let (spare, total, before) = load_and_churn_with(&path, opts());
    let page = before / total;
    assert!(
        file_len(&path) <= (total - spare + 16) * page,
        "{} bytes after close, {before} before, {spare} of {total} pages free",
        file_len(&path)
    );
    crate::common::assert_marker_absent(&path, MARKER, "after the close's compaction");
    let db = Database::open(&path, opts()).unwrap();
    assert_eq!(counters(&db), 6_000);
    assert_eq!(db.check_report().unwrap()["ok"], true);
}
