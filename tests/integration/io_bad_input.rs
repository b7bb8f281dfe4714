//! Bad input gets a clear error and nothing half written: malformed lines (the error names
//! the row and how many documents were committed before it; `atomic` commits none), a wrong
//! delimiter, a CSV quote never closed, truncated BSON, a UTF-16 file, an empty file, a
//! directory as the path, an unwritable export destination, and unsupported TTL options.

use bson::doc;
use nexus::io::{CsvOptions, ExportOptions, Format, ImportOptions};
use nexus::{Database, Error};
use std::path::Path;

fn count(db: &Database, coll: &str) -> u64 {
    db.collection(coll).count(&doc! {}).unwrap()
}

fn import(
    db: &Database,
    coll: &str,
    path: &Path,
    opts: ImportOptions,
) -> nexus::Result<nexus::io::ImportReport> {
    db.collection(coll).import(path, &opts)
}

fn ndjson_with_bad_line_7(dir: &Path) -> std::path::PathBuf {
    let mut text = String::new();
    for i in 1..=10 {
        if i == 7 {
            text.push_str("{\"_id\": 7, \"oops\": }\n");
        } else {
            text.push_str(&format!("{{\"_id\": {i}}}\n"));
        }
    }
    let p = dir.join("bad.ndjson");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_malformed_line_stops_the_import_after_committing_the_rows_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = ndjson_with_bad_line_7(dir.path());
    let e = import(
        &db,
        "c",
        &p,
        ImportOptions {
            batch_size: 4,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("row 7 (line 7"), "{msg}");
    assert!(
        msg.contains("6 documents were committed before it"),
        "{msg}"
    );
    assert_eq!(count(&db, "c"), 6);
    assert!(
        !dir.path().join("bad.ndjson.errors.jsonl").exists(),
        "no sidecar without skip_errors"
    );
}

#[test]
fn an_atomic_import_commits_nothing_when_a_row_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = ndjson_with_bad_line_7(dir.path());
    let e = import(
        &db,
        "c",
        &p,
        ImportOptions {
            batch_size: 2,
            atomic: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("nothing was committed (atomic import)"),
        "{e}"
    );
    assert_eq!(count(&db, "c"), 0);
    assert!(!db.in_transaction());
    // A clean atomic import commits everything in one transaction.
    let good = dir.path().join("good.ndjson");
    std::fs::write(&good, "{\"a\":1}\n{\"a\":2}\n").unwrap();
    let r = import(
        &db,
        "c",
        &good,
        ImportOptions {
            atomic: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.imported, r.batches), (2, 1));
    assert_eq!(count(&db, "c"), 2);
}

#[test]
fn a_duplicate_id_stops_with_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("dup.json");
    std::fs::write(
        &p,
        "[{\"_id\": 1}, {\"_id\": 2},\n {\"_id\": 1}, {\"_id\": 3}]",
    )
    .unwrap();
    let e = import(&db, "c", &p, ImportOptions::default()).unwrap_err();
    assert!(matches!(e, Error::DuplicateKey(_)), "{e:?}");
    assert!(e.to_string().contains("row 3 (line 2"), "{e}");
    assert_eq!(count(&db, "c"), 2);
}

#[test]
fn a_wrong_delimiter_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("semi.csv");
    std::fs::write(&p, "a,b,c\n1,2,3\n").unwrap();
    let opts = ImportOptions {
        csv: CsvOptions {
            delimiter: Some(b';'),
            ..Default::default()
        },
        ..Default::default()
    };
    let e = import(&db, "c", &p, opts).unwrap_err();
    assert!(e.to_string().contains("wrong delimiter"), "{e}");
    assert_eq!(count(&db, "c"), 0);
    // A row with too many fields is a bad row with its line.
    std::fs::write(&p, "a,b\n1,2\n3,4,5\n").unwrap();
    let e = import(&db, "c", &p, ImportOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("line 3")
            && e.to_string().contains("has 3 fields but the header has 2"),
        "{e}"
    );
    // The sniffer finds ';' by itself.
    std::fs::write(&p, "a;b\n1;2,5\n").unwrap();
    import(&db, "d", &p, ImportOptions::default()).unwrap();
    let d = db.collection("d").find_one(&doc! {}).unwrap().unwrap();
    assert_eq!(d.get("b"), Some(&bson::Bson::String("2,5".into())));
}

#[test]
fn an_unterminated_csv_quote_is_named_not_counted_as_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("quote.csv");
    // The quote opened on line 4 swallows the rest of the file; the record it makes has
    // three fields where the header has two.
    std::fs::write(&p, "a,b\n1,\"x\ny\"\n2,\"open\n3,4\n5,6\n").unwrap();
    let e = import(&db, "c", &p, ImportOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    assert!(
        msg.contains("ends inside a quoted field that starts on line 4")
            && msg.contains("unterminated quoted field"),
        "{msg}"
    );
    assert!(!msg.contains("fields but the header"), "{msg}");
    assert!(msg.contains("1 document was committed before it"), "{msg}");
    assert_eq!(count(&db, "c"), 1, "the row before the quote is kept");
    // Not a bad row to skip: nothing after the quote can be told apart.
    let e = import(
        &db,
        "d",
        &p,
        ImportOptions {
            skip_errors: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("unterminated quoted field"), "{e}");

    // In the header itself, with no headers, and at the very end of the file.
    for (text, opts, line) in [
        ("\"a,b\n1,2\n", ImportOptions::default(), 1),
        (
            "1,\"2\n",
            ImportOptions {
                csv: CsvOptions {
                    has_headers: false,
                    ..Default::default()
                },
                ..Default::default()
            },
            1,
        ),
        ("a,b\n1,2\n3,\"", ImportOptions::default(), 3),
    ] {
        std::fs::write(&p, text).unwrap();
        let e = import(&db, "e", &p, opts).unwrap_err().to_string();
        assert!(
            e.contains(&format!("quoted field that starts on line {line}")),
            "{text:?}: {e}"
        );
    }
    // Closed quotes, doubled quotes and a quote inside an unquoted field are fine.
    std::fs::write(&p, "a,b\n\"x \"\"y\"\"\",z\"q\n").unwrap();
    import(&db, "f", &p, ImportOptions::default()).unwrap();
    let d = db.collection("f").find_one(&doc! {}).unwrap().unwrap();
    assert_eq!(d.get("a"), Some(&bson::Bson::String("x \"y\"".into())));
    assert_eq!(d.get("b"), Some(&bson::Bson::String("z\"q".into())));
}

#[test]
fn truncated_bson_is_refused_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let mut bytes = Vec::new();
    for i in 0..3 {
        bytes.extend(doc! {"_id": i, "s": "x".repeat(40)}.to_vec().unwrap());
    }
    let whole = bytes.len();
    bytes.truncate(whole - 10);
    let p = dir.path().join("dump.bson");
    std::fs::write(&p, &bytes).unwrap();
    let e = import(
        &db,
        "c",
        &p,
        ImportOptions {
            atomic: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("truncated BSON: document 3"), "{e}");
    assert_eq!(count(&db, "c"), 0);
    // Not BSON at all with an explicit format: an implausible length.
    std::fs::write(&p, b"hello world, this is text").unwrap();
    let e = import(
        &db,
        "c",
        &p,
        ImportOptions {
            format: Format::Bson,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("implausible BSON length"), "{e}");
}

#[test]
fn utf16_empty_and_directory_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("u16.csv");
    let mut b = vec![0xFF, 0xFE];
    b.extend("a,b\n1,2\n".encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&p, b).unwrap();
    let e = import(&db, "c", &p, ImportOptions::default()).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("UTF-16"),
        "{e}"
    );

    let empty = dir.path().join("empty.ndjson");
    std::fs::write(&empty, "").unwrap();
    let e = import(&db, "c", &empty, ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");

    let e = import(&db, "c", dir.path(), ImportOptions::default()).unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");

    let e = import(
        &db,
        "c",
        &dir.path().join("missing.csv"),
        ImportOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_eq!(count(&db, "c"), 0);
    assert!(
        db.list_collections().unwrap().is_empty(),
        "no collection was created"
    );
}

#[test]
fn a_truncated_json_array_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("cut.json");
    std::fs::write(&p, "[{\"a\": 1}, {\"a\": 2}, {\"a\":").unwrap();
    let e = import(
        &db,
        "c",
        &p,
        ImportOptions {
            atomic: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    assert_eq!(count(&db, "c"), 0);
}

#[test]
fn export_never_leaves_a_half_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    db.collection("c")
        .insert(nexus::Document::from(doc! {"a": 1}))
        .unwrap();
    // A directory as the destination.
    let e = db
        .collection("c")
        .export(dir.path(), &ExportOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");
    // An unwritable destination: its parent is a file.
    let file = dir.path().join("plain");
    std::fs::write(&file, "x").unwrap();
    let e = db
        .collection("c")
        .export(file.join("out.ndjson"), &ExportOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    // A failure after the temporary file exists (a bad filter) keeps the old file and
    // leaves no temporary file behind.
    let dest = dir.path().join("keep.ndjson");
    std::fs::write(&dest, "old contents\n").unwrap();
    let opts = ExportOptions {
        filter: Some(doc! {"a": {"$bogus": 1}}),
        ..Default::default()
    };
    assert!(db.collection("c").export(&dest, &opts).is_err());
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old contents\n");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("nexus-tmp")), "{names:?}");
    // A good export replaces it whole.
    db.collection("c")
        .export(&dest, &ExportOptions::default())
        .unwrap();
    assert!(std::fs::read_to_string(&dest).unwrap().contains("\"a\":1"));
}

#[test]
fn ttl_field_makes_ephemeral_documents_and_bad_values_are_row_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        ":memory:",
        nexus::OpenOptions::from_json(Some(r#"{"sweeper_interval_ms": 0}"#)).unwrap(),
    )
    .unwrap();
    let p = dir.path().join("t.ndjson");
    std::fs::write(
        &p,
        concat!(
            "{\"_id\": \"soon\", \"ttl\": 30}\n",
            "{\"_id\": \"later\", \"ttl\": {\"$date\": \"2999-01-01T00:00:00Z\"}}\n",
            "{\"_id\": \"kept\"}\n"
        ),
    )
    .unwrap();
    let opts = ImportOptions {
        ttl_field: Some("ttl".into()),
        ..Default::default()
    };
    import(&db, "c", &p, opts.clone()).unwrap();
    let c = db.collection("c");
    let meta = |id: &str| {
        c.get_meta(&nexus::DocumentId::from_str_id(id).unwrap())
            .unwrap()
            .unwrap()
    };
    assert!(meta("soon").ephemeral);
    assert_eq!(meta("later").expires_at, Some(32_472_144_000_000));
    assert!(!meta("kept").ephemeral);
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(count(&db, "c"), 2, "the 30 ms document expired");

    // persistent: false requires the field on every row; without ttl_field it is refused.
    let e = import(
        &db,
        "d",
        &p,
        ImportOptions {
            persistent: false,
            ..opts.clone()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let e = import(
        &db,
        "d",
        &p,
        ImportOptions {
            persistent: false,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(&bad, "{\"ttl\": \"tomorrow\"}\n").unwrap();
    let e = import(&db, "e", &bad, opts).unwrap_err();
    assert!(e.to_string().contains("milliseconds"), "{e}");
}
