//! `skip_errors`: good rows are imported, each bad row goes to the sidecar
//! (`<file>.errors.jsonl` or the given path) with its row, line, offset, raw text and reason,
//! and the report counts read / imported / failed; a dry run checks without writing.

use bson::doc;
use nexus::io::ImportOptions;
use nexus::Database;

fn sidecar_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bad_rows_go_to_the_sidecar_and_good_rows_are_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("mixed.ndjson");
    std::fs::write(
        &p,
        "{\"_id\":1}\n{not json}\n\n{\"_id\":2}\n[1,2]\n{\"_id\":1}\n{\"_id\":3}\n",
    )
    .unwrap();
    let r = db
        .collection("c")
        .import(
            &p,
            &ImportOptions {
                skip_errors: true,
                batch_size: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.read, r.imported, r.failed), (6, 3, 3), "{r:?}");
    assert_eq!(r.bytes, std::fs::metadata(&p).unwrap().len());
    let side = dir.path().join("mixed.ndjson.errors.jsonl");
    assert_eq!(r.error_sidecar.as_deref(), Some(side.as_path()));
    let lines = sidecar_lines(&side);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["row"], 2);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["offset"], 10);
    assert_eq!(lines[0]["raw"], "{not json}");
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    assert_eq!(lines[1]["line"], 5);
    assert!(lines[1]["reason"].as_str().unwrap().contains("an array"));
    assert_eq!(lines[2]["line"], 6);
    assert!(lines[2]["reason"]
        .as_str()
        .unwrap()
        .contains("duplicate key"));
    assert_eq!(lines[2]["raw"], "{\"_id\":1}");
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 3);
    let json = r.to_json();
    for k in ["read", "imported", "failed", "bytes", "elapsed_ms"] {
        assert!(json.get(k).is_some(), "report lacks {k}");
    }
}

#[test]
fn csv_bad_rows_and_a_chosen_sidecar_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("rows.csv");
    std::fs::write(&p, "a,b\n1,2\n3\n\"multi\nline\",4\n5,6,7\n").unwrap();
    let side = dir.path().join("custom-errors.jsonl");
    let r = db
        .collection("c")
        .import(
            &p,
            &ImportOptions {
                skip_errors: true,
                error_sidecar: Some(side.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.read, r.imported, r.failed), (4, 2, 2));
    let lines = sidecar_lines(&side);
    assert_eq!(
        (lines[0]["line"].as_u64(), lines[0]["raw"].as_str()),
        (Some(3), Some("3"))
    );
    assert_eq!(
        lines[1]["line"], 6,
        "the multi-line record moved the line count"
    );
    assert!(!dir.path().join("rows.csv.errors.jsonl").exists());
    let multi = db
        .collection("c")
        .find_one(&doc! {"b": 4})
        .unwrap()
        .unwrap();
    assert_eq!(multi.get("a").and_then(|v| v.as_str()), Some("multi\nline"));
}

#[test]
fn a_dry_run_counts_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("d.ndjson");
    std::fs::write(&p, "{\"a\":1}\nbad\n{\"a\":2}\n").unwrap();
    let r = db
        .collection("c")
        .import(
            &p,
            &ImportOptions {
                dry_run: true,
                skip_errors: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(r.dry_run);
    assert_eq!((r.read, r.imported, r.failed), (3, 2, 1));
    assert!(db.list_collections().unwrap().is_empty());
}

#[test]
fn an_import_inside_an_open_transaction_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let p = dir.path().join("t.ndjson");
    std::fs::write(&p, "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n").unwrap();
    db.begin().unwrap();
    let r = db
        .collection("c")
        .import(
            &p,
            &ImportOptions {
                batch_size: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.imported, 3);
    assert!(db.in_transaction());
    db.rollback().unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 0);
}
