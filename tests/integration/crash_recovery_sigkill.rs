//! Durability under `sync=full`: a child process inserts and updates, printing an
//! acknowledgement after each call returns; the parent SIGKILLs it at a random moment, reopens
//! the database, and checks that every acknowledged write is present exactly once. 24 rounds
//! on one database, so recovery also runs on logs that earlier crashes cut short.
//!
//! An encrypted variant (#20) runs fewer rounds on a `wasp` database created with a key (the
//! child reads the key's PEM from a file the parent names); every item carries a marker
//! string, which after each recovery must be in no byte of `NAME.db` or `NAME.wasp`.
//!
//! The items carry a vector under an HNSW index (#24): after each recovery `check` finds
//! the graph consistent with the documents, and the newest item is its own nearest.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson};
use nexus::{Database, Document, OpenOptions, StorageEngine, UpdateOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "NEXUS_CRASH_CHILD_DB";
/// The path of the private key file of an encrypted run (the child only).
const KEY_ENV: &str = "NEXUS_CRASH_CHILD_KEY_FILE";
const ROUNDS: usize = 24;
const ENCRYPTED_ROUNDS: usize = 8;
/// Every item of an encrypted run carries it; no file may show it.
const MARKER: &str = "Okapi9RecoveryMarker";

/// The harness's options, or with `key` an encrypted `wasp` database (encryption is a
/// feature of `wasp`; `memlog` refuses a key).
fn options(key: Option<nexus::crypto::PrivatePem>) -> OpenOptions {
    match key {
        None => common::open_options(),
        Some(k) => OpenOptions {
            storage: Some(StorageEngine::Wasp),
            encryption_key: Some(k),
            ..OpenOptions::default()
        },
    }
}

/// The writer. Runs only inside the child process (the env var names its database).
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let key = common::key_from_env(KEY_ENV);
    let encrypted = key.is_some();
    let db = Database::open(&path, options(key)).expect("child open");
    let items = db.collection("items");
    items
        .create_index_json(r#"{"vec": "hnsw"}"#, Some(r#"{"numDimensions": 4}"#))
        .expect("vector index");
    // The same vectors in field `vq` under a scalar-quantized index (its range widened as
    // vectors arrive).
    items
        .create_index_json(
            r#"{"vq": "hnsw"}"#,
            Some(r#"{"numDimensions": 4, "quantization": "scalar", "name": "vec_q"}"#),
        )
        .expect("quantized vector index");
    let counters = db.collection("counters");
    let start = items.count(&doc! {}).expect("count") as i64;
    for n in start.. {
        let mut d = Document::builder()
            .field("_id", format!("k{n:08}"))
            .field("n", n)
            .field("pad", "x".repeat((n % 7 * 100) as usize))
            .field("vec", item_vector(n))
            .field("vq", item_vector(n));
        if encrypted {
            d = d.field("m", format!("{MARKER} {n}"));
        }
        let d = d.build();
        items.insert(d).expect("insert");
        println!("ack insert {n}");
        counters
            .update(
                &doc! {"_id": "c"},
                &doc! {"$inc": {"v": 1}},
                UpdateOptions {
                    upsert: true,
                    ..Default::default()
                },
            )
            .expect("update");
        println!("ack inc {n}");
    }
}

/// Item `n`'s vector: distinct for every `n` the rounds reach.
fn item_vector(n: i64) -> Bson {
    Bson::Array(
        [n % 7, n % 11, n % 13, n / 1001]
            .iter()
            .map(|x| Bson::Double(*x as f64))
            .collect(),
    )
}

struct Acks {
    inserts: Vec<i64>,
    incs: u64,
}

fn run_and_kill(path: &Path, key_file: Option<&Path>, kill_after: Duration) -> Acks {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        common::test_name("crash_child_writer").as_str(),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, path);
    if let Some(k) = key_file {
        cmd.env(KEY_ENV, k);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut acks = Acks {
            inserts: Vec::new(),
            incs: 0,
        };
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("ack insert ") {
                acks.inserts.push(n.trim().parse().expect("number"));
            } else if line.starts_with("ack inc ") {
                acks.incs += 1;
            }
        }
        acks
    });
    std::thread::sleep(kill_after);
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    reader.join().expect("reader thread")
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    sigkill_rounds(false, ROUNDS);
}

/// #20: the same on an encrypted database, and the items' marker in no byte of the files.
#[test]
fn encrypted_every_acknowledged_write_survives_sigkill() {
    if !common::encrypted_tests_run("encrypted_every_acknowledged_write_survives_sigkill") {
        return;
    }
    sigkill_rounds(true, ENCRYPTED_ROUNDS);
}

fn sigkill_rounds(encrypted: bool, rounds: usize) {
    // The plain and the encrypted run take turns: the kills land at random moments, and two
    // runs side by side on a loaded machine would leave each writer too little time per round.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let key = encrypted.then(common::new_key);
    let key_file = key
        .as_ref()
        .map(|k| common::write_key_file(dir.path(), "key.pem", k));
    let mut expected_inserts: Vec<i64> = Vec::new();
    let mut min_counter: i64 = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let started = Instant::now();
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_millis(30 + seed % 250);
        let acks = run_and_kill(&path, key_file.as_deref(), wait);
        expected_inserts.extend(&acks.inserts);
        min_counter += acks.incs as i64;

        let db = Database::open(&path, options(key.clone())).expect("reopen after crash");
        let items = db.collection("items");
        let (stored, v) = common::check_acknowledged(&db, round, &expected_inserts, min_counter);
        // The vector index came through with the documents.
        db.check()
            .unwrap_or_else(|e| panic!("round {round}: check after recovery: {e}"));
        if let Some(last) = expected_inserts.iter().max() {
            let spec = doc! {"path": "vec", "queryVector": item_vector(*last), "limit": 1, "numCandidates": 20};
            let best = items.vector_search(&spec).unwrap().next().unwrap().unwrap();
            assert_eq!(
                best.get("_score").and_then(Bson::as_f64),
                Some(1.0),
                "round {round}: item {last} is not its own nearest: {best:?}"
            );
            let mut spec = spec.clone();
            spec.insert("path", "vq");
            spec.insert("index", "vec_q");
            let best = items.vector_search(&spec).unwrap().next().unwrap().unwrap();
            assert_eq!(
                best.get("_score").and_then(Bson::as_f64),
                Some(1.0),
                "round {round}: item {last} is not its own nearest by vec_q: {best:?}"
            );
        }
        // Carry forward what actually survived so later rounds compare against it.
        min_counter = v;
        expected_inserts = stored
            .iter()
            .filter_map(|d| {
                d.get("n")
                    .and_then(Bson::as_i64)
                    .or_else(|| d.get("n").and_then(Bson::as_i32).map(i64::from))
            })
            .collect();
        if encrypted {
            assert_eq!(db.stats().unwrap()["storage"]["encrypted"], true);
            for d in &stored {
                let n = d.get("n").and_then(Bson::as_i64).unwrap();
                assert_eq!(
                    d.get("m").and_then(Bson::as_str),
                    Some(format!("{MARKER} {n}").as_str()),
                    "round {round}: item {n}"
                );
            }
            common::assert_marker_absent(&path, MARKER, &format!("round {round}, reopened"));
        }
        db.close().unwrap();
        if encrypted {
            common::assert_marker_absent(&path, MARKER, &format!("round {round}, closed"));
        }
    }
    assert!(
        expected_inserts.len() > rounds,
        "the child wrote too little to prove anything ({} documents)",
        expected_inserts.len()
    );
    eprintln!(
        "{rounds} SIGKILL rounds (encrypted: {encrypted}), {} documents, {:?}",
        expected_inserts.len(),
        started.elapsed()
    );
}
