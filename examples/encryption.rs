//! NexusLite's encryption at rest from Rust: a database encrypted to a key pair, a second
//! recipient added, and what happens without a key. Run with
//! `cargo run --release --example encryption -- secret.db`.
use nexus::crypto::{keygen, public_key, PrivatePem};
use nexus::{Database, Document, OpenOptions};

fn main() -> nexus::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "secret.db".into());
    let (alice, _) = keygen(None)?; // or a key made by `openssl genpkey`
    let (bob, bob_public) = keygen(None)?;
    let with = |key: &str| OpenOptions {
        encryption_key: Some(PrivatePem::new(key.to_string())),
        ..OpenOptions::default()
    };
    let db = Database::open(&path, with(&alice))?; // a new file: encrypted to Alice
    db.collection("notes")
        .insert(Document::from_json(r#"{"text": "meet at noon"}"#)?)?;
    db.add_key(&bob_public)?; // Bob may open it too
    db.remove_key(&public_key(&alice)?)?; // ... and from now on only Bob
    db.close()?;
    match Database::open(&path, OpenOptions::default()) {
        Err(e) => println!("without a key: {e}"),
        Ok(_) => println!("without a key: opened (unexpected)"),
    }
    let db = Database::open(&path, with(&bob))?;
    println!(
        "with Bob's key: {} note(s)",
        db.collection("notes").count(&bson::doc! {})?
    );
    db.close()
}
