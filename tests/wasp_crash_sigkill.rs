//! Crash test (b) for WASP: durability under `sync=full` with frequent checkpoints (an 8 KiB
//! log trigger, so kills land inside checkpoints too, and every round crosses several laps
//! of the recycled log: each checkpoint restarts it in place, new records overwriting the
//! last lap's; the writer reports the checkpoints it made and the test requires them). A child process inserts and updates,
//! printing an acknowledgement after each call returns; the parent SIGKILLs it at a random
//! moment, reopens the database, checks that every acknowledged write is present exactly
//! once, and every 10 rounds runs the integrity check. 50 rounds in the suite;
//! `NEXUS_CRASH_ROUNDS=1000 cargo test --release --test wasp_crash_sigkill` is the long mode.
//!
//! A second process reads throughout each round (several processes on one database): a
//! read_only reader is started before the writer and checks, in every snapshot, what holds
//! whatever the writer was doing (items 0, 1, 2, ... without a gap, each well formed; the
//! counter never ahead of the items; nothing going back). It is stopped after the writer is
//! killed, before the parent reopens: with the stop file on even rounds, by SIGKILL on odd
//! ones (a dead reader must block nobody). A reader whose check failed fails the test.
//!
//! The same rounds run on an encrypted database (#20; fewer of them): the writer and the
//! reader open it with the key, whose PEM they read from a file the parent names; each item
//! also carries a marker string, which after every recovery must be in no byte of `NAME.db`
//! or `NAME.wasp`.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

mod common;

use bson::{doc, Bson};
use common::procs::{self, int, reader_fail, request_stop, Lifetime, Proc, PATIENCE};
use nexus::{Database, Document, OpenOptions, UpdateOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "NEXUS_WASP_CRASH_CHILD_DB";
const READER_ENV: &str = "NEXUS_WASP_CRASH_READER_DB";
const STOP_ENV: &str = "NEXUS_WASP_CRASH_READER_STOP";
/// The path of the private key file of an encrypted run (children only).
const KEY_ENV: &str = "NEXUS_WASP_CRASH_KEY_FILE";
/// Rounds of the encrypted run in the suite (`NEXUS_CRASH_ROUNDS` sets both).
const ENCRYPTED_ROUNDS: usize = 12;
/// Every item of an encrypted run carries it; no file may show it.
const MARKER: &str = "Quagga4CrashMarker";

fn rounds() -> usize {
    std::env::var("NEXUS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

fn wasp() -> OpenOptions {
    OpenOptions {
        storage: Some(nexus::StorageEngine::Wasp),
        checkpoint_log_bytes: Some(8 * 1024),
        ..OpenOptions::default()
    }
}

/// A child's options: [`wasp`], with the key of the file `KEY_ENV` names when it is set.
fn child_options() -> OpenOptions {
    OpenOptions {
        encryption_key: common::key_from_env(KEY_ENV),
        ..wasp()
    }
}

/// The writer. Runs only inside the child process (the env var names its database).
#[test]
fn wasp_crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let encrypted = std::env::var_os(KEY_ENV).is_some();
    let db = match Database::open(&path, child_options()) {
        Ok(db) => db,
        Err(e) => {
            println!("writer open failed: {}", e.to_string().replace('\n', " "));
            panic!("writer open failed: {e}");
        }
    };
    println!("writer opened");
    let items = db.collection("items");
    let counters = db.collection("counters");
    // A unique secondary index on n (created once; then a no-op): every round's check
    // compares its entries with the documents.
    items
        .create_index(&doc! {"n": 1}, &doc! {"unique": true})
        .expect("create index");
    let start = items.count(&doc! {}).expect("count") as i64;
    let mut checkpoints = 0;
    for n in start.. {
        let mut d = Document::builder()
            .field("_id", format!("k{n:08}"))
            .field("n", n)
            .field("pad", "x".repeat((n % 7 * 100) as usize));
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
        if n % 4 == 0 {
            let st = db.stats().expect("stats");
            let made = st["storage"]["checkpoints"].as_u64().expect("checkpoints");
            if made > checkpoints {
                checkpoints = made;
                println!("checkpoints {made}");
            }
        }
    }
}

/// The reader. Runs only inside a child process (the env var names its database): opens
/// read_only and reads until the stop file appears, checking what must hold in every
/// snapshot whatever the writer was doing or where it was killed.
#[test]
fn wasp_crash_child_reader() {
    let Ok(path) = std::env::var(READER_ENV) else {
        return;
    };
    let stop = PathBuf::from(std::env::var_os(STOP_ENV).expect("the reader's stop file"));
    let life = Lifetime::start();
    let db = match Database::open(
        &path,
        OpenOptions {
            read_only: true,
            ..child_options()
        },
    ) {
        Ok(db) => db,
        Err(e) => {
            println!("reader open failed: {}", e.to_string().replace('\n', " "));
            panic!("reader open failed: {e}");
        }
    };
    println!("reader opened");
    let items = db.collection("items");
    let counters = db.collection("counters");
    let (mut last_items, mut last_v) = (0u64, 0i64);
    let mut reads = 0u64;
    while !procs::stop_requested(&stop) {
        life.check("reader");
        let outside = items
            .count(&doc! {})
            .unwrap_or_else(|e| reader_fail(format!("count outside a transaction: {e}")));
        if outside < last_items {
            reader_fail(format!(
                "items went back from {last_items} to {outside} (count outside a transaction)"
            ));
        }
        db.begin_read()
            .unwrap_or_else(|e| reader_fail(format!("begin_read: {e}")));
        let stored: Vec<Document> = items
            .find(&doc! {}, Default::default())
            .and_then(|c| c.collect())
            .unwrap_or_else(|e| reader_fail(format!("find in a read transaction: {e}")));
        let counted = items
            .count(&doc! {})
            .unwrap_or_else(|e| reader_fail(format!("count in a read transaction: {e}")));
        let counter = counters
            .find_one(&doc! {"_id": "c"})
            .unwrap_or_else(|e| reader_fail(format!("read the counter: {e}")));
        db.commit()
            .unwrap_or_else(|e| reader_fail(format!("end a read transaction: {e}")));
        let len = stored.len() as u64;
        if counted != len {
            reader_fail(format!(
                "count {counted} but find {len} in one read transaction"
            ));
        }
        if len < outside {
            reader_fail(format!(
                "a read transaction saw {len} items after a count saw {outside}"
            ));
        }
        // Each insert is its own commit and takes the next n: every snapshot holds the
        // items 0, 1, 2, ... (in _id order), each well formed.
        for (i, d) in stored.iter().enumerate() {
            let n = int(d.get("n"))
                .unwrap_or_else(|| reader_fail(format!("item without a number n: {d:?}")));
            if n != i as i64 {
                reader_fail(format!("item #{i} has n = {n}: a gap or a stray item"));
            }
            if d.id().and_then(Bson::as_str) != Some(format!("k{n:08}").as_str()) {
                reader_fail(format!("item {n} has the _id {:?}", d.id()));
            }
            let pad = d.get("pad").and_then(Bson::as_str).map(str::len);
            if pad != Some((n % 7 * 100) as usize) {
                reader_fail(format!("item {n} has a pad of length {pad:?}"));
            }
        }
        // Each increment follows the insert of its item: the counter is never ahead.
        let v = match counter {
            None => 0,
            Some(d) => int(d.get("v"))
                .unwrap_or_else(|| reader_fail(format!("counter without a number v: {d:?}"))),
        };
        if v > len as i64 {
            reader_fail(format!("the counter is {v} with only {len} items"));
        }
        if v < last_v {
            reader_fail(format!("the counter went back from {last_v} to {v}"));
        }
        (last_items, last_v) = (len, v);
        reads += 1;
        println!("read {len} {v}");
        std::thread::sleep(Duration::from_millis(1));
    }
    db.close()
        .unwrap_or_else(|e| reader_fail(format!("close: {e}")));
    println!("reader done {reads}");
}

/// Starts the round's reader and waits until it has opened the database and read once.
fn start_reader(path: &Path, stop: &Path, key_file: Option<&Path>, round: usize) -> Proc {
    let mut envs = vec![(READER_ENV, path.as_os_str()), (STOP_ENV, stop.as_os_str())];
    if let Some(k) = key_file {
        envs.push((KEY_ENV, k.as_os_str()));
    }
    Proc::spawn_reader(
        &format!("round {round}: reader"),
        "wasp_crash_child_reader",
        &envs,
    )
}

/// Stops the round's reader (after the writer was killed, before the parent reopens): with
/// the stop file on even rounds, by SIGKILL on odd ones. Panics when it failed a check.
fn stop_reader(mut reader: Proc, stop: &Path, round: usize) {
    reader.assert_running("after the writer was killed");
    if round.is_multiple_of(2) {
        request_stop(stop);
        reader.expect_success(PATIENCE);
    } else {
        reader.kill();
    }
    reader.assert_reader_held(&format!("round {round}"));
    let reads = reader.with_lines(|l| l.iter().filter(|l| l.starts_with("read ")).count());
    assert!(
        reads > 0,
        "round {round}: the reader never read: {}",
        reader.describe()
    );
}

struct Acks {
    inserts: Vec<i64>,
    incs: u64,
    /// The writer printed `writer opened` before the kill.
    opened: bool,
    /// The last count of checkpoints (log laps) the writer printed.
    checkpoints: u64,
    /// The writer's `writer open failed: ...`.
    open_failed: Option<String>,
}

fn run_and_kill(path: &Path, key_file: Option<&Path>, kill_after: Duration) -> Acks {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "wasp_crash_child_writer",
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
            opened: false,
            checkpoints: 0,
            open_failed: None,
        };
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The first line comes after libtest's `test NAME ... `.
            let line = procs::protocol(&line);
            if line == "writer opened" {
                acks.opened = true;
            } else if let Some(e) = line.strip_prefix("writer open failed: ") {
                acks.open_failed = Some(e.to_owned());
            } else if let Some(n) = line.strip_prefix("ack insert ") {
                acks.inserts.push(n.trim().parse().expect("number"));
            } else if line.starts_with("ack inc ") {
                acks.incs += 1;
            } else if let Some(n) = line.strip_prefix("checkpoints ") {
                acks.checkpoints = n.trim().parse().expect("number");
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
fn wasp_every_acknowledged_write_survives_sigkill() {
    sigkill_rounds(false, rounds());
}

/// #20: the same on an encrypted database, and the items' marker in no byte of the files.
#[test]
fn wasp_encrypted_every_acknowledged_write_survives_sigkill() {
    if !common::encrypted_tests_run("wasp_encrypted_every_acknowledged_write_survives_sigkill") {
        return;
    }
    let rounds = std::env::var("NEXUS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ENCRYPTED_ROUNDS);
    sigkill_rounds(true, rounds);
}

/// `rounds` rounds of: a reader and a writer process, the writer SIGKILLed, the database
/// reopened and checked. `encrypted`: the database has a key, which the children read from
/// a file.
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
    let key_file = key_file.as_deref();
    let opts = || OpenOptions {
        encryption_key: key.clone(),
        ..wasp()
    };
    // The reader opens read_only before the writer's first round: the file must exist.
    Database::open(&path, opts())
        .expect("create the database")
        .close()
        .unwrap();
    let mut writer_opened = 0;
    let mut laps = 0u64;
    let mut expected_inserts: Vec<i64> = Vec::new();
    let mut min_counter: i64 = 0;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let started = Instant::now();
    for round in 0..rounds {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // An encrypted writer's open takes longer in a debug build (its key slot, every log
        // record authenticated): its rounds are longer by as much, the kill as random.
        let wait = Duration::from_millis(30 + seed % 250 + if encrypted { 250 } else { 0 });
        let stop = dir.path().join(format!("stop-reader-{round}"));
        let reader = start_reader(&path, &stop, key_file, round);
        let acks = run_and_kill(&path, key_file, wait);
        if let Some(e) = &acks.open_failed {
            panic!("round {round}: the writer could not open beside the reader process: {e}");
        }
        writer_opened += usize::from(acks.opened);
        laps += acks.checkpoints;
        stop_reader(reader, &stop, round);
        expected_inserts.extend(&acks.inserts);
        min_counter += acks.incs as i64;

        let db = Database::open(&path, opts()).expect("reopen after crash");
        if encrypted {
            let st = db.stats().unwrap();
            assert_eq!(st["storage"]["encrypted"], true, "round {round}: {st}");
        }
        if round % 10 == 9 {
            // The writer creates the index this check expects.
            assert!(
                writer_opened > 0,
                "the writer never opened in {} rounds: the reader process had the database \
                 open read_only (a writer must open beside readers in other processes)",
                round + 1
            );
            let report = db.check_report().unwrap();
            assert_eq!(report["ok"], true, "round {round}: {report}");
            assert_eq!(
                report["indexes"][0]["name"], "n_1",
                "round {round}: {report}"
            );
        }
        let items = db.collection("items");
        let stored: Vec<Document> = items
            .find(&doc! {}, Default::default())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for d in &stored {
            let id = d.id().and_then(Bson::as_str).unwrap().to_owned();
            assert!(seen.insert(id.clone()), "round {round}: {id} stored twice");
        }
        for n in &expected_inserts {
            let id = format!("k{n:08}");
            assert!(
                seen.contains(&id),
                "round {round}: acknowledged insert {id} lost"
            );
        }
        // Unacknowledged writes may survive (they reached the log before the kill), but
        // never more than one past the acknowledged ones per round.
        let counter = db
            .collection("counters")
            .find_one(&doc! {"_id": "c"})
            .unwrap()
            .and_then(|d| d.get("v").cloned());
        let v = match counter {
            Some(Bson::Int32(v)) => i64::from(v),
            Some(Bson::Int64(v)) => v,
            None => 0,
            other => panic!("counter has unexpected value {other:?}"),
        };
        assert!(
            v >= min_counter,
            "round {round}: counter {v} < acknowledged {min_counter}"
        );
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
            // The writer wrote the marker into every item; the recovered ones hold it.
            for d in &stored {
                let n = int(d.get("n")).unwrap();
                assert_eq!(
                    d.get("m").and_then(Bson::as_str),
                    Some(format!("{MARKER} {n}").as_str()),
                    "round {round}: item {n}"
                );
            }
            // Recovery wrote what it replayed; the log holds what the kill cut short.
            common::assert_marker_absent(&path, MARKER, &format!("round {round}, reopened"));
        }
        db.close().unwrap();
        if encrypted {
            common::assert_marker_absent(&path, MARKER, &format!("round {round}, closed"));
        }
    }
    assert!(
        writer_opened > 0,
        "the writer never opened in {rounds} rounds: the reader process had the database \
         open read_only (a writer must open beside readers in other processes)"
    );
    assert!(
        expected_inserts.len() > rounds,
        "the child wrote too little to prove anything ({} documents)",
        expected_inserts.len()
    );
    assert!(
        laps >= rounds as u64,
        "the writers checkpointed {laps} times in {rounds} rounds: too few log laps to test \
         the recycled log"
    );
    eprintln!(
        "{rounds} SIGKILL rounds (encrypted: {encrypted}), {} documents, {laps} log laps, the writer opened in {writer_opened}, {:?}",
        expected_inserts.len(),
        started.elapsed()
    );
}
