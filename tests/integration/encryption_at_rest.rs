//! Encryption at rest (#20) through the Rust API: nothing readable in the files, the key rules
//! at open (missing, wrong, given to a plain file), tampering refused, pages moved refused,
//! backups encrypted, and the data intact across checkpoints and reopening.

use bson::doc;
use nexus::crypto::{keygen, Cipher, PrivatePem};
use nexus::{Database, Document, Error, FindOptions, OpenOptions, StorageEngine};
use std::path::{Path, PathBuf};

const MARKER: &str = "Zanzibar7Marker";

fn key() -> PrivatePem {
    PrivatePem::new(keygen(None).unwrap().0.to_string())
}

fn with_key(k: &PrivatePem) -> OpenOptions {
    OpenOptions {
        encryption_key: Some(k.clone()),
        storage: Some(StorageEngine::Wasp),
        ..OpenOptions::default()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file of the database `db` (`NAME.db`, `NAME.wasp`) has no byte run of the marker.
fn assert_no_marker(db: &Path) {
    for p in [db.to_path_buf(), db.with_extension("wasp")] {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        for m in [MARKER.to_string(), MARKER.to_lowercase()] {
            assert!(
                !contains(&bytes, m.as_bytes()),
                "{} holds the marker in the clear",
                p.display()
            );
        }
    }
}

/// Fills `db` with documents, a collection name, field names and an index name that carry
/// the marker.
fn fill(db: &Database) {
    let coll = format!("c_{MARKER}");
    let c = db.collection(&coll);
    for i in 0..300 {
        let json = format!(
            r#"{{"_id": "id-{MARKER}-{i}", "{MARKER}_field": "value {MARKER} {i}", "n": {i}, "blob": "{}"}}"#,
            "x".repeat(if i % 50 == 0 { 5000 } else { 10 })
        );
        c.insert(Document::from_json(&json).unwrap()).unwrap();
    }
    c.create_index_json(
        &format!(r#"{{"{MARKER}_field": 1}}"#),
        Some(&format!(r#"{{"name": "ix_{MARKER}"}}"#)),
    )
    .unwrap();
}

fn count(db: &Database) -> usize {
    db.collection(&format!("c_{MARKER}"))
        .find(&doc! {}, FindOptions::default())
        .unwrap()
        .count()
}

/// The documents of the marker collection, or the first error reading them.
fn read_all(db: &Database) -> nexus::Result<usize> {
    let docs = db
        .collection(&format!("c_{MARKER}"))
        .find(&doc! {}, FindOptions::default())?
        .collect::<nexus::Result<Vec<_>>>()?;
    Ok(docs.len())
}

/// Read-only: a refused or checked open writes nothing (and needs no checkpoint at close).
fn reading(k: &PrivatePem) -> OpenOptions {
    OpenOptions {
        read_only: true,
        ..with_key(k)
    }
}

fn tmp(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Both ciphers: AES-256-GCM (format version 8, what this machine's default picks where the
/// processor has AES instructions) and XChaCha20-Poly1305 (version 7).
#[test]
fn nothing_readable_on_disk_before_and_after_checkpoint() {
    for (cipher, version) in [(Cipher::Aes256Gcm, 8), (Cipher::XChaCha20Poly1305, 7)] {
        nothing_readable_on_disk_with(cipher, version);
    }
}

fn nothing_readable_on_disk_with(cipher: Cipher, version: u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "enc.db");
    let k = key();
    let opts = OpenOptions {
        encryption_cipher: Some(cipher),
        ..with_key(&k)
    };
    let db = Database::open(&path, opts).unwrap();
    fill(&db);
    // Before any checkpoint: the commits are in the log only.
    assert_no_marker(&path);
    db.checkpoint().unwrap();
    assert_no_marker(&path);
    let stats = db.stats().unwrap();
    assert_eq!(stats["storage"]["encrypted"], true, "{stats}");
    assert_eq!(stats["storage"]["format_version"], version, "{stats}");
    assert_eq!(stats["storage"]["cipher"], cipher.name(), "{stats}");
    assert!(!stats.to_string().contains("PRIVATE"), "no key in stats");
    let backup = tmp(&dir, "copy.db");
    db.backup(&backup).unwrap();
    assert_no_marker(&backup);
    assert_eq!(db.check().unwrap()["ok"], true);
    db.close().unwrap();
    assert_no_marker(&path);
    // The data, under the key, after reopening; the backup opens with the same key.
    for p in [&path, &backup] {
        let db = Database::open(p, with_key(&k)).unwrap();
        assert_eq!(count(&db), 300);
        let one = db
            .collection(&format!("c_{MARKER}"))
            .find_one(&doc! { format!("{MARKER}_field"): format!("value {MARKER} 150") })
            .unwrap()
            .unwrap();
        assert_eq!(one.get("n"), Some(&bson::Bson::Int32(150)));
        assert_eq!(db.check().unwrap()["ok"], true);
        db.close().unwrap();
    }
}

/// The cipher is the file's from its creation: a reopen (with another or no
/// `encryption_cipher`) keeps it, writes and a rekey too; the option alone, or an unknown
/// name, is refused.
#[test]
fn the_cipher_is_chosen_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    for (cipher, other, version) in [
        (Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm, 7),
        (Cipher::Aes256Gcm, Cipher::XChaCha20Poly1305, 8),
    ] {
        let path = tmp(&dir, &format!("{}.db", cipher.name()));
        let open = |c: Option<Cipher>| {
            Database::open(
                &path,
                OpenOptions {
                    encryption_cipher: c,
                    ..with_key(&k)
                },
            )
            .unwrap()
        };
        let db = open(Some(cipher));
        fill(&db);
        db.close().unwrap();
        for c in [None, Some(other)] {
            let db = open(c);
            let stats = db.stats().unwrap();
            assert_eq!(stats["storage"]["cipher"], cipher.name(), "{stats}");
            assert_eq!(stats["storage"]["format_version"], version, "{stats}");
            db.collection(&format!("c_{MARKER}"))
                .insert(Document::from_json(&format!(r#"{{"n": 1000, "c": "{c:?}"}}"#)).unwrap())
                .unwrap();
            db.rekey().unwrap();
            db.close().unwrap();
        }
        let db = open(None);
        assert_eq!(read_all(&db).unwrap(), 302);
        assert_eq!(db.check().unwrap()["ok"], true);
        db.close().unwrap();
    }
    let e = OpenOptions::from_json(Some(r#"{"encryption_cipher": "aes-256-gcm"}"#))
        .and_then(|o| Database::open(tmp(&dir, "nokey.db"), o))
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("needs 'encryption_key'")),
        "{e:?}"
    );
    assert!(!tmp(&dir, "nokey.db").exists());
    let e = OpenOptions::from_json(Some(r#"{"encryption_cipher": "aes-128-ecb"}"#))
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::InvalidArgument(m) if m.contains("unknown cipher 'aes-128-ecb'")),
        "{e:?}"
    );
}

#[test]
fn the_key_rules_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "k.db");
    let k = key();
    let db = Database::open(&path, with_key(&k)).unwrap();
    fill(&db);
    // Another connection of this process must show a key of its own.
    let e = Database::open(&path, OpenOptions::default()).err().unwrap();
    assert!(
        matches!(e, Error::Crypto(ref m) if m.contains("database is encrypted")),
        "{e}"
    );
    let e = Database::open(&path, with_key(&key())).err().unwrap();
    assert!(
        matches!(e, Error::Crypto(ref m) if m.contains("no key slot for this key")),
        "{e}"
    );
    let second = Database::open(&path, with_key(&k)).unwrap();
    assert_eq!(count(&second), 300);
    second.close().unwrap();
    db.close().unwrap();
    let before = std::fs::read(&path).unwrap();
    // Closed: the same answers from the file itself, and nothing modified.
    let e = Database::open(&path, OpenOptions::default()).err().unwrap();
    assert!(
        matches!(e, Error::Crypto(ref m) if m.contains("database is encrypted")),
        "{e}"
    );
    let e = Database::open(&path, with_key(&key())).err().unwrap();
    assert!(
        matches!(e, Error::Crypto(ref m) if m.contains("no key slot for this key")),
        "{e}"
    );
    let public = nexus::crypto::public_key(k.as_str()).unwrap();
    let e = Database::open(&path, with_key(&PrivatePem::new(public)))
        .err()
        .unwrap();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "refused opens change nothing"
    );
    // A plain database refuses a key.
    let plain = tmp(&dir, "plain.db");
    Database::open(&plain, OpenOptions::default())
        .unwrap()
        .close()
        .unwrap();
    let e = Database::open(&plain, with_key(&k)).err().unwrap();
    assert!(
        matches!(e, Error::InvalidArgument(ref m) if m.contains("not encrypted")),
        "{e}"
    );
    // memlog and in-memory databases are not encrypted.
    let e = Database::open(
        tmp(&dir, "m.db"),
        OpenOptions {
            storage: Some(StorageEngine::MemLog),
            ..with_key(&k)
        },
    )
    .err()
    .unwrap();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
}

/// Flips one byte in each page of the file in turn (a sample of offsets in every page) and
/// checks the database refuses it (`Corrupt`/`Crypto`) or, when the flip lands in bytes no
/// page uses, still returns exactly the original data: never altered data.
#[test]
fn tampering_with_any_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "t.db");
    let k = key();
    let db = Database::open(&path, with_key(&k)).unwrap();
    fill(&db);
    db.close().unwrap();
    let original = std::fs::read(&path).unwrap();
    let ps = 8192;
    let pages = original.len() / ps;
    assert!(pages > 5);
    let mut refused = 0;
    for page in 1..pages {
        for at in [100usize, ps - 41, ps - 1] {
            let mut bytes = original.clone();
            bytes[page * ps + at] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            let _ = std::fs::remove_file(path.with_extension("wasp-shm"));
            let outcome = Database::open(&path, reading(&k)).and_then(|db| {
                let n = read_all(&db)?;
                let ok = db.check()?;
                db.close()?;
                Ok((n, ok["ok"] == true))
            });
            match outcome {
                Err(Error::Corrupt(_) | Error::Crypto(_)) => refused += 1,
                Ok((n, ok)) => assert!(
                    n == 300 && ok,
                    "page {page} offset {at}: altered data accepted ({n} documents, check {ok})"
                ),
                Err(e) => panic!("page {page} offset {at}: {e}"),
            }
        }
    }
    // Pages in use are authenticated: most flips are refused (free pages are never read).
    assert!(refused > 0);
    std::fs::write(&path, &original).unwrap();
}

/// A page copied to another position of the same file, or the same page from another
/// encrypted file, fails its authentication.
#[test]
fn pages_moved_or_from_another_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let a = tmp(&dir, "a.db");
    let b = tmp(&dir, "b.db");
    for p in [&a, &b] {
        let db = Database::open(p, with_key(&k)).unwrap();
        fill(&db);
        db.close().unwrap();
    }
    let ps = 8192;
    let original = std::fs::read(&a).unwrap();
    let other = std::fs::read(&b).unwrap();
    let pages = original.len() / ps;
    let mut refused_moves = 0;
    for page in 3..pages {
        // Swap page `page` with page 3 / take b's page.
        for source in [&original, &other] {
            let from = if std::ptr::eq(source, &original) {
                3
            } else {
                page
            };
            if std::ptr::eq(source, &original) && page == 3 {
                continue;
            }
            let mut bytes = original.clone();
            bytes[page * ps..(page + 1) * ps].copy_from_slice(&source[from * ps..(from + 1) * ps]);
            std::fs::write(&a, &bytes).unwrap();
            let _ = std::fs::remove_file(a.with_extension("wasp-shm"));
            let r = Database::open(&a, reading(&k)).and_then(|db| {
                let n = read_all(&db)?;
                let report = db.check()?;
                db.close()?;
                Ok((n, report))
            });
            match r {
                Err(Error::Corrupt(_) | Error::Crypto(_)) => refused_moves += 1,
                Ok((n, report)) if report["ok"] == false => {
                    let _ = n;
                    refused_moves += 1
                }
                Ok((n, report)) => {
                    // Only a page no tree uses (free) may be replaced unnoticed.
                    assert_eq!(n, 300, "page {page}: {report}");
                }
                Err(e) => panic!("page {page}: {e}"),
            }
        }
    }
    assert!(refused_moves > 0);
}

#[test]
fn log_records_are_authenticated() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "l.db");
    let k = key();
    let db = Database::open(&path, with_key(&k)).unwrap();
    let c = db.collection("c");
    for i in 0..20 {
        c.insert(Document::from_json(&format!(r#"{{"_id": {i}, "v": "{MARKER}"}}"#)).unwrap())
            .unwrap();
    }
    // Leave the commits in the log: copy the files while the database is open.
    let log = path.with_extension("wasp");
    let db_bytes = std::fs::read(&path).unwrap();
    let log_bytes = std::fs::read(&log).unwrap();
    drop(c);
    db.close().unwrap();
    assert!(!contains(&log_bytes, MARKER.as_bytes()));
    let copy = tmp(&dir, "lc.db");
    let copy_log = copy.with_extension("wasp");
    std::fs::write(&copy, &db_bytes).unwrap();
    std::fs::write(&copy_log, &log_bytes).unwrap();
    let db = Database::open(&copy, with_key(&k)).unwrap();
    assert_eq!(
        db.collection("c")
            .find(&doc! {}, FindOptions::default())
            .unwrap()
            .count(),
        20
    );
    db.close().unwrap();
    // A flipped byte inside the first record's sealed ops, with its checksum fixed up so
    // only the authentication can catch it: refused, never replayed.
    let start = 64; // a recycled log's records start after its two header slots
    let len = u32::from_le_bytes(log_bytes[start..start + 4].try_into().unwrap()) as usize;
    let mut forged = log_bytes.clone();
    forged[start + 8 + 20] ^= 1;
    let lap = u32::from_le_bytes(log_bytes[start + 4..start + 8].try_into().unwrap())
        ^ crc32fast::hash(&log_bytes[start + 8..start + 8 + len]);
    let crc = crc32fast::hash(&forged[start + 8..start + 8 + len]) ^ lap;
    forged[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&copy, &db_bytes).unwrap();
    std::fs::write(&copy_log, &forged).unwrap();
    let _ = std::fs::remove_file(copy.with_extension("wasp-shm"));
    let e = Database::open(&copy, with_key(&k)).err().unwrap();
    assert!(
        matches!(e, Error::Corrupt(ref m) if m.contains("authentication")),
        "{e}"
    );
}

#[test]
fn recipients_added_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "r.db");
    let a = key();
    let b = key();
    let pub_a = nexus::crypto::public_key(a.as_str()).unwrap();
    let pub_b = nexus::crypto::public_key(b.as_str()).unwrap();
    let db = Database::open(&path, with_key(&a)).unwrap();
    fill(&db);
    // The last key cannot go; a key that is no recipient cannot be removed.
    assert!(
        matches!(db.remove_key(&pub_a), Err(Error::InvalidArgument(ref m)) if m.contains("last key"))
    );
    assert!(matches!(
        db.remove_key(&pub_b),
        Err(Error::InvalidArgument(_))
    ));
    db.add_key(&pub_b).unwrap();
    db.add_key(&pub_b).unwrap(); // again: nothing changes
                                 // B opens it now, also while A's connection is open.
    let with_b = Database::open(&path, with_key(&b)).unwrap();
    assert_eq!(count(&with_b), 300);
    with_b.close().unwrap();
    db.remove_key(&pub_a).unwrap();
    db.close().unwrap();
    assert_no_marker(&path);
    let e = Database::open(&path, with_key(&a)).err().unwrap();
    assert!(
        matches!(e, Error::Crypto(ref m) if m.contains("no key slot")),
        "{e}"
    );
    let db = Database::open(&path, with_key(&b)).unwrap();
    assert_eq!(count(&db), 300);
    // A plain database has no keys to change.
    let plain = Database::open(tmp(&dir, "p.db"), OpenOptions::default()).unwrap();
    assert!(matches!(
        plain.add_key(&pub_a),
        Err(Error::InvalidArgument(_))
    ));
}

/// The last record of the log altered with its checksum fixed up: not a torn tail (that
/// would drop it silently) but damage, refused.
#[test]
fn an_altered_last_record_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "last.db");
    let k = key();
    let db = Database::open(&path, with_key(&k)).unwrap();
    db.collection("c")
        .insert(Document::from_json(r#"{"_id": 1}"#).unwrap())
        .unwrap();
    let db_bytes = std::fs::read(&path).unwrap();
    let log_bytes = std::fs::read(path.with_extension("wasp")).unwrap();
    db.close().unwrap();
    let start = 64;
    let len = u32::from_le_bytes(log_bytes[start..start + 4].try_into().unwrap()) as usize;
    let lap = u32::from_le_bytes(log_bytes[start + 4..start + 8].try_into().unwrap())
        ^ crc32fast::hash(&log_bytes[start + 8..start + 8 + len]);
    let mut forged = log_bytes.clone();
    forged[start + 8 + len - 1] ^= 1; // the tag's last byte
    let crc = crc32fast::hash(&forged[start + 8..start + 8 + len]) ^ lap;
    forged[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    let copy = tmp(&dir, "lastc.db");
    std::fs::write(&copy, &db_bytes).unwrap();
    std::fs::write(copy.with_extension("wasp"), &forged).unwrap();
    let e = Database::open(&copy, with_key(&k)).err().unwrap();
    assert!(
        matches!(e, Error::Corrupt(ref m) if m.contains("authentication")),
        "{e}"
    );
}

/// Key changes need a writable connection outside a transaction; a malformed key at open
/// leaves no file behind.
#[test]
fn key_changes_refused_read_only_and_in_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "ro.db");
    let a = key();
    let pub_a = nexus::crypto::public_key(a.as_str()).unwrap();
    let pub_b = nexus::crypto::public_key(key().as_str()).unwrap();
    let db = Database::open(&path, with_key(&a)).unwrap();
    fill(&db);
    let ro = Database::open(
        &path,
        OpenOptions {
            read_only: true,
            ..with_key(&a)
        },
    )
    .unwrap();
    assert!(matches!(ro.add_key(&pub_b), Err(Error::ReadOnly(_))));
    assert!(matches!(ro.remove_key(&pub_a), Err(Error::ReadOnly(_))));
    assert!(matches!(ro.rekey(), Err(Error::ReadOnly(_))));
    ro.close().unwrap();
    db.begin().unwrap();
    assert!(matches!(db.add_key(&pub_b), Err(Error::Txn(_))));
    assert!(matches!(db.rekey(), Err(Error::Txn(_))));
    db.rollback().unwrap();
    // Nothing changed: A is still the only key.
    assert!(
        matches!(db.remove_key(&pub_a), Err(Error::InvalidArgument(ref m)) if m.contains("last key"))
    );
    db.close().unwrap();
    assert!(matches!(
        Database::open(tmp(&dir, "b.db"), with_key(&PrivatePem::new(pub_a)))
            .err()
            .unwrap(),
        Error::InvalidArgument(_)
    ));
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("b.")));
}

/// `rekey`: every page in use is sealed anew under a new data key (a page of the file before
/// and one after are not interchangeable), both recipients still open it, the data is intact
/// and nothing is left of the journal; writes and reads go on afterwards.
#[test]
fn rekey_reseals_every_page_under_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "rk.db");
    let a = key();
    let b = key();
    let db = Database::open(&path, with_key(&a)).unwrap();
    fill(&db);
    db.add_key(&nexus::crypto::public_key(b.as_str()).unwrap())
        .unwrap();
    db.checkpoint().unwrap();
    let before = std::fs::read(&path).unwrap();
    db.rekey().unwrap();
    assert_eq!(read_all(&db).unwrap(), 300);
    db.collection(&format!("c_{MARKER}"))
        .insert(Document::from_json(r#"{"_id": "after", "n": -1}"#).unwrap())
        .unwrap();
    assert_eq!(db.check().unwrap()["ok"], true);
    db.close().unwrap();
    assert_no_marker(&path);
    let journal = PathBuf::from(format!("{}-rekey", path.display()));
    assert!(!journal.exists(), "the journal is removed");
    let after = std::fs::read(&path).unwrap();
    let ps = 8192;
    let pages = before.len().min(after.len()) / ps;
    let mut resealed = 0;
    for id in 1..pages {
        let (old, new) = (
            &before[id * ps..(id + 1) * ps],
            &after[id * ps..(id + 1) * ps],
        );
        if old.iter().any(|&x| x != 0) {
            assert_ne!(old, new, "page {id} was not rewritten");
            resealed += 1;
        }
    }
    assert!(resealed > 10, "{resealed} pages");
    // The file before the rekey, its pages from 3 on taken from the file after it: none
    // opens under the old key (and the reverse: none of the old pages under the new key).
    for (base, pages_from, name) in [(&before, &after, "old.db"), (&after, &before, "new.db")] {
        let mut mixed = base.clone();
        let n = mixed.len().min(pages_from.len());
        mixed[3 * ps..n].copy_from_slice(&pages_from[3 * ps..n]);
        let p = tmp(&dir, name);
        std::fs::write(&p, &mixed).unwrap();
        let r = Database::open(&p, reading(&a)).and_then(|db| read_all(&db));
        assert!(
            matches!(r, Err(Error::Corrupt(_) | Error::Crypto(_))),
            "{name}: {r:?}"
        );
    }
    for k in [&a, &b] {
        let db = Database::open(&path, with_key(k)).unwrap();
        assert_eq!(read_all(&db).unwrap(), 301);
        assert_eq!(db.check().unwrap()["ok"], true);
        db.close().unwrap();
    }
    // A plain database has no data key to change.
    let plain = Database::open(tmp(&dir, "p.db"), OpenOptions::default()).unwrap();
    assert!(matches!(plain.rekey(), Err(Error::InvalidArgument(_))));
}

/// Connections of the same process read on while a rekey rewrites the pages under them.
#[test]
fn readers_read_on_during_a_rekey() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "rr.db");
    let a = key();
    let db = Database::open(
        &path,
        OpenOptions {
            // A small cache: the readers go to the file for most pages.
            page_cache_bytes: Some(64 * 1024),
            ..with_key(&a)
        },
    )
    .unwrap();
    fill(&db);
    db.checkpoint().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The readers' connections are open before the first rekey starts: this test is about
    // reading on while pages are rewritten (opens racing a rekey:
    // `opens_during_a_rekey_wait_for_it`).
    let opened = std::sync::Arc::new(std::sync::Barrier::new(3));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            let a = a.clone();
            let stop = stop.clone();
            let opened = opened.clone();
            std::thread::spawn(move || {
                let db = Database::open(&path, with_key(&a));
                opened.wait(); // before the unwrap: a failed open must not leave the others waiting
                let db = db.unwrap();
                let mut rounds = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    assert_eq!(read_all(&db).unwrap(), 300);
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    opened.wait();
    for _ in 0..3 {
        db.rekey().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(db.check().unwrap()["ok"], true);
}

/// Connections opened in the same process while a rekey rewrites the key slots: each open
/// waits for the rekey (its key checked against slots and data key of one moment, never
/// slots half rewritten or wrapping a data key the sealer does not use yet) and then reads.
/// Before the slot changes were fenced, such an open failed its check with `Crypto` ("the
/// key slots of this database were altered by someone without its data key").
#[test]
fn opens_during_a_rekey_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = tmp(&dir, "or.db");
    let a = key();
    let db = Database::open(&path, with_key(&a)).unwrap();
    fill(&db);
    db.checkpoint().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let openers: Vec<_> = (0..2)
        .map(|_| {
            let (path, a, stop) = (path.clone(), a.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut opens = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let c = Database::open(&path, with_key(&a))
                        .unwrap_or_else(|e| panic!("open {opens} during a rekey: {e}"));
                    assert_eq!(read_all(&c).unwrap(), 300);
                    opens += 1;
                }
                opens
            })
        })
        .collect();
    for _ in 0..20 {
        db.rekey().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for o in openers {
        assert!(o.join().unwrap() > 0);
    }
    // A key that is no recipient is still refused while keys change.
    assert!(matches!(
        Database::open(&path, with_key(&key())),
        Err(Error::Crypto(_))
    ));
    assert_eq!(db.check().unwrap()["ok"], true);
}

/// `backup_encrypted` / `backup_decrypted` (`nexus_backup_with`'s `encrypt_to` / `decrypt`):
/// an encrypted copy of a plain database for two recipients, a plain copy of an encrypted
/// one and a copy for another key; each holds every document (after deletes: record ids
/// with gaps, which index entries carry), its indexes answer, its check is clean.
#[test]
fn copies_encrypted_to_other_keys_and_decrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (key(), key());
    let pub_a = nexus::crypto::public_key(a.as_str()).unwrap();
    let pub_b = nexus::crypto::public_key(b.as_str()).unwrap();
    let plain_opts = OpenOptions {
        storage: Some(StorageEngine::Wasp),
        ..OpenOptions::default()
    };
    let plain = Database::open(tmp(&dir, "p.db"), plain_opts.clone()).unwrap();
    fill(&plain);
    let coll = format!("c_{MARKER}");
    let c = plain.collection(&coll);
    for i in (0..300).step_by(7) {
        c.delete(&doc! {"n": i}, false).unwrap();
    }
    c.insert(Document::from_json(r#"{"_id": "late", "n": 1000}"#).unwrap())
        .unwrap();
    let expected = 300 - 300usize.div_ceil(7) + 1;
    assert_eq!(read_all(&plain).unwrap(), expected);
    // Refusals: no key, a malformed key, a private key, an existing destination.
    let enc = tmp(&dir, "enc.db");
    assert!(matches!(
        plain.backup_encrypted(&enc, &[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        plain.backup_encrypted(&enc, &["not a key".into()]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        plain.backup_encrypted(&enc, &[a.as_str().to_string()]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(!enc.exists(), "nothing written by a refused copy");
    plain
        .backup_encrypted(&enc, &[pub_a.clone(), pub_b.clone()])
        .unwrap();
    assert!(matches!(
        plain.backup_encrypted(&enc, std::slice::from_ref(&pub_a)),
        Err(Error::InvalidArgument(_))
    ));
    plain.close().unwrap();
    assert_no_marker(&enc);
    let verify = |p: &Path, opts: OpenOptions, encrypted: bool| {
        let db = Database::open(p, opts).unwrap();
        assert_eq!(read_all(&db).unwrap(), expected, "{}", p.display());
        let c = db.collection(&coll);
        let by_index = c
            .find_one(&doc! { format!("{MARKER}_field"): format!("value {MARKER} 151") })
            .unwrap()
            .unwrap();
        assert_eq!(by_index.get("n"), Some(&bson::Bson::Int32(151)));
        assert!(c
            .find_one(&doc! { format!("{MARKER}_field"): format!("value {MARKER} 147") })
            .unwrap()
            .is_none());
        assert!(c.find_one(&doc! {"_id": "late"}).unwrap().is_some());
        assert_eq!(db.check().unwrap()["ok"], true, "{}", p.display());
        assert_eq!(db.stats().unwrap()["storage"]["encrypted"], encrypted);
        db
    };
    for k in [&a, &b] {
        verify(&enc, with_key(k), true).close().unwrap();
    }
    assert!(matches!(
        Database::open(&enc, plain_opts.clone()).err().unwrap(),
        Error::Crypto(_)
    ));
    // From the encrypted copy: a plain copy, and one for B alone.
    let db = Database::open(&enc, with_key(&a)).unwrap();
    let dec = tmp(&dir, "dec.db");
    let only_b = tmp(&dir, "b.db");
    db.backup_decrypted(&dec).unwrap();
    db.backup_encrypted(&only_b, &[pub_b]).unwrap();
    // Writes go on in the source after the copies; they are not in them.
    db.collection(&coll)
        .insert(Document::from_json(r#"{"_id": "later", "n": 2000}"#).unwrap())
        .unwrap();
    db.close().unwrap();
    let d = verify(&dec, plain_opts.clone(), false);
    d.close().unwrap();
    let bytes = std::fs::read(&dec).unwrap();
    assert!(contains(&bytes, MARKER.as_bytes()), "a plain copy is plain");
    assert_no_marker(&only_b);
    verify(&only_b, with_key(&b), true).close().unwrap();
    assert!(matches!(
        Database::open(&only_b, with_key(&a)).err().unwrap(),
        Error::Crypto(_)
    ));
}

/// An encrypted file of an earlier build (format version 5: AES-256-GCM and version 3 document
/// records) keeps its version and the records its build reads, 5 bytes of metadata a
/// document more than a new file's (version 8, lean records); a header whose version names
/// the other cipher than the key slots is refused.
#[test]
fn encrypted_files_of_format_5_keep_their_version_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let opts = || OpenOptions {
        encryption_cipher: Some(Cipher::Aes256Gcm),
        ..with_key(&k)
    };
    let mut data_bytes = Vec::new();
    for version in [8u32, 5] {
        let path = tmp(&dir, &format!("v{version}.db"));
        Database::open(&path, opts()).unwrap().close().unwrap();
        if version == 5 {
            crate::common::set_format_version(&path, 5);
        }
        let db = Database::open(&path, with_key(&k)).unwrap();
        db.collection("c")
            .insert(Document::from_json(r#"{"_id": "x", "n": 1}"#).unwrap())
            .unwrap();
        let stats = db.stats().unwrap();
        assert_eq!(stats["storage"]["format_version"], version, "{stats}");
        data_bytes.push(stats["storage"]["data_bytes"].as_u64().unwrap());
        db.close().unwrap();
        let db = Database::open(&path, with_key(&k)).unwrap();
        let got = db.collection("c").find_one(&doc! {"_id": "x"}).unwrap();
        assert_eq!(got.unwrap().as_bson().get_i32("n").unwrap(), 1);
        assert_eq!(db.stats().unwrap()["storage"]["format_version"], version);
        db.close().unwrap();
        if version == 5 {
            crate::common::set_format_version(&path, 7);
            let e = Database::open(&path, with_key(&k)).unwrap_err();
            assert!(matches!(e, Error::Corrupt(_)), "{e}");
            assert!(e.to_string().contains("does not match the cipher"), "{e}");
        }
    }
    assert_eq!(data_bytes[1] - data_bytes[0], 5, "{data_bytes:?}");
}
