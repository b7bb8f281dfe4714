//! Child processes of a multi-process test. The test binary re-executes itself to run one
//! child test function (`[name, "--exact", "--nocapture", "--test-threads=1"]`, the name
//! qualified by the caller's module in the integration binary: [`super::test_name_at`]), which finds
//! its role and database in environment variables (and returns at once when they are absent,
//! as in a normal run of the suite). The child prints protocol lines (`ack 0 17`,
//! `seen 42`) to stdout; the parent collects them and waits for conditions on them.
//!
//! A [`Proc`] is killed (SIGKILL) and reaped when dropped, so a test that panics leaves no
//! child behind; on Linux a child is also killed when the thread that spawned it dies
//! (`PR_SET_PDEATHSIG`), and every child role gives up on its own after [`CHILD_LIFETIME`].

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a parent waits for a condition that should take a fraction of a second: long
/// enough for a loaded 2-core machine running a debug build; a failure, never a measurement.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// The longest a child runs before it gives up on its own (the parent never asked it to
/// stop: the parent is gone or broken).
pub const CHILD_LIFETIME: Duration = Duration::from_secs(240);

/// The protocol text of a line a child printed: libtest prints `test NAME ... ` without a
/// newline before a single-threaded test runs, so the child's first line arrives glued to it.
pub fn protocol(line: &str) -> &str {
    match line
        .strip_prefix("test ")
        .and_then(|l| l.split_once(" ... "))
    {
        Some((_, rest)) => rest,
        None => line,
    }
}

/// A line of libtest's own around the child test function's output.
fn harness_noise(line: &str) -> bool {
    let l = line.trim();
    l.is_empty()
        || l == "ok"
        || l == "FAILED"
        || l.starts_with("running ")
        || l.starts_with("failures:")
        || l.starts_with("successes:")
        || l.starts_with("test result:")
        || l.starts_with("---- ")
        || (line.starts_with("    ") && !l.contains(' '))
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    eof: bool,
}

#[derive(Default)]
struct Shared {
    out: Mutex<Output>,
    changed: Condvar,
}

/// A child process running one child test function of this test binary.
pub struct Proc {
    label: String,
    child: Child,
    shared: Arc<Shared>,
    stderr: Arc<Mutex<Vec<u8>>>,
    threads: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Runs the child test function `test_fn` of this binary with `envs` added to the
    /// environment. `label` names the child in every panic message (`"writer 0"`).
    #[track_caller]
    pub fn spawn(label: &str, test_fn: &str, envs: &[(&str, &OsStr)]) -> Proc {
        let test_fn = super::test_name_at(std::panic::Location::caller(), test_fn);
        let exe = std::env::current_exe().expect("the path of the test binary");
        let mut cmd = Command::new(exe);
        cmd.args([
            test_fn.as_str(),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot spawn the child process: {e}"));
        let shared = Arc::new(Shared::default());
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let s = Arc::clone(&shared);
        let t_out = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let line = protocol(&line).to_owned();
                s.out.lock().unwrap().lines.push(line);
                s.changed.notify_all();
            }
            s.out.lock().unwrap().eof = true;
            s.changed.notify_all();
        });
        let e = Arc::clone(&stderr);
        let t_err = std::thread::spawn(move || {
            let mut err = err;
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => e.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
        Proc {
            label: label.to_owned(),
            child,
            shared,
            stderr,
            threads: vec![t_out, t_err],
            status: None,
        }
    }

    /// The child's name in messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// `f` applied to the protocol lines the child printed so far.
    pub fn with_lines<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        f(&self.shared.out.lock().unwrap().lines)
    }

    /// The protocol lines the child printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.with_lines(<[String]>::to_vec)
    }

    /// The end of what the child printed to stderr (its panic message, if any).
    pub fn stderr_tail(&self) -> String {
        let err = self.stderr.lock().unwrap();
        let text = String::from_utf8_lossy(&err);
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// Everything known about the child, for a panic message.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{} (pid {}), status {}",
            self.label,
            self.child.id(),
            match &self.status {
                Some(st) => st.to_string(),
                None => "running".into(),
            }
        );
        self.with_lines(|l| {
            let mine: Vec<&String> = l.iter().filter(|l| !harness_noise(l)).collect();
            let from = mine.len().saturating_sub(8);
            let _ = write!(s, "\n  its last lines: {:?}", &mine[from..]);
        });
        let _ = write!(s, "\n  stderr:\n{}", self.stderr_tail());
        s
    }

    /// The exit status, if the child has exited (reaps it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("{}: waitpid failed: {e}", self.label));
        }
        self.status
    }

    /// Panics (with everything the child printed) when the child has exited already.
    pub fn assert_running(&mut self, context: &str) {
        if let Some(st) = self.try_status() {
            self.drain();
            panic!(
                "{context}: {} exited ({st}) while it should still be running: {}",
                self.label,
                self.describe()
            );
        }
    }

    /// Waits until `f` over the lines printed so far returns `Some`, and returns that.
    /// Panics with everything the child printed when it exits first, or when `timeout`
    /// passes (`what` says what was awaited).
    pub fn wait_for<R>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[String]) -> Option<R>,
    ) -> R {
        let deadline = Instant::now() + timeout;
        let shared = Arc::clone(&self.shared);
        let mut out = shared.out.lock().unwrap();
        loop {
            if let Some(r) = f(&out.lines) {
                return r;
            }
            if out.eof {
                drop(out);
                let st = self.wait_exit(Duration::from_secs(30));
                panic!(
                    "{} exited ({st}) before {what}: {}",
                    self.label,
                    self.describe()
                );
            }
            let now = Instant::now();
            if now >= deadline {
                drop(out);
                panic!(
                    "timed out after {timeout:?} waiting for {what}: {}",
                    self.describe()
                );
            }
            let step = (deadline - now).min(Duration::from_millis(200));
            out = shared.changed.wait_timeout(out, step).unwrap().0;
        }
    }

    /// Waits for the child's line `ready` (exactly), or panics: with `failed_prefix`'s line
    /// when the child printed one (e.g. `open failed: ...`), else as [`Proc::wait_for`].
    pub fn wait_ready(&mut self, ready: &str, failed_prefix: &str, timeout: Duration) {
        let label = self.label.clone();
        let r = self.wait_for(&format!("'{ready}' from {label}"), timeout, |lines| {
            lines.iter().find_map(|l| {
                if l == ready {
                    Some(Ok(()))
                } else {
                    l.strip_prefix(failed_prefix).map(|m| Err(m.to_owned()))
                }
            })
        });
        if let Err(msg) = r {
            let _ = self.wait_exit(Duration::from_secs(30));
            panic!(
                "{label}: {failed_prefix}{msg}\n(a second process must be able to open the \
                 database while others have it open)\n{}",
                self.describe()
            );
        }
    }

    /// Waits for the child to exit on its own (polling; no timing is asserted); SIGKILLs it
    /// and panics when `timeout` passes first. All of its output has been collected when
    /// this returns.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status() {
                self.drain();
                return st;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                self.status = self.child.wait().ok();
                self.drain();
                panic!(
                    "{} did not exit within {timeout:?} (killed now): {}",
                    self.label,
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the child to exit on its own and asserts it succeeded.
    pub fn expect_success(&mut self, timeout: Duration) {
        let st = self.wait_exit(timeout);
        assert!(st.success(), "{} failed: {}", self.label, self.describe());
    }

    /// SIGKILLs the child (unless it has exited already) and reaps it; all of its output
    /// has been collected when this returns. Returns its status.
    pub fn kill(&mut self) -> ExitStatus {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = Some(
                self.child
                    .wait()
                    .unwrap_or_else(|e| panic!("{}: waitpid failed: {e}", self.label)),
            );
        }
        self.drain();
        self.status.expect("reaped")
    }

    /// Spawns a reader child (see [`reader_fail`]) and waits until it has opened the
    /// database (`reader opened`) and read once (a line starting `read `).
    #[track_caller]
    pub fn spawn_reader(label: &str, test_fn: &str, envs: &[(&str, &OsStr)]) -> Proc {
        let mut reader = Proc::spawn(label, test_fn, envs);
        reader.wait_ready("reader opened", "reader open failed: ", PATIENCE);
        reader.wait_for("its first read", PATIENCE, |l| {
            l.iter().any(|l| l.starts_with("read ")).then_some(())
        });
        reader
    }

    /// After a reader child is gone: panics (naming `ctx`) with the invariant it reported
    /// broken, if any.
    pub fn assert_reader_held(&self, ctx: &str) {
        let failed = self.with_lines(|l| {
            l.iter()
                .find_map(|l| l.strip_prefix(READER_FAILED))
                .map(str::to_owned)
        });
        if let Some(msg) = failed {
            panic!(
                "{ctx}: the reader's check failed: {msg}\n{}",
                self.describe()
            );
        }
    }

    /// Joins the output threads once the child is gone (its pipes are closed then).
    fn drain(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a reader child prints before it fails on a broken invariant.
const READER_FAILED: &str = "reader invariant failed: ";

/// A broken invariant in a reader child: said on stdout (so the parent sees it even when it
/// SIGKILLs the reader next; [`Proc::assert_reader_held`]), then a panic (non-zero exit).
pub fn reader_fail(msg: String) -> ! {
    println!("{READER_FAILED}{}", msg.replace('\n', " "));
    panic!("{msg}");
}

/// Whether `stop` (a file the parent creates to end the children's loops) exists.
pub fn stop_requested(stop: &Path) -> bool {
    stop.exists()
}

/// Creates the stop file `stop`.
pub fn request_stop(stop: &Path) {
    std::fs::write(stop, b"stop").unwrap_or_else(|e| panic!("create {}: {e}", stop.display()));
}

/// A child's own limit on its life: [`CHILD_LIFETIME`] from its start.
pub struct Lifetime(Instant);

impl Lifetime {
    pub fn start() -> Self {
        Lifetime(Instant::now() + CHILD_LIFETIME)
    }

    /// Panics once the child has lived too long (the parent never stopped it).
    pub fn check(&self, role: &str) {
        assert!(
            Instant::now() < self.0,
            "{role}: ran for {CHILD_LIFETIME:?} without being stopped; giving up"
        );
    }
}

/// The number in a Bson value (`Int32`, `Int64`, or a whole `Double`).
#[allow(clippy::cast_possible_truncation)]
pub fn int(v: Option<&bson::Bson>) -> Option<i64> {
    match v? {
        bson::Bson::Int32(n) => Some(i64::from(*n)),
        bson::Bson::Int64(n) => Some(*n),
        bson::Bson::Double(f) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}
