//! `fork()`: a child process never uses the connections and cursors it inherited (they are
//! the parent's: writing through them would add commits the parent does not know about, and
//! reading through them would read pages the parent may reuse), and its own `open` of the
//! same file does not join the parent's engine. Before this, a child's own connection
//! shared the parent's in-process engine through the inherited registry and its
//! acknowledged commits were lost.
//!
//! The child's own `open` is a connection of its own (WASP: several processes share the
//! database): its acknowledged commits are in the file and the parent's still-open
//! connection sees them. `memlog` refuses the second process, naming the option to use.

mod common;

use bson::doc;
use nexus::{Database, Document, Error, FindOptions, OpenOptions, StorageEngine};
use std::time::Duration;

/// What the child checks; returns the number of the first check that failed (0: none).
/// Runs in the forked child, so it reports by exit status and never panics.
fn child(db: &Database, path: &std::path::Path, cursor: &mut nexus::Cursor) -> i32 {
    let inherited = |e: &Error| matches!(e, Error::Closed(m) if m.contains("fork()"));
    let c = db.collection("c");
    match c.insert(Document::from_json(r#"{"_id": "child"}"#).unwrap()) {
        Err(e) if inherited(&e) => {}
        _ => return 1,
    }
    match c.get_by_text("p1") {
        Err(e) if inherited(&e) => {}
        _ => return 2,
    }
    match c.count(&doc! {}) {
        Err(e) if inherited(&e) => {}
        _ => return 3,
    }
    match cursor.next() {
        Some(Err(e)) if matches!(&e, Error::Closed(m) if m.contains("fork()")) => {}
        _ => return 4,
    }
    match db.begin() {
        Err(e) if inherited(&e) => {}
        _ => return 5,
    }
    // Its own connection: a fresh engine of this process.
    let own = Database::open(
        path,
        OpenOptions {
            busy_timeout_ms: 2000,
            sync: nexus::SyncMode::Full,
            ..common::open_options()
        },
    );
    if common::engine() == StorageEngine::MemLog {
        return match own {
            Err(Error::Busy(m)) if m.contains("another process") && m.contains("wasp") => 0,
            _ => 6,
        };
    }
    let Ok(own) = own else {
        return 6;
    };
    let c = own.collection("c");
    if c.count(&doc! {}).ok() != Some(3) {
        return 7;
    }
    for i in 0..50 {
        let d = Document::from_json(&format!(r#"{{"_id": "child{i}"}}"#)).unwrap();
        if c.insert(d).is_err() {
            return 8;
        }
    }
    if own.close().is_err() {
        return 9;
    }
    0
}

#[test]
fn a_forked_child_cannot_use_inherited_connections_but_its_own_commits_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let db = Database::open(&path, common::open_options()).unwrap();
    let c = db.collection("c");
    for i in 0..3 {
        c.insert(Document::from_json(&format!(r#"{{"_id": "p{i}"}}"#)).unwrap())
            .unwrap();
    }
    c.get_by_text("p1").unwrap().expect("cached in the parent");
    let mut cursor = c.find(&doc! {}, FindOptions::default()).unwrap();

    // SAFETY: the child only runs `child` (library calls that check the process generation
    // before touching shared state) and then `_exit`s without unwinding or running the
    // parent's destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child(&db, &path, &mut cursor);
        // Closing inherited handles writes nothing (the parent checks the file below).
        drop(cursor);
        drop(db);
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "the child died: status {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "check number {} failed in the child",
        libc::WEXITSTATUS(status)
    );

    // The parent's connection and cursor are untouched (the cursor reads its snapshot),
    // the connection sees the child's own commits, and it goes on writing.
    let own = if common::engine() == StorageEngine::MemLog {
        0
    } else {
        50
    };
    assert_eq!(cursor.count(), 3);
    assert_eq!(c.count(&doc! {}).unwrap(), 3 + own);
    if own > 0 {
        assert!(c.get_by_text("child49").unwrap().is_some());
    }
    c.insert(Document::from_json(r#"{"_id": "p3"}"#).unwrap())
        .unwrap();
    db.close().unwrap();
    std::thread::sleep(Duration::from_millis(10));
    let db = Database::open(&path, common::open_options()).unwrap();
    let c = db.collection("c");
    assert_eq!(c.count(&doc! {}).unwrap(), 4 + own);
    assert!(c.get_by_text("child").unwrap().is_none());
    assert_eq!(db.check().unwrap()["ok"], true);
}

/// Generated `_id`s come from OS randomness drawn 1 KiB at a time per thread: a `fork()`
/// child inherits the unused part, and must not hand it out again (a parent and its child
/// writing one database would otherwise make the same ids, in the same order).
#[test]
fn a_forked_child_never_generates_the_parents_next_ids() {
    let before = nexus::document::new_uuid_v4();
    let mut fds = [0; 2];
    // SAFETY: a pipe into a local array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes ids, writes them to the pipe and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let ids: String = (0..8)
            .map(|_| nexus::document::new_uuid_v4() + "\n")
            .collect();
        // SAFETY: writing a local buffer to the pipe's write end.
        let n = unsafe { libc::write(fds[1], ids.as_ptr().cast(), ids.len()) };
        unsafe { libc::_exit(i32::from(usize::try_from(n).ok() != Some(ids.len()))) };
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let parent: Vec<String> = (0..8).map(|_| nexus::document::new_uuid_v4()).collect();
    let mut buf = vec![0_u8; 4096];
    let mut got = 0;
    loop {
        // SAFETY: reading into the unused tail of a local buffer.
        let n = unsafe { libc::read(fds[0], buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n <= 0 {
            break;
        }
        got += usize::try_from(n).unwrap();
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status}"
    );
    let child: Vec<&str> = std::str::from_utf8(&buf[..got]).unwrap().lines().collect();
    assert_eq!(child.len(), 8);
    for id in &child {
        assert!(
            !parent.iter().any(|p| p == id),
            "the child made the parent's id {id}"
        );
        assert_ne!(*id, before);
        // Version 4, RFC 9562 variant.
        assert_eq!(id.as_bytes()[14], b'4', "{id}");
        assert!(
            matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "{id}"
        );
    }
}
