//! Crash test (b) for WASP: durability under `sync=full` with frequent checkpoints (an 8 KiB
//! log trigger, so kills land inside checkpoints too, and every round crosses several laps
//! of the recycled log: each checkpoint restarts it in place, new records overwriting the
//! last lap's; the writer reports the checkpoints it made and the test requires them). A child process inserts and updates,
//! printing an acknowledgement after each call returns; the parent SIGKILLs it at a random
//! moment, reopens the database, checks that every acknowledged write is present exactly
//! once, and runs the integrity check. 50 rounds in the suite;
//! `NEXUS_CRASH_ROUNDS=1000 cargo test --release --test integration wasp_crash_sigkill::` is the long mode.
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
//!
//! The workload is mixed (#25): besides the items (single inserts) and the counter (single
//! updates), each step is one transaction on `users` (a unique index on `email`, another on
//! `group`) that inserts a user, updates an older one (both its index keys change) and every
//! third step deletes one; the step number is stored in the same transaction, so the whole of
//! `users` is a function of it ([`users_model`]), checked exactly by the reader in every
//! snapshot and by the parent after every recovery. Each step also inserts a session with a
//! TTL (most of 40-100 ms, every 5th an hour), which the writer's sweeper (every 10 ms)
//! deletes once expired; every 8th step tries a duplicate email (must be refused) and every
//! 25th makes an explicit checkpoint. Every round ends with the integrity check.
//! `make soak` (scripts/soak.sh) runs 1,000 rounds (`SOAK_ROUNDS`) and writes
//! benchmarks/reliability-soak.md from the summary this test writes to `NEXUS_SOAK_SUMMARY`.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson};
use common::procs::{self, int, reader_fail, request_stop, Lifetime, Proc, PATIENCE};
use nexus::{Database, Document, Error, OpenOptions, SweeperConfig, UpdateOptions};
use std::collections::{BTreeMap, BTreeSet};
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

/// The parent's options: its sweeper paused (it purges explicitly, after its checks).
fn wasp() -> OpenOptions {
    OpenOptions {
        storage: Some(nexus::StorageEngine::Wasp),
        checkpoint_log_bytes: Some(8 * 1024),
        sweeper: Some(SweeperConfig {
            interval_ms: 0,
            ..SweeperConfig::default()
        }),
        ..OpenOptions::default()
    }
}

/// A child's options: [`wasp`] with a sweeper every 10 ms (the writer's deletes the expired
/// sessions while it runs), and the key of the file `KEY_ENV` names when it is set.
fn child_options() -> OpenOptions {
    OpenOptions {
        encryption_key: common::key_from_env(KEY_ENV),
        sweeper: Some(SweeperConfig {
            interval_ms: 10,
            ..SweeperConfig::default()
        }),
        ..wasp()
    }
}

fn user_id(u: i64) -> String {
    format!("u{u:08}")
}

fn session_id(s: i64) -> String {
    format!("s{s:08}")
}

/// Every 5th session lives an hour (it must survive every round); the others 40-100 ms.
fn long_session(s: i64) -> bool {
    s % 5 == 0
}

/// User `u` is updated by step `u + 3` and, when `u + 5` is a multiple of 3, deleted by it.
fn user_deleted_by(u: i64, s: i64) -> bool {
    u + 5 <= s && (u + 5) % 3 == 0
}

/// The users after the steps 1..=`s`: (email, group, score) by `_id`.
fn users_model(s: i64) -> BTreeMap<String, (String, i64, i64)> {
    (1..=s)
        .filter(|&u| !user_deleted_by(u, s))
        .map(|u| {
            let v = if u + 3 <= s {
                (format!("f{u}@soak"), u % 10 + 10, u + 3)
            } else {
                (format!("e{u}@soak"), u % 10, 0)
            };
            (user_id(u), v)
        })
        .collect()
}

/// What is wrong with `docs` as the users after the steps 1..=`s`, if anything.
fn users_problem(s: i64, docs: &[Document]) -> Option<String> {
    let want = users_model(s);
    let mut seen = BTreeSet::new();
    for d in docs {
        let Some(id) = d.id().and_then(Bson::as_str) else {
            return Some(format!("a user without a string _id: {d:?}"));
        };
        let got = (
            d.get("email").and_then(Bson::as_str).map(str::to_owned),
            int(d.get("group")),
            int(d.get("score")),
        );
        match want.get(id) {
            None => return Some(format!("after step {s}: unexpected user {id}: {d:?}")),
            Some((e, g, sc)) if got != (Some(e.clone()), Some(*g), Some(*sc)) => {
                return Some(format!(
                    "after step {s}: user {id} is {got:?}, not ({e}, {g}, {sc})"
                ))
            }
            Some(_) => {}
        }
        if !seen.insert(id.to_owned()) {
            return Some(format!("user {id} twice"));
        }
    }
    if seen.len() != want.len() {
        let missing: Vec<_> = want.keys().filter(|k| !seen.contains(*k)).take(5).collect();
        return Some(format!("after step {s}: users missing: {missing:?}"));
    }
    None
}

/// The step number stored with each step (0 before the first).
fn stored_step(db: &Database) -> nexus::Result<i64> {
    Ok(db
        .collection("meta")
        .find_one(&doc! {"_id": "step"})?
        .and_then(|d| int(d.get("s")))
        .unwrap_or(0))
}

/// Step `s` of the mixed workload, one transaction: a new user, an older one updated (its
/// email and group change: entries of both indexes move), every third step one deleted, and
/// the step number.
fn mixed_step(db: &Database, s: i64) -> nexus::Result<()> {
    db.transaction(|db| {
        let users = db.collection("users");
        users.insert(
            Document::builder()
                .field("_id", user_id(s))
                .field("email", format!("e{s}@soak"))
                .field("group", s % 10)
                .field("score", 0i64)
                .field("pad", "u".repeat((s % 5 * 60) as usize))
                .build(),
        )?;
        if s > 3 {
            let u = s - 3;
            let r = users.update(
                &doc! {"_id": user_id(u)},
                &doc! {"$set": {"email": format!("f{u}@soak"), "group": u % 10 + 10, "score": s}},
                UpdateOptions::default(),
            )?;
            if r.matched != 1 {
                return Err(Error::Internal(format!("step {s}: user {u} not found")));
            }
        }
        if s % 3 == 0 && s > 5 {
            let n = users.delete(&doc! {"_id": user_id(s - 5)}, false)?;
            if n != 1 {
                return Err(Error::Internal(format!("step {s}: deleted {n} users")));
            }
        }
        db.collection("meta").update(
            &doc! {"_id": "step"},
            &doc! {"$set": {"s": s}},
            UpdateOptions {
                upsert: true,
                ..Default::default()
            },
        )?;
        Ok(())
    })
}

/// A failure inside the writer: said on stdout (the parent, which kills the writer at a
/// random moment, fails the round on it), then a panic.
fn writer_fail(msg: String) -> ! {
    println!("writer failed: {}", msg.replace('\n', " "));
    panic!("{msg}");
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
    let users = db.collection("users");
    let sessions = db.collection("sessions");
    // Secondary indexes, created once (then no-ops): a unique one on items.n and on
    // users.email, a plain one on users.group; every round's check compares their entries
    // with the documents.
    for (c, key, unique) in [
        (&items, "n", true),
        (&users, "email", true),
        (&users, "group", false),
    ] {
        c.create_index(&doc! {key: 1}, &doc! {"unique": unique})
            .unwrap_or_else(|e| writer_fail(format!("create the index {key}: {e}")));
    }
    let start = items
        .count(&doc! {})
        .unwrap_or_else(|e| writer_fail(format!("count: {e}"))) as i64;
    let first_step = stored_step(&db).unwrap_or_else(|e| writer_fail(format!("step: {e}"))) + 1;
    let (mut checkpoints, mut swept) = (0, 0);
    for n in start.. {
        let mut d = Document::builder()
            .field("_id", format!("k{n:08}"))
            .field("n", n)
            .field("pad", "x".repeat((n % 7 * 100) as usize));
        if encrypted {
            d = d.field("m", format!("{MARKER} {n}"));
        }
        let d = d.build();
        items
            .insert(d)
            .unwrap_or_else(|e| writer_fail(format!("insert {n}: {e}")));
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
            .unwrap_or_else(|e| writer_fail(format!("update: {e}")));
        println!("ack inc {n}");
        let s = first_step + (n - start);
        mixed_step(&db, s).unwrap_or_else(|e| writer_fail(format!("step {s}: {e}")));
        println!("ack step {s}");
        let ttl = if long_session(s) {
            3_600_000
        } else {
            40 + (s % 7) as u64 * 10
        };
        sessions
            .insert_ttl(doc! {"_id": session_id(s), "s": s}.into(), ttl)
            .unwrap_or_else(|e| writer_fail(format!("session {s}: {e}")));
        println!("ack session {s}");
        if s % 8 == 0 {
            // The unique index refuses the email of a live user (the newest one).
            let dup = doc! {"_id": format!("dup{s}"), "email": format!("e{s}@soak")};
            match users.insert(dup.into()) {
                Err(Error::DuplicateKey(_)) => {}
                other => writer_fail(format!("a duplicate email was not refused: {other:?}")),
            }
        }
        if s % 25 == 0 {
            db.checkpoint()
                .unwrap_or_else(|e| writer_fail(format!("checkpoint: {e}")));
        }
        if n % 4 == 0 {
            let st = db
                .stats()
                .unwrap_or_else(|e| writer_fail(format!("stats: {e}")));
            let made = st["storage"]["checkpoints"].as_u64().expect("checkpoints");
            if made > checkpoints {
                checkpoints = made;
                println!("checkpoints {made}");
            }
            let gone = st["expiry"]["sweeper"]["expired_deleted"]
                .as_u64()
                .expect("expired_deleted");
            if gone > swept {
                swept = gone;
                println!("swept {gone}");
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
    let users = db.collection("users");
    let sessions = db.collection("sessions");
    let (mut last_items, mut last_v, mut last_step) = (0u64, 0i64, 0i64);
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
        let step = stored_step(&db).unwrap_or_else(|e| reader_fail(format!("read the step: {e}")));
        let people: Vec<Document> = users
            .find(&doc! {}, Default::default())
            .and_then(|c| c.collect())
            .unwrap_or_else(|e| reader_fail(format!("find the users: {e}")));
        // The newest user through the unique index (its email changes 3 steps later).
        let by_email = users
            .count(&doc! {"email": format!("e{step}@soak")})
            .unwrap_or_else(|e| reader_fail(format!("count by email: {e}")));
        let live_sessions: Vec<Document> = sessions
            .find(&doc! {}, Default::default())
            .and_then(|c| c.collect())
            .unwrap_or_else(|e| reader_fail(format!("find the sessions: {e}")));
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
        if step < last_step {
            reader_fail(format!("the step went back from {last_step} to {step}"));
        }
        if let Some(p) = users_problem(step, &people) {
            reader_fail(format!("in one read transaction: {p}"));
        }
        if step > 0 && by_email != 1 {
            reader_fail(format!(
                "the email index finds user {step} {by_email} times"
            ));
        }
        // Session s is inserted after the commit of step s.
        if let Some(d) = live_sessions
            .iter()
            .find(|d| int(d.get("s")).is_none_or(|x| x > step))
        {
            reader_fail(format!("session {d:?} at step {step}"));
        }
        (last_items, last_v, last_step) = (len, v, step);
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

#[derive(Default)]
struct Acks {
    inserts: Vec<i64>,
    incs: u64,
    /// The mixed steps acknowledged (transactions on `users` and `meta`).
    steps: Vec<i64>,
    /// The sessions acknowledged (inserts with a TTL).
    sessions: Vec<i64>,
    /// The last count of expired documents the writer's sweeper deleted.
    swept: u64,
    /// The writer's `writer failed: ...`.
    failed: Option<String>,
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
        common::test_name("wasp_crash_child_writer").as_str(),
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
        let mut acks = Acks::default();
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
            } else if let Some(n) = line.strip_prefix("ack step ") {
                acks.steps.push(n.trim().parse().expect("number"));
            } else if let Some(n) = line.strip_prefix("ack session ") {
                acks.sessions.push(n.trim().parse().expect("number"));
            } else if let Some(n) = line.strip_prefix("swept ") {
                acks.swept = n.trim().parse().expect("number");
            } else if let Some(e) = line.strip_prefix("writer failed: ") {
                acks.failed = Some(e.to_owned());
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
    // The stored step after the last recovery, the long sessions acknowledged so far.
    let mut step: i64 = 0;
    let mut long_sessions: Vec<i64> = Vec::new();
    // The short sessions acknowledged in the last round.
    let mut short_last = 0u64;
    // For the summary: acknowledgements received, expired documents the writers' sweepers
    // deleted, integrity checks run, and acknowledged commits verified (summed over rounds:
    // every round checks all the earlier ones again).
    let (mut steps_acked, mut sessions_acked, mut swept) = (0u64, 0u64, 0u64);
    let (mut inserts_acked, mut incs_acked) = (0u64, 0u64);
    let (mut checks, mut commits_verified) = (0u64, 0u64);
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
        inserts_acked += acks.inserts.len() as u64;
        incs_acked += acks.incs;

        let db = Database::open(&path, opts()).expect("reopen after crash");
        if encrypted {
            let st = db.stats().unwrap();
            assert_eq!(st["storage"]["encrypted"], true, "round {round}: {st}");
        }
        if round % 10 == 9 {
            assert!(
                writer_opened > 0,
                "the writer never opened in {} rounds: the reader process had the database \
                 open read_only (a writer must open beside readers in other processes)",
                round + 1
            );
        }
        if let Some(e) = &acks.failed {
            panic!("round {round}: the writer failed: {e}");
        }
        let (stored, v) = common::check_acknowledged(&db, round, &expected_inserts, min_counter);
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
        // The mixed steps: the stored step is the last acknowledged one, or one past it
        // (committed when the kill came before the acknowledgement); `users` is exactly
        // what the steps up to it make.
        let acked_step = acks.steps.iter().copied().max().unwrap_or(0).max(step);
        let now_step = stored_step(&db).unwrap();
        assert!(
            now_step == acked_step || now_step == acked_step + 1,
            "round {round}: the stored step is {now_step}, the last acknowledged {acked_step}"
        );
        step = now_step;
        steps_acked += acks.steps.len() as u64;
        let users = db.collection("users");
        let people: Vec<Document> = users
            .find(&doc! {}, Default::default())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if let Some(p) = users_problem(step, &people) {
            panic!("round {round}: {p}");
        }
        // Through the indexes: every user by its email (unique), every group's size.
        let model = users_model(step);
        let mut groups: BTreeMap<i64, u64> = BTreeMap::new();
        for (id, (email, group, _)) in &model {
            assert_eq!(
                users.count(&doc! {"email": email}).unwrap(),
                1,
                "round {round}: user {id} by its email"
            );
            *groups.entry(*group).or_default() += 1;
        }
        for g in 0..20 {
            let want = groups.get(&g).copied().unwrap_or(0);
            let got = users.count(&doc! {"group": g}).unwrap();
            assert_eq!(got, want, "round {round}: group {g} through its index");
        }
        // Sessions: each acknowledged long one is there; none past the stored step.
        let sessions = db.collection("sessions");
        long_sessions.extend(acks.sessions.iter().copied().filter(|&s| long_session(s)));
        sessions_acked += acks.sessions.len() as u64;
        for s in &long_sessions {
            let id = nexus::DocumentId::new(Bson::String(session_id(*s))).unwrap();
            let meta = sessions.get_meta(&id).unwrap();
            assert!(
                meta.is_some_and(|m| m.expires_at.is_some()),
                "round {round}: acknowledged session {s} (an hour's TTL) lost"
            );
        }
        let visible: Vec<Document> = sessions
            .find(&doc! {}, Default::default())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for d in &visible {
            let s = int(d.get("s")).unwrap();
            assert!(s <= step, "round {round}: session {s} after step {step}");
        }
        // The expired sessions go (the writer's sweeper took most); then the registry
        // holds the long ones (those acknowledged and any committed just before a kill) and
        // at most the short ones of this round and the last, which may still live (on a fast
        // machine a round can take less than their TTL), and one unacknowledged short one
        // per round that was committed.
        db.purge_expired().unwrap();
        swept += acks.swept;
        let long_there = sessions
            .find(&doc! {}, Default::default())
            .unwrap()
            .filter(|d| {
                d.as_ref()
                    .is_ok_and(|d| int(d.get("s")).is_some_and(long_session))
            })
            .count() as u64;
        let registered = db.stats().unwrap()["expiry"]["registered"]
            .as_u64()
            .unwrap();
        let short_now = acks.sessions.iter().filter(|&&s| !long_session(s)).count() as u64;
        assert!(
            registered >= long_there && registered <= long_there + short_now + short_last + 2,
            "round {round}: {registered} documents registered to expire, {long_there} long \
             sessions, {short_now} short ones this round, {short_last} the last"
        );
        short_last = short_now;
        let long_now = long_sessions.len() as u64;
        let report = db.check_report().unwrap();
        assert_eq!(report["ok"], true, "round {round}: {report}");
        if step > 0 {
            // The writer creates these indexes before its first step.
            let names: BTreeSet<&str> = report["indexes"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["name"].as_str())
                .collect();
            for want in ["n_1", "email_1", "group_1"] {
                assert!(
                    names.contains(want),
                    "round {round}: no index {want}: {report}"
                );
            }
        }
        checks += 1;
        if rounds > 100 && (round + 1) % 100 == 0 {
            // Progress of a long run (`make soak`).
            eprintln!(
                "round {} of {rounds}: {step} steps, {} items, {:?}",
                round + 1,
                expected_inserts.len(),
                started.elapsed()
            );
        }
        // Every acknowledged commit so far but the short-lived TTL inserts (gone by design).
        commits_verified += inserts_acked + incs_acked + steps_acked + long_now;
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
    assert!(
        step > rounds as i64 / 2,
        "only {step} mixed steps in {rounds} rounds"
    );
    assert!(
        swept > 0,
        "the writers' sweepers deleted no expired session in {rounds} rounds"
    );
    let elapsed = started.elapsed();
    eprintln!(
        "{rounds} SIGKILL rounds (encrypted: {encrypted}), {} documents, {step} mixed steps, \
         {swept} expired sessions swept, {laps} log laps, the writer opened in \
         {writer_opened}, {elapsed:?}",
        expected_inserts.len(),
    );
    if let (false, Some(out)) = (encrypted, std::env::var_os("NEXUS_SOAK_SUMMARY")) {
        // Key-value lines for scripts/soak.sh, which writes benchmarks/reliability-soak.md.
        let acked = inserts_acked + incs_acked + steps_acked + sessions_acked;
        let summary = format!(
            "rounds={rounds}\nfailures=0\nseconds={:.1}\nacked_commits={acked}\n\
             acked_inserts={inserts_acked}\nacked_updates={incs_acked}\n\
             acked_steps={steps_acked}\nacked_ttl_inserts={sessions_acked}\n\
             commits_verified={commits_verified}\nchecks={checks}\nitems={}\n\
             steps={step}\nlong_sessions={}\nswept={swept}\nlaps={laps}\n\
             writer_opened={writer_opened}\n",
            elapsed.as_secs_f64(),
            expected_inserts.len(),
            long_sessions.len(),
        );
        std::fs::write(&out, summary).expect("write the soak summary");
    }
}
