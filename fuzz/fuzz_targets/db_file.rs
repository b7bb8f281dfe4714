//! Whole database files, mutated, opened through the public API: `data[0]` bit 0 gives every
//! header, manifest slot and page a valid checksum (so mutations reach what the checksums
//! guard); bit 1: `data[1..5]` (u32 LE) is the length of `NAME.db`, the rest is `NAME.wasp`
//! (else everything is `NAME.db` and there is no log); bit 2: open with recover =
//! "discard_damaged". Then `check`, a full scan of every collection and its indexes, a
//! count, close. Any error is fine; a crash, hang or panic is not. The page cache is held to
//! 1 MiB and the files live in a tmpfs directory.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus::{Database, FindOptions, LogRecovery, OpenOptions, SyncMode};
use std::sync::OnceLock;

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let t = if base.is_dir() {
            tempfile::tempdir_in(base)
        } else {
            tempfile::tempdir()
        };
        t.expect("temporary directory")
    })
    .path()
}

/// Valid checksums for the header, both manifest slots (and their extensions) and every page.
fn fix_checksums(db: &mut [u8]) {
    if db.len() < 64 || &db[0..16] != b"NexusLite format" {
        return;
    }
    let crc = crc32fast::hash(&db[0..60]);
    db[60..64].copy_from_slice(&crc.to_le_bytes());
    let size = u32::from_le_bytes([db[24], db[25], db[26], db[27]]) as usize;
    if size < 4096 || size > 65536 || !size.is_power_of_two() {
        return;
    }
    for (n, page) in db.chunks_mut(size).enumerate() {
        match n {
            0 => {}
            1 | 2 => {
                if page.len() >= 84 && &page[0..8] == b"NXMANIF1" {
                    let crc = crc32fast::hash(&page[0..60]);
                    page[60..64].copy_from_slice(&crc.to_le_bytes());
                    if &page[64..72] == b"NXMANEX1" {
                        let crc = crc32fast::hash(&page[64..80]);
                        page[80..84].copy_from_slice(&crc.to_le_bytes());
                    }
                }
            }
            _ if page.len() == size => {
                let crc = crc32fast::hash(&page[4..]);
                page[0..4].copy_from_slice(&crc.to_le_bytes());
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (db_bytes, log_bytes) = if flags & 2 != 0 {
        let Some((len, rest)) = rest.split_first_chunk::<4>() else {
            return;
        };
        let n = (u32::from_le_bytes(*len) as usize).min(rest.len());
        (rest[..n].to_vec(), Some(&rest[n..]))
    } else {
        (rest.to_vec(), None)
    };
    let mut db_bytes = db_bytes;
    if flags & 1 != 0 {
        fix_checksums(&mut db_bytes);
    }
    let dir = dir();
    for entry in std::fs::read_dir(dir).expect("read temporary directory") {
        let _ = std::fs::remove_file(entry.expect("entry").path());
    }
    let path = dir.join("fz.db");
    std::fs::write(&path, &db_bytes).expect("write database file");
    if let Some(log) = log_bytes {
        std::fs::write(dir.join("fz.wasp"), log).expect("write log file");
    }
    let options = OpenOptions {
        create: false,
        sync: SyncMode::Off,
        page_cache_bytes: Some(1 << 20),
        busy_timeout_ms: 0,
        recover: if flags & 4 != 0 {
            LogRecovery::DiscardDamaged
        } else {
            LogRecovery::Strict
        },
        ..OpenOptions::default()
    };
    let Ok(db) = Database::open(&path, options) else {
        return;
    };
    let _ = db.check();
    if let Ok(names) = db.list_collections() {
        for name in names.iter().take(16) {
            let c = db.collection(name);
            if let Ok(cursor) = c.find(&bson::Document::new(), FindOptions::default()) {
                for d in cursor.take(10_000) {
                    if d.is_err() {
                        break;
                    }
                }
            }
            let _ = c.count(&bson::Document::new());
            if let Ok(indexes) = c.list_indexes() {
                for ix in indexes.iter().take(8) {
                    let Ok(key) = ix.get_document("key") else {
                        continue;
                    };
                    let opts = FindOptions {
                        hint: Some(bson::Bson::Document(key.clone())),
                        ..Default::default()
                    };
                    if let Ok(cursor) = c.find(&bson::Document::new(), opts) {
                        for d in cursor.take(10_000) {
                            if d.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
    let _ = db.close();
});
