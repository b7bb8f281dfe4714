//! NexusLite's vector search from Rust: an HNSW index on `embedding`, the two nearest
//! documents to a query vector among those of one kind. Run with
//! `cargo run --release --example vector_search`.
use nexus::{Database, Document};

fn main() -> nexus::Result<()> {
    let db = Database::open_in_memory()?;
    let docs = db.collection("docs");
    docs.create_index_json(
        r#"{"embedding": "hnsw"}"#,
        Some(r#"{"numDimensions": 3, "similarity": "cosine"}"#),
    )?;
    for json in [
        r#"{"_id": 1, "kind": "fruit", "name": "apple", "embedding": [0.9, 0.1, 0.0]}"#,
        r#"{"_id": 2, "kind": "fruit", "name": "pear", "embedding": [0.8, 0.3, 0.1]}"#,
        r#"{"_id": 3, "kind": "tool", "name": "saw", "embedding": [0.0, 0.2, 0.9]}"#,
        r#"{"_id": 4, "kind": "fruit", "name": "plum", "embedding": [0.2, 0.9, 0.1]}"#,
    ] {
        docs.insert(Document::from_json(json)?)?;
    }
    let spec = r#"{"path": "embedding", "queryVector": [1.0, 0.2, 0.0], "limit": 2,
                   "numCandidates": 50, "filter": {"kind": "fruit"},
                   "projection": {"_id": 0, "name": 1}}"#;
    for row in docs.vector_search_json(spec)? {
        let row = row?;
        println!(
            "{} {:.3}",
            row.get("name").unwrap(),
            row.get("_score").unwrap().as_f64().unwrap()
        );
    }
    db.close()
}
