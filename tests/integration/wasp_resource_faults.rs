//! Real resource faults (#25 item 5), not injected ones: the OS refuses a write.
//!
//! * `RLIMIT_FSIZE`: a child process lowers its file size limit to a little above its
//!   database's files and ignores `SIGXFSZ` (so `write` returns `EFBIG` instead of the signal
//!   killing it), then inserts until a write fails. The failure must be a clean `NEXUS_IO`
//!   class error naming the cause ("File too large"), the engine sticky from then on (every
//!   later write refused, also one that would fit, reads still answered), and the failed
//!   insert invisible. A new process (without the limit) reopens: every acknowledged insert
//!   is there, the integrity check is clean, writes work again. Run through the Rust API and
//!   through the C ABI (`nexus_insert`'s status code and `nexus_errmsg`), once with the log
//!   growing into the limit and once with checkpoints growing `NAME.db` into it.
//! * A full file system: a 2 MiB tmpfs (mounting needs root; where `mount` fails, the test
//!   says why and skips); the child inserts until `ENOSPC`, with the same expectations; then
//!   the tmpfs is remounted larger (space freed) and the database reopened and checked.
//!
//! Each run prints a `RESULT` line, which `make soak` copies into
//! benchmarks/reliability-soak.md.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson};
use common::ffi::c;
use common::procs::{Proc, PATIENCE};
use nexus::ffi::db::{nexus_close, nexus_db, nexus_open};
use nexus::ffi::document::{nexus_count, nexus_insert, nexus_update};
use nexus::ffi::status::{nexus_errmsg, NEXUS_IO, NEXUS_OK};
use nexus::{Database, Document, Error, OpenOptions};
use std::ffi::{CStr, OsStr};
use std::path::Path;
use std::process::Command;

const DB_ENV: &str = "NEXUS_RESOURCE_DB";
/// Bytes the child may add to its largest database file before `RLIMIT_FSIZE` stops it
/// (unset: no limit, the file system fills up).
const HEADROOM_ENV: &str = "NEXUS_RESOURCE_HEADROOM";
/// `rust` or `c`: the API the child writes through.
const API_ENV: &str = "NEXUS_RESOURCE_API";
/// The `checkpoint_log_bytes` open option of the child (unset: the default).
const CKPT_ENV: &str = "NEXUS_RESOURCE_CKPT";
/// The child's inserts stop here if no write failed (the limit did not work).
const MAX_INSERTS: u64 = 200_000;

fn doc_json(i: u64) -> String {
    // 2 KiB of padding: the files grow quickly, so the limit is reached in a few hundred
    // inserts.
    format!(
        r#"{{"_id": "d{i:07}", "i": {i}, "pad": "{}"}}"#,
        "p".repeat(2048)
    )
}

/// The open options as JSON (the C ABI) and as [`OpenOptions`].
fn options_json() -> String {
    let mut fields = Vec::new();
    if let Some(j) = common::open_options_json() {
        fields.push(j.trim_matches(['{', '}']).to_owned());
    }
    if let Ok(b) = std::env::var(CKPT_ENV) {
        fields.push(format!(r#""checkpoint_log_bytes": {b}"#));
    }
    format!("{{{}}}", fields.join(", "))
}

fn options() -> OpenOptions {
    OpenOptions::from_json(Some(&options_json())).expect("open options")
}

/// The database as the child writes it: through the Rust API or the C ABI. Each call returns
/// the `NEXUS_*` status and the error message (empty on success); `is_previous_io` says
/// whether a Rust error was [`Error::PreviousIo`] (the C ABI cannot tell: `None`).
enum Handle {
    Rust(Database),
    C(*mut nexus_db),
}

struct Outcome {
    code: i32,
    msg: String,
    is_previous_io: Option<bool>,
}

fn from_result<T>(r: nexus::Result<T>) -> Outcome {
    match r {
        Ok(_) => Outcome {
            code: NEXUS_OK,
            msg: String::new(),
            is_previous_io: Some(false),
        },
        Err(e) => Outcome {
            code: e.code(),
            msg: e.to_string(),
            is_previous_io: Some(matches!(e, Error::PreviousIo(_))),
        },
    }
}

fn c_outcome(code: i32) -> Outcome {
    let msg = if code == NEXUS_OK {
        String::new()
    } else {
        // SAFETY: the library's thread-local message, valid until the next call.
        unsafe { CStr::from_ptr(nexus_errmsg()) }
            .to_string_lossy()
            .into_owned()
    };
    Outcome {
        code,
        msg,
        is_previous_io: None,
    }
}

impl Handle {
    fn open(path: &str, api: &str) -> Result<Handle, String> {
        if api == "c" {
            let mut db = std::ptr::null_mut();
            let (p, o) = (c(path), c(&options_json()));
            // SAFETY: valid strings and a writable out-pointer.
            let rc = unsafe { nexus_open(p.as_ptr(), o.as_ptr(), &mut db) };
            if rc != NEXUS_OK {
                return Err(c_outcome(rc).msg);
            }
            Ok(Handle::C(db))
        } else {
            Database::open(path, options())
                .map(Handle::Rust)
                .map_err(|e| e.to_string())
        }
    }

    fn insert(&self, i: u64) -> Outcome {
        let json = doc_json(i);
        match self {
            Handle::Rust(db) => {
                let d = Document::from_json(&json).expect("a document");
                from_result(db.collection("c").insert(d))
            }
            Handle::C(db) => {
                let (coll, j) = (c("c"), c(&json));
                // SAFETY: a live handle, valid strings, no id wanted.
                c_outcome(unsafe {
                    nexus_insert(*db, coll.as_ptr(), j.as_ptr(), std::ptr::null_mut())
                })
            }
        }
    }

    /// A write that needs no new space (a small field of the first document).
    fn small_update(&self) -> Outcome {
        match self {
            Handle::Rust(db) => from_result(db.collection("c").update(
                &doc! {"_id": "d0000000"},
                &doc! {"$set": {"x": 1}},
                Default::default(),
            )),
            Handle::C(db) => {
                let (coll, f, u) = (
                    c("c"),
                    c(r#"{"_id": "d0000000"}"#),
                    c(r#"{"$set": {"x": 1}}"#),
                );
                let (mut m, mut n) = (0u64, 0u64);
                // SAFETY: a live handle, valid strings, writable out-pointers.
                c_outcome(unsafe {
                    nexus_update(
                        *db,
                        coll.as_ptr(),
                        f.as_ptr(),
                        u.as_ptr(),
                        0,
                        &mut m,
                        &mut n,
                    )
                })
            }
        }
    }

    fn count(&self, filter: &str) -> Result<u64, String> {
        match self {
            Handle::Rust(db) => db
                .collection("c")
                .count(&Document::from_json(filter).expect("a filter").into_bson())
                .map_err(|e| e.to_string()),
            Handle::C(db) => {
                let (coll, f) = (c("c"), c(filter));
                let mut n = 0u64;
                // SAFETY: a live handle, valid strings, a writable out-pointer.
                let rc = unsafe { nexus_count(*db, coll.as_ptr(), f.as_ptr(), &mut n) };
                if rc == NEXUS_OK {
                    Ok(n)
                } else {
                    Err(c_outcome(rc).msg)
                }
            }
        }
    }

    /// Closes; the outcome (a close after the failure may fail too: it is only reported).
    fn close(self) -> Outcome {
        match self {
            Handle::Rust(db) => from_result(db.close()),
            // SAFETY: a live handle, given back once.
            Handle::C(db) => c_outcome(unsafe { nexus_close(db) }),
        }
    }
}

/// The largest file in `dir`.
fn largest_file(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read the directory")
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// The child: opens, inserts until a write fails, then probes the sticky rule and reads.
/// Runs only inside a child process (the env var names its database).
#[test]
fn resource_child_writer() {
    let Ok(path) = std::env::var(DB_ENV) else {
        return;
    };
    let api = std::env::var(API_ENV).unwrap_or_else(|_| "rust".into());
    let db = match Handle::open(&path, &api) {
        Ok(db) => db,
        Err(e) => {
            println!("open failed: {}", e.replace('\n', " "));
            panic!("open failed: {e}");
        }
    };
    println!("opened");
    // Some documents before the limit, so that the files have their working size.
    for i in 0..20 {
        let o = db.insert(i);
        assert_eq!(o.code, NEXUS_OK, "insert {i} before the limit: {}", o.msg);
        println!("ack {i}");
    }
    if let Ok(headroom) = std::env::var(HEADROOM_ENV) {
        let headroom: u64 = headroom.parse().expect("a number of bytes");
        let dir = Path::new(&path).parent().expect("the database's directory");
        let limit = largest_file(dir) + headroom;
        // SAFETY: plain libc calls with valid arguments. SIGXFSZ ignored: a write past the
        // limit then fails with EFBIG instead of the signal ending the process.
        unsafe {
            assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
            lim.rlim_cur = limit;
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0, "setrlimit");
        }
        println!("limit {limit}");
    }
    let mut failed = None;
    for i in 20..MAX_INSERTS {
        let o = db.insert(i);
        if o.code == NEXUS_OK {
            println!("ack {i}");
            continue;
        }
        println!("fail {i} {} {}", o.code, o.msg.replace('\n', " "));
        failed = Some(i);
        break;
    }
    let dir = Path::new(&path).parent().expect("the database's directory");
    let mut sizes: Vec<String> = std::fs::read_dir(dir)
        .expect("read the directory")
        .filter_map(|e| {
            let e = e.ok()?;
            Some(format!(
                "{} {}",
                e.file_name().to_string_lossy(),
                e.metadata().ok()?.len()
            ))
        })
        .collect();
    sizes.sort();
    println!("sizes {}", sizes.join(", "));
    let Some(failed) = failed else {
        println!("never failed");
        return;
    };
    // The sticky rule: a write that needs no new space is refused as well.
    let o = db.small_update();
    println!(
        "sticky {} {} {}",
        o.code,
        o.is_previous_io
            .map_or("-", |p| if p { "previous" } else { "other" }),
        o.msg.replace('\n', " ")
    );
    // Reads are answered; the failed insert is not among them.
    match db.count("{}") {
        Ok(n) => println!("reads {n}"),
        Err(e) => println!("reads failed {}", e.replace('\n', " ")),
    }
    match db.count(&format!(r#"{{"_id": "d{failed:07}"}}"#)) {
        Ok(n) => println!("failed visible {n}"),
        Err(e) => println!("reads failed {}", e.replace('\n', " ")),
    }
    let o = db.close();
    println!("closed {} {}", o.code, o.msg.replace('\n', " "));
    println!("done");
}

/// What the child reported.
struct Report {
    acked: Vec<u64>,
    limit: Option<u64>,
    failed: u64,
    fail_code: i32,
    fail_msg: String,
    sticky: String,
    reads: u64,
    closed: String,
    /// The files and their sizes when the write failed.
    sizes: String,
}

/// Runs the child on `path` (`headroom`: the RLIMIT_FSIZE case) and checks what it saw.
fn run_child(path: &Path, api: &str, headroom: Option<u64>, ckpt: Option<u64>) -> Report {
    let headroom_s = headroom.map(|h| h.to_string());
    let ckpt_s = ckpt.map(|b| b.to_string());
    let mut envs: Vec<(&str, &OsStr)> =
        vec![(DB_ENV, path.as_os_str()), (API_ENV, OsStr::new(api))];
    if let Some(h) = &headroom_s {
        envs.push((HEADROOM_ENV, OsStr::new(h)));
    }
    if let Some(b) = &ckpt_s {
        envs.push((CKPT_ENV, OsStr::new(b)));
    }
    let label = format!("{api} writer");
    let mut child = Proc::spawn(&label, "resource_child_writer", &envs);
    child.wait_ready("opened", "open failed: ", PATIENCE);
    child.wait_for("its end", PATIENCE, |l| {
        l.iter()
            .any(|l| l == "done" || l == "never failed")
            .then_some(())
    });
    let st = child.wait_exit(PATIENCE);
    assert!(st.success(), "{}", child.describe());
    let lines = child.lines();
    let ctx = child.describe();
    assert!(
        !lines.iter().any(|l| l == "never failed"),
        "{MAX_INSERTS} inserts and no write failed: {ctx}"
    );
    let field = |prefix: &str| -> String {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no line '{prefix}...': {ctx}"))
            .to_owned()
    };
    let acked: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .map(|n| n.parse().unwrap())
        .collect();
    let fail = field("fail ");
    let mut parts = fail.splitn(3, ' ');
    let failed: u64 = parts.next().unwrap().parse().unwrap();
    let fail_code: i32 = parts.next().unwrap().parse().unwrap();
    let fail_msg = parts.next().unwrap_or_default().to_owned();
    let reads = field("reads ");
    let reads: u64 = reads
        .parse()
        .unwrap_or_else(|_| panic!("reads after the failure: {reads}: {ctx}"));
    let report = Report {
        limit: lines
            .iter()
            .find_map(|l| l.strip_prefix("limit "))
            .map(|n| n.parse().unwrap()),
        failed,
        fail_code,
        fail_msg,
        sticky: field("sticky "),
        reads,
        closed: field("closed "),
        sizes: field("sizes "),
        acked,
    };
    // Each insert was acknowledged in turn until the failure.
    assert_eq!(report.acked, (0..failed).collect::<Vec<_>>(), "{ctx}");
    assert!(
        failed > 20,
        "the first insert past the limit failed already: {ctx}"
    );
    assert_eq!(report.fail_code, NEXUS_IO, "the failed insert: {ctx}");
    assert_eq!(
        report.sticky.split(' ').next(),
        Some(NEXUS_IO.to_string().as_str()),
        "a write after the failure must be refused: {ctx}"
    );
    if api == "rust" {
        assert_eq!(
            report.sticky.split(' ').nth(1),
            Some("previous"),
            "the refusal is the sticky PreviousIo: {ctx}"
        );
    }
    assert_eq!(report.reads, failed, "reads after the failure: {ctx}");
    assert_eq!(
        field("failed visible "),
        "0",
        "the failed insert is visible: {ctx}"
    );
    report
}

/// A new process's view (this one never had the limit): every acknowledged insert is there
/// once, the check is clean, writes work and survive another reopen.
fn recover_and_check(path: &Path, r: &Report, ctx: &str) -> String {
    let db = Database::open(path, options()).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    let c = db.collection("c");
    let stored = c.count(&doc! {}).unwrap();
    for i in &r.acked {
        let d = c
            .find_one(&doc! {"_id": format!("d{i:07}")})
            .unwrap()
            .unwrap_or_else(|| panic!("{ctx}: acknowledged insert {i} lost"));
        assert_eq!(d.get("i"), Some(&Bson::Int32(*i as i32)), "{ctx}");
    }
    // The failed insert was never acknowledged: present or not, nothing past it is.
    assert!(
        stored == r.acked.len() as u64 || stored == r.acked.len() as u64 + 1,
        "{ctx}: {stored} documents after {} acknowledged inserts",
        r.acked.len()
    );
    let failed_there = stored > r.acked.len() as u64;
    let report = db.check().unwrap_or_else(|e| panic!("{ctx}: check: {e}"));
    assert_eq!(report["ok"], true, "{ctx}: {report}");
    for i in 0..10 {
        c.insert(doc! {"_id": format!("after{i}")}.into())
            .unwrap_or_else(|e| panic!("{ctx}: a write after the reopen: {e}"));
    }
    db.close().unwrap();
    let db = Database::open(path, options()).unwrap();
    assert_eq!(
        db.collection("c").count(&doc! {}).unwrap(),
        stored + 10,
        "{ctx}"
    );
    db.close().unwrap();
    format!(
        "{} acknowledged inserts all recovered, the failed one {}, check clean, writes work again",
        r.acked.len(),
        if failed_there {
            "recovered too (it reached the log whole)"
        } else {
            "absent"
        }
    )
}

fn fsize_case(api: &str, ckpt: Option<u64>, db_reaches_limit: bool, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fsize.db");
    common::open(&path).close().unwrap();
    // 300 KiB over the largest file: about 140 inserts of 2 KiB.
    let r = run_child(&path, api, Some(300 * 1024), ckpt);
    assert!(
        r.fail_msg.contains("File too large"),
        "the message names the cause: {}",
        r.fail_msg
    );
    let ctx = format!("RLIMIT_FSIZE, {api}, {what}");
    if db_reaches_limit && common::engine() == nexus::StorageEngine::Wasp {
        // The checkpoints' page writes met the limit first (NAME.db at it): a failed
        // checkpoint keeps the log, which then grew into the limit itself.
        let db_len: u64 = r
            .sizes
            .split(", ")
            .find_map(|f| f.strip_prefix("fsize.db "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let limit = r.limit.unwrap_or(0);
        assert!(
            db_len + 64 * 1024 > limit,
            "{ctx}: NAME.db never came near the limit {limit}: {}",
            r.sizes
        );
    }
    let recovered = recover_and_check(&path, &r, &ctx);
    println!(
        "RESULT RLIMIT_FSIZE ({api} API, {what}, engine {:?}): limit {} bytes; insert {} failed \
         (files: {}) with code {} \"{}\"; the next write refused: \"{}\"; reads answered ({} documents); \
         close: \"{}\"; reopened without the limit: {recovered}",
        common::engine(),
        r.limit.unwrap_or(0),
        r.failed,
        r.sizes,
        r.fail_code,
        r.fail_msg,
        r.sticky,
        r.reads,
        r.closed,
    );
}

#[test]
fn past_rlimit_fsize_the_log_fails_cleanly_and_loses_nothing() {
    // A checkpoint only when the log passes 64 MiB: the log grows into the limit.
    fsize_case(
        "rust",
        Some(64 << 20),
        false,
        "the log grows into the limit",
    );
}

#[test]
fn past_rlimit_fsize_a_checkpoint_fails_cleanly_and_loses_nothing() {
    // Checkpoints every 16 KiB of log: NAME.db grows into the limit.
    fsize_case(
        "rust",
        Some(16 * 1024),
        true,
        "checkpoints every 16 KiB of log grow NAME.db into the limit, then the log (kept by \
         the failed checkpoints) grows into it",
    );
}

#[test]
fn past_rlimit_fsize_the_c_abi_returns_nexus_io() {
    fsize_case("c", None, false, "default options");
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `Err`: why it could not be mounted.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: nothing of this test holds a file there any more, but never leave a mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_file_system_fails_cleanly_and_loses_nothing() {
    let fs = match Tmpfs::mount("2m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "full_file_system_fails_cleanly_and_loses_nothing: skipped: no small file \
                 system can be made here: {why}"
            );
            println!("RESULT ENOSPC: skipped: {why}");
            return;
        }
    };
    let path = fs.path().join("full.db");
    common::open(&path).close().unwrap();
    let r = run_child(&path, "rust", None, Some(64 * 1024));
    assert!(
        r.fail_msg.contains("No space left on device"),
        "the message names the cause: {}",
        r.fail_msg
    );
    // Space freed: the file system grows, a new process (this one) reopens.
    fs.resize("64m");
    let recovered = recover_and_check(&path, &r, "ENOSPC");
    println!(
        "RESULT ENOSPC (2 MiB tmpfs, Rust API, engine {:?}): insert {} failed (files: {}) with code {} \"{}\"; \
         the next write refused: \"{}\"; reads answered ({} documents); close: \"{}\"; \
         after the tmpfs was enlarged: {recovered}",
        common::engine(),
        r.failed,
        r.sizes,
        r.fail_code,
        r.fail_msg,
        r.sticky,
        r.reads,
        r.closed,
    );
}
