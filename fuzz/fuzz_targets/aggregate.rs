//! Aggregation pipelines: line 1 the pipeline (a JSON array of stages), line 2 the options.
//! Parsed and run on the small in-memory collection, at most 200 results read, with a
//! memory limit per stage; in a transaction rolled back after each input ($out, $merge).
#![no_main]
#[path = "common/mod.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use nexus::AggregateOptions;

fuzz_target!(|data: &[u8]| {
    let Some([pipeline, options]) = common::lines::<2>(data) else {
        return;
    };
    let db = common::db();
    let c = db.collection(common::COLL);
    let mut opts = AggregateOptions::from_json(Some(options)).unwrap_or_default();
    // Bounded: a pipeline may ask for any amount of memory ($range, $group); the stages are
    // held to 16 MiB, and disk use is allowed only under that.
    opts.max_memory_bytes = Some(opts.max_memory_bytes.unwrap_or(u64::MAX).min(16 << 20));
    db.begin().expect("begin");
    if let Ok(cursor) = c.aggregate_json(pipeline, opts) {
        for d in cursor.take(200) {
            if d.is_err() {
                break;
            }
        }
    }
    let _ = db.rollback();
});
