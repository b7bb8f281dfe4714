//! Filters with find options (sort, projection, skip, limit, hint): line 1 is the filter,
//! line 2 the options, both JSON. Parsed and run against a small indexed collection through
//! the public API (find, count, explain, distinct); any error is fine, a panic is not. The
//! count of a filter must equal the documents find returns without options.
#![no_main]
#[path = "common/mod.rs"]
mod common;
use libfuzzer_sys::fuzz_target;
use nexus::FindOptions;

fuzz_target!(|data: &[u8]| {
    let Some([filter, options]) = common::lines::<2>(data) else {
        return;
    };
    let c = common::db().collection(common::COLL);
    let opts = FindOptions::from_json(options).unwrap_or_default();
    if let Ok(cursor) = c.find_json(filter, opts.clone()) {
        for d in cursor.take(100) {
            if d.is_err() {
                break;
            }
        }
    }
    let Some(f) = common::doc(filter) else {
        return;
    };
    let _ = c.explain(&f, opts);
    let _ = c.distinct("a", &f);
    if let (Ok(n), Ok(all)) = (c.count(&f), c.find(&f, FindOptions::default())) {
        let found = all.take(100).filter(Result::is_ok).count();
        assert_eq!(n, found as u64, "count and find disagree on {filter}");
    }
});
