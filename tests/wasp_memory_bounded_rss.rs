//! Bounded memory, measured as the process's resident set (not the page cache's own
//! counter): a child process writes a WASP database 16x its page-cache budget (8 MiB budget,
//! ~128 MB of documents) and then reads every document back (a get per id, then a full
//! scan); its memory stays near the budget. Two WASP runs:
//! - `wasp-pread` (`mmap` off): every page is read into the process, and the peak RSS (VmHWM
//!   from /proc/self/status) must stay near the budget;
//! - `wasp` (the default, readers search pages through a memory map of the file): the mapped
//!   pages the reads touch are counted in RSS as file pages (RssFile: the OS page cache,
//!   shared and dropped by the kernel under memory pressure, as for LMDB or SQLite with
//!   `mmap_size`), so the bound is asserted on the process's own memory, RssAnon, sampled
//!   every 1,000 operations and at the end of each phase.
//!
//! The same workload on the `memlog` engine, which keeps every document in memory, is run too
//! for contrast (reported, not asserted). `NEXUS_RSS_REPORT=FILE` writes the figures to FILE
//! (scripts/bench-storage.sh puts them in benchmarks/storage.md).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless
)] // test arithmetic on small values

use nexus::{CacheConfig, Database, Document, DocumentId, OpenOptions, StorageEngine, SyncMode};
use std::process::Command;

const BUDGET: u64 = 8 * 1024 * 1024;
const DOCS: i64 = 128_000;
const DOC_BYTES: usize = 1000;
const CHILD_DIR: &str = "NEXUS_RSS_CHILD_DIR";
const CHILD_ENGINE: &str = "NEXUS_RSS_CHILD_ENGINE";

/// Memory of this process in KiB, from /proc/self/status.
#[derive(Clone, Copy, Default)]
struct Mem {
    rss: u64,
    peak: u64,
    anon: u64,
    file: u64,
}

fn mem() -> Mem {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

/// The child's report of a phase: its memory at the end, with `anon` the largest RssAnon
/// sampled during the phase.
fn report_phase(phase: &str, anon_peak: u64) {
    let m = mem();
    println!(
        "\nRSS {phase} {} {} {} {}",
        m.rss,
        m.peak,
        anon_peak.max(m.anon),
        m.file
    );
}

/// Resets VmHWM to the current RSS (Linux >= 4.0; ignored where unsupported).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn doc(i: i64) -> Document {
    let pad: String =
        std::iter::repeat_n(char::from(b'a' + (i % 26) as u8), DOC_BYTES - 60).collect();
    Document::builder()
        .field("_id", format!("doc{i:08}"))
        .field("n", i)
        .field("pad", pad)
        .build()
}

/// The child's workload; prints `phase rss_kib peak_kib` lines.
#[test]
#[ignore = "run by rss_stays_near_the_page_cache_budget in a child process"]
fn rss_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let engine = std::env::var(CHILD_ENGINE).unwrap_or_default();
    let storage = match engine.as_str() {
        "memlog" => StorageEngine::MemLog,
        _ => StorageEngine::Wasp,
    };
    let path = std::path::Path::new(&dir).join("big.db");
    let opts = OpenOptions {
        storage: Some(storage),
        sync: SyncMode::Off,
        page_cache_bytes: Some(BUDGET),
        cache: Some(CacheConfig {
            capacity: 100,
            ..Default::default()
        }),
        sweeper: Some(nexus::SweeperConfig {
            interval_ms: 0,
            ..Default::default()
        }),
        mmap: Some(engine != "wasp-pread"),
        ..OpenOptions::default()
    };
    let db = Database::open(&path, opts).unwrap();
    report_phase("open", 0);
    reset_peak();
    let mut anon = 0;
    for batch in 0..DOCS / 1000 {
        db.transaction(|db| {
            for i in batch * 1000..(batch + 1) * 1000 {
                db.collection("c").insert(doc(i))?;
            }
            Ok(())
        })
        .unwrap();
        anon = anon.max(mem().anon);
    }
    db.checkpoint().unwrap();
    report_phase("write", anon);
    reset_peak();
    let c = db.collection("c");
    let mut anon = 0;
    for i in 0..DOCS {
        let got = c
            .get(&DocumentId::from_str_id(&format!("doc{i:08}")).unwrap())
            .unwrap();
        assert!(got.is_some(), "doc{i:08} missing");
        if i % 1000 == 0 {
            anon = anon.max(mem().anon);
        }
    }
    report_phase("get", anon);
    reset_peak();
    assert_eq!(c.count_json(r#"{"n":{"$gte":0}}"#).unwrap(), DOCS as u64);
    report_phase("scan", 0);
    db.close().unwrap();
    let mut bytes = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        bytes += e.unwrap().metadata().unwrap().len();
    }
    println!("\nRSS files {bytes} {bytes} {bytes} {bytes}");
}

/// Runs the child for `engine`; returns (phase, memory) rows (for "files", every field is
/// the bytes on disk).
fn run_child(engine: &str) -> Vec<(String, Mem)> {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rss_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_ENGINE, engine)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_once("RSS ")?.1.split_whitespace().collect();
            let n = |i: usize| f.get(i)?.parse().ok();
            Some((
                f.first()?.to_string(),
                Mem {
                    rss: n(1)?,
                    peak: n(2)?,
                    anon: n(3)?,
                    file: n(4)?,
                },
            ))
        })
        .collect()
}

#[test]
fn rss_stays_near_the_page_cache_budget() {
    let mut report = format!(
        "{DOCS} documents of ~{DOC_BYTES} bytes (1,000 per transaction, sync off), page_cache_bytes \
         {} MiB, document cache 100 documents; then a get per id and a filtered count (full \
         scan). Per phase of a child process: RSS at its end, peak RSS (VmHWM, reset between \
         phases), the process's own memory (RssAnon, largest sample) and mapped file pages \
         (RssFile, the OS page cache); \"growth\" is what the bound applies to, minus its value \
         right after open: peak RSS for wasp-pread and memlog, RssAnon for wasp (memory-mapped \
         reads, the default).\n",
        BUDGET >> 20
    );
    let mut growth_of = std::collections::BTreeMap::new();
    let mut wasp_files = 0;
    for engine in ["wasp", "wasp-pread", "memlog"] {
        let rows = run_child(engine);
        let base = rows.iter().find(|r| r.0 == "open").expect("open row").1;
        let bound = |m: &Mem, base: &Mem| {
            if engine == "wasp" {
                m.anon.saturating_sub(base.anon)
            } else {
                m.peak.saturating_sub(base.rss)
            }
        };
        for (phase, m) in &rows {
            if phase == "files" {
                report += &format!("{engine:10} files on disk: {:.1} MB\n", m.rss as f64 / 1e6);
                if engine != "memlog" {
                    wasp_files = wasp_files.max(m.rss);
                }
                continue;
            }
            let growth = bound(m, &base);
            let mib = |k: u64| k as f64 / 1024.0;
            report += &format!(
                "{engine:10} {phase:6} rss {:7.1} MiB  peak {:7.1} MiB  anon {:7.1} MiB  \
                 file {:7.1} MiB  growth {:7.1} MiB\n",
                mib(m.rss),
                mib(m.peak),
                mib(m.anon),
                mib(m.file),
                mib(growth)
            );
            let g = growth_of.entry(engine).or_insert(0);
            *g = (*g).max(growth * 1024);
        }
    }
    println!("{report}");
    if let Ok(p) = std::env::var("NEXUS_RSS_REPORT") {
        std::fs::write(p, &report).unwrap();
    }
    assert!(
        wasp_files >= 8 * BUDGET,
        "the database ({wasp_files} bytes) is not 8x the budget\n{report}"
    );
    // Near the budget: the page cache (8 MiB), dirty nodes before a checkpoint (at most half
    // the budget), one transaction's documents and allocator slack; far below the data.
    for engine in ["wasp", "wasp-pread"] {
        let growth = growth_of[engine];
        assert!(
            growth <= 4 * BUDGET,
            "{engine}: memory grew {growth} bytes, more than 4x the {BUDGET}-byte budget\n{report}"
        );
    }
}
