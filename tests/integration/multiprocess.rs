//! Several processes on one database (issue: "Several processes on one database"): any number
//! of processes open the same file; one write transaction at a time across all of them (the
//! others wait `busy_timeout_ms`, then `Error::Busy`); readers never block and are never
//! blocked; every new read transaction, and every call outside one, sees every commit
//! acknowledged before it started, whichever process made it; a process killed at any point
//! leaves nothing that blocks the others; `read_only` connections work beside a writer in
//! another process; `memlog` refuses a second process with a message naming `wasp`.
//!
//! The test binary re-executes itself to run the child roles (the `mp_child_*` functions,
//! which return at once in a normal run); see `common::procs`. Children print `opened` (or
//! `open failed: ...`) and then protocol lines (`ack ...`, `seen ...`); the parent waits on
//! those lines with generous timeouts: nothing here measures time. Children end their loops
//! when the parent creates a stop file, and a `Proc` is SIGKILLed and reaped when dropped, so
//! a failing test leaves no process behind.
//!
//! The tests other than `memlog_refuses_a_second_process` run on `wasp` only: under
//! `NEXUSLITE_STORAGE=memlog` they say so and return.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson};
use common::procs::{self, int, request_stop, stop_requested, Lifetime, Proc, PATIENCE};
use nexus::{Database, Document, Error, OpenOptions, StorageEngine, SyncMode};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "NEXUS_MP_ROLE";
const ID_ENV: &str = "NEXUS_MP_ID";
const DB_ENV: &str = "NEXUS_MP_DB";
const STOP_ENV: &str = "NEXUS_MP_STOP";

/// Accounts of the transfer test, and what each holds at the start.
const ACCOUNTS: usize = 20;
const OPENING_BALANCE: i64 = 1000;
const TOTAL: i64 = ACCOUNTS as i64 * OPENING_BALANCE;

/// Multiplies the transfers before and after the kill (10 in the suite: about 2,000
/// transfers and 80 checkpoints, under 2 s in a debug build; `NEXUS_MP_SCALE=100 cargo test
/// --release --test integration multiprocess::` is the long mode).
fn scale() -> usize {
    std::env::var("NEXUS_MP_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

/// Whether the multi-process tests run: on `wasp` only.
fn wasp_only(test: &str) -> bool {
    if common::engine() == StorageEngine::MemLog {
        eprintln!(
            "{test}: skipped under NEXUSLITE_STORAGE=memlog (several processes are a wasp \
             feature; memlog_refuses_a_second_process covers memlog)"
        );
        return false;
    }
    true
}

/// The harness's engine, `sync: full`, and a generous busy timeout: a writer may wait for
/// another process's transaction, never fail a test because of a slow machine.
fn options() -> OpenOptions {
    OpenOptions {
        sync: SyncMode::Full,
        busy_timeout_ms: 10_000,
        ..common::open_options()
    }
}

/// What a child learns from its environment.
struct ChildEnv {
    role: String,
    id: u32,
    db: PathBuf,
    stop: PathBuf,
}

impl ChildEnv {
    /// The environment of a child running `role`; `None` in a normal run of the suite.
    fn get(role: &str) -> Option<ChildEnv> {
        let r = std::env::var(ROLE_ENV).ok()?;
        if r != role {
            return None;
        }
        let id = std::env::var(ID_ENV).ok()?.parse().expect("child id");
        Some(ChildEnv {
            role: format!("{role} {id}"),
            id,
            db: std::env::var_os(DB_ENV)
                .expect("child database path")
                .into(),
            stop: std::env::var_os(STOP_ENV).expect("child stop file").into(),
        })
    }

    /// Opens the database: prints `opened`, or `open failed: ...` and panics.
    fn open(&self, options: OpenOptions) -> Database {
        match Database::open(&self.db, options) {
            Ok(db) => {
                println!("opened");
                db
            }
            Err(e) => {
                println!("open failed: {}", describe_error(&e));
                panic!("{}: open failed: {e}", self.role);
            }
        }
    }
}

/// An error on one line: its code, its variant, its message.
fn describe_error(e: &Error) -> String {
    format!("code {} {:?}", e.code(), e).replace('\n', " ")
}

/// Spawns the child `role` number `id` (running the test function `test_fn`).
fn spawn(label: &str, test_fn: &str, role: &str, id: u32, db: &Path, stop: &Path) -> Proc {
    let id = id.to_string();
    Proc::spawn(
        label,
        test_fn,
        &[
            (ROLE_ENV, role.as_ref()),
            (ID_ENV, id.as_ref()),
            (DB_ENV, db.as_os_str()),
            (STOP_ENV, stop.as_os_str()),
        ],
    )
}

/// Retries `f` while it fails with `Error::Busy` (another process's write transaction
/// outlived `busy_timeout_ms`); panics on any other error.
fn retry_busy<R>(what: &str, life: &Lifetime, mut f: impl FnMut() -> nexus::Result<R>) -> R {
    loop {
        match f() {
            Ok(r) => return r,
            Err(Error::Busy(_)) => {
                life.check(what);
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// The numbers of the `ack ...` lines among `lines` (`ack N`, or `ack WRITER N`: the last
/// field).
fn acks(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .map(|rest| {
            rest.rsplit(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad ack line 'ack {rest}'"))
        })
        .collect()
}

fn ack_count(lines: &[String]) -> usize {
    lines.iter().filter(|l| l.starts_with("ack ")).count()
}

/// Acknowledgements numbered 0, 1, 2, ...: a child acknowledges in order.
fn assert_in_order(who: &str, acked: &[u64]) {
    for (i, n) in acked.iter().enumerate() {
        assert_eq!(*n, i as u64, "{who} acknowledged out of order: {acked:?}");
    }
}

/// The `_id` strings of every document of `coll` (read on `db`).
fn ids(db: &Database, coll: &str) -> BTreeSet<String> {
    db.collection(coll)
        .find(&doc! {}, Default::default())
        .unwrap_or_else(|e| panic!("find in {coll}: {e}"))
        .map(|d| {
            let d = d.unwrap_or_else(|e| panic!("read a document of {coll}: {e}"));
            d.id()
                .and_then(Bson::as_str)
                .unwrap_or_else(|| panic!("{coll}: a document without a string _id: {d:?}"))
                .to_owned()
        })
        .collect()
}

fn all(db: &Database, coll: &str) -> Vec<Document> {
    db.collection(coll)
        .find(&doc! {}, Default::default())
        .unwrap_or_else(|e| panic!("find in {coll}: {e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("read the documents of {coll}: {e}"))
}

/// Runs `f` on another thread and waits for it: a read that blocks (which it must never do)
/// fails the test with `what` instead of hanging it.
fn without_blocking<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} blocked (no answer in 30 s): a read must never wait for a writer")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} failed (panic above)"),
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u32) -> Self {
        Rng(0x9e37_79b9_7f4a_7c15 ^ (u64::from(seed) + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn account(i: u64) -> String {
    format!("a{i:02}")
}

// ---------------------------------------------------------------------------------------
// (a) Transfers between accounts: 2 writer processes, 3 reader processes, one writer killed
// ---------------------------------------------------------------------------------------

/// Balances and transfers as one reader sees them: checks that they agree (the sum is
/// constant, and each balance is the opening one plus the transfers in and out of it).
/// Returns a description of the first disagreement.
fn ledger_problem(balances: &[Document], transfers: &[Document]) -> Option<String> {
    if balances.len() != ACCOUNTS {
        return Some(format!("{} accounts instead of {ACCOUNTS}", balances.len()));
    }
    let mut flow: BTreeMap<String, i64> = BTreeMap::new();
    for t in transfers {
        let (Some(Bson::String(from)), Some(Bson::String(to)), Some(amount)) =
            (t.get("from"), t.get("to"), int(t.get("amount")))
        else {
            return Some(format!("malformed transfer {t:?}"));
        };
        *flow.entry(from.clone()).or_default() -= amount;
        *flow.entry(to.clone()).or_default() += amount;
    }
    let mut sum = 0;
    for b in balances {
        let (Some(Bson::String(id)), Some(balance)) = (b.id(), int(b.get("balance"))) else {
            return Some(format!("malformed account {b:?}"));
        };
        sum += balance;
        let want = OPENING_BALANCE + flow.get(id).copied().unwrap_or(0);
        if balance != want {
            return Some(format!(
                "account {id} holds {balance}, but the {} transfers in the same snapshot say \
                 {want}",
                transfers.len()
            ));
        }
    }
    (sum != TOTAL).then(|| format!("the balances sum to {sum}, not {TOTAL}"))
}

/// Writer: transfer transactions until the stop file appears. Each moves an amount between
/// two accounts and logs it as `w{id}-{n}` in `transfers`; prints `ack {id} {n}` once
/// committed. Busy is retried (another writer process holds the write lock).
#[test]
fn mp_child_transfer_writer() {
    let Some(env) = ChildEnv::get("transfer-writer") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(OpenOptions {
        // Small (a transfer logs about 400 bytes): both writers checkpoint every 20 or so
        // transfers, so the kill may land in one.
        checkpoint_log_bytes: Some(8 * 1024),
        ..options()
    });
    let mut rng = Rng::new(env.id);
    let mut checkpoints_reported = None;
    for n in 0u64.. {
        if stop_requested(&env.stop) {
            break;
        }
        life.check(&env.role);
        let from = rng.below(ACCOUNTS as u64);
        let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1)) % ACCOUNTS as u64;
        let amount = 1 + rng.below(100) as i64;
        let tid = format!("w{}-{n}", env.id);
        let what = format!("{}: transfer {tid}", env.role);
        retry_busy(&what, &life, || {
            db.transaction(|db| {
                let accounts = db.collection("accounts");
                let transfers = db.collection("transfers");
                // An attempt that reported Busy may have committed all the same.
                if transfers.find_one(&doc! {"_id": &tid})?.is_some() {
                    return Ok(());
                }
                for (acc, delta) in [(from, -amount), (to, amount)] {
                    let r = accounts.update(
                        &doc! {"_id": account(acc)},
                        &doc! {"$inc": {"balance": delta}},
                        Default::default(),
                    )?;
                    assert_eq!(r.matched, 1, "{what}: account {} is missing", account(acc));
                }
                transfers.insert(
                    Document::builder()
                        .field("_id", tid.as_str())
                        .field("from", account(from))
                        .field("to", account(to))
                        .field("amount", amount)
                        .field("writer", i64::from(env.id))
                        .field("n", n as i64)
                        .build(),
                )?;
                Ok(())
            })
        });
        println!("ack {} {n}", env.id);
        if n.is_multiple_of(16) {
            let stats = db.stats().expect("stats");
            let c = stats["storage"]["checkpoints"].clone();
            if checkpoints_reported.as_ref() != Some(&c) {
                println!("checkpoints {c}");
                checkpoints_reported = Some(c);
            }
        }
    }
    db.close().expect("close");
    println!("done");
}

/// Reader: a read_only connection reading until the stop file appears. Each round counts
/// `transfers` outside a transaction, then in a read transaction reads every account and
/// every transfer and checks that they agree; the counts never go back. Prints `seen {count}`
/// whenever the count changed (and every 50 rounds).
#[test]
fn mp_child_transfer_reader() {
    let Some(env) = ChildEnv::get("transfer-reader") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(OpenOptions {
        read_only: true,
        ..options()
    });
    let who = env.role.clone();
    let transfers = db.collection("transfers");
    let mut last = 0u64;
    let mut printed = None;
    let mut rounds = 0u64;
    while !stop_requested(&env.stop) {
        life.check(&who);
        let outside = transfers
            .count(&doc! {})
            .unwrap_or_else(|e| panic!("{who}: count outside a transaction: {e}"));
        assert!(
            outside >= last,
            "{who}: outside a transaction, transfers went back from {last} to {outside}"
        );
        last = outside;

        db.begin_read()
            .unwrap_or_else(|e| panic!("{who}: begin_read: {e}"));
        let balances = all(&db, "accounts");
        let counted = transfers
            .count(&doc! {})
            .unwrap_or_else(|e| panic!("{who}: count in a read transaction: {e}"));
        let logged = all(&db, "transfers");
        db.commit()
            .unwrap_or_else(|e| panic!("{who}: commit of a read transaction: {e}"));
        if let Some(p) = ledger_problem(&balances, &logged) {
            panic!("{who}: in one read transaction: {p}");
        }
        assert_eq!(
            counted,
            logged.len() as u64,
            "{who}: count and find disagree in one read transaction"
        );
        assert!(
            counted >= last,
            "{who}: a read transaction saw {counted} transfers after a read that saw {last}"
        );
        last = counted;
        if printed != Some(counted) || rounds.is_multiple_of(50) {
            println!("seen {counted}");
            printed = Some(counted);
        }
        rounds += 1;
        // Leave the two cores some room for the writers.
        std::thread::sleep(Duration::from_millis(1));
    }
    db.close().expect("close");
    println!("done {rounds}");
}

/// The count in the newest `seen N` line.
fn latest_seen(lines: &[String]) -> Option<u64> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("seen "))
        .map(|n| n.parse().expect("seen count"))
}

/// The acceptance test of the issue.
#[test]
fn transfers_across_processes_keep_the_sum() {
    if !wasp_only("transfers_across_processes_keep_the_sum") {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bank.db");
    let stop = dir.path().join("stop");
    {
        let db = Database::open(&path, options()).expect("create the database");
        db.create_collection("accounts", None).unwrap();
        db.create_collection("transfers", None).unwrap();
        db.transaction(|db| {
            for i in 0..ACCOUNTS as u64 {
                db.collection("accounts").insert(
                    Document::builder()
                        .field("_id", account(i))
                        .field("balance", OPENING_BALANCE)
                        .build(),
                )?;
            }
            Ok(())
        })
        .unwrap();
        db.close().unwrap();
    }

    let mut readers: Vec<Proc> = (0..3)
        .map(|i| {
            spawn(
                &format!("reader {i}"),
                "mp_child_transfer_reader",
                "transfer-reader",
                i,
                &path,
                &stop,
            )
        })
        .collect();
    for r in &mut readers {
        r.wait_ready("opened", "open failed: ", PATIENCE);
    }
    let mut writers: Vec<Proc> = (0..2)
        .map(|i| {
            spawn(
                &format!("writer {i}"),
                "mp_child_transfer_writer",
                "transfer-writer",
                i,
                &path,
                &stop,
            )
        })
        .collect();
    for w in &mut writers {
        w.wait_ready("opened", "open failed: ", PATIENCE);
    }
    let before_kill = 50 * scale();
    for w in &mut writers {
        w.wait_for("50 (x scale) acknowledged transfers", PATIENCE, |l| {
            (ack_count(l) >= before_kill).then_some(())
        });
    }
    for r in &mut readers {
        r.assert_running("before the kill");
    }

    // SIGKILL writer 0 wherever it is: in a transaction, a commit, a checkpoint.
    let status = writers[0].kill();
    assert!(
        !status.success(),
        "writer 0 exited on its own before the kill: {}",
        writers[0].describe()
    );
    let acked0 = writers[0].with_lines(acks);
    assert_in_order("writer 0", &acked0);
    let w1_at_kill = writers[1].with_lines(ack_count);
    let at_kill = acked0.len() + w1_at_kill;

    // The others carry on: writer 1 commits 100 more transfers...
    writers[1].wait_for(
        "100 more acknowledged transfers after writer 0 was killed (a dead writer must \
         leave no lock behind)",
        PATIENCE,
        |l| (ack_count(l) >= w1_at_kill + 100 * scale()).then_some(()),
    );
    // ...and every reader sees them: each new read sees every acknowledged commit.
    let target = (acked0.len() + writers[1].with_lines(ack_count)) as u64;
    for r in &mut readers {
        let what = format!(
            "a read that sees at least {target} transfers (every acknowledged one; {at_kill} \
             when writer 0 was killed)"
        );
        r.wait_for(&what, PATIENCE, |l| {
            latest_seen(l).filter(|&s| s >= target).map(|_| ())
        });
    }

    request_stop(&stop);
    writers[1].expect_success(PATIENCE);
    for r in &mut readers {
        r.expect_success(PATIENCE);
    }
    let acked1 = writers[1].with_lines(acks);
    assert_in_order("writer 1", &acked1);
    let checkpoints: Vec<String> = writers
        .iter()
        .map(|w| {
            w.with_lines(|l| {
                l.iter()
                    .rev()
                    .find_map(|l| l.strip_prefix("checkpoints "))
                    .unwrap_or("?")
                    .to_owned()
            })
        })
        .collect();

    // A fresh open sees everything, and the file is sound.
    let db = Database::open(&path, options()).expect("fresh open after the children");
    let stored = ids(&db, "transfers");
    for n in &acked0 {
        assert!(
            stored.contains(&format!("w0-{n}")),
            "acknowledged transfer w0-{n} of the killed writer 0 is missing"
        );
    }
    for n in &acked1 {
        assert!(
            stored.contains(&format!("w1-{n}")),
            "acknowledged transfer w1-{n} of writer 1 is missing"
        );
    }
    let a0 = acked0.len() as u64;
    let a1 = acked1.len() as u64;
    for id in &stored {
        let (w, n) = id
            .strip_prefix('w')
            .and_then(|r| r.split_once('-'))
            .and_then(|(w, n)| Some((w.parse::<u32>().ok()?, n.parse::<u64>().ok()?)))
            .unwrap_or_else(|| panic!("unexpected transfer {id}"));
        match w {
            // The killed writer's transaction in flight may have committed unacknowledged.
            0 => assert!(
                n <= a0,
                "w0-{n} stored, but writer 0 acknowledged only {a0}"
            ),
            1 => assert!(n < a1, "w1-{n} stored, but writer 1 acknowledged only {a1}"),
            _ => panic!("unexpected transfer {id}"),
        }
    }
    if let Some(p) = ledger_problem(&all(&db, "accounts"), &all(&db, "transfers")) {
        panic!("after a fresh open: {p}");
    }
    let report = db.check_report().expect("check");
    assert_eq!(report["ok"], true, "integrity check: {report}");
    db.close().unwrap();
    eprintln!(
        "transfers: writer 0 acknowledged {a0} (killed; checkpoints {}), writer 1 {a1} \
         (checkpoints {}), {} stored; {:?}",
        checkpoints[0],
        checkpoints[1],
        stored.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// (b) Three spawned processes and the parent insert side by side
// ---------------------------------------------------------------------------------------

const INSERTS: u64 = 200;

/// Inserter: its own connection; inserts `c{id}-{n}` for n < 200, printing `ack {n}`.
#[test]
fn mp_child_inserter() {
    let Some(env) = ChildEnv::get("inserter") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(options());
    let c = db.collection("docs");
    for n in 0..INSERTS {
        let id = format!("c{}-{n:03}", env.id);
        let mut attempts = 0;
        retry_busy(&format!("{}: insert {id}", env.role), &life, || {
            attempts += 1;
            let d = Document::builder()
                .field("_id", id.as_str())
                .field("child", i64::from(env.id))
                .field("n", n as i64)
                .build();
            match c.insert(d) {
                // An attempt that reported Busy may have committed all the same.
                Err(Error::DuplicateKey(_)) if attempts > 1 => Ok(()),
                r => r.map(|_| ()),
            }
        });
        println!("ack {n}");
    }
    db.close().expect("close");
    println!("done");
}

#[test]
fn spawned_processes_open_their_own_connections() {
    if !wasp_only("spawned_processes_open_their_own_connections") {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let stop = dir.path().join("stop");
    // The parent's connection stays open throughout.
    let db = Database::open(&path, options()).expect("create the database");
    db.create_collection("docs", None).unwrap();
    let mut children: Vec<Proc> = (0..3)
        .map(|i| {
            spawn(
                &format!("inserter {i}"),
                "mp_child_inserter",
                "inserter",
                i,
                &path,
                &stop,
            )
        })
        .collect();
    for c in &mut children {
        c.wait_ready("opened", "open failed: ", PATIENCE);
    }
    let life = Lifetime::start();
    let docs = db.collection("docs");
    for n in 0..INSERTS {
        let id = format!("p-{n:03}");
        let mut attempts = 0;
        retry_busy(&format!("parent: insert {id}"), &life, || {
            attempts += 1;
            match docs.insert(Document::builder().field("_id", id.as_str()).build()) {
                Err(Error::DuplicateKey(_)) if attempts > 1 => Ok(()),
                r => r.map(|_| ()),
            }
        });
    }
    for c in &mut children {
        c.expect_success(PATIENCE);
    }
    let mut expected: BTreeSet<String> = (0..INSERTS).map(|n| format!("p-{n:03}")).collect();
    for (i, c) in children.iter().enumerate() {
        let acked = c.with_lines(acks);
        assert_in_order(c.label(), &acked);
        assert_eq!(acked.len() as u64, INSERTS, "{}", c.describe());
        expected.extend(acked.iter().map(|n| format!("c{i}-{n:03}")));
    }
    assert_eq!(expected.len(), 4 * INSERTS as usize);

    // The parent's connection, open all along, sees the children's commits: no stale reads.
    let seen = ids(&db, "docs");
    let missing: Vec<&String> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "the parent's open connection does not see {} acknowledged documents (stale read), \
         e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        seen, expected,
        "unexpected documents on the parent's connection"
    );
    assert_eq!(docs.count(&doc! {}).unwrap(), 4 * INSERTS);
    for i in 0..3 {
        let last = format!("c{i}-{:03}", INSERTS - 1);
        assert!(
            docs.get_by_text(&last).unwrap().is_some(),
            "the parent's connection: get {last} finds nothing"
        );
    }
    db.begin_read().unwrap();
    assert_eq!(
        docs.count(&doc! {}).unwrap(),
        4 * INSERTS,
        "a read transaction on the parent's connection"
    );
    db.commit().unwrap();
    db.close().unwrap();

    let db = Database::open(&path, options()).expect("fresh open");
    assert_eq!(ids(&db, "docs"), expected, "after a fresh open");
    let report = db.check_report().expect("check");
    assert_eq!(report["ok"], true, "integrity check: {report}");
    eprintln!(
        "3 processes and the parent, {} documents: {:?}",
        expected.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// (c) One writer at a time across processes; readers are not blocked
// ---------------------------------------------------------------------------------------

/// Holder: inserts `from-a` in a write transaction, prints `holding`, and keeps the
/// transaction open until the stop file appears; then commits and prints `committed`.
#[test]
fn mp_child_holder() {
    let Some(env) = ChildEnv::get("holder") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(options());
    db.transaction(|db| {
        db.collection("c")
            .insert(Document::builder().field("_id", "from-a").build())?;
        println!("holding");
        while !stop_requested(&env.stop) {
            life.check(&env.role);
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: the held transaction: {e}", env.role));
    println!("committed");
    db.close().expect("close");
    println!("done");
}

#[test]
fn a_second_writer_waits_then_gets_busy() {
    if !wasp_only("a_second_writer_waits_then_gets_busy") {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lock.db");
    let stop = dir.path().join("stop");
    {
        let db = Database::open(&path, options()).expect("create the database");
        db.collection("c")
            .insert(Document::builder().field("_id", "seed").build())
            .unwrap();
        db.close().unwrap();
    }
    let mut holder = spawn("holder", "mp_child_holder", "holder", 0, &path, &stop);
    holder.wait_ready("opened", "open failed: ", PATIENCE);
    holder.wait_for("'holding' (its write transaction is open)", PATIENCE, |l| {
        l.iter().any(|l| l == "holding").then_some(())
    });

    let db = Database::open(
        &path,
        OpenOptions {
            busy_timeout_ms: 300,
            ..options()
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "the parent's open failed while another process holds a write transaction (a \
             second process must open; only its writes wait): {}",
            describe_error(&e)
        )
    });
    let db = Arc::new(db);

    // Writes wait busy_timeout_ms for the other process's transaction, then fail with Busy.
    match db
        .collection("c")
        .insert(Document::builder().field("_id", "from-parent-1").build())
    {
        Err(e @ Error::Busy(_)) => assert_eq!(e.code(), nexus::ffi::status::NEXUS_BUSY),
        other => panic!(
            "an insert while another process holds a write transaction must fail with \
             Error::Busy (NEXUS_BUSY) after busy_timeout_ms; got {other:?}"
        ),
    }
    match db.transaction(|db| {
        db.collection("c")
            .insert(Document::builder().field("_id", "from-parent-1").build())
    }) {
        Err(e @ Error::Busy(_)) => assert_eq!(e.code(), nexus::ffi::status::NEXUS_BUSY),
        other => panic!(
            "a write transaction while another process holds one must fail with \
             Error::Busy (NEXUS_BUSY) after busy_timeout_ms; got {other:?}"
        ),
    }
    assert!(!db.in_transaction(), "the refused transaction stayed open");

    // Reads are not blocked, and do not see the other process's uncommitted insert.
    let reader = Arc::clone(&db);
    let (found, counted, in_snapshot) = without_blocking(
        "a read while another process holds a write transaction",
        move || {
            let found = ids(&reader, "c");
            let counted = reader.collection("c").count(&doc! {}).expect("count");
            reader.begin_read().expect("begin_read");
            let in_snapshot = ids(&reader, "c");
            reader.commit().expect("commit a read transaction");
            (found, counted, in_snapshot)
        },
    );
    let seed: BTreeSet<String> = ["seed".to_owned()].into();
    assert_eq!(
        found, seed,
        "find while the other process's insert is uncommitted"
    );
    assert_eq!(
        counted, 1,
        "count while the other process's insert is uncommitted"
    );
    assert_eq!(in_snapshot, seed, "a read transaction meanwhile");
    holder.assert_running("after the parent's refused writes");

    // The holder commits and exits; now the parent's write goes through.
    request_stop(&stop);
    holder.wait_for("'committed'", PATIENCE, |l| {
        l.iter().any(|l| l == "committed").then_some(())
    });
    holder.expect_success(PATIENCE);
    db.collection("c")
        .insert(Document::builder().field("_id", "from-parent-2").build())
        .unwrap_or_else(|e| {
            panic!(
                "the parent's insert after the other process committed and exited: {}",
                describe_error(&e)
            )
        });
    let want: BTreeSet<String> = ["from-a", "from-parent-2", "seed"]
        .map(str::to_owned)
        .into();
    assert_eq!(
        ids(&db, "c"),
        want,
        "the parent's connection after the holder"
    );
    let db = Arc::try_unwrap(db).expect("the only reference");
    db.close().unwrap();
    let db = Database::open(&path, options()).expect("fresh open");
    assert_eq!(ids(&db, "c"), want, "after a fresh open");
    let report = db.check_report().expect("check");
    assert_eq!(report["ok"], true, "integrity check: {report}");
    eprintln!("second writer busy, readers free: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------
// (d) A read_only connection beside a writer in another process
// ---------------------------------------------------------------------------------------

/// Stream writer: inserts `e{n}` (one commit each) until the stop file appears, printing
/// `ack {n}`.
#[test]
fn mp_child_stream_writer() {
    let Some(env) = ChildEnv::get("stream-writer") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(options());
    let events = db.collection("events");
    for n in 0u64.. {
        if stop_requested(&env.stop) {
            break;
        }
        let id = format!("e{n:06}");
        let mut attempts = 0;
        retry_busy(&format!("{}: insert {id}", env.role), &life, || {
            attempts += 1;
            let d = Document::builder()
                .field("_id", id.as_str())
                .field("n", n as i64)
                .build();
            match events.insert(d) {
                Err(Error::DuplicateKey(_)) if attempts > 1 => Ok(()),
                r => r.map(|_| ()),
            }
        });
        println!("ack {n}");
    }
    db.close().expect("close");
    println!("done");
}

/// The `n` of every event, checked to be 0, 1, 2, ... (each insert is its own commit, so
/// every snapshot holds a prefix).
fn event_prefix(docs: &[Document], context: &str) -> u64 {
    for (i, d) in docs.iter().enumerate() {
        let n = int(d.get("n")).unwrap_or_else(|| panic!("{context}: no n in {d:?}"));
        assert_eq!(
            n, i as i64,
            "{context}: the events read are not a prefix 0, 1, 2, ... (a gap before {n})"
        );
    }
    docs.len() as u64
}

#[test]
fn readonly_cli_style_reader_beside_writer() {
    if !wasp_only("readonly_cli_style_reader_beside_writer") {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let stop = dir.path().join("stop");
    {
        let db = Database::open(&path, options()).expect("create the database");
        db.create_collection("events", None).unwrap();
        db.close().unwrap();
    }
    let mut writer = spawn(
        "writer",
        "mp_child_stream_writer",
        "stream-writer",
        0,
        &path,
        &stop,
    );
    writer.wait_ready("opened", "open failed: ", PATIENCE);
    writer.wait_for("5 acknowledged inserts", PATIENCE, |l| {
        (ack_count(l) >= 5).then_some(())
    });

    let ro = Database::open(
        &path,
        OpenOptions {
            read_only: true,
            ..options()
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "a read_only open beside a writer in another process failed: {}",
            describe_error(&e)
        )
    });
    let events = ro.collection("events");
    match events.insert(Document::builder().field("_id", "nope").build()) {
        Err(Error::ReadOnly(_)) => {}
        other => panic!("an insert on a read_only connection: {other:?}"),
    }

    // Read until the count has gone up several times, each read seeing at least every insert
    // acknowledged before it started.
    let deadline = Instant::now() + PATIENCE;
    let mut counts: Vec<u64> = Vec::new();
    let mut last = 0;
    let mut cli_checked = false;
    loop {
        let acked_before = writer.with_lines(ack_count) as u64;
        let counted = events
            .count(&doc! {})
            .expect("count on the read_only connection");
        assert!(
            counted >= acked_before,
            "stale read: count {counted} < {acked_before} inserts acknowledged before it"
        );
        assert!(
            counted >= last,
            "the count went back from {last} to {counted}"
        );
        let found = event_prefix(&all(&ro, "events"), "find on the read_only connection");
        assert!(
            found >= counted,
            "find saw {found} after count saw {counted}"
        );
        ro.begin_read().expect("begin_read");
        let snap_count = events.count(&doc! {}).expect("count in a read transaction");
        let snap = event_prefix(&all(&ro, "events"), "a read transaction");
        ro.commit().expect("end the read transaction");
        assert_eq!(
            snap_count, snap,
            "count and find disagree in one read transaction"
        );
        assert!(
            snap >= found,
            "a read transaction saw {snap} after find saw {found}"
        );
        let stats = ro.stats().expect("stats on the read_only connection");
        assert!(stats["storage"].is_object(), "stats: {stats}");
        if counts.last() != Some(&snap) {
            counts.push(snap);
        }
        last = snap;

        if !cli_checked {
            // The command-line tool, a process of its own, beside the writer.
            let acked = writer.with_lines(ack_count) as u64;
            let text = common::ok(&["count", path.to_str().unwrap(), "events"], dir.path());
            let n: u64 = text.trim().parse().expect("nexus count prints a number");
            assert!(
                n >= acked,
                "nexus count printed {n} < {acked} inserts acknowledged before it ran"
            );
            cli_checked = true;
        }
        // Three increases at least, by 20 inserts or more in all.
        if counts.len() >= 4 && last >= counts[0] + 20 {
            break;
        }
        writer.assert_running("while the read_only connection reads");
        assert!(
            Instant::now() < deadline,
            "the read_only connection saw the count grow only through {counts:?} in \
             {PATIENCE:?} while the writer acknowledged {} inserts",
            writer.with_lines(ack_count)
        );
        std::thread::sleep(Duration::from_millis(2));
    }

    request_stop(&stop);
    writer.expect_success(PATIENCE);
    let acked = writer.with_lines(acks);
    assert_in_order("writer", &acked);
    let total = acked.len() as u64;
    // The writer stopped cleanly: exactly its acknowledged inserts, seen on the open
    // read_only connection and by a fresh open.
    assert_eq!(
        event_prefix(&all(&ro, "events"), "after the writer"),
        total,
        "the open read_only connection after the writer exited"
    );
    ro.close().unwrap();
    let db = Database::open(&path, options()).expect("fresh open");
    assert_eq!(
        event_prefix(&all(&db, "events"), "a fresh open"),
        total,
        "after a fresh open"
    );
    let report = db.check_report().expect("check");
    assert_eq!(report["ok"], true, "integrity check: {report}");
    eprintln!(
        "read_only beside a writer: counts {counts:?}, {total} inserts: {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// (e) memlog: a second process is refused with a message that names wasp
// ---------------------------------------------------------------------------------------

/// Tries to open a memlog database another process has open, read-write and read_only;
/// prints `read-write: opened` or `read-write: error ...` (likewise `read_only: ...`).
#[test]
fn mp_child_memlog_opener() {
    let Some(env) = ChildEnv::get("memlog-opener") else {
        return;
    };
    for (label, read_only) in [("read-write", false), ("read_only", true)] {
        let r = Database::open(
            &env.db,
            OpenOptions {
                storage: Some(StorageEngine::MemLog),
                read_only,
                busy_timeout_ms: 300,
                ..OpenOptions::default()
            },
        );
        match r {
            Ok(db) => {
                println!("{label}: opened");
                drop(db);
            }
            Err(e) => println!("{label}: error {}", describe_error(&e)),
        }
    }
    println!("done");
}

#[test]
fn memlog_refuses_a_second_process() {
    // memlog explicitly, whatever engine the harness asks for.
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memlog.db");
    let stop = dir.path().join("stop");
    let db = Database::open(
        &path,
        OpenOptions {
            storage: Some(StorageEngine::MemLog),
            ..OpenOptions::default()
        },
    )
    .expect("create a memlog database");
    db.collection("c")
        .insert(Document::builder().field("_id", "x").build())
        .unwrap();
    let mut child = spawn(
        "memlog opener",
        "mp_child_memlog_opener",
        "memlog-opener",
        0,
        &path,
        &stop,
    );
    child.expect_success(PATIENCE);
    for label in ["read-write", "read_only"] {
        let prefix = format!("{label}: ");
        let line = child
            .with_lines(|l| {
                l.iter()
                    .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
            })
            .unwrap_or_else(|| panic!("no '{label}' line: {}", child.describe()));
        let busy = format!("error code {} Busy(", nexus::ffi::status::NEXUS_BUSY);
        assert!(
            line.starts_with(&busy),
            "a second process's {label} open of a memlog database must be refused with \
             Error::Busy (NEXUS_BUSY), got: {line}"
        );
        assert!(
            line.contains("wasp"),
            "a second process's {label} open of a memlog database is refused, but the \
             message does not name the option to use (storage \"wasp\"): {line}"
        );
    }
    // The refused opens changed nothing.
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
    db.close().unwrap();
    let db = Database::open(
        &path,
        OpenOptions {
            storage: Some(StorageEngine::MemLog),
            ..OpenOptions::default()
        },
    )
    .expect("reopen");
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
    let report = db.check_report().expect("check");
    assert_eq!(report["ok"], true, "integrity check: {report}");
    eprintln!("memlog refuses a second process: {:?}", started.elapsed());
}

/// `procs::protocol` strips libtest's `test NAME ... ` from a child's first line.
#[test]
fn child_protocol_lines_lose_the_harness_prefix() {
    assert_eq!(
        procs::protocol("test mp_child_inserter ... opened"),
        "opened"
    );
    assert_eq!(procs::protocol("ack 0 17"), "ack 0 17");
    assert_eq!(procs::protocol("seen 3"), "seen 3");
}

/// Changer: one round of changes to what the parent has cached, then `done`: updates `k1`,
/// deletes `k2`, inserts `k3`, creates an index on `v`, creates the collection `fresh` and
/// drops `gone`; then, bounded, the parent's second look.
#[test]
fn mp_child_changer() {
    let Some(env) = ChildEnv::get("changer") else {
        return;
    };
    let db = env.open(options());
    let c = db.collection("kv");
    c.update(
        &doc! {"_id": "k1"},
        &doc! {"$set": {"v": 2}},
        nexus::UpdateOptions::default(),
    )
    .expect("update k1");
    c.delete(&doc! {"_id": "k2"}, false).expect("delete k2");
    c.insert(Document::builder().field("_id", "k3").field("v", 3).build())
        .expect("insert k3");
    c.create_index(&doc! {"v": 1}, &doc! {})
        .expect("create index");
    db.create_collection("fresh", None).expect("create fresh");
    db.drop_collection("gone").expect("drop gone");
    db.close().expect("close");
    println!("done");
}

/// The parent's connection has documents in its cache and collections and indexes in its
/// catalogs; another process changes all of them; the parent's next calls see the changes
/// (no stale cache entry, no stale collection list or index list), and a query that can use
/// the new index uses it.
#[test]
fn caches_follow_other_processes() {
    if !wasp_only("caches_follow_other_processes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caches.db");
    let stop = dir.path().join("stop");
    let db = Database::open(&path, options()).expect("create");
    let c = db.collection("kv");
    for (k, v) in [("k1", 1), ("k2", 1)] {
        c.insert(Document::builder().field("_id", k).field("v", v).build())
            .unwrap();
    }
    db.create_collection("gone", None).unwrap();
    // Into the document cache (a get fills it) and the catalogs.
    for k in ["k1", "k2"] {
        assert!(c.get_by_text(k).unwrap().is_some());
        assert!(c.get_by_text(k).unwrap().is_some());
    }
    assert!(c.get_by_text("k3").unwrap().is_none());
    assert_eq!(c.list_indexes().unwrap().len(), 1, "only _id");
    let hits_before = db.stats().unwrap()["cache"]["hits"].as_u64();

    let mut child = spawn("changer", "mp_child_changer", "changer", 0, &path, &stop);
    child.expect_success(PATIENCE);

    let k1 = c.get_by_text("k1").unwrap().expect("k1 still there");
    assert_eq!(int(k1.get("v")), Some(2), "a stale cached k1: {k1:?}");
    assert!(c.get_by_text("k2").unwrap().is_none(), "a stale cached k2");
    assert!(
        c.get_by_text("k3").unwrap().is_some(),
        "k3 from the other process"
    );
    let names = db.list_collections().unwrap();
    assert!(names.contains(&"fresh".to_owned()), "{names:?}");
    assert!(!names.contains(&"gone".to_owned()), "{names:?}");
    let indexes = c.list_indexes().unwrap();
    assert_eq!(indexes.len(), 2, "the other process's index: {indexes:?}");
    let plan = c
        .explain(&doc! {"v": 3}, nexus::FindOptions::default())
        .unwrap();
    assert!(
        plan.to_string().contains("v_1"),
        "the query should use the new index: {plan}"
    );
    assert_eq!(c.count(&doc! {"v": {"$gte": 2}}).unwrap(), 2);
    assert!(hits_before.is_some());
    assert_eq!(db.check().unwrap()["ok"], true);
}

/// Opener: opens the database named in its environment and prints what happened.
#[test]
fn mp_child_opener() {
    let Some(env) = ChildEnv::get("opener") else {
        return;
    };
    match Database::open(&env.db, options()) {
        Ok(db) => {
            println!("opened");
            drop(db);
        }
        Err(e) => println!("open failed: {}", describe_error(&e)),
    }
    println!("done");
}

/// `app` and `app.db` are two databases whose logs are both `app.wasp` (and so share
/// `app.wasp-shm`): while one is open in a process, another process opening the other (or
/// creating `app.new`, the same log name again) is refused with a message saying so, and
/// the open database does not change.
#[test]
fn two_databases_sharing_a_log_name_are_refused_not_mixed() {
    if !wasp_only("two_databases_sharing_a_log_name_are_refused_not_mixed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let with_ext = dir.path().join("app.db");
    let without = dir.path().join("app");
    let stop = dir.path().join("stop");
    // `app` exists (created and closed alone), then `app.db` is created and stays open.
    {
        let db = Database::open(&without, options()).unwrap();
        db.collection("c")
            .insert(Document::builder().field("_id", "in-app").build())
            .unwrap();
        db.close().unwrap();
    }
    let _ = std::fs::remove_file(dir.path().join("app.wasp"));
    let db = Database::open(&with_ext, options()).unwrap();
    db.collection("c")
        .insert(Document::builder().field("_id", "in-app-db").build())
        .unwrap();
    // `app.new` would be a new database, also logging to `app.wasp`.
    for (label, path) in [("existing", &without), ("new", &dir.path().join("app.new"))] {
        let mut child = spawn(label, "mp_child_opener", "opener", 0, path, &stop);
        child.expect_success(PATIENCE);
        let lines = child.lines();
        let failed = lines
            .iter()
            .find_map(|l| l.strip_prefix("open failed: "))
            .unwrap_or_else(|| panic!("{label}: the open should be refused: {lines:?}"));
        assert!(
            failed.contains("Corrupt") && failed.contains("app.wasp"),
            "{label}: {failed}"
        );
    }
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
    assert_eq!(db.check().unwrap()["ok"], true);
}

/// The first process opens a cleanly closed database read-only, without its log (a copy
/// taken without `app.wasp`): a writer process joining makes the log, and the reader sees
/// what it commits.
#[test]
fn a_writer_joining_a_read_only_process_makes_the_missing_log() {
    if !wasp_only("a_writer_joining_a_read_only_process_makes_the_missing_log") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nolog.db");
    let stop = dir.path().join("stop");
    {
        let db = Database::open(&path, options()).unwrap();
        db.create_collection("docs", None).unwrap();
        db.close().unwrap();
    }
    std::fs::remove_file(dir.path().join("nolog.wasp")).unwrap();
    let ro = Database::open(
        &path,
        OpenOptions {
            read_only: true,
            ..options()
        },
    )
    .unwrap();
    assert!(!dir.path().join("nolog.wasp").exists());
    let mut child = spawn("inserter", "mp_child_inserter", "inserter", 0, &path, &stop);
    child.expect_success(PATIENCE);
    assert!(dir.path().join("nolog.wasp").exists());
    assert_eq!(ro.collection("docs").count(&doc! {}).unwrap(), INSERTS);
    drop(ro);
    let db = Database::open(&path, options()).unwrap();
    assert_eq!(db.collection("docs").count(&doc! {}).unwrap(), INSERTS);
    assert_eq!(db.check().unwrap()["ok"], true);
}

// ---------------------------------------------------------------------------------------
// An encrypted database across processes (#20)
// ---------------------------------------------------------------------------------------

/// The path of a private key file a child of the encrypted test opens with (unset: the
/// child has no key).
const KEY_ENV: &str = "NEXUS_MP_KEY_FILE";
/// Every document of the encrypted test carries it; no file may show it.
const ENC_MARKER: &str = "Narwhal8ProcessMarker";

/// [`options`] on `wasp` (encryption is a feature of it) with `key`.
fn encrypted_options(key: Option<nexus::crypto::PrivatePem>) -> OpenOptions {
    OpenOptions {
        storage: Some(StorageEngine::Wasp),
        encryption_key: key,
        ..options()
    }
}

/// [`spawn`] with the key file `key_file` named in the child's environment.
fn spawn_keyed(
    label: &str,
    test_fn: &str,
    role: &str,
    db: &Path,
    stop: &Path,
    key_file: Option<&Path>,
) -> Proc {
    let mut envs = vec![
        (ROLE_ENV, role.as_ref()),
        (ID_ENV, "0".as_ref()),
        (DB_ENV, db.as_os_str()),
        (STOP_ENV, stop.as_os_str()),
    ];
    if let Some(k) = key_file {
        envs.push((KEY_ENV, k.as_os_str()));
    }
    Proc::spawn(label, test_fn, &envs)
}

/// Encrypted writer: opens with the key of its key file and inserts `w{n}` (with the marker)
/// until the stop file appears, printing `ack {n}` after each commit.
#[test]
fn mp_child_enc_writer() {
    let Some(env) = ChildEnv::get("enc_writer") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(encrypted_options(common::key_from_env(KEY_ENV)));
    let c = db.collection("docs");
    let mut n = 0u64;
    while !stop_requested(&env.stop) {
        life.check(&env.role);
        let id = format!("w{n:05}");
        let mut attempts = 0;
        retry_busy(&format!("{}: insert {id}", env.role), &life, || {
            attempts += 1;
            let d = Document::builder()
                .field("_id", id.as_str())
                .field("n", n as i64)
                .field("m", format!("{ENC_MARKER} {n}"))
                .build();
            match c.insert(d) {
                Err(Error::DuplicateKey(_)) if attempts > 1 => Ok(()),
                r => r.map(|_| ()),
            }
        });
        println!("ack {n}");
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    db.close().expect("close");
    println!("done {n}");
}

/// Encrypted reader: opens read_only with the key of its key file and counts the documents
/// until the stop file appears (each read with every document well formed), printing
/// `seen {count}`.
#[test]
fn mp_child_enc_reader() {
    let Some(env) = ChildEnv::get("enc_reader") else {
        return;
    };
    let life = Lifetime::start();
    let db = env.open(OpenOptions {
        read_only: true,
        ..encrypted_options(common::key_from_env(KEY_ENV))
    });
    let mut last = 0;
    while !stop_requested(&env.stop) {
        life.check(&env.role);
        let docs = all(&db, "docs");
        for d in &docs {
            let n = int(d.get("n")).unwrap_or_else(|| panic!("a document without n: {d:?}"));
            let want = format!("{ENC_MARKER} {n}");
            assert_eq!(
                d.get("m").and_then(Bson::as_str),
                Some(want.as_str()),
                "{d:?}"
            );
        }
        let seen = docs.len() as u64;
        assert!(
            seen >= last,
            "the documents went back from {last} to {seen}"
        );
        last = seen;
        println!("seen {seen}");
        std::thread::sleep(Duration::from_millis(5));
    }
    db.close().expect("close");
    println!("done");
}

/// A process without the right key: tries to open for writing and read_only, printing
/// `refused CODE MESSAGE` for each (or `opened` and failing).
#[test]
fn mp_child_enc_intruder() {
    let Some(env) = ChildEnv::get("enc_intruder") else {
        return;
    };
    let key = common::key_from_env(KEY_ENV);
    for read_only in [false, true] {
        let opts = OpenOptions {
            read_only,
            ..encrypted_options(key.clone())
        };
        match Database::open(&env.db, opts) {
            Ok(_) => {
                println!("opened (read_only {read_only})");
                panic!(
                    "{}: opened the encrypted database (read_only {read_only})",
                    env.role
                );
            }
            Err(e) => println!("refused {} {}", e.code(), e.to_string().replace('\n', " ")),
        }
    }
    println!("done");
}

/// Two processes (a writer and a read_only reader) have an encrypted database open with its
/// key; a process without a key, one with another key, and the parent without a key are
/// refused with `NEXUS_CRYPTO` meanwhile, and the writer and the reader carry on. Every
/// acknowledged document is there afterwards and the files show none of their marker.
#[test]
fn encrypted_database_across_processes() {
    if !wasp_only("encrypted_database_across_processes") {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enc.db");
    let stop = dir.path().join("stop");
    let key = common::new_key();
    let key_file = common::write_key_file(dir.path(), "key.pem", &key);
    let other_file = common::write_key_file(dir.path(), "other.pem", &common::new_key());
    {
        let db = Database::open(&path, encrypted_options(Some(key.clone()))).unwrap();
        db.create_collection("docs", None).unwrap();
        assert_eq!(db.stats().unwrap()["storage"]["encrypted"], true);
        db.close().unwrap();
    }
    let mut writer = spawn_keyed(
        "encrypted writer",
        "mp_child_enc_writer",
        "enc_writer",
        &path,
        &stop,
        Some(&key_file),
    );
    writer.wait_ready("opened", "open failed: ", PATIENCE);
    let mut reader = spawn_keyed(
        "encrypted reader",
        "mp_child_enc_reader",
        "enc_reader",
        &path,
        &stop,
        Some(&key_file),
    );
    reader.wait_ready("opened", "open failed: ", PATIENCE);
    writer.wait_for("10 acknowledged inserts", PATIENCE, |l| {
        (ack_count(l) >= 10).then_some(())
    });
    reader.wait_for("a read that sees documents", PATIENCE, |l| {
        latest_seen(l).filter(|&n| n > 0).map(drop)
    });

    // Refused while the two have it open: no key, another key (other processes), no key
    // (this process, which has no connection to it).
    for (label, k) in [
        ("no key", None),
        ("another key", Some(other_file.as_path())),
    ] {
        let mut intruder = spawn_keyed(
            label,
            "mp_child_enc_intruder",
            "enc_intruder",
            &path,
            &stop,
            k,
        );
        intruder.expect_success(PATIENCE);
        let refusals: Vec<String> = intruder.with_lines(|l| {
            l.iter()
                .filter_map(|l| l.strip_prefix("refused "))
                .map(str::to_owned)
                .collect()
        });
        assert_eq!(refusals.len(), 2, "{label}: {}", intruder.describe());
        let want = if k.is_none() {
            "database is encrypted"
        } else {
            "no key slot"
        };
        for r in &refusals {
            assert!(
                r.starts_with(&format!("{} ", nexus::ffi::status::NEXUS_CRYPTO)),
                "{label}: not NEXUS_CRYPTO: {r}"
            );
            assert!(r.contains(want), "{label}: {r}");
            assert!(!r.contains("PRIVATE"), "{label}: key material in {r}");
        }
    }
    for read_only in [false, true] {
        let opened = Database::open(
            &path,
            OpenOptions {
                read_only,
                ..encrypted_options(None)
            },
        );
        let Err(e) = opened else {
            panic!(
                "the parent opened the encrypted database without a key (read_only {read_only})"
            );
        };
        assert_eq!(
            e.code(),
            nexus::ffi::status::NEXUS_CRYPTO,
            "read_only {read_only}: {e}"
        );
    }

    // A rekey needs the database to its process alone: refused while the two have it open.
    {
        let db = Database::open(
            &path,
            OpenOptions {
                busy_timeout_ms: 200,
                ..encrypted_options(Some(key.clone()))
            },
        )
        .unwrap();
        let e = db
            .rekey()
            .expect_err("a rekey while other processes have it open");
        assert!(
            matches!(e, Error::Busy(ref m) if m.contains("alone")),
            "rekey beside other processes: {e}"
        );
        db.close().unwrap();
    }

    // The writer and the reader carry on.
    writer.assert_running("after the refusals");
    reader.assert_running("after the refusals");
    let so_far = writer.with_lines(ack_count);
    writer.wait_for("more inserts after the refusals", PATIENCE, |l| {
        (ack_count(l) >= so_far + 10).then_some(())
    });
    let seen_so_far = reader.with_lines(latest_seen).unwrap_or(0);
    reader.wait_for("a newer read after the refusals", PATIENCE, |l| {
        latest_seen(l).filter(|&n| n > seen_so_far).map(drop)
    });
    request_stop(&stop);
    writer.expect_success(PATIENCE);
    reader.expect_success(PATIENCE);
    let acked = writer.with_lines(acks);
    assert_in_order(writer.label(), &acked);

    let db = Database::open(&path, encrypted_options(Some(key))).unwrap();
    let expected: BTreeSet<String> = acked.iter().map(|n| format!("w{n:05}")).collect();
    assert_eq!(ids(&db, "docs"), expected, "after the writer stopped");
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], true, "integrity check: {report}");
    common::assert_marker_absent(&path, ENC_MARKER, "with the database open");
    // Alone now: the rekey runs, and everything is there under the new data key.
    db.rekey().unwrap();
    assert_eq!(ids(&db, "docs"), expected, "after the rekey");
    db.close().unwrap();
    common::assert_marker_absent(&path, ENC_MARKER, "after close");
    eprintln!(
        "encrypted database in 2 processes, {} documents, 2 refused processes: {:?}",
        acked.len(),
        started.elapsed()
    );
}
