//! Encrypted databases whose recipients are hybrid P-256 + ML-KEM keys (feature `pqc`): the
//! typed key slots of kinds 2, 3, 4 through the open option `encryption_key`, `add_key` and
//! `remove_key`, mixed with P-256 recipients, and the slot area's room per page size.

use nexus::crypto::{keygen, PrivatePem};
use nexus::{Database, Document, OpenOptions};

const INVALID: i32 = 3;
const CRYPTO: i32 = 12;

fn with(key: &str, page_size: Option<u32>) -> OpenOptions {
    OpenOptions {
        encryption_key: Some(PrivatePem::new(key.to_string())),
        page_size,
        ..OpenOptions::default()
    }
}

#[test]
fn a_database_opens_with_a_hybrid_key_and_mixes_with_p256_recipients() {
    for alg in ["ml-kem-512", "ml-kem-768", "ml-kem-1024"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let (private, public) = keygen(Some(alg)).unwrap();
        let db = Database::open(&path, with(&private, None)).unwrap();
        db.collection("c")
            .insert(Document::from_json(r#"{"note": "pqc-marker-1"}"#).unwrap())
            .unwrap();
        db.close().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(12).any(|w| w == b"pqc-marker-1"), "{alg}");
        // Without a key, with another hybrid key of the same kind, with a P-256 key: refused.
        let (other, _) = keygen(Some(alg)).unwrap();
        assert_eq!(
            Database::open(&path, with(&other, None))
                .unwrap_err()
                .code(),
            CRYPTO
        );
        let (p256, p256_public) = keygen(None).unwrap();
        assert_eq!(
            Database::open(&path, with(&p256, None)).unwrap_err().code(),
            CRYPTO
        );
        let db = Database::open(&path, with(&private, None)).unwrap();
        assert_eq!(
            db.collection("c").count(&bson::doc! {}).unwrap(),
            1,
            "{alg}"
        );
        // A P-256 recipient beside the hybrid one, then the hybrid one removed.
        db.add_key(&p256_public).unwrap();
        db.remove_key(&public).unwrap();
        db.close().unwrap();
        assert_eq!(
            Database::open(&path, with(&private, None))
                .unwrap_err()
                .code(),
            CRYPTO
        );
        let db = Database::open(&path, with(&p256, None)).unwrap();
        // ... and a hybrid recipient added to a database a P-256 key opens.
        db.add_key(&public).unwrap();
        db.close().unwrap();
        let db = Database::open(&path, with(&private, None)).unwrap();
        assert_eq!(
            db.collection("c").count(&bson::doc! {}).unwrap(),
            1,
            "{alg}"
        );
        // A rekey wraps the new data key for both recipients, the hybrid one too.
        db.rekey().unwrap();
        db.close().unwrap();
        for k in [&private, &p256] {
            let db = Database::open(&path, with(k, None)).unwrap();
            assert_eq!(
                db.collection("c").count(&bson::doc! {}).unwrap(),
                1,
                "{alg}"
            );
            db.close().unwrap();
        }
    }
}

/// docs/FORMAT.md's table: at 8 KiB pages two ML-KEM-512 recipients fit, one ML-KEM-1024;
/// at 16 KiB two ML-KEM-1024. One more is refused (NEXUS_INVALID_ARGUMENT, nothing changed).
#[test]
fn hybrid_recipients_fill_the_slot_area_as_documented() {
    for (alg, page_size, fit) in [
        ("ml-kem-512", 8192, 2),
        ("ml-kem-1024", 8192, 1),
        ("ml-kem-1024", 16384, 2),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.db");
        let (first, _) = keygen(Some(alg)).unwrap();
        let db = Database::open(&path, with(&first, Some(page_size))).unwrap();
        for _ in 1..fit {
            let (_, public) = keygen(Some(alg)).unwrap();
            db.add_key(&public).unwrap();
        }
        let (_, one_more) = keygen(Some(alg)).unwrap();
        let e = db.add_key(&one_more).unwrap_err();
        assert_eq!(e.code(), INVALID, "{alg} at {page_size}: {e}");
        db.close().unwrap();
        Database::open(&path, with(&first, Some(page_size)))
            .unwrap()
            .close()
            .unwrap();
    }
}
