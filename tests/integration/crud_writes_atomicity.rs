//! What MongoDB-style batch writes keep when they fail part-way, on a file database:
//! `insert_many_with` and `bulk_write` keep the writes before a failure (MongoDB's
//! semantics) and those survive a reopen; inside an explicit transaction every operation
//! of a bulk write belongs to it (a rollback undoes them all); a batch refused before it
//! runs writes nothing.

use bson::doc;
use nexus::{Database, Document, InsertManyOptions, OpenOptions, WriteModel};

fn ids(db: &Database) -> Vec<i32> {
    db.collection("c")
        .find(
            &doc! {},
            nexus::FindOptions::from_json(r#"{"sort": {"_id": 1}}"#).unwrap(),
        )
        .unwrap()
        .map(|d| d.unwrap().into_bson().get_i32("_id").unwrap())
        .collect()
}

fn docs(json: &[&str]) -> Vec<Document> {
    json.iter()
        .map(|j| Document::from_json(j).unwrap())
        .collect()
}

#[test]
fn writes_before_a_failure_stay_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    {
        let db = Database::open(&path, OpenOptions::default()).unwrap();
        let c = db.collection("c");
        c.insert(Document::from_json(r#"{"_id": 1}"#).unwrap())
            .unwrap();
        let r = c
            .insert_many_with(
                docs(&[r#"{"_id": 2}"#, r#"{"_id": 1}"#, r#"{"_id": 3}"#]),
                InsertManyOptions::default(),
            )
            .unwrap();
        assert_eq!(r.inserted_ids.len(), 1);
        assert_eq!(r.write_errors.len(), 1);
        assert_eq!(r.write_errors[0].index, 1);
        assert_eq!(r.write_errors[0].code, 11000);
        assert_eq!(r.write_errors[0].error.code(), 5, "NEXUS_DUPLICATE_KEY");
        let ops = WriteModel::list_from_json(
            r#"[{"insertOne": {"document": {"_id": 4}}},
                {"insertOne": {"document": {"_id": 4}}},
                {"insertOne": {"document": {"_id": 5}}}]"#,
        )
        .unwrap();
        let r = c.bulk_write(ops, InsertManyOptions::default()).unwrap();
        assert_eq!(r.inserted_count, 1);
        assert_eq!(r.write_errors.len(), 1);
        db.close().unwrap();
    }
    let db = Database::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(ids(&db), vec![1, 2, 4]);
}

#[test]
fn a_rollback_undoes_a_whole_bulk_write() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    c.insert(Document::from_json(r#"{"_id": 1, "n": 1}"#).unwrap())
        .unwrap();
    db.begin().unwrap();
    let ops = WriteModel::list_from_json(
        r#"[{"insertOne": {"document": {"_id": 2}}},
            {"updateOne": {"filter": {"_id": 1}, "update": {"$inc": {"n": 1}}}},
            {"deleteOne": {"filter": {"_id": 1}}}]"#,
    )
    .unwrap();
    let r = c.bulk_write(ops, InsertManyOptions::default()).unwrap();
    assert_eq!(
        (r.inserted_count, r.modified_count, r.deleted_count),
        (1, 1, 1)
    );
    assert_eq!(ids(&db), vec![2], "the transaction sees its own writes");
    db.rollback().unwrap();
    assert_eq!(ids(&db), vec![1]);
    assert_eq!(c.count(&doc! {"n": 1}).unwrap(), 1);
}

#[test]
fn a_batch_refused_before_it_runs_writes_nothing() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    c.insert(Document::from_json(r#"{"_id": 1}"#).unwrap())
        .unwrap();
    let ops = WriteModel::list_from_json(
        r#"[{"insertOne": {"document": {"_id": 2}}},
            {"updateOne": {"filter": {"_id": 1}, "update": {"n": 5}}}]"#,
    )
    .unwrap();
    let e = c.bulk_write(ops, InsertManyOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("operation 1: update document requires atomic operators"),
        "{e}"
    );
    assert_eq!(ids(&db), vec![1]);
}
