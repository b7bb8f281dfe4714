//! NexusLite's MongoDB-style writes: update results with upsertedId, arrayFilters,
//! unordered insert_many, and a bulk write. Run with `cargo run --release --example
//! bulk_writes`.
use bson::doc;
use nexus::{Database, Document, InsertManyOptions, ModifyOptions, WriteModel};

fn main() -> nexus::Result<()> {
    let db = Database::open_in_memory()?;
    let students = db.collection("students");

    // Unordered: the duplicate _id is reported, the other documents are inserted.
    let docs = [
        r#"{"_id": 1, "grades": [95, 102, 90]}"#,
        r#"{"_id": 1}"#,
        r#"{"_id": 2, "grades": [98, 100]}"#,
    ];
    let docs = docs
        .iter()
        .map(|j| Document::from_json(j))
        .collect::<nexus::Result<_>>()?;
    let r = students.insert_many_with(docs, InsertManyOptions { ordered: false })?;
    println!("insert_many: {}", r.to_json());

    // $[<identifier>] with arrayFilters: cap every grade above 100.
    let capped = ModifyOptions {
        array_filters: Some(vec![doc! {"g": {"$gt": 100}}]),
        ..ModifyOptions::default()
    };
    let r = students.update_many(&doc! {}, doc! {"$set": {"grades.$[g]": 100}}, capped)?;
    println!("update_many: {}", r.to_json());

    // An upsert says which _id it inserted.
    let upsert = ModifyOptions {
        upsert: true,
        ..ModifyOptions::default()
    };
    let r = students.update_one(&doc! {"_id": 3}, doc! {"$push": {"grades": 77}}, upsert)?;
    println!("update_one: {}", r.to_json());

    let ops = r#"[{"replaceOne": {"filter": {"_id": 2}, "replacement": {"grades": []}}},
                  {"deleteOne": {"filter": {"_id": 3}}}]"#;
    let r = students.bulk_write(
        WriteModel::list_from_json(ops)?,
        InsertManyOptions::default(),
    )?;
    println!("bulk_write: {}", r.to_json());
    db.close()
}
