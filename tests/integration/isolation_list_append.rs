//! Isolation checked the way Jepsen's Elle checks it (issue #25 item 6): workers, each with a
//! connection of its own (4 threads of one process; 3 child processes of 2 threads each on one
//! file), run random transactions that append unique values to lists (`$push` with upsert into the
//! document of the key) and read whole lists; some are rolled back on purpose, some are read
//! transactions (`begin_read`), some single calls outside a transaction (through the
//! document cache). Every operation is recorded with its result and whether its transaction
//! committed (a `Busy` error aborts it), and the history goes to the checker in
//! `common/elle.rs`, which reports what snapshot isolation forbids.
//!
//! The checker is shown to catch anomalies twice over: histories built by hand for each kind
//! (the `checker_*` tests), and whole runs against deliberately broken stores (reads from a
//! stale snapshot, appends dropped, no isolation at all), where it must report them.
//!
//! `NEXUS_ISOLATION_TXNS` sets the transactions per worker (default 600 for threads, 250 for
//! processes); benchmarks/reliability-isolation.md has a long run.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small test values

use crate::common;
// Not in common/mod.rs: only this test uses it, and every test crate would compile it.
#[path = "../common/elle.rs"]
mod elle;

use bson::{doc, Bson};
use common::procs::{self, Lifetime, Proc, PATIENCE};
use elle::{check, Anomaly, Dep, Key, Op, Outcome, Report, Txn, Val};
use nexus::{Database, DocumentId, Error, OpenOptions, StorageEngine, SyncMode, UpdateOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

const COLL: &str = "lists";

fn txns_per_worker(default: usize) -> usize {
    std::env::var("NEXUS_ISOLATION_TXNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Short enough that writers contending for the write lock sometimes give up (`Busy`): those
/// transactions are part of the history as aborted ones.
const BUSY_TIMEOUT_MS: u64 = 20;

fn options() -> OpenOptions {
    OpenOptions {
        sync: SyncMode::Normal,
        busy_timeout_ms: BUSY_TIMEOUT_MS,
        // Checkpoints every few dozen commits (wasp), so snapshots are handed out, and read
        // transactions held, across them.
        checkpoint_log_bytes: Some(16 * 1024),
        ..common::open_options()
    }
}

fn key_id(k: Key) -> String {
    format!("k{k}")
}

/// The list of the document `doc` (`None`: the document does not exist yet).
fn list_of(doc: Option<nexus::Document>, k: Key) -> Vec<Val> {
    let Some(doc) = doc else { return Vec::new() };
    match doc.get("vals") {
        Some(Bson::Array(a)) => a
            .iter()
            .map(|v| {
                procs::int(Some(v)).unwrap_or_else(|| panic!("key {k}: bad value {v:?}")) as Val
            })
            .collect(),
        other => panic!("key {k}: the document has no list: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Stores: NexusLite, and the broken variants the checker must catch
// ---------------------------------------------------------------------------------------

/// What a worker does to the database.
trait Store {
    fn begin(&mut self) -> nexus::Result<()>;
    fn begin_read(&mut self) -> nexus::Result<()>;
    fn append(&mut self, k: Key, v: Val) -> nexus::Result<()>;
    /// `cached`: read by `_id` (through the document cache outside a transaction), else
    /// with `find_one`.
    fn read(&mut self, k: Key, cached: bool) -> nexus::Result<Vec<Val>>;
    fn commit(&mut self) -> nexus::Result<()>;
    fn rollback(&mut self) -> nexus::Result<()>;
    fn in_transaction(&self) -> bool;
}

/// How a [`Nexus`] store is broken on purpose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Broken {
    No,
    /// Reads in write transactions come from a read snapshot of a second connection that is
    /// renewed only every fourth transaction: a snapshot older than the transaction.
    StaleReads,
    /// Every fifth append is not done at all, yet reported done.
    DropAppends,
}

struct Nexus {
    db: Database,
    broken: Broken,
    stale: Option<Database>,
    writing: bool,
    appends: u64,
    txns: u64,
}

impl Nexus {
    fn new(path: &Path, broken: Broken) -> Nexus {
        let db = Database::open(path, options()).expect("open");
        let stale = (broken == Broken::StaleReads).then(|| {
            let s = Database::open(path, options()).expect("open the stale connection");
            s.begin_read().unwrap();
            s
        });
        Nexus {
            db,
            broken,
            stale,
            writing: false,
            appends: 0,
            txns: 0,
        }
    }
}

impl Store for Nexus {
    fn begin(&mut self) -> nexus::Result<()> {
        self.db.begin()?;
        self.writing = true;
        self.txns += 1;
        if let Some(s) = &self.stale {
            if self.txns.is_multiple_of(4) {
                s.commit()?;
                s.begin_read()?;
            }
        }
        Ok(())
    }

    fn begin_read(&mut self) -> nexus::Result<()> {
        self.db.begin_read()
    }

    fn append(&mut self, k: Key, v: Val) -> nexus::Result<()> {
        self.appends += 1;
        if self.broken == Broken::DropAppends && self.appends.is_multiple_of(5) {
            return Ok(());
        }
        self.db
            .collection(COLL)
            .update(
                &doc! {"_id": key_id(k)},
                &doc! {"$push": {"vals": v as i64}},
                UpdateOptions {
                    upsert: true,
                    multi: false,
                },
            )
            .map(drop)
    }

    fn read(&mut self, k: Key, cached: bool) -> nexus::Result<Vec<Val>> {
        let db = match &self.stale {
            Some(s) if self.writing => s,
            _ => &self.db,
        };
        let c = db.collection(COLL);
        let doc = if cached {
            c.get(&DocumentId::from_str_id(&key_id(k))?)?
        } else {
            c.find_one(&doc! {"_id": key_id(k)})?
        };
        Ok(list_of(doc, k))
    }

    fn commit(&mut self) -> nexus::Result<()> {
        self.db.commit()?;
        self.writing = false;
        Ok(())
    }

    fn rollback(&mut self) -> nexus::Result<()> {
        self.writing = false;
        self.db.rollback()
    }

    fn in_transaction(&self) -> bool {
        self.db.in_transaction()
    }
}

/// A store with no isolation: appends go straight into lists every worker reads, and a
/// rollback takes its values out again (read uncommitted).
struct Dirty {
    lists: Arc<Mutex<BTreeMap<Key, Vec<Val>>>>,
    undo: Vec<(Key, Val)>,
    open: bool,
}

impl Dirty {
    /// Lets the other workers run between operations, so they see the half-done states.
    fn pause() {
        std::thread::sleep(Duration::from_micros(200));
    }
}

impl Store for Dirty {
    fn begin(&mut self) -> nexus::Result<()> {
        self.open = true;
        Ok(())
    }

    fn begin_read(&mut self) -> nexus::Result<()> {
        self.open = true;
        Ok(())
    }

    fn append(&mut self, k: Key, v: Val) -> nexus::Result<()> {
        self.lists.lock().unwrap().entry(k).or_default().push(v);
        if self.open {
            self.undo.push((k, v));
        }
        Self::pause();
        Ok(())
    }

    fn read(&mut self, k: Key, _cached: bool) -> nexus::Result<Vec<Val>> {
        let l = self
            .lists
            .lock()
            .unwrap()
            .get(&k)
            .cloned()
            .unwrap_or_default();
        Self::pause();
        Ok(l)
    }

    fn commit(&mut self) -> nexus::Result<()> {
        self.undo.clear();
        self.open = false;
        Ok(())
    }

    fn rollback(&mut self) -> nexus::Result<()> {
        // A slow rollback: the others have time to read what it is about to take back.
        std::thread::sleep(Duration::from_millis(1));
        let mut lists = self.lists.lock().unwrap();
        for (k, v) in self.undo.drain(..) {
            lists.get_mut(&k).unwrap().retain(|x| *x != v);
        }
        self.open = false;
        Ok(())
    }

    fn in_transaction(&self) -> bool {
        self.open
    }
}

// ---------------------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------------------

/// Runs `n` random transactions of worker `worker` on `store` and returns them as executed,
/// and how many of them ended in `Busy`.
/// Keys come from a window of 6 that slides by 3 every 100 transactions, so lists stay short
/// and workers (which go at about the same pace) contend on the same keys.
fn run_worker(
    store: &mut dyn Store,
    worker: u32,
    n: usize,
    life: Option<&Lifetime>,
) -> (Vec<Txn>, usize) {
    let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + u64::from(worker));
    let mut next_value = (u64::from(worker) + 1) << 40; // unique across workers
    let mut history = Vec::with_capacity(n);
    let mut busy = 0;
    for i in 0..n {
        if let Some(life) = life {
            life.check("isolation worker");
        }
        let base = (i / 100) as Key * 3;
        let mut ops: Vec<(bool, Key)> = Vec::new(); // (append?, key)
        let kind = rng.u32(0..10);
        let count = if kind >= 8 { 1 } else { rng.usize(1..=4) };
        for _ in 0..count {
            ops.push((kind < 6 && rng.bool(), base + rng.u32(0..6)));
        }
        let (write_txn, read_txn) = (kind < 6, (6..8).contains(&kind));
        let roll_back = rng.u32(0..100) < if write_txn { 15 } else { 50 };
        // One write transaction in 25 holds the write lock past the others' busy timeout,
        // so some of theirs end in `Busy` (and must then have no effect).
        let slow = write_txn && rng.u32(0..25) == 0;
        // One read transaction in five lets writers commit between its reads.
        let lingers = read_txn && rng.u32(0..5) == 0;
        let mut done = Vec::new();
        let r: nexus::Result<Outcome> = (|| {
            if write_txn {
                store.begin()?;
            } else if read_txn {
                store.begin_read()?;
            }
            for (append, k) in ops {
                if append || (kind >= 8 && rng.bool()) {
                    let v = next_value;
                    next_value += 1;
                    // Recorded before it runs: an append that failed yet took effect must
                    // show up as a read of an aborted write.
                    done.push(Op::Append(k, v));
                    store.append(k, v)?;
                } else {
                    let l = store.read(k, rng.bool())?;
                    done.push(Op::Read(k, l));
                }
                if slow {
                    std::thread::sleep(Duration::from_millis(BUSY_TIMEOUT_MS + 5));
                }
                if lingers {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            if write_txn || read_txn {
                if roll_back {
                    store.rollback()?;
                    return Ok(Outcome::Aborted);
                }
                store.commit()?;
            }
            Ok(Outcome::Committed)
        })();
        let outcome = match r {
            Ok(o) => o,
            Err(Error::Busy(_)) => {
                busy += 1;
                if store.in_transaction() {
                    store.rollback().expect("roll back after Busy");
                }
                Outcome::Aborted
            }
            Err(e) => panic!("worker {worker}, transaction {i}: {e}"),
        };
        history.push(Txn {
            worker,
            outcome,
            ops: done,
        });
    }
    (history, busy)
}

/// Creates the database at `path` and its collection (a read of a collection that does not
/// exist is an error, not an empty list).
fn create(path: &Path) {
    let db = Database::open(path, options()).expect("create the database");
    db.create_collection(COLL, None)
        .expect("create the collection");
    db.close().unwrap();
}

/// Every list of the database at `path`, read once all workers are done.
fn final_state(path: &Path) -> BTreeMap<Key, Vec<Val>> {
    let db = Database::open(path, options()).expect("open for the final read");
    db.collection(COLL)
        .find(&doc! {}, Default::default())
        .unwrap()
        .map(|d| {
            let d = d.unwrap();
            let id = d
                .id()
                .and_then(Bson::as_str)
                .expect("a string _id")
                .to_owned();
            let k: Key = id[1..].parse().expect("a key id");
            (k, list_of(Some(d), k))
        })
        .collect()
}

/// Runs `workers` threads, each with its own store from `make`, and checks the history.
fn run_threads(
    workers: u32,
    txns: usize,
    make: impl Fn(u32) -> Box<dyn Store + Send> + Sync,
    state: impl FnOnce() -> BTreeMap<Key, Vec<Val>>,
) -> (Report, usize) {
    let barrier = Barrier::new(workers as usize);
    let busy = AtomicUsize::new(0);
    let history: Vec<Txn> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (barrier, make) = (&barrier, &make);
                s.spawn(move || {
                    let mut store = make(w);
                    barrier.wait();
                    run_worker(&mut *store, w, txns, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                let (h, b) = h.join().unwrap();
                busy.fetch_add(b, Ordering::Relaxed);
                h
            })
            .collect()
    });
    (check(&history, &state()), busy.into_inner())
}

fn print(what: &str, r: &Report, busy: usize) {
    eprintln!("{what}: {r}; aborted by Busy: {busy}");
}

// ---------------------------------------------------------------------------------------
// Runs against NexusLite
// ---------------------------------------------------------------------------------------

#[test]
fn threads_list_append_is_snapshot_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iso.db");
    create(&path);
    let (r, busy) = run_threads(
        4,
        txns_per_worker(600),
        |_| Box::new(Nexus::new(&path, Broken::No)),
        || final_state(&path),
    );
    print(&format!("4 threads, {:?}", common::engine()), &r, busy);
    assert!(r.anomalies.is_empty(), "anomalies: {r}");
    assert!(r.committed > 0 && r.aborted > 0, "{r}");
    assert!(
        r.edges > 0,
        "the workload made no dependencies to check: {r}"
    );
}

const ROLE_ENV: &str = "NEXUS_ISO_ROLE";
const DB_ENV: &str = "NEXUS_ISO_DB";
const GO_ENV: &str = "NEXUS_ISO_GO";
const TXNS_ENV: &str = "NEXUS_ISO_CHILD_TXNS";

/// Worker threads in each child process, each with its own connection.
const THREADS_PER_CHILD: u32 = 2;

/// A child: opens a connection per worker thread, waits for the go file, runs the threads'
/// transactions (worker `id * THREADS_PER_CHILD + t`) and prints each as `txn ...` (see
/// [`Txn::encode`]), then `busy N` and `done`.
#[test]
fn iso_child_worker() {
    let Ok(id) = std::env::var(ROLE_ENV) else {
        return;
    };
    let id: u32 = id.parse().expect("worker id");
    let life = Lifetime::start();
    let db: PathBuf = std::env::var_os(DB_ENV).expect("db").into();
    let go: PathBuf = std::env::var_os(GO_ENV).expect("go file").into();
    let n: usize = std::env::var(TXNS_ENV).unwrap().parse().unwrap();
    let stores: Vec<Nexus> = (0..THREADS_PER_CHILD)
        .map(|_| Nexus::new(&db, Broken::No))
        .collect();
    println!("opened");
    while !procs::stop_requested(&go) {
        life.check("isolation worker");
        std::thread::sleep(Duration::from_millis(1));
    }
    let results: Vec<(Vec<Txn>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = stores
            .into_iter()
            .zip(0..)
            .map(|(mut store, t)| {
                let life = &life;
                s.spawn(move || run_worker(&mut store, id * THREADS_PER_CHILD + t, n, Some(life)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut busy = 0;
    for (history, b) in results {
        busy += b;
        for t in history {
            println!("txn {}", t.encode());
        }
    }
    println!("busy {busy}");
    println!("done");
}

#[test]
fn processes_list_append_is_snapshot_isolated() {
    if common::engine() == StorageEngine::MemLog {
        eprintln!("skipped under NEXUSLITE_STORAGE=memlog (several processes are a wasp feature)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iso.db");
    let go = dir.path().join("go");
    create(&path);
    let n = txns_per_worker(250).to_string();
    let mut children: Vec<Proc> = (0..3u32)
        .map(|w| {
            let id = w.to_string();
            Proc::spawn(
                &format!("worker {w}"),
                "iso_child_worker",
                &[
                    (ROLE_ENV, id.as_ref()),
                    (DB_ENV, path.as_os_str()),
                    (GO_ENV, go.as_os_str()),
                    (TXNS_ENV, n.as_ref()),
                ],
            )
        })
        .collect();
    for c in &mut children {
        c.wait_ready("opened", "open failed: ", PATIENCE);
    }
    procs::request_stop(&go);
    let (mut history, mut busy) = (Vec::new(), 0);
    for c in &mut children {
        c.wait_for("its last transaction", procs::CHILD_LIFETIME, |l| {
            l.iter().any(|l| l == "done").then_some(())
        });
        let label = c.label().to_owned();
        busy += c.with_lines(|lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix("busy ")?.parse::<usize>().ok())
                .expect("a busy line")
        });
        history.extend(c.with_lines(|lines| {
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("txn "))
                .map(|l| Txn::decode(l).unwrap_or_else(|| panic!("{label}: bad line {l:?}")))
                .collect::<Vec<_>>()
        }));
    }
    let r = check(&history, &final_state(&path));
    print("3 processes x 2 threads", &r, busy);
    assert!(r.anomalies.is_empty(), "anomalies: {r}");
    assert_eq!(
        r.txns,
        3 * THREADS_PER_CHILD as usize * txns_per_worker(250),
        "every transaction recorded"
    );
    assert!(r.committed > 0 && r.edges > 0, "{r}");
}

// ---------------------------------------------------------------------------------------
// Runs against broken stores: the checker must catch them
// ---------------------------------------------------------------------------------------

#[test]
fn broken_store_reading_a_stale_snapshot_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iso.db");
    create(&path);
    let (r, busy) = run_threads(
        2,
        150,
        |_| Box::new(Nexus::new(&path, Broken::StaleReads)),
        || final_state(&path),
    );
    print("stale reads", &r, busy);
    // A transaction that read an old list and appended after newer versions: an
    // anti-dependency back to a transaction it also follows (read skew, lost update).
    assert!(r.has("G-single"), "{r}");
    assert!(r.has("read-your-writes"), "{r}");
}

#[test]
fn broken_store_dropping_appends_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iso.db");
    create(&path);
    let (r, busy) = run_threads(
        2,
        150,
        |_| Box::new(Nexus::new(&path, Broken::DropAppends)),
        || final_state(&path),
    );
    print("dropped appends", &r, busy);
    assert!(r.has("lost-update"), "{r}");
}

#[test]
fn broken_store_without_isolation_is_caught() {
    let lists = Arc::new(Mutex::new(BTreeMap::new()));
    let (r, busy) = run_threads(
        4,
        300,
        |_| {
            Box::new(Dirty {
                lists: Arc::clone(&lists),
                undo: Vec::new(),
                open: false,
            })
        },
        || lists.lock().unwrap().clone(),
    );
    print("read uncommitted", &r, busy);
    assert!(r.has("G1a"), "{r}");
    // Reads that saw others' appends come and go: within a transaction, or across two.
    assert!(
        r.has("non-repeatable-read") || r.has("incompatible-order"),
        "{r}"
    );
}

// ---------------------------------------------------------------------------------------
// The checker on histories built by hand, one per anomaly
// ---------------------------------------------------------------------------------------

use Op::{Append as A, Read as R};

fn c(ops: Vec<Op>) -> Txn {
    Txn::committed(0, ops)
}

fn state(lists: &[(Key, &[Val])]) -> BTreeMap<Key, Vec<Val>> {
    lists.iter().map(|(k, l)| (*k, l.to_vec())).collect()
}

/// The kinds of anomalies `check` reports, sorted.
fn kinds(h: &[Txn], fin: &[(Key, &[Val])]) -> Vec<&'static str> {
    let r = check(h, &state(fin));
    let mut k: Vec<_> = r.anomalies.iter().map(Anomaly::kind).collect();
    k.sort_unstable();
    k.dedup();
    k
}

#[test]
fn checker_accepts_a_serial_history() {
    let h = [
        c(vec![A(1, 1), R(1, vec![1]), A(2, 2)]),
        c(vec![R(1, vec![1]), A(1, 3), R(1, vec![1, 3])]),
        Txn::aborted(0, vec![A(1, 4), R(1, vec![1, 3, 4])]),
        c(vec![R(2, vec![2]), R(1, vec![1, 3])]),
    ];
    let r = check(&h, &state(&[(1, &[1, 3]), (2, &[2])]));
    assert!(r.anomalies.is_empty(), "{r}");
    assert_eq!((r.committed, r.aborted, r.allowed_g2), (3, 1, 0));
}

#[test]
fn checker_allows_write_skew() {
    // Both read x and y empty, each appends to one: a cycle of two adjacent rw edges (G2),
    // which snapshot isolation allows.
    let h = [
        c(vec![R(1, vec![]), R(2, vec![]), A(1, 1)]),
        c(vec![R(1, vec![]), R(2, vec![]), A(2, 2)]),
    ];
    let r = check(&h, &state(&[(1, &[1]), (2, &[2])]));
    assert!(r.anomalies.is_empty(), "{r}");
    assert_eq!(r.allowed_g2, 1, "{r}");
}

#[test]
fn checker_finds_aborted_and_intermediate_reads() {
    let h = [Txn::aborted(0, vec![A(1, 1)]), c(vec![R(1, vec![1])])];
    assert_eq!(kinds(&h, &[(1, &[])]), ["G1a"]);
    // Seeing 1 but not 2 also puts the reader between T0's two appends: an rw edge back to
    // T0 after the wr edge from it, a G-single cycle as well.
    let h = [c(vec![A(1, 1), A(1, 2)]), c(vec![R(1, vec![1])])];
    assert_eq!(kinds(&h, &[(1, &[1, 2])]), ["G-single", "G1b"]);
}

#[test]
fn checker_finds_incompatible_orders_lost_updates_and_garbage() {
    let h = [
        c(vec![A(1, 1)]),
        c(vec![A(1, 2)]),
        c(vec![R(1, vec![1, 2])]),
        c(vec![R(1, vec![2, 1])]),
    ];
    assert_eq!(kinds(&h, &[(1, &[1, 2])]), ["incompatible-order"]);
    let h = [c(vec![A(1, 1)]), c(vec![A(1, 2)])];
    assert_eq!(kinds(&h, &[(1, &[2])]), ["lost-update"]);
    let h = [c(vec![R(1, vec![7])])];
    assert_eq!(kinds(&h, &[(1, &[])]), ["garbage-read"]);
    let h = [c(vec![A(1, 1)]), c(vec![A(2, 1)])];
    assert!(kinds(&h, &[(1, &[1]), (2, &[1])]).contains(&"duplicate-append"));
    let h = [c(vec![A(1, 1)]), c(vec![R(1, vec![1, 1])])];
    assert!(kinds(&h, &[(1, &[1])]).contains(&"duplicate-elements"));
}

#[test]
fn checker_finds_inconsistency_within_a_transaction() {
    let h = [c(vec![R(1, vec![]), R(1, vec![2])]), c(vec![A(1, 2)])];
    assert_eq!(kinds(&h, &[(1, &[2])]), ["non-repeatable-read"]);
    let h = [c(vec![A(1, 1), R(1, vec![])])];
    assert_eq!(kinds(&h, &[(1, &[1])]), ["read-your-writes"]);
}

#[test]
fn checker_finds_g0_and_g1c() {
    // Write cycle: T0 before T1 on key 1, T1 before T0 on key 2.
    let h = [c(vec![A(1, 1), A(2, 4)]), c(vec![A(1, 2), A(2, 3)])];
    let r = check(&h, &state(&[(1, &[1, 2]), (2, &[3, 4])]));
    assert_eq!(kinds(&h, &[(1, &[1, 2]), (2, &[3, 4])]), ["G0"]);
    let Anomaly::G0(cycle) = &r.anomalies[0] else {
        panic!("{r}")
    };
    let mut members: Vec<usize> = cycle.iter().map(|(t, _)| *t).collect();
    members.sort_unstable();
    assert_eq!(members, [0, 1]);
    assert!(cycle.iter().all(|(_, d)| *d == Dep::WW));
    // T1 reads T0's append of key 1; T1 appends to key 2 before T0 does.
    let h = [c(vec![A(1, 1), A(2, 3)]), c(vec![R(1, vec![1]), A(2, 2)])];
    assert_eq!(kinds(&h, &[(1, &[1]), (2, &[2, 3])]), ["G1c"]);
}

#[test]
fn checker_finds_g_single() {
    // Read skew: T1 sees T0's append of key 2 but not its append of key 1.
    let h = [
        c(vec![A(1, 1), A(2, 2)]),
        c(vec![R(1, vec![]), R(2, vec![2])]),
    ];
    assert_eq!(kinds(&h, &[(1, &[1]), (2, &[2])]), ["G-single"]);
    // Lost update (P4): both read the empty list, then both append.
    let h = [
        c(vec![R(1, vec![]), A(1, 1)]),
        c(vec![R(1, vec![]), A(1, 2)]),
    ];
    assert_eq!(kinds(&h, &[(1, &[1, 2])]), ["G-single"]);
}

#[test]
fn checker_finds_g_nonadjacent() {
    // A long fork: read-only T0 and T2 see T1's and T3's appends in opposite orders. The
    // cycle T0 -rw-> T1 -wr-> T2 -rw-> T3 -wr-> T0 has two rw edges, not consecutive.
    let h = [
        c(vec![R(1, vec![]), R(4, vec![4])]),
        c(vec![A(1, 1), A(2, 2)]),
        c(vec![R(2, vec![2]), R(3, vec![])]),
        c(vec![A(3, 3), A(4, 4)]),
    ];
    let fin = [(1, &[1][..]), (2, &[2]), (3, &[3]), (4, &[4])];
    assert_eq!(kinds(&h, &fin), ["G-nonadjacent"]);
}

#[test]
fn checker_history_lines_round_trip() {
    for t in [
        c(vec![A(1, 1 << 40), R(2, vec![]), R(3, vec![5, 6, 7])]),
        Txn::aborted(7, vec![]),
    ] {
        assert_eq!(Txn::decode(&t.encode()), Some(t.clone()), "{}", t.encode());
    }
    assert_eq!(Txn::decode("x w0"), None);
}
