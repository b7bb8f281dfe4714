//! The `nexus` CLI refuses to write an output file (an export, an import's error sidecar,
//! a backup) over a file of the database it has open, or over the import's own input: it
//! exits 1 with one line on stderr, writes nothing, and the database still opens with every
//! document. (It used to exit 0 and leave the database replaced by a JSONL file.)

use crate::common;
use common::{nexus, ok};
use std::path::Path;
use std::process::Command;

/// Runs a command that must be refused; returns its one line of stderr.
fn refused(args: &[&str], cwd: &Path) -> String {
    let o = nexus(args, cwd);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "nexus {args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("refusing to overwrite"), "{err}");
    err
}

/// A directory with `db.db` holding 10 documents in `c`, and `in.ndjson` with 3 good rows
/// and 2 bad ones.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good: String = (0..10).map(|i| format!("{{\"_id\": {i}}}\n")).collect();
    std::fs::write(d.join("good.ndjson"), good).unwrap();
    std::fs::write(
        d.join("in.ndjson"),
        "{\"g\": 1}\nnot json\n{\"g\": 2}\n{oops\n{\"g\": 3}\n",
    )
    .unwrap();
    ok(&["import", "-q", "db.db", "c", "good.ndjson"], d);
    dir
}

/// The database opens, passes its check, and holds its 10 documents.
fn intact(d: &Path) {
    assert_eq!(ok(&["count", "db.db", "c"], d), "10\n");
    ok(&["check", "db.db"], d);
    let head = std::fs::read(d.join("db.db")).unwrap();
    assert!(
        head.starts_with(b"NexusLite format"),
        "db.db was overwritten"
    );
}

#[test]
fn import_error_sidecar_onto_the_database_is_refused() {
    let dir = setup();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    let sidecar_args = |sidecar: &'static str| {
        [
            "import",
            "db.db",
            "c",
            "in.ndjson",
            "--skip-errors",
            "--error-sidecar",
            sidecar,
        ]
    };
    let err = refused(&sidecar_args("db.db"), d);
    assert!(err.contains("error sidecar db.db"), "{err}");
    assert!(err.contains("open database"), "{err}");
    intact(d);
    refused(&sidecar_args("db.wasp"), d);
    intact(d);
    refused(&sidecar_args("./sub/../db.db"), d);
    intact(d);
    // Nor over the input it is reading.
    let before = std::fs::read(d.join("in.ndjson")).unwrap();
    let err = refused(&sidecar_args("in.ndjson"), d);
    assert!(err.contains("input file"), "{err}");
    assert_eq!(std::fs::read(d.join("in.ndjson")).unwrap(), before);
    intact(d);
    // An ordinary sidecar still works.
    ok(&sidecar_args("errors.jsonl"), d);
    assert_eq!(
        std::fs::read_to_string(d.join("errors.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    assert_eq!(ok(&["count", "db.db", "c"], d), "13\n");
}

#[test]
fn export_onto_the_database_is_refused() {
    let dir = setup();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    let err = refused(&["export", "db.db", "c", "db.db"], d);
    assert!(err.contains("export destination db.db"), "{err}");
    intact(d);
    refused(&["export", "db.db", "c", "db.wasp"], d);
    intact(d);
    refused(&["export", "db.db", "c", "sub/../db.db"], d);
    intact(d);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("db.db", d.join("link.ndjson")).unwrap();
        refused(&["export", "db.db", "c", "link.ndjson"], d);
        std::fs::hard_link(d.join("db.db"), d.join("hard.ndjson")).unwrap();
        refused(&["export", "db.db", "c", "hard.ndjson"], d);
        intact(d);
    }
    // No temporary file was left behind.
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("nexus-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // An ordinary destination still works.
    ok(&["export", "-q", "db.db", "c", "out.ndjson"], d);
    assert_eq!(
        std::fs::read_to_string(d.join("out.ndjson"))
            .unwrap()
            .lines()
            .count(),
        10
    );
}

#[test]
fn backup_onto_the_database_is_refused() {
    let dir = setup();
    let d = dir.path();
    for dest in ["db.db", "db.wasp", "db"] {
        let err = refused(&["backup", "db.db", dest], d);
        assert!(err.contains("open database"), "{err}");
        intact(d);
    }
}

#[test]
fn log_config_file_appender_onto_the_database_is_refused() {
    let dir = setup();
    let d = dir.path();
    for (path, append) in [
        ("db.db", "true"),
        ("db.wasp", "false"),
        ("$ENV{PWD}/db.db", "false"),
    ] {
        std::fs::write(
            d.join("log.yaml"),
            format!(
                "appenders:\n  file:\n    kind: file\n    path: \"{path}\"\n    append: {append}\n\
                 root:\n  level: debug\n  appenders: [file]\n"
            ),
        )
        .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_nexus"))
            .args(["--log-config", "log.yaml", "count", "db.db", "c"])
            .current_dir(d)
            .env("PWD", d)
            .output()
            .unwrap();
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(1), "{path}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
        assert!(err.contains("refusing to write"), "{err}");
        intact(d);
    }
}

/// The interactive shell saves its history to NEXUS_HISTORY: not over the database. Runs
/// the shell on a terminal made by `script` (util-linux); skipped where there is none.
#[test]
#[cfg(target_os = "linux")]
fn shell_history_onto_the_database_is_not_kept() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give the shell a terminal");
        return;
    }
    let dir = setup();
    let d = dir.path();
    let out = std::fs::File::create(d.join("shell.out")).unwrap();
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} shell db.db", env!("CARGO_BIN_EXE_nexus")),
            "/dev/null",
        ])
        .current_dir(d)
        .env("NEXUS_HISTORY", d.join("db.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"count c\nexit\n")
        .unwrap();
    // Bounded: a shell that never exits fails the test instead of hanging it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the shell did not exit within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let all = std::fs::read_to_string(d.join("shell.out")).unwrap_or_default();
    assert!(all.contains("history is not kept"), "{all}");
    intact(d);
}
