//! What the fuzz targets of `fuzz/` (`make fuzz`) found, each crasher as a test with its input
//! inline; and the committed seeds of the targets that go through the public API, which must
//! stay valid inputs (a seed the library refuses would leave its target fuzzing error paths
//! only).

use nexus::{Database, FindOptions, OpenOptions};
use std::path::Path;

/// A seed of fuzz/corpus/<target>/<name>.
fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Opens the database of a `db_file` seed (its layout: fuzz/fuzz_targets/db_file.rs) and
/// returns how many documents each collection holds, after a clean `check`.
fn open_db_seed(name: &str) -> Vec<(String, usize)> {
    let data = seed("db_file", name);
    let (flags, rest) = data.split_first().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fz.db");
    if flags & 2 != 0 {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        std::fs::write(&path, &rest[4..4 + n]).unwrap();
        std::fs::write(dir.path().join("fz.wasp"), &rest[4 + n..]).unwrap();
    } else {
        std::fs::write(&path, rest).unwrap();
    }
    let options = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    let db = Database::open(&path, options).unwrap();
    let report = db.check().unwrap();
    assert_eq!(report["ok"], serde_json::json!(true), "{report}");
    let mut out = Vec::new();
    for name in db.list_collections().unwrap() {
        let n = db
            .collection(&name)
            .find(&bson::Document::new(), FindOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .count();
        out.push((name, n));
    }
    db.close().unwrap();
    out
}

#[test]
fn database_file_seeds_open_and_check_clean() {
    assert_eq!(open_db_seed("clean"), [("people".to_owned(), 3)]);
    // Copied while open: the log holds an insert and a delete after the checkpoint.
    let mut with_log = open_db_seed("with_log");
    with_log.sort();
    assert_eq!(
        with_log,
        [("events".to_owned(), 1), ("people".to_owned(), 3)]
    );
}

/// A manifest slot of `file` (slots 1 and 2 are pages 1 and 2) with the 8 bytes at
/// `field` set to `value` and its checksum (bytes 60..64, of bytes 0..60) made right again:
/// damage a checksum cannot see.
fn patch_slot(file: &mut [u8], slot: usize, field: usize, value: u64) {
    let at = slot * 8192;
    file[at + field..at + field + 8].copy_from_slice(&value.to_le_bytes());
    let crc = crc32fast::hash(&file[at..at + 60]);
    file[at + 60..at + 64].copy_from_slice(&crc.to_le_bytes());
}
/// Found by `db_file`: a tree's page number in a damaged (but checksummed) entry, here
/// 0x12FF_FFFF_FFFF_FFFF where page 5 was, overflowed `id * page_size` in the pager (a
/// panic in debug builds, a wrapped read offset in release ones). The read is now refused
/// as damage: open, check and scans return errors, never panic.
#[test]
fn page_number_past_any_file_is_damage_not_overflow() {
    let data = seed("db_file", "clean");
    let mut file = data[1..].to_vec();
    let page = 8 * 8192;
    file[page + 102..page + 110].copy_from_slice(&0x12FF_FFFF_FFFF_FFFFu64.to_le_bytes());
    let crc = crc32fast::hash(&file[page + 4..page + 8192]);
    file[page..page + 4].copy_from_slice(&crc.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fz.db");
    std::fs::write(&path, &file).unwrap();
    let options = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    // The patched entry is the root of the index on `age`: check reports it, and a scan
    // through that index (where the multiplication overflowed) fails with the damage.
    let db = Database::open(&path, options).unwrap();
    let damage = db.check().unwrap_err().to_string();
    assert!(damage.contains("outside the data pages"), "{damage}");
    let people = db.collection("people");
    let by_age = FindOptions {
        hint: Some(bson::bson!({"age": 1})),
        ..FindOptions::default()
    };
    let errors: Vec<String> = match people.find(&bson::Document::new(), by_age) {
        Err(e) => vec![e.to_string()],
        Ok(cursor) => cursor
            .filter_map(Result::err)
            .map(|e| e.to_string())
            .collect(),
    };
    assert!(
        errors
            .iter()
            .any(|m| m.contains("past the largest possible file")),
        "the index scan reports the damage: {errors:?}"
    );
    let _ = db.close();
}

/// Found by `db_file`: a manifest slot (checksum intact) whose generation is `u64::MAX` was
/// taken as the newest, and the next generation (`generation + 1`) overflowed at open (a
/// panic in debug builds). Such a slot is now implausible, like one whose roots lie past its
/// page count: the other slot is the truth.
#[test]
fn manifest_generation_at_the_top_of_u64_is_ignored() {
    let data = seed("db_file", "clean");
    let mut opened = 0;
    for slot in [1usize, 2] {
        let mut file = data[1..].to_vec();
        patch_slot(&mut file, slot, 8, u64::MAX);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fz.db");
        std::fs::write(&path, &file).unwrap();
        let options = OpenOptions {
            create: false,
            ..OpenOptions::default()
        };
        // The slot left is the older one: when the damaged slot was the newest (quiet, after
        // the clean close), the older one is not quiet and the missing log is refused.
        match Database::open(&path, options) {
            Ok(db) => {
                db.check().unwrap();
                let people = db.collection("people");
                assert_eq!(
                    people.count(&bson::Document::new()).unwrap(),
                    3,
                    "slot {slot}"
                );
                db.close().unwrap();
                opened += 1;
            }
            Err(e) => assert!(e.to_string().contains("log"), "slot {slot}: {e}"),
        }
    }
    assert_eq!(opened, 1, "the damaged older slot is passed over");
}

/// Found by `db_file`: a manifest (checksum intact) claiming 2^60 (here 2^40) pages opened, and `check`
/// allocated a byte per claimed page: a capacity-overflow panic, in release builds too
/// (`NEXUS_INTERNAL` through the C ABI). A claim the file cannot hold is now reported as
/// damage before the walk.
#[test]
fn manifest_page_count_past_the_file_is_reported_not_allocated() {
    let mut file = seed("db_file", "clean")[1..].to_vec();
    for slot in [1usize, 2] {
        patch_slot(&mut file, slot, 40, 1u64 << 40);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fz.db");
    std::fs::write(&path, &file).unwrap();
    let options = OpenOptions {
        create: false,
        // Read-only: check walks the file as it is (a writable open checkpoints first,
        // which would place a new page past the claimed end).
        read_only: true,
        ..OpenOptions::default()
    };
    let db = Database::open(&path, options).unwrap();
    let damage = db.check().unwrap_err().to_string();
    assert!(
        damage.contains("shorter than its 1099511627776 pages"),
        "{damage}"
    );
    let _ = db.close();
}

/// Found by `db_file`: a manifest page count of `u64::MAX` (checksum intact) was accepted,
/// and the next page a checkpoint allocated overflowed `page_count + 1` (a panic in debug
/// builds). A page count whose pages would not fit a file offset is now implausible: with
/// both slots so damaged, open refuses the file.
#[test]
fn manifest_page_count_past_any_file_is_refused() {
    let mut file = seed("db_file", "clean")[1..].to_vec();
    for slot in [1usize, 2] {
        patch_slot(&mut file, slot, 40, u64::MAX);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fz.db");
    std::fs::write(&path, &file).unwrap();
    let options = OpenOptions {
        create: false,
        ..OpenOptions::default()
    };
    let Err(e) = Database::open(&path, options) else {
        panic!("open refuses the file");
    };
    assert!(
        e.to_string().contains("neither manifest slot is valid"),
        "{e}"
    );
}
