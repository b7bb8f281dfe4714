//! Random gets by `_id` through the Rust API, one thread, default options (issue 19).
//!
//! `cargo bench --bench rust_gets` opens a fresh database with `OpenOptions::default()` (the
//! default document cache of 10,000 documents), loads the documents in 1,000-document
//! transactions with string ids `id00001234`, makes the ids first (not timed), then times
//! `Collection::get` over uniformly random ids: a warm-up pass, then the timed pass. Two
//! working sets: `RUST_GETS_CACHED_DOCS` (default 5,000, fits the cache) and
//! `RUST_GETS_LARGE_DOCS` (default 100,000, 10x the cache); `RUST_GETS` gets per pass
//! (default 1,000,000). Prints one machine-readable line a working set,
//! `rust_gets docs=N gets=N gets_per_s=R`, which scripts/bench-defaults.sh puts in
//! benchmarks/defaults.md.
use bson::Bson;
use nexus::{Database, Document, DocumentId, OpenOptions};
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64: the same generator as the C harnesses' `next_rand`.
fn next_rand(r: &mut u64) -> u64 {
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    *r
}

fn gets_per_s(docs: usize, gets: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Database::open(dir.path().join("gets.db"), OpenOptions::default()).expect("open");
    let coll = db.collection("docs");
    for start in (0..docs).step_by(1000) {
        db.begin().expect("begin");
        for i in start..(start + 1000).min(docs) {
            let json = format!(
                r#"{{"_id":"id{i:08}","name":"user {i}","email":"user{i}@example.com","age":{},"address":{{"city":"city{}"}},"score":{}}}"#,
                18 + i % 80,
                (i * 7919) % 100,
                (i * 31) % 1000
            );
            coll.insert(Document::from_json(&json).expect("valid JSON"))
                .expect("insert");
        }
        db.commit().expect("commit");
    }
    let ids: Vec<DocumentId> = (0..docs)
        .map(|i| DocumentId::new(Bson::String(format!("id{i:08}"))).expect("valid id"))
        .collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut rate = 0.0;
    for pass in 0..2 {
        let started = Instant::now();
        let mut found = 0_usize;
        for _ in 0..gets {
            let k = usize::try_from(next_rand(&mut rng) % docs as u64).expect("fits");
            found += usize::from(coll.get(&ids[k]).expect("get").is_some());
        }
        assert_eq!(found, gets, "every id is stored");
        if pass == 1 {
            rate = gets as f64 / started.elapsed().as_secs_f64();
        }
    }
    db.close().expect("close");
    rate
}

fn main() {
    let gets = env_usize("RUST_GETS", 1_000_000);
    for docs in [
        env_usize("RUST_GETS_CACHED_DOCS", 5_000),
        env_usize("RUST_GETS_LARGE_DOCS", 100_000),
    ] {
        let rate = gets_per_s(docs, gets);
        println!("rust_gets docs={docs} gets={gets} gets_per_s={rate:.0}");
    }
}
