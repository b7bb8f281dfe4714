//! NexusLite's aggregation pipeline from Rust: total sales per item, biggest first.
//! Run with `cargo run --release --example aggregate`.
use nexus::{AggregateOptions, Database, Document};

fn main() -> nexus::Result<()> {
    let db = Database::open_in_memory()?;
    let sales = db.collection("sales");
    for json in [
        r#"{"item": "abc", "price": 10, "quantity": 2}"#,
        r#"{"item": "xyz", "price": 5, "quantity": 10}"#,
        r#"{"item": "abc", "price": 10, "quantity": 6}"#,
        r#"{"item": "def", "price": 7.5, "quantity": 4}"#,
    ] {
        sales.insert(Document::from_json(json)?)?;
    }
    let pipeline = r#"[
        {"$match": {"quantity": {"$gte": 3}}},
        {"$group": {"_id": "$item",
                    "total": {"$sum": {"$multiply": ["$price", "$quantity"]}},
                    "sales": {"$count": {}}}},
        {"$sort": {"total": -1}}
    ]"#;
    for row in sales.aggregate_json(pipeline, AggregateOptions::default())? {
        println!("{}", row?.to_json());
    }
    db.close()
}
