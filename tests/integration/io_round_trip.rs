//! Import -> export -> import round trips are identical for NDJSON (relaxed and canonical
//! Extended JSON), JSON arrays (compact and pretty, and concatenated documents), BSON and
//! typed CSV, on a generated data set with nested documents, arrays, unicode, dates, 64-bit
//! integers and decimals; and the lossless formats reproduce the generated documents exactly.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson, Document as BsonDocument};
use nexus::io::{ExportOptions, ExtJsonMode, Format, ImportOptions};
use nexus::{Database, Document, FindOptions};
use std::path::Path;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "ada",
    "Zoë",
    "日本語のテキスト",
    "emoji 🚀✨",
    "quote \"x\", comma",
    "new\nline",
    "tab\there",
    "semi;colon",
    "Ünïcödé",
    "true",
    "",
];

/// Documents with every kind of value the formats must carry. `small_int64` adds Int64
/// values inside the 32-bit range (only canonical Extended JSON and BSON keep their type).
fn generate(n: usize, small_int64: bool) -> Vec<BsonDocument> {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let big = match i % 4 {
                0 => i64::MAX - r.below(1000) as i64,
                1 => i64::MIN + r.below(1000) as i64,
                2 => (1i64 << 53) + 1 + r.below(1 << 20) as i64,
                _ => -(5_000_000_000 + r.below(1 << 30) as i64),
            };
            let mut d = doc! {
                "_id": format!("doc-{i:05}"),
                "name": WORDS[r.below(WORDS.len() as u64 - 1) as usize],
                "n32": (r.below(2_000_000) as i32) - 1_000_000,
                "big": big,
                "ratio": (r.below(1_000_000) as f64) / 1024.0 + 0.5,
                "price": Bson::Decimal128(format!("{}.{:02}", r.below(100_000), r.below(100)).parse().unwrap()),
                "when": bson::DateTime::from_millis(1_600_000_000_000 + (r.below(1 << 36) as i64)),
                "ok": r.below(2) == 1,
                "address": {
                    "city": WORDS[r.below(WORDS.len() as u64) as usize],
                    "geo": {"lat": (r.below(180_000) as f64) / 1000.0 - 90.0 + 0.0001, "zip": r.below(99_999) as i32},
                },
                "tags": (0..r.below(4)).map(|k| Bson::String(format!("t{k}-{}", WORDS[k as usize]))).collect::<Vec<_>>(),
                "mixed": [1, "two", {"three": 3.5}, [4], Bson::Null],
                "far": bson::DateTime::from_millis(if i % 3 == 0 { 300_000_000_000_000 } else { -86_400_000 * (i as i64) }),
            };
            if small_int64 {
                d.insert("small64", Bson::Int64(r.below(1000) as i64));
            }
            d
        })
        .collect()
}

fn all(db: &Database, coll: &str) -> Vec<BsonDocument> {
    db.collection(coll)
        .find(&doc! {}, FindOptions::default())
        .unwrap()
        .map(|d| d.unwrap().into_bson())
        .collect()
}

fn seed(db: &Database, coll: &str, docs: &[BsonDocument]) {
    db.collection(coll)
        .insert_many(docs.iter().cloned().map(Document::from).collect())
        .unwrap();
}

fn import(db: &Database, coll: &str, path: &Path, format: Format) -> nexus::io::ImportReport {
    let opts = ImportOptions {
        format,
        batch_size: 97,
        ..ImportOptions::default()
    };
    db.collection(coll).import(path, &opts).unwrap()
}

/// Exports `from` to `first`, imports it as A, exports A to `second`, imports that as B:
/// A and B must be equal, and so must the two files. Returns A.
fn round_trip(
    db: &Database,
    from: &str,
    dir: &Path,
    name: &str,
    opts: &ExportOptions,
) -> Vec<BsonDocument> {
    let first = dir.join(format!("{name}.1"));
    let second = dir.join(format!("{name}.2"));
    let a = format!("{name}_a");
    let b = format!("{name}_b");
    let n = db.collection(from).count(&doc! {}).unwrap();
    let rep = db.collection(from).export(&first, opts).unwrap();
    assert_eq!(rep.exported, n);
    let imp = import(db, &a, &first, Format::Auto);
    assert_eq!(
        (imp.read, imp.imported, imp.failed),
        (n, n, 0),
        "{name}: {imp:?}"
    );
    assert_eq!(
        imp.format,
        if opts.format == Format::Json && opts.array_mode == Some(false) {
            Format::Json
        } else {
            opts.format
        },
        "{name}: detected format"
    );
    db.collection(&a).export(&second, opts).unwrap();
    import(db, &b, &second, Format::Auto);
    let (docs_a, docs_b) = (all(db, &a), all(db, &b));
    assert_eq!(docs_a.len() as u64, n);
    assert_eq!(
        docs_a, docs_b,
        "{name}: import -> export -> import changed documents"
    );
    let (one, two) = (
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    );
    if one != two {
        let (one, two) = (String::from_utf8_lossy(&one), String::from_utf8_lossy(&two));
        let diff = one.lines().zip(two.lines()).find(|(a, b)| a != b);
        panic!("{name}: the two exports differ: {diff:?}");
    }
    docs_a
}

fn export(format: Format, mode: ExtJsonMode) -> ExportOptions {
    ExportOptions {
        format,
        extended_json: mode,
        ..ExportOptions::default()
    }
}

#[test]
fn lossless_formats_reproduce_the_generated_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path().join("rt.db"));
    let original = generate(600, true);
    seed(&db, "gen", &original);
    for (name, opts) in [
        (
            "ndjson_canonical",
            export(Format::Ndjson, ExtJsonMode::Canonical),
        ),
        (
            "json_canonical",
            export(Format::Json, ExtJsonMode::Canonical),
        ),
        (
            "json_pretty_canonical",
            ExportOptions {
                pretty: true,
                ..export(Format::Json, ExtJsonMode::Canonical)
            },
        ),
        (
            "json_stream_canonical",
            ExportOptions {
                array_mode: Some(false),
                pretty: true,
                ..export(Format::Json, ExtJsonMode::Canonical)
            },
        ),
        ("bson", export(Format::Bson, ExtJsonMode::Relaxed)),
    ] {
        let got = round_trip(&db, "gen", dir.path(), name, &opts);
        assert_eq!(
            got, original,
            "{name}: documents differ from the generated ones"
        );
    }
}

#[test]
fn relaxed_json_round_trips_and_keeps_big_int64_and_decimals() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let original = generate(400, false);
    seed(&db, "gen", &original);
    for (name, opts) in [
        (
            "ndjson_relaxed",
            export(Format::Ndjson, ExtJsonMode::Relaxed),
        ),
        ("json_relaxed", export(Format::Json, ExtJsonMode::Relaxed)),
    ] {
        let got = round_trip(&db, "gen", dir.path(), name, &opts);
        // Without Int64 values in the 32-bit range, relaxed output is lossless too.
        assert_eq!(got, original, "{name}");
    }
}

#[test]
fn typed_csv_round_trips_with_nested_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let original = generate(500, false);
    seed(&db, "gen", &original);
    let got = round_trip(
        &db,
        "gen",
        dir.path(),
        "csv",
        &export(Format::Csv, ExtJsonMode::Relaxed),
    );
    // Types come back through inference (strings that would read as something else are
    // written as JSON string literals), so the first import equals the source.
    assert_eq!(got, original);
    let header = std::fs::read_to_string(dir.path().join("csv.1")).unwrap();
    assert!(header.starts_with("_id,name,n32,big,ratio,price,when,ok,address.city,address.geo.lat,address.geo.zip,tags,mixed,far"));
}

#[test]
fn csv_without_inference_keeps_strings_and_fields_choose_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_in_memory().unwrap();
    let src = dir.path().join("in.tsv");
    std::fs::write(&src, "\u{feff}id\tn\twhen\n007\t1.50\t2024-01-02\n").unwrap();
    let opts = ImportOptions {
        csv: nexus::io::CsvOptions {
            type_infer: false,
            ..Default::default()
        },
        ..ImportOptions::default()
    };
    db.collection("s").import(&src, &opts).unwrap();
    let d = &all(&db, "s")[0];
    assert_eq!(d.get("id"), Some(&Bson::String("007".into())));
    assert_eq!(d.get("n"), Some(&Bson::String("1.50".into())));
    assert_eq!(d.get("when"), Some(&Bson::String("2024-01-02".into())));
    let out = dir.path().join("out.csv");
    let opts = ExportOptions {
        fields: Some(vec!["when".into(), "id".into()]),
        ..ExportOptions::default()
    };
    db.collection("s").export(&out, &opts).unwrap();
    // Strings that inference would read as a date or a number are written as JSON string
    // literals, so a typed import gets the strings back.
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "when,id\n\"\"\"2024-01-02\"\"\",\"\"\"007\"\"\"\n"
    );
    db.collection("back")
        .import(&out, &ImportOptions::default())
        .unwrap();
    let d = &all(&db, "back")[0];
    assert_eq!(d.get("id"), Some(&Bson::String("007".into())));
    assert_eq!(d.get("when"), Some(&Bson::String("2024-01-02".into())));
}

/// An import writes documents straight as BSON bytes, except when the TTL field or the
/// error sidecar needs them decoded (`bson::Document`). Both paths store the same documents:
/// the generated set through NDJSON (canonical and relaxed), a JSON array and BSON, plus
/// rows that move `_id` to the front, lack it, or repeat a key.
#[test]
fn direct_and_decoded_import_paths_store_the_same_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path().join("paths.db"));
    seed(&db, "gen", &generate(300, true));
    let mut files = Vec::new();
    for (name, opts) in [
        (
            "ndjson_canonical",
            export(Format::Ndjson, ExtJsonMode::Canonical),
        ),
        (
            "ndjson_relaxed",
            export(Format::Ndjson, ExtJsonMode::Relaxed),
        ),
        (
            "json_canonical",
            export(Format::Json, ExtJsonMode::Canonical),
        ),
        ("bson", export(Format::Bson, ExtJsonMode::Relaxed)),
    ] {
        let path = dir.path().join(name);
        db.collection("gen").export(&path, &opts).unwrap();
        files.push((name, path));
    }
    let odd = dir.path().join("odd.ndjson");
    std::fs::write(
        &odd,
        concat!(
            "{\"a\": 1, \"_id\": \"late\", \"z\": [1, {\"b\": null}]}\n",
            "{\"n\": {\"$numberLong\": \"5\"}, \"d\": {\"$date\": \"2024-01-02T03:04:05Z\"}}\n",
            "{\"k\": 1, \"k\": 2}\n",
            "{\"_id\": {\"x\": 1}, \"s\": \"caf\\u00e9 \\ud83d\\ude80\"}\n",
            "{}\n",
        ),
    )
    .unwrap();
    files.push(("odd", odd));
    for (name, path) in files {
        let direct = format!("{name}_direct");
        let decoded = format!("{name}_decoded");
        db.collection(&direct)
            .import(&path, &ImportOptions::default())
            .unwrap();
        let with_sidecar = ImportOptions {
            skip_errors: true,
            error_sidecar: Some(dir.path().join(format!("{name}.errors"))),
            ..ImportOptions::default()
        };
        let rep = db
            .collection(&decoded)
            .import(&path, &with_sidecar)
            .unwrap();
        assert_eq!(rep.failed, 0, "{name}");
        // Generated ids differ between the two imports: compare without them.
        let strip = |docs: Vec<BsonDocument>| -> Vec<BsonDocument> {
            docs.into_iter()
                .map(|mut d| {
                    if matches!(d.get("_id"), Some(Bson::String(s)) if s.len() == 36 && s.as_bytes()[14] == b'4') {
                        d.insert("_id", "generated");
                    }
                    d
                })
                .collect()
        };
        // Field order counts (bson::Document's `==` ignores it): compare the Debug forms.
        let shown = |coll: &str| -> Vec<String> {
            let mut v: Vec<String> = strip(all(&db, coll))
                .iter()
                .map(|d| format!("{d:?}"))
                .collect();
            v.sort();
            v
        };
        let (a, b) = (shown(&direct), shown(&decoded));
        assert!(!a.is_empty(), "{name}");
        assert_eq!(
            a, b,
            "{name}: the two import paths stored different documents"
        );
    }
}
