//! The `nexus` tool on a database an application has open and keeps writing (WASP): `find`,
//! `count`, `stats`, `check`, `export` and `backup` work meanwhile, see the application's
//! commits, and the application goes on unharmed. The application is a child process (this
//! test binary run again) that inserts until a stop file appears.

use crate::common;

use bson::doc;
use common::ok;
use nexus::{Database, Document, OpenOptions, StorageEngine};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const APP_ENV: &str = "NEXUS_CLI_BESIDE_APP_DB";

fn wasp() -> OpenOptions {
    OpenOptions {
        storage: Some(StorageEngine::Wasp),
        // Small: the application checkpoints (replacing the log) while the tool reads.
        checkpoint_log_bytes: Some(32 * 1024),
        ..OpenOptions::default()
    }
}

/// The application: inserts `e0`, `e1`, ... and prints `ack N` after each, until the stop
/// file appears; then closes cleanly.
#[test]
fn app_writer() {
    let Ok(path) = std::env::var(APP_ENV) else {
        return;
    };
    let db = Database::open(&path, wasp()).expect("app open");
    let c = db.collection("events");
    let stop = format!("{path}.stop");
    for n in 0.. {
        if Path::new(&stop).exists() {
            break;
        }
        let d = Document::builder()
            .field("_id", format!("e{n:06}"))
            .field("n", n)
            .field("pad", "x".repeat(200))
            .build();
        c.insert(d).expect("app insert");
        println!("ack {n}");
        std::thread::sleep(Duration::from_millis(1));
    }
    db.close().expect("app close");
}

/// The child and the last acknowledged insert it printed.
struct App {
    child: Child,
    acks: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl App {
    fn start(path: &Path) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                common::test_name("app_writer").as_str(),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(APP_ENV, path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the application");
        let out = child.stdout.take().unwrap();
        let acks = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(-1));
        let a = std::sync::Arc::clone(&acks);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                    a.store(n, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        Self { child, acks }
    }

    fn acked(&self) -> i64 {
        self.acks.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn wait_for(&self, n: i64) {
        let until = Instant::now() + Duration::from_secs(60);
        while self.acked() < n {
            assert!(
                Instant::now() < until,
                "the application stalled at {}",
                self.acked()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_tool_reads_checks_exports_and_backs_up_while_the_application_writes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("app.db");
    let app = App::start(&path);
    app.wait_for(200);

    // Every acknowledged insert before the call is seen by it.
    let before = app.acked();
    let count: i64 = ok(&["count", "app.db", "events"], d)
        .trim()
        .parse()
        .unwrap();
    assert!(
        count > before,
        "count {count} misses acknowledged inserts up to {before}"
    );
    let found = ok(
        &["find", "app.db", "events", &format!("{{n: {before}}}")],
        d,
    );
    assert!(found.contains(&format!("e{before:06}")), "{found}");
    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", "app.db"], d)).unwrap();
    assert_eq!(stats["storage"]["backend"], "wasp", "{stats}");

    // The check waits for the application's transaction in flight, never for its exit.
    let report: serde_json::Value = serde_json::from_str(&ok(&["check", "app.db"], d)).unwrap();
    assert_eq!(report["ok"], true, "{report}");

    // Export and backup: a consistent copy holding at least what was acknowledged.
    let before = app.acked();
    ok(&["export", "app.db", "events", "events.ndjson", "-q"], d);
    let lines = std::fs::read_to_string(d.join("events.ndjson")).unwrap();
    assert!(
        lines.lines().count() as i64 > before,
        "export is missing acknowledged inserts"
    );
    let before = app.acked();
    ok(&["backup", "app.db", "copy.db"], d);
    let copied: i64 = ok(&["count", "copy.db", "events"], d)
        .trim()
        .parse()
        .unwrap();
    assert!(
        copied > before,
        "backup {copied} misses acknowledged inserts up to {before}"
    );

    // The application kept going all along, and stops cleanly.
    app.wait_for(app.acked() + 100);
    std::fs::write(d.join("app.db.stop"), b"").unwrap();
    let mut app = app;
    let status = app.child.wait().unwrap();
    assert!(status.success(), "the application failed: {status}");
    let last = app.acked();
    let db = Database::open(&path, wasp()).unwrap();
    let c = db.collection("events");
    assert_eq!(c.count(&doc! {}).unwrap() as i64, last + 1);
    assert_eq!(db.check().unwrap()["ok"], true);
}
