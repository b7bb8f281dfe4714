//! A filter that pins a string or ObjectId `_id` is answered by a point lookup instead of a
//! scan; the answers are the same as a scan's (extra conditions, skip, expiry, `$and`).

use bson::doc;
use nexus::{Database, Document, FindOptions, OpenOptions, UpdateOptions};

#[test]
fn id_point_lookups_answer_like_scans() {
    let db = Database::open(
        ":memory:",
        OpenOptions::from_json(Some(r#"{"sweeper_interval_ms": 0}"#)).unwrap(),
    )
    .unwrap();
    let c = db.collection("c");
    for i in 0..50 {
        c.insert(Document::from(doc! {"_id": format!("k{i}"), "a": i}))
            .unwrap();
    }
    c.insert_ttl(Document::from(doc! {"_id": "gone", "a": 1}), 1)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let count = |f: bson::Document| c.count(&f).unwrap();
    assert_eq!(count(doc! {"_id": "k7"}), 1);
    assert_eq!(count(doc! {"_id": {"$eq": "k7"}, "a": 7}), 1);
    assert_eq!(count(doc! {"_id": "k7", "a": 8}), 0);
    assert_eq!(count(doc! {"$and": [{"_id": "k7"}, {"a": {"$gt": 5}}]}), 1);
    assert_eq!(count(doc! {"_id": "missing"}), 0);
    assert_eq!(
        count(doc! {"_id": "gone"}),
        0,
        "expired documents stay hidden"
    );
    let skipped = FindOptions {
        skip: 1,
        ..FindOptions::default()
    };
    assert_eq!(c.find(&doc! {"_id": "k7"}, skipped).unwrap().count(), 0);
    let found: Vec<Document> = c
        .find(&doc! {"_id": "k9"}, FindOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(found.len(), 1);
    let r = c
        .update(
            &doc! {"_id": "k3"},
            &doc! {"$set": {"b": true}},
            UpdateOptions::default(),
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    assert_eq!(c.delete(&doc! {"_id": "k4"}, false).unwrap(), 1);
    assert_eq!(c.delete(&doc! {"_id": "k4"}, false).unwrap(), 0);
    // An _id inside $or is not a point query; the scan still answers it.
    assert_eq!(count(doc! {"$or": [{"_id": "k1"}, {"_id": "k2"}]}), 2);
}
