//! Writes the binary seeds of the committed corpus (`fuzz/corpus/<target>/`): small database
//! files (closed cleanly; and copied while open, with commits in the log), and the pages, log,
//! catalog entries and index entries they hold. Run from `fuzz/`:
//! `cargo +nightly run --bin make_seeds` (the text seeds are written by hand).
use nexus::{Database, Document, OpenOptions};
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn fill(db: &Database, more: bool) {
    let c = db.collection("people");
    c.create_index_json(r#"{"age": 1}"#, None).unwrap();
    if more {
        c.create_index_json(r#"{"name": 1, "tags": -1}"#, Some(r#"{"unique": false}"#))
            .unwrap();
    }
    for (i, name) in ["ada", "alan", "grace"].iter().enumerate() {
        let text = format!(
            r#"{{"_id": {i}, "name": "{name}", "age": {}, "tags": ["x", "y{i}"], "at": {{"$date": "2024-01-0{}T00:00:00Z"}}}}"#,
            30 + i,
            i + 1
        );
        c.insert(Document::from_json(&text).unwrap()).unwrap();
    }
    if !more {
        return;
    }
    db.create_collection("events", Some(r#"{"clustered": true}"#))
        .ok();
    db.collection("events")
        .insert(Document::from_json(r#"{"k": 1.5, "v": null}"#).unwrap())
        .unwrap();
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let small = OpenOptions {
        page_size: Some(8192),
        ..OpenOptions::default()
    };
    // A cleanly closed file: no log needed.
    let clean = tmp.path().join("clean.db");
    let db = Database::open(&clean, small.clone()).unwrap();
    fill(&db, false);
    db.close().unwrap();
    let clean_bytes = std::fs::read(&clean).unwrap();
    let mut seed = vec![1u8];
    seed.extend_from_slice(&clean_bytes);
    write("db_file", "clean", &seed);
    // A file copied while open after a checkpoint and more commits: its log holds them.
    let open = tmp.path().join("open.db");
    let db = Database::open(&open, small).unwrap();
    fill(&db, true);
    db.checkpoint().unwrap();
    db.collection("people")
        .insert(Document::from_json(r#"{"_id": 9, "name": "late"}"#).unwrap())
        .unwrap();
    db.collection("people")
        .delete(&bson::doc! {"_id": 1}, false)
        .unwrap();
    let db_bytes = std::fs::read(&open).unwrap();
    let log_bytes = std::fs::read(tmp.path().join("open.wasp")).unwrap();
    // The log: a recycled one preallocates; keep its records only (the end mark is zeros).
    let log_used = used_log_len(&log_bytes);
    let mut seed = vec![3u8];
    seed.extend_from_slice(&(db_bytes.len() as u32).to_le_bytes());
    seed.extend_from_slice(&db_bytes);
    seed.extend_from_slice(&log_bytes[..log_used]);
    write("db_file", "with_log", &seed);
    let mut lseed = vec![1u8];
    lseed.extend_from_slice(&log_bytes[..log_used]);
    write("log_replay", "recycled", &lseed);
    drop(db);

    // Pages and the entries in them.
    let size = 8192;
    let (mut leaves, mut branches, mut cat, mut ix, mut entries) = (0, 0, 0, 0, 0);
    for (n, page) in clean_bytes.chunks(size).enumerate().skip(3) {
        let kind = page[4];
        let used = u32::from_le_bytes(page[24..28].try_into().unwrap()) as usize;
        let mut seed = vec![1u8];
        seed.extend_from_slice(&page[..32 + used]);
        if kind == 1 && leaves < 3 {
            write("page", &format!("leaf{n}"), &seed);
            leaves += 1;
        } else if kind == 2 && branches < 2 {
            write("page", &format!("branch{n}"), &seed);
            branches += 1;
        }
        if kind != 1 {
            continue;
        }
        let count = u16::from_le_bytes([page[6], page[7]]) as usize;
        let mut at = 32;
        for _ in 0..count {
            let klen = u16::from_le_bytes([page[at], page[at + 1]]) as usize;
            let vkind = page[at + 2];
            let vlen = u32::from_le_bytes(page[at + 3..at + 7].try_into().unwrap()) as usize;
            let key = &page[at + 7..at + 7 + klen];
            let vstart = at + 7 + klen;
            at = vstart + if vkind == 0 { vlen } else { 8 };
            if vkind != 0 {
                continue;
            }
            let value = &page[vstart..vstart + vlen];
            if matches!(value.first(), Some(1 | 2)) && value.len() >= 29 && cat < 4 {
                let mut s = vec![0u8];
                s.extend_from_slice(value);
                write("catalog", &format!("table{cat}"), &s);
                cat += 1;
            } else if value.len() > 4
                && bson::Document::from_reader(value).is_ok_and(|d| d.contains_key("key"))
                && ix < 3
            {
                let mut s = vec![1u8];
                s.extend_from_slice(value);
                write("catalog", &format!("index{ix}"), &s);
                ix += 1;
            } else if value.len() >= 2 && value[1] & 0x80 != 0 && entries < 4 {
                let mut s = vec![0u8];
                s.extend_from_slice(&(klen as u16).to_le_bytes());
                s.extend_from_slice(key);
                s.extend_from_slice(value);
                write("index_entry", &format!("entry{entries}"), &s);
                entries += 1;
            }
        }
    }
    // Raw BSON documents for the C ABI target, the importer and the key order.
    let doc = bson::doc! {"_id": 1, "a": [1, 2.5, "x", {"b": null}], "d": bson::DateTime::from_millis(5), "n": -0.0f64, "big": i64::MAX};
    let bytes = doc.to_vec().unwrap();
    write("bson_insert", "doc", &bytes);
    write("key_order", "mixed", &bytes);
    let keys = bson::doc! {"a": 1, "b": 1i64, "c": 1.0, "d": "1", "e": [1], "f": {"x": 1}, "g": bson::Bson::Null, "h": bson::Bson::MinKey, "i": bson::Bson::MaxKey, "j": f64::NAN, "k": f64::NEG_INFINITY, "l": true, "m": bson::oid::ObjectId::from_bytes([1; 12]), "n": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0, 1] }};
    write("key_order", "types", &keys.to_vec().unwrap());
    let mut stream = vec![4u8];
    stream.extend_from_slice(&bytes);
    stream.extend_from_slice(&bson::doc! {"x": "y"}.to_vec().unwrap());
    write("import", "bson", &stream);
}

/// Where the records of a recycled log end (the first zero length after the header).
fn used_log_len(log: &[u8]) -> usize {
    let mut at = 64;
    while at + 8 <= log.len() {
        let len = u32::from_le_bytes(log[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 || at + 8 + len > log.len() {
            return (at + 8).min(log.len());
        }
        at += 8 + len;
    }
    log.len()
}
