//! NexusLite from Rust: open a database, insert, query, update, print.
//! Run with `cargo run --release --example quickstart [PATH]`.
use bson::doc;
use nexus::{Database, Document, FindOptions, OpenOptions, UpdateOptions};

fn main() -> nexus::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart.db".into());
    let db = Database::open(&path, OpenOptions::default())?;
    let people = db.collection("people");

    let id = people.insert(Document::from_json(r#"{"name": "ada", "age": 36}"#)?)?;
    println!("inserted {}", id.to_text());
    people.update(
        &doc! {"name": "ada"},
        &doc! {"$inc": {"age": 1}},
        UpdateOptions::default(),
    )?;

    let opts = FindOptions::from_json(r#"{"sort": {"age": -1}, "limit": 10}"#)?;
    for person in people.find(&doc! {"age": {"$gt": 30}}, opts)? {
        println!("{}", person?.to_json());
    }
    db.close()
}
