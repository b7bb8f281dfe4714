//! Helpers shared by the integration tests: the storage engine the test harness asks for
//! (`open_options` and friends), running the real `nexus` binary, and child processes of the
//! multi-process tests ([`procs`]).
#![allow(dead_code)] // each test crate uses its own subset

pub mod ffi;
pub mod procs;

use nexus::{Database, OpenOptions, StorageEngine};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The engine the test harness wants new database files to get: `scripts/test.sh` runs the
/// suite a second time with `NEXUSLITE_STORAGE=memlog`. That variable is a switch of the tests,
/// not of the library: they pass the choice on as the `storage` open option. `None`: the
/// library's default engine (`wasp`).
pub fn storage() -> Option<StorageEngine> {
    match std::env::var("NEXUSLITE_STORAGE").as_deref() {
        Ok("memlog") | Ok("wal") => Some(StorageEngine::MemLog),
        _ => None,
    }
}

/// The engine a database created by [`open_options`] gets.
pub fn engine() -> StorageEngine {
    storage().unwrap_or(StorageEngine::Wasp)
}

/// `OpenOptions::default()` with the harness's engine for new files; use it (or
/// `..common::open_options()`) wherever a test creates a database file.
pub fn open_options() -> OpenOptions {
    with_storage(OpenOptions::default())
}

/// `options` with the harness's engine for new files, unless they already name one.
pub fn with_storage(options: OpenOptions) -> OpenOptions {
    OpenOptions {
        storage: options.storage.or_else(storage),
        ..options
    }
}

/// The JSON options of `nexus_open` that ask for the harness's engine (`None`: defaults).
pub fn open_options_json() -> Option<&'static str> {
    storage().map(|e| match e {
        StorageEngine::MemLog => r#"{"storage":"wal"}"#,
        StorageEngine::Wasp => r#"{"storage":"wasp"}"#,
    })
}

/// Opens (creating if needed) the database at `path` with [`open_options`].
pub fn open(path: impl AsRef<Path>) -> Database {
    Database::open(path, open_options()).expect("open the database")
}

/// Runs `nexus ARGS` in `cwd` and returns what it did.
pub fn nexus(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nexus"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run nexus")
}

/// Runs `nexus ARGS`, which must succeed; returns its stdout.
pub fn ok(args: &[&str], cwd: &Path) -> String {
    let o = nexus(args, cwd);
    assert!(
        o.status.success(),
        "nexus {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A new P-256 private key (PKCS#8 PEM) for an encrypted database.
pub fn new_key() -> nexus::crypto::PrivatePem {
    let (private, _public) = nexus::crypto::keygen(None).expect("keygen");
    nexus::crypto::PrivatePem::new(private.to_string())
}

/// Writes `key`'s PEM to `dir/NAME` and returns the path: child processes get the path of
/// the key file (in an environment variable), never the key itself.
pub fn write_key_file(dir: &Path, name: &str, key: &nexus::crypto::PrivatePem) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, key.as_str()).expect("write the key file");
    path
}

/// The key in the file that the environment variable `var` names (`None` when unset).
pub fn key_from_env(var: &str) -> Option<nexus::crypto::PrivatePem> {
    let path = std::env::var_os(var)?;
    let pem = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read the key file {}: {e}", Path::new(&path).display()));
    Some(nexus::crypto::PrivatePem::new(pem))
}

/// Rewrites the format version in the (plain, checksummed) header of a closed database, as
/// an earlier build would have written it.
pub fn set_format_version(path: &Path, version: u32) {
    let mut b = std::fs::read(path).unwrap();
    b[16..20].copy_from_slice(&version.to_le_bytes());
    let crc = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, &b).unwrap();
}

/// Where `needle` first occurs in `hay`.
pub fn find_bytes(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay.len() - at < needle.len() {
            return None;
        }
        if &hay[at + 1..at + needle.len()] == rest {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Panics when `marker` occurs in any byte of the database `db`'s files (`NAME.db`,
/// `NAME.wasp`; a missing log is skipped). `context` starts the message.
pub fn assert_marker_absent(db: &Path, marker: &str, context: &str) {
    for p in [db.to_path_buf(), db.with_extension("wasp")] {
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        if let Some(at) = find_bytes(&bytes, marker.as_bytes()) {
            panic!(
                "{context}: {} holds the marker {marker:?} in the clear at byte {at}",
                p.display()
            );
        }
    }
}

/// Whether a test of an encrypted database runs in this pass: encryption is a feature of
/// `wasp`, so such a test always uses `wasp`, and the harness's `memlog` pass would only run
/// it a second time: there it says so and is skipped.
pub fn encrypted_tests_run(test: &str) -> bool {
    if engine() == StorageEngine::MemLog {
        eprintln!(
            "{test}: skipped under NEXUSLITE_STORAGE=memlog (an encrypted database is always \
             wasp; the default pass runs it)"
        );
        return false;
    }
    true
}

/// A proptest configuration for the integration tests' property tests: `cases` cases from a
/// fixed `seed` (the same cases every `make test`), unless `PROPTEST_CASES` or
/// `PROPTEST_RNG_SEED` say otherwise (the long mode, e.g. `PROPTEST_CASES=1000
/// PROPTEST_RNG_SEED=$RANDOM cargo test --release --test integration indexes::prop_`). No regression
/// files: a failure is reported shrunk and found again from the same seed.
pub fn prop_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(seed);
    }
    config.failure_persistence = None;
    // Shrinking reruns whole cases: enough tries to get a failure down to a few steps.
    config.max_shrink_iters = 2048;
    config
}

/// The name libtest gives the test function `name` of the file at `caller`: the bare name in a
/// test binary of its own (`tests/FILE.rs`), `FILE::name` in the integration binary, whose
/// modules are the files of `tests/integration/`. For tests that run one test function of
/// their own binary as a child process (`--exact NAME`).
pub fn test_name_at(caller: &std::panic::Location<'_>, name: &str) -> String {
    let file = std::path::Path::new(caller.file());
    match (file.parent().and_then(|d| d.file_name()), file.file_stem()) {
        (Some(dir), Some(stem)) if dir == "integration" => {
            format!("{}::{name}", stem.to_string_lossy())
        }
        _ => name.to_owned(),
    }
}

/// [`test_name_at`] of the calling file.
#[track_caller]
pub fn test_name(name: &str) -> String {
    test_name_at(std::panic::Location::caller(), name)
}

/// After a crash of a writer whose inserts into `items` (ids `k{n:08}`) and increments of
/// `counters.c.v` were acknowledged: every acknowledged insert is stored once, and the counter
/// is at least `min_counter` (writes not acknowledged may survive too). Returns the stored
/// documents of `items` and the counter's value. Shared by the SIGKILL loops.
pub fn check_acknowledged(
    db: &Database,
    round: usize,
    expected_inserts: &[i64],
    min_counter: i64,
) -> (Vec<nexus::Document>, i64) {
    use bson::{doc, Bson};
    let stored: Vec<nexus::Document> = db
        .collection("items")
        .find(&doc! {}, Default::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for d in &stored {
        let id = d.id().and_then(Bson::as_str).unwrap().to_owned();
        assert!(seen.insert(id.clone()), "round {round}: {id} stored twice");
    }
    for n in expected_inserts {
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
    (stored, v)
}
