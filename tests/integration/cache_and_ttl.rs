//! The Redis-like layer, each test named for one behaviour: TTL expiry is evicted before LRU,
//! LRU sampling when nothing expired, lazy expiry is a miss, expiry survives restarts, the
//! sweeper's work per cycle is bounded, eviction is batched under one lock with concurrent
//! writers, bounded collections keep their bound across restarts, settings change at run
//! time, and admission: uniform reads over a working set larger than the cache do not churn
//! it, reused keys are admitted, everything is admitted while it fits.

use crate::common;

use bson::{doc, Bson};
use nexus::{Database, Document, DocumentId, Error, OpenOptions};
use std::time::Duration;

/// Opens the file at `path` with the JSON `options` (and the harness's engine for new files).
fn open(path: &std::path::Path, options: &str) -> Database {
    let options = common::with_storage(OpenOptions::from_json(Some(options)).unwrap());
    Database::open(path, options).unwrap()
}

fn memory(options: &str) -> Database {
    Database::open(":memory:", OpenOptions::from_json(Some(options)).unwrap()).unwrap()
}

fn id(s: &str) -> DocumentId {
    DocumentId::from_str_id(s).unwrap()
}

fn cache_stat(db: &Database, path: &[&str]) -> u64 {
    let stats = db.stats().unwrap();
    let mut v = &stats["cache"];
    for p in path {
        v = &v[*p];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("no cache.{path:?} in {stats}"))
}

fn d(key: &str) -> Document {
    Document::from(doc! {"_id": key, "v": 1})
}

#[test]
fn ttl_expiry_evicts_before_lru() {
    let db = memory(
        r#"{"cache_capacity": 10, "batch_size": 1, "max_samples": 10, "sweeper_interval_ms": 0}"#,
    );
    let c = db.collection("c");
    for i in 0..5 {
        c.insert_ttl(d(&format!("eph{i}")), 50).unwrap();
        c.get(&id(&format!("eph{i}"))).unwrap().unwrap(); // cached, oldest accesses
    }
    for i in 0..5 {
        c.insert(d(&format!("old{i}"))).unwrap();
        c.get(&id(&format!("old{i}"))).unwrap().unwrap();
    }
    std::thread::sleep(Duration::from_millis(80));
    // Each overflow evicts a batch down to capacity - 1: two expired entries each time.
    for i in 0..4 {
        c.insert(d(&format!("new{i}"))).unwrap();
        c.get(&id(&format!("new{i}"))).unwrap().unwrap(); // overflows the cache
    }
    assert_eq!(cache_stat(&db, &["evictions", "ttl"]), 4);
    assert_eq!(cache_stat(&db, &["evictions", "lru"]), 0);
    let hits = cache_stat(&db, &["hits"]);
    for i in 0..5 {
        c.get(&id(&format!("old{i}"))).unwrap().unwrap();
    }
    assert_eq!(
        cache_stat(&db, &["hits"]),
        hits + 5,
        "persistent entries stayed cached"
    );
}

#[test]
fn lru_sampling_when_nothing_is_expired() {
    // Every read admitted ("always"), so that the cold stream forces evictions: the default
    // admission declines keys read once when the cache is full (see the admission tests).
    let db = memory(
        r#"{"cache_capacity": 100, "max_samples": 10, "admission": "always",
            "sweeper_interval_ms": 0}"#,
    );
    let c = db.collection("c");
    let docs: Vec<Document> = (0..300).map(|i| d(&format!("k{i:03}"))).collect();
    c.insert_many(docs).unwrap();
    // A hot set of 50, read again and again, interleaved with a stream of cold reads.
    for round in 0..200 {
        for h in 0..50 {
            if (h + round) % 5 == 0 {
                c.get(&id(&format!("k{h:03}"))).unwrap().unwrap();
            }
        }
        let cold = 50 + (round % 250);
        c.get(&id(&format!("k{cold:03}"))).unwrap().unwrap();
    }
    let lru = cache_stat(&db, &["evictions", "lru"]);
    assert!(lru > 0, "the cold stream must have forced evictions");
    assert_eq!(cache_stat(&db, &["evictions", "ttl"]), 0);
    assert!(cache_stat(&db, &["entries"]) <= 100);
    let before = cache_stat(&db, &["hits"]);
    for h in 0..50 {
        c.get(&id(&format!("k{h:03}"))).unwrap().unwrap();
    }
    let hot_hits = cache_stat(&db, &["hits"]) - before;
    assert!(
        hot_hits >= 40,
        "sampled LRU kept only {hot_hits}/50 of the hot set"
    );
}

#[test]
fn lazy_expiry_counts_as_a_miss() {
    let db = memory(r#"{"sweeper_interval_ms": 0}"#);
    let c = db.collection("sessions");
    c.insert_ttl(d("s1"), 40).unwrap();
    assert!(c.get(&id("s1")).unwrap().is_some());
    let meta = c.get_meta(&id("s1")).unwrap().unwrap();
    assert!(meta.ephemeral && meta.expires_at.is_some());
    std::thread::sleep(Duration::from_millis(60));
    let misses = cache_stat(&db, &["misses"]);
    assert!(c.get(&id("s1")).unwrap().is_none());
    assert_eq!(cache_stat(&db, &["misses"]), misses + 1);
    assert_eq!(cache_stat(&db, &["expired_reads"]), 1);
    assert_eq!(
        c.count(&doc! {}).unwrap(),
        0,
        "count skips expired documents"
    );
    assert_eq!(c.find(&doc! {}, Default::default()).unwrap().count(), 0);
    // Nothing was deleted yet: only the read path hides it.
    assert_eq!(db.stats().unwrap()["expiry"]["registered"], 1);
    assert_eq!(db.purge_expired().unwrap(), 1);
    assert_eq!(db.stats().unwrap()["expiry"]["registered"], 0);
    // The _id is free again.
    c.insert(d("s1")).unwrap();
}

#[test]
fn expiry_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttl.db");
    {
        let db = open(&path, r#"{"sweeper_interval_ms": 0}"#);
        let c = db.collection("tokens");
        c.insert_ttl(d("short"), 300).unwrap();
        c.insert_ttl(d("long"), 60_000).unwrap();
        c.insert(d("forever")).unwrap();
        c.insert_ttl(d("made-persistent"), 300).unwrap();
        c.set_ttl(&id("made-persistent"), -1).unwrap();
        db.close().unwrap();
    }
    let db = open(&path, r#"{"sweeper_interval_ms": 0}"#);
    let c = db.collection("tokens");
    assert!(c.get(&id("short")).unwrap().is_some(), "not yet expired");
    std::thread::sleep(Duration::from_millis(350));
    assert!(
        c.get(&id("short")).unwrap().is_none(),
        "expired by absolute time"
    );
    assert!(c.get(&id("long")).unwrap().is_some());
    assert!(c.get(&id("made-persistent")).unwrap().is_some());
    assert_eq!(
        c.get_meta(&id("made-persistent"))
            .unwrap()
            .unwrap()
            .expires_at,
        None
    );
    assert_eq!(db.purge_expired().unwrap(), 1);
    db.close().unwrap();
    let db = open(&path, r#"{}"#);
    assert_eq!(db.collection("tokens").count(&doc! {}).unwrap(), 3);
}

#[test]
fn background_sweeper_deletes_expired_documents() {
    let db = memory(r#"{"sweeper_interval_ms": 10}"#);
    let c = db.collection("c");
    for i in 0..30 {
        c.insert_ttl(d(&format!("e{i}")), 5).unwrap();
    }
    let mut waited = 0;
    while db.stats().unwrap()["expiry"]["registered"] != 0 && waited < 5000 {
        std::thread::sleep(Duration::from_millis(10));
        waited += 10;
    }
    let stats = db.stats().unwrap();
    assert_eq!(stats["expiry"]["registered"], 0, "{stats}");
    assert_eq!(stats["expiry"]["sweeper"]["expired_deleted"], 30, "{stats}");
    assert_eq!(db.stats().unwrap()["storage"]["documents"], 0);
}

#[test]
fn sweeper_work_per_cycle_is_bounded() {
    let db = memory(r#"{"sweeper_interval_ms": 0, "sweeper_sample": 20, "sweeper_budget_ms": 0}"#);
    let c = db.collection("c");
    let docs = 100;
    for i in 0..docs {
        c.insert_ttl(d(&format!("e{i:03}")), 1).unwrap();
    }
    std::thread::sleep(Duration::from_millis(10));
    // No time budget: one round of 20, however much is due.
    assert_eq!(db.run_sweeper_cycle().unwrap(), 20);
    // With a budget, rounds repeat while more than 10% of a sample was due.
    db.configure(r#"{"sweeper_budget_ms": 10000}"#).unwrap();
    assert_eq!(db.run_sweeper_cycle().unwrap(), docs - 20);
    assert_eq!(db.run_sweeper_cycle().unwrap(), 0);
    // A sample where few are due ends the cycle after one round.
    for i in 0..19 {
        c.insert_ttl(d(&format!("later{i}")), 60_000).unwrap();
    }
    c.insert_ttl(d("soon"), 1).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(db.run_sweeper_cycle().unwrap(), 1);
    let stats = db.stats().unwrap();
    assert_eq!(stats["expiry"]["registered"], 19, "{stats}");
}

#[test]
fn eviction_is_batched_under_one_lock_with_four_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evict.db");
    // Every read admitted ("always"): with the default admission a full cache declines keys
    // read once, and this test is about evictions by concurrent writers.
    let first = open(
        &path,
        r#"{"cache_capacity": 64, "batch_size": 16, "admission": "always", "sync": "off",
            "sweeper_interval_ms": 0}"#,
    );
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = path.clone();
            s.spawn(move || {
                let db = open(&path, r#"{"sync": "off"}"#);
                let c = db.collection("c");
                for i in 0..400 {
                    let key = format!("t{t}-{i}");
                    c.insert(d(&key)).unwrap();
                    c.get(&id(&key)).unwrap().unwrap();
                }
            });
        }
    });
    let evictions = cache_stat(&first, &["evictions", "lru"]);
    let cycles = cache_stat(&first, &["eviction_cycles"]);
    let entries = cache_stat(&first, &["entries"]);
    eprintln!("4 writers: {evictions} LRU evictions in {cycles} batches; {entries} entries left");
    let fills = cache_stat(&first, &["fills"]);
    // A commit's invalidation runs after its writer lock is released, so the creation of
    // "c" may drop documents other writers cached meanwhile (counted as dropped).
    let dropped = cache_stat(&first, &["dropped"]);
    assert_eq!(
        evictions + entries + dropped,
        fills,
        "every cached document is held, evicted or dropped"
    );
    assert!(fills >= 1500, "only {fills} of 1600 reads filled the cache");
    assert!(cycles >= 1);
    assert!(
        evictions / cycles >= 2,
        "evictions were not batched: {evictions} in {cycles} cycles"
    );
    assert!(entries <= 64, "{entries} entries for a capacity of 64");
}

#[test]
fn bounded_collection_holds_its_bound_through_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.db");
    let opts = r#"{"max_samples": 64, "sweeper_interval_ms": 0}"#;
    {
        let db = open(&path, opts);
        db.create_collection("recent", Some(r#"{"max_documents": 10}"#))
            .unwrap();
        let c = db.collection("recent");
        for i in 0..25 {
            c.insert(d(&format!("k{i:02}"))).unwrap();
        }
        assert_eq!(c.count(&doc! {}).unwrap(), 10);
        for i in 15..25 {
            assert!(
                c.get(&id(&format!("k{i:02}"))).unwrap().is_some(),
                "k{i} kept"
            );
        }
        // Reading k15 makes it recent: the next insert evicts k16 instead.
        c.get(&id("k15")).unwrap().unwrap();
        c.insert(d("k25")).unwrap();
        assert!(c.get(&id("k15")).unwrap().is_some());
        assert!(c.get(&id("k16")).unwrap().is_none());
        let stats = db.stats().unwrap();
        assert_eq!(stats["expiry"]["bounded_evictions"], 16, "{stats}");
        db.close().unwrap();
    }
    let db = open(&path, opts);
    let c = db.collection("recent");
    assert_eq!(c.count(&doc! {}).unwrap(), 10);
    for i in 30..35 {
        c.insert(d(&format!("k{i:02}"))).unwrap();
    }
    assert_eq!(c.count(&doc! {}).unwrap(), 10);
    assert!(c.get(&id("k34")).unwrap().is_some());
    // A byte bound works the same way.
    db.create_collection("small", Some(r#"{"max_bytes": 2000}"#))
        .unwrap();
    let s = db.collection("small");
    for i in 0..50 {
        s.insert(Document::from(doc! {"_id": i, "pad": "x".repeat(100)}))
            .unwrap();
    }
    let n = s.count(&doc! {}).unwrap();
    assert!((1..50).contains(&n), "{n} documents within 2000 bytes");
    let e = db
        .create_collection("zero", Some(r#"{"max_documents": 0}"#))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
}

#[test]
fn settings_change_at_run_time() {
    let db = memory(r#"{"cache_capacity": 50, "sweeper_interval_ms": 0}"#);
    let c = db.collection("c");
    for i in 0..50 {
        c.insert(d(&format!("k{i}"))).unwrap();
        c.get(&id(&format!("k{i}"))).unwrap();
    }
    assert_eq!(cache_stat(&db, &["entries"]), 50);
    db.configure(r#"{"cache_capacity": 10, "eviction": "lru-only", "max_samples": 7}"#)
        .unwrap();
    let stats = db.stats().unwrap();
    let entries = stats["cache"]["entries"].as_u64().unwrap();
    assert!((7..=10).contains(&entries), "{stats}");
    assert_eq!(stats["cache"]["eviction"], "lru-only");
    assert_eq!(stats["cache"]["max_samples"], 7);
    // Invalid settings change nothing.
    assert!(matches!(
        db.configure(r#"{"cache_capacity": 5, "eviction": "random"}"#),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.configure(r#"{"bogus": 1}"#),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(db.stats().unwrap()["cache"]["capacity"], 10);
    // Capacity 0 turns the cache off: every get is a miss.
    db.configure(r#"{"cache_capacity": 0}"#).unwrap();
    let misses = cache_stat(&db, &["misses"]);
    c.get(&id("k1")).unwrap().unwrap();
    c.get(&id("k1")).unwrap().unwrap();
    assert_eq!(cache_stat(&db, &["misses"]), misses + 2);
    db.configure(r#"{"sweeper_interval_ms": 5, "sweeper_sample": 50}"#)
        .unwrap();
    assert_eq!(db.stats().unwrap()["expiry"]["sweeper"]["sample"], 50);
}

#[test]
fn cache_never_serves_stale_documents() {
    let db = memory(r#"{"sweeper_interval_ms": 0}"#);
    let c = db.collection("c");
    c.insert(d("a")).unwrap();
    assert_eq!(
        c.get(&id("a")).unwrap().unwrap().get("v"),
        Some(&Bson::Int32(1))
    );
    c.update(
        &doc! {"_id": "a"},
        &doc! {"$inc": {"v": 1}},
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        c.get(&id("a")).unwrap().unwrap().get("v"),
        Some(&Bson::Int32(2))
    );
    db.begin().unwrap();
    c.replace(&id("a"), Document::from(doc! {"v": 9})).unwrap();
    assert_eq!(
        c.get(&id("a")).unwrap().unwrap().get("v"),
        Some(&Bson::Int32(9))
    );
    db.rollback().unwrap();
    assert_eq!(
        c.get(&id("a")).unwrap().unwrap().get("v"),
        Some(&Bson::Int32(2))
    );
    c.delete_by_id(&id("a")).unwrap();
    assert!(c.get(&id("a")).unwrap().is_none());
    c.insert_ttl(d("t"), 60_000).unwrap();
    c.get(&id("t")).unwrap().unwrap();
    c.set_ttl(&id("t"), 0).unwrap();
    assert!(
        c.get(&id("t")).unwrap().is_none(),
        "set_ttl(0) expires at once"
    );
}

/// Reads `n` keys of `k0000`..`k{span}` drawn uniformly (a fixed-seed generator).
fn uniform_reads(db: &Database, span: u64, n: usize) {
    let c = db.collection("c");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.get(&id(&format!("k{:04}", x % span))).unwrap().unwrap();
    }
}

fn loaded(options: &str, docs: u64) -> Database {
    let db = memory(options);
    let all: Vec<Document> = (0..docs).map(|i| d(&format!("k{i:04}"))).collect();
    db.collection("c").insert_many(all).unwrap();
    db
}

#[test]
fn uniform_reads_larger_than_the_cache_do_not_churn_it() {
    // 2,000 keys read uniformly through a cache of 100: at most 5% can hit whatever is kept.
    // Admitting every miss evicts on nearly every read; the default admission declines most.
    let base = r#"{"cache_capacity": 100, "sweeper_interval_ms": 0"#;
    let always = loaded(&format!(r#"{base}, "admission": "always"}}"#), 2000);
    let freq = loaded(&format!("{base}}}"), 2000);
    uniform_reads(&always, 2000, 20_000);
    uniform_reads(&freq, 2000, 20_000);
    let churn_always = cache_stat(&always, &["evictions", "lru"]);
    let churn = cache_stat(&freq, &["evictions", "lru"]);
    let misses = cache_stat(&freq, &["misses"]);
    let declined = cache_stat(&freq, &["admissions_declined"]);
    eprintln!(
        "evictions: {churn} (always: {churn_always}); {declined} of {misses} misses declined"
    );
    assert!(churn_always > 15_000, "{churn_always}");
    assert!(
        churn * 5 < churn_always,
        "{churn} evictions against {churn_always}"
    );
    assert!(
        declined * 10 > misses * 8,
        "{declined} of {misses} declined"
    );
    assert_eq!(cache_stat(&always, &["admissions_declined"]), 0);
    assert_eq!(
        cache_stat(&freq, &["fills"]),
        churn + cache_stat(&freq, &["entries"]) + cache_stat(&freq, &["dropped"]),
        "every fill is held, evicted or dropped"
    );
    let hits = cache_stat(&freq, &["hits"]);
    assert!(hits * 100 > 20_000 * 3, "hit ratio fell below 3%: {hits}");
}

#[test]
fn reused_keys_are_admitted_and_a_working_set_that_fits_at_once() {
    let db = loaded(r#"{"cache_capacity": 100, "sweeper_interval_ms": 0}"#, 400);
    let c = db.collection("c");
    let get = |k: u32| c.get(&id(&format!("k{k:04}"))).unwrap().unwrap();
    // While the cache has room, every first read is admitted.
    for k in 0..100 {
        get(k);
    }
    assert_eq!(cache_stat(&db, &["entries"]), 100);
    assert_eq!(cache_stat(&db, &["admissions_declined"]), 0);
    let hits = cache_stat(&db, &["hits"]);
    for k in 0..100 {
        get(k);
    }
    assert_eq!(
        cache_stat(&db, &["hits"]),
        hits + 100,
        "all 100 were cached"
    );
    // Full: a key read once is declined. A key read again is admitted once it was read more
    // often lately than the entry it would displace, by a margin of one: the cached keys
    // were read twice each, so by its fourth read.
    get(300);
    assert_eq!(cache_stat(&db, &["admissions_declined"]), 1);
    for k in 200..250 {
        for _ in 0..4 {
            get(k);
        }
    }
    let hits = cache_stat(&db, &["hits"]);
    for k in 200..250 {
        get(k);
    }
    let reused = cache_stat(&db, &["hits"]) - hits;
    assert!(reused >= 45, "only {reused} of 50 reused keys were cached");
}

/// A document read from the cache shares the cache's decoded copy until the caller changes it:
/// changing, unwrapping or dropping what `get` returned never changes what the next `get`
/// (from the cache) returns.
#[test]
fn a_cached_document_is_a_value_of_its_own() {
    let db = memory("{}");
    let c = db.collection("c");
    c.insert(Document::from(
        doc! {"_id": "a", "v": 1, "nested": {"x": 1}},
    ))
    .unwrap();
    let original = c.get(&id("a")).unwrap().unwrap();
    let hits_before = cache_stat(&db, &["hits"]);

    let mut first = c.get(&id("a")).unwrap().unwrap();
    first.set("v", 2);
    first.as_bson_mut().insert("added", true);
    let mut second = c.get(&id("a")).unwrap().unwrap();
    second
        .as_bson_mut()
        .get_document_mut("nested")
        .unwrap()
        .insert("x", 99);
    let third = c.get(&id("a")).unwrap().unwrap();
    let unwrapped = c.get(&id("a")).unwrap().unwrap().into_bson();

    assert!(
        cache_stat(&db, &["hits"]) >= hits_before + 4,
        "the gets were served by the cache"
    );
    assert_eq!(first.get("v"), Some(&Bson::Int32(2)));
    assert_eq!(third, original, "the cached copy is unchanged");
    assert_eq!(&unwrapped, original.as_bson());
    assert_eq!(
        second.as_bson().get_document("nested").unwrap().get("x"),
        Some(&Bson::Int32(99))
    );
}

/// `get_latency_ns` comes from a sample of the gets (one in 8 per thread is timed): after a
/// few dozen gets it has figures, ordered p50 <= p90 <= p99.
#[test]
fn get_latency_percentiles_come_from_a_sample_of_the_gets() {
    let db = memory(r#"{"sweeper_interval_ms": 0}"#);
    let c = db.collection("c");
    assert_eq!(cache_stat(&db, &["get_latency_ns", "p50"]), 0, "no get yet");
    c.insert(d("k")).unwrap();
    for _ in 0..64 {
        c.get(&id("k")).unwrap().unwrap();
    }
    let p = ["p50", "p90", "p99"].map(|q| cache_stat(&db, &["get_latency_ns", q]));
    assert!(p[0] > 0 && p[0] <= p[1] && p[1] <= p[2], "{p:?}");
}
