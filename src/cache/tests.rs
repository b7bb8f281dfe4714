//! Unit tests of [`DocCache`] on stored records: tickets, staleness, expiry.

use super::{CacheConfig, DocCache, Fill, Lookup, Touched};
use crate::storage::Bytes;

fn cache(capacity: u64) -> DocCache {
    DocCache::new(CacheConfig {
        capacity,
        ..CacheConfig::default()
    })
}

/// A fill of collection "c".
fn fill(key: &[u8], rec: &[u8], expires_at: Option<i64>) -> Fill<'static> {
    Fill {
        coll: "c",
        key: Bytes::copy_from_slice(key),
        rec: Bytes::copy_from_slice(rec),
        expires_at,
    }
}

/// Reads `key` as `Collection::get` does; on a miss with a ticket, admits `rec`. Returns
/// whether it was a hit, and the record it returned.
fn read(c: &DocCache, key: &[u8], rec: &[u8], expires_at: Option<i64>, now: i64) -> Option<Bytes> {
    match c.get("c", key, now, false) {
        Lookup::Hit(r) => Some(r),
        Lookup::Decoded(_) => panic!("not asked for"),
        Lookup::Expired => None,
        Lookup::Miss(ticket) => {
            if let Some(t) = ticket {
                c.admit(fill(key, rec, expires_at), t, now);
            }
            None
        }
    }
}

#[test]
fn a_hit_shares_the_stored_record() {
    let c = cache(10);
    assert!(read(&c, b"a", b"record-a", None, 0).is_none());
    let hit = read(&c, b"a", b"other", None, 0).expect("cached");
    assert_eq!(&hit[..], b"record-a");
    let again = read(&c, b"a", b"other", None, 0).expect("cached");
    assert_eq!(hit.as_ptr(), again.as_ptr(), "the same bytes, not a copy");
}

#[test]
fn a_record_read_before_a_commit_never_enters() {
    let c = cache(10);
    let Lookup::Miss(Some(ticket)) = c.get("c", b"a", 0, false) else {
        panic!("a miss with room admits");
    };
    // A commit changes "a" between the miss and the fill.
    let mut touched = Touched::default();
    touched.docs.entry("c".to_owned()).or_default().push(b"a");
    c.invalidate(&touched);
    c.admit(fill(b"a", b"old", None), ticket, 0);
    assert_eq!(c.size().0, 0, "the stale record was not admitted");
    // Another key's fill from before the commit still enters.
    let Lookup::Miss(Some(t2)) = c.get("c", b"b", 0, false) else {
        panic!("miss");
    };
    c.invalidate(&touched);
    c.admit(fill(b"b", b"b", None), t2, 0);
    assert_eq!(c.size().0, 1);
}

#[test]
fn an_expired_stored_record_is_never_returned() {
    let c = cache(10);
    assert!(read(&c, b"t", b"ttl", Some(100), 0).is_none());
    assert!(
        read(&c, b"t", b"x", Some(100), 99).is_some(),
        "live until 100"
    );
    assert!(matches!(c.get("c", b"t", 100, false), Lookup::Expired));
    assert_eq!(c.size(), (0, 0), "the expired entry is dropped");
    assert!(matches!(c.get("c", b"t", 101, false), Lookup::Miss(_)));
}

#[test]
fn a_full_cache_declines_a_key_read_once_and_admits_one_read_often() {
    let c = cache(4);
    for k in [b"a", b"b", b"c", b"d"] {
        read(&c, k, k, None, 0);
    }
    assert_eq!(c.size().0, 4, "admitted while there was room");
    assert!(matches!(c.get("c", b"e", 0, false), Lookup::Miss(None)));
    assert_eq!(
        super::metrics::Metrics::get(&c.metrics.admissions_declined),
        1
    );
    // Read again: reuse, but only level with the victims plus one; a third read is clearly
    // more frequent than the entries read once, and is admitted.
    assert!(matches!(c.get("c", b"e", 0, false), Lookup::Miss(None)));
    assert!(matches!(c.get("c", b"e", 0, false), Lookup::Miss(Some(_))));
}

#[test]
fn a_cache_that_is_off_gives_no_tickets() {
    let c = cache(0);
    for _ in 0..3 {
        assert!(matches!(c.get("c", b"a", 0, false), Lookup::Miss(None)));
    }
    assert_eq!(
        super::metrics::Metrics::get(&c.metrics.admissions_declined),
        0
    );
}

#[test]
fn a_decoded_document_is_kept_for_the_same_record_only() {
    let c = cache(10);
    read(&c, b"a", b"rec", None, 0);
    let Lookup::Hit(rec) = c.get("c", b"a", 0, true) else {
        panic!("hit");
    };
    let doc = std::sync::Arc::new(bson::doc! {"v": 1});
    c.keep_decoded("c", b"a", &rec, doc, 0);
    assert_eq!(c.size(), (1, 6), "charged the record's length again");
    assert!(matches!(c.get("c", b"a", 0, true), Lookup::Decoded(_)));
    assert!(matches!(c.get("c", b"a", 0, false), Lookup::Hit(_)));
    // A record that is not the cached one (replaced meanwhile) is not paired with it.
    let mut touched = Touched::default();
    touched.docs.entry("c".to_owned()).or_default().push(b"a");
    c.invalidate(&touched);
    read(&c, b"a", b"new", None, 0);
    c.keep_decoded("c", b"a", &rec, std::sync::Arc::new(bson::doc! {}), 0);
    assert!(matches!(c.get("c", b"a", 0, true), Lookup::Hit(_)));
}
