//! `nexus serve` against hostile and broken clients, over raw sockets: malformed frames
//! (garbage, short and negative lengths, oversized claims, truncated messages, BSON lengths
//! that do not fit, nesting bombs, bad checksums, unknown opcodes and sections) close only
//! their own connection; thousands of randomly mutated messages neither crash nor hang the
//! server nor grow its memory; idle cursors expire; the connection and cursor limits hold;
//! SIGTERM checkpoints and exits 0 with the data readable by the library.

use bson::{doc, Bson, Document as BsonDocument};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    addr: String,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(dir.path(), extra);
        s._dir = Some(dir);
        s
    }

    fn start_in(dir: &std::path::Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_nexus"))
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--mongo", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "nexus serve: MongoDB protocol on 127.0.0.1:PORT (...)"
        let addr = line
            .split_whitespace()
            .find(|w| w.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("start line {line:?}"))
            .to_owned();
        Server {
            child,
            addr,
            _dir: None,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(i32::try_from(self.child.id()).unwrap(), libc::SIGTERM);
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn frame(op: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&i32::try_from(16 + payload.len()).unwrap().to_le_bytes());
    out.extend_from_slice(&7i32.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&op.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn op_msg(body: &BsonDocument) -> Vec<u8> {
    let mut payload = vec![0, 0, 0, 0, 0];
    payload.extend(body.to_vec().unwrap());
    frame(2013, &payload)
}

/// Sends `bytes`, then reads one reply: Some(document) or None when the server closed.
fn exchange(s: &mut TcpStream, bytes: &[u8]) -> Option<BsonDocument> {
    if s.write_all(bytes).is_err() {
        return None;
    }
    let mut head = [0u8; 4];
    match s.read_exact(&mut head) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("no reply and no close within the timeout")
        }
        Err(_) => return None,
    }
    let len = usize::try_from(i32::from_le_bytes(head)).unwrap();
    let mut rest = vec![0u8; len - 4];
    s.read_exact(&mut rest).ok()?;
    // header (12 more bytes), flagBits, section kind 0, the body.
    Some(bson::Document::from_reader(&rest[12 + 4 + 1..]).unwrap())
}

fn command(server: &Server, body: BsonDocument) -> BsonDocument {
    let mut s = server.connect();
    exchange(&mut s, &op_msg(&body)).expect("a reply")
}

/// A document nested `depth` levels deep, as bytes.
fn nested(depth: usize) -> Vec<u8> {
    let mut doc = vec![5, 0, 0, 0, 0];
    for _ in 0..depth {
        let mut outer = Vec::with_capacity(doc.len() + 8);
        outer.extend_from_slice(&i32::try_from(doc.len() + 8).unwrap().to_le_bytes());
        outer.extend_from_slice(b"\x03a\x00");
        outer.extend_from_slice(&doc);
        outer.push(0);
        doc = outer;
    }
    doc
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let mut server = Server::start(&[]);
    let ping = op_msg(&doc! {"ping": 1, "$db": "admin"});
    let mut bad_checksum = ping.clone();
    bad_checksum[16] = 1; // checksumPresent, and the last 4 bytes are no CRC-32C
    let mut sections = vec![0u8; 4];
    sections.extend([0u8]);
    sections.extend(doc! {"ping": 1, "$db": "admin"}.to_vec().unwrap());
    sections.extend([0u8]);
    sections.extend(doc! {"ping": 1}.to_vec().unwrap());
    let two_bodies = frame(2013, &sections);
    let mut seq = vec![0u8; 4];
    seq.extend([1u8]);
    seq.extend(i32::MAX.to_le_bytes());
    seq.extend(b"documents\0");
    let huge_sequence = frame(2013, &seq);
    let mut bomb = vec![0u8; 5];
    bomb.extend(nested(20_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("negative length", (-1i32).to_le_bytes().repeat(4)),
        ("length below a header", 8i32.to_le_bytes().repeat(4)),
        (
            "length past the limit",
            [48_000_001i32.to_le_bytes(), [0; 4], [0; 4], [0; 4]].concat(),
        ),
        ("unknown opcode", frame(1234, b"xxxx")),
        ("OP_COMPRESSED of nothing", frame(2012, &[0; 12])),
        (
            "OP_COMPRESSED zlib",
            frame(2012, &[0xdd, 7, 0, 0, 5, 0, 0, 0, 2, 1, 2, 3, 4, 5]),
        ),
        (
            "OP_COMPRESSED bad snappy",
            frame(
                2012,
                &[0xdd, 7, 0, 0, 5, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
            ),
        ),
        ("OP_MSG without body", frame(2013, &[0, 0, 0, 0])),
        ("unknown section kind", frame(2013, &[0, 0, 0, 0, 9, 1, 2])),
        (
            "unknown required flag",
            frame(2013, &[4, 0, 0, 0, 0, 5, 0, 0, 0, 0]),
        ),
        (
            "BSON length past the end",
            frame(2013, &[0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0]),
        ),
        (
            "BSON not terminated",
            frame(2013, &[0, 0, 0, 0, 0, 6, 0, 0, 0, 0x10, 0x61]),
        ),
        ("bad checksum", bad_checksum),
        ("two bodies", two_bodies),
        ("sequence size past the end", huge_sequence),
        ("nesting bomb", frame(2013, &bomb)),
    ];
    for (what, bytes) in &cases {
        let mut s = server.connect();
        assert!(
            exchange(&mut s, bytes).is_none(),
            "{what}: answered instead of closed"
        );
        assert!(server.alive(), "{what}: the server died");
    }
    // A message that claims 40 MB and stops after a few bytes, from a peer that hangs up:
    // nothing of the claimed size is allocated, the connection ends.
    for _ in 0..20 {
        let mut s = server.connect();
        let _ = s.write_all(&40_000_000i32.to_le_bytes());
        let _ = s.write_all(&[0u8; 100]);
    }
    assert!(
        server.rss_kib() < 200 * 1024,
        "RSS {} KiB",
        server.rss_kib()
    );
    // The server still serves, and a good message on one connection after another works.
    let reply = command(&server, doc! {"ping": 1, "$db": "admin"});
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)));
    let mut s = server.connect();
    for _ in 0..3 {
        assert!(exchange(&mut s, &ping).is_some());
    }
    assert!(server.stop().success());
}

#[test]
fn snappy_compression_is_negotiated_and_answered_in_kind() {
    let server = Server::start(&[]);
    let hello = command(
        &server,
        doc! {"hello": 1, "compression": ["zstd", "snappy"], "$db": "admin"},
    );
    assert_eq!(
        hello.get_array("compression").unwrap(),
        &vec![Bson::from("snappy")]
    );
    // A snappy OP_COMPRESSED insert; the reply comes back as snappy OP_COMPRESSED.
    let plain = op_msg(&doc! {"insert": "c", "documents": [{"_id": 1}, {"_id": 2}], "$db": "z"});
    let packed = snap::raw::Encoder::new()
        .compress_vec(&plain[16..])
        .unwrap();
    let mut payload = Vec::new();
    payload.extend_from_slice(&2013i32.to_le_bytes());
    payload.extend_from_slice(&i32::try_from(plain.len() - 16).unwrap().to_le_bytes());
    payload.push(1);
    payload.extend_from_slice(&packed);
    let mut s = server.connect();
    s.write_all(&frame(2012, &payload)).unwrap();
    let mut head = [0u8; 16];
    s.read_exact(&mut head).unwrap();
    assert_eq!(i32::from_le_bytes(head[12..16].try_into().unwrap()), 2012);
    let len = usize::try_from(i32::from_le_bytes(head[..4].try_into().unwrap())).unwrap();
    let mut rest = vec![0u8; len - 16];
    s.read_exact(&mut rest).unwrap();
    assert_eq!(i32::from_le_bytes(rest[..4].try_into().unwrap()), 2013);
    assert_eq!(rest[8], 1);
    let inner = snap::raw::Decoder::new()
        .decompress_vec(&rest[9..])
        .unwrap();
    let reply = bson::Document::from_reader(&inner[4 + 1..]).unwrap();
    assert_eq!(reply.get_i32("n").unwrap(), 2, "{reply}");
    assert!(server.stop().success());
}

#[test]
fn random_mutations_never_crash_hang_or_grow_the_server() {
    let mut server = Server::start(&[]);
    let docs: Vec<Bson> = (0..20)
        .map(|i| Bson::Document(doc! {"i": i, "s": "text", "a": [1, 2, {"b": i}]}))
        .collect();
    let valid = [
        op_msg(&doc! {"insert": "c", "documents": docs, "$db": "fuzz"}),
        op_msg(&doc! {"find": "c", "filter": {"i": {"$gt": 3}}, "batchSize": 2, "$db": "fuzz"}),
        op_msg(
            &doc! {"update": "c", "updates": [{"q": {"i": 1}, "u": {"$set": {"x": 1}}}], "$db": "fuzz"},
        ),
        op_msg(
            &doc! {"aggregate": "c", "pipeline": [{"$group": {"_id": "$i"}}], "cursor": {}, "$db": "fuzz"},
        ),
    ];
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let started = Instant::now();
    let mut s = server.connect();
    let (mut replies, mut closes) = (0, 0);
    for round in 0..3000 {
        let mut m = valid[round % valid.len()].clone();
        match rng.u8(0..4) {
            // Flip a few bytes anywhere (lengths included).
            0 | 1 => {
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(0..m.len());
                    m[i] = rng.u8(..);
                }
            }
            // Truncate, keeping the header's length right (the body then ends early).
            2 => {
                let cut = rng.usize(16..m.len());
                m.truncate(cut);
                let len = i32::try_from(cut).unwrap().to_le_bytes();
                m[..4].copy_from_slice(&len);
            }
            // Grow with random bytes, the length following.
            _ => {
                m.extend((0..rng.usize(1..64)).map(|_| rng.u8(..)));
                let len = i32::try_from(m.len()).unwrap().to_le_bytes();
                m[..4].copy_from_slice(&len);
            }
        }
        // A length a mutation made larger than the bytes sent would wait for more: the
        // peer hangs up after sending (shutdown), which the server must take as the end.
        let declared = usize::try_from(i32::from_le_bytes(m[..4].try_into().unwrap())).ok();
        if declared != Some(m.len()) {
            let _ = s.write_all(&m);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
            closes += 1;
            s = server.connect();
            continue;
        }
        match exchange(&mut s, &m) {
            Some(_) => replies += 1,
            None => {
                closes += 1;
                s = server.connect();
            }
        }
        if round % 500 == 0 {
            assert!(server.alive(), "round {round}: the server died");
        }
    }
    assert!(server.alive());
    assert!(
        replies > 100 && closes > 100,
        "{replies} replies, {closes} closes"
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    assert!(
        server.rss_kib() < 300 * 1024,
        "RSS {} KiB",
        server.rss_kib()
    );
    let reply = command(&server, doc! {"count": "c", "$db": "fuzz"});
    assert_eq!(reply.get("ok"), Some(&Bson::Double(1.0)));
    assert!(server.stop().success());
}

#[test]
fn idle_cursors_expire_and_the_limits_hold() {
    let server = Server::start(&[
        "--cursor-idle-timeout",
        "1",
        "--max-cursors-per-connection",
        "2",
        "--max-connections",
        "3",
    ]);
    let docs: Vec<Bson> = (0..10).map(|i| Bson::Document(doc! {"_id": i})).collect();
    let r = command(
        &server,
        doc! {"insert": "c", "documents": docs, "$db": "lim"},
    );
    assert_eq!(r.get_i32("n").unwrap(), 10);
    let mut s = server.connect();
    let find = op_msg(&doc! {"find": "c", "batchSize": 1, "$db": "lim"});
    let cursor_id = |r: &BsonDocument| r.get_document("cursor").unwrap().get_i64("id").unwrap();
    let first = cursor_id(&exchange(&mut s, &find).unwrap());
    let second = cursor_id(&exchange(&mut s, &find).unwrap());
    assert!(first != 0 && second != 0);
    // The third open cursor of the connection is refused.
    let third = exchange(&mut s, &find).unwrap();
    assert_eq!(third.get_f64("ok").unwrap(), 0.0, "{third}");
    // The cursors expire after a second unused.
    std::thread::sleep(Duration::from_millis(2500));
    let more = exchange(
        &mut s,
        &op_msg(&doc! {"getMore": first, "collection": "c", "$db": "lim"}),
    )
    .unwrap();
    assert_eq!(more.get_i32("code").unwrap(), 43, "{more}");
    // A cursor is killed when its connection closes.
    // (Checked well within the idle timeout: at 300 ms, then every 100 ms up to 700 ms.)
    let id = cursor_id(&exchange(&mut s, &find).unwrap());
    drop(s);
    let closed = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    loop {
        let more = command(
            &server,
            doc! {"getMore": id, "collection": "c", "$db": "lim"},
        );
        if more.get_i32("code").ok() == Some(43) {
            break;
        }
        assert!(closed.elapsed() < Duration::from_millis(700), "{more}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Three connections are served; a fourth is closed at once.
    // (Connections closed a moment ago may still be counted until their tasks end: retry.)
    let ping = op_msg(&doc! {"ping": 1, "$db": "admin"});
    let deadline = Instant::now() + Duration::from_secs(10);
    let open = loop {
        let mut open: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
        if open.iter_mut().all(|c| exchange(c, &ping).is_some()) {
            break open;
        }
        assert!(
            Instant::now() < deadline,
            "three connections were never served"
        );
        drop(open);
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut fourth = server.connect();
    assert!(exchange(&mut fourth, &op_msg(&doc! {"ping": 1, "$db": "admin"})).is_none());
    drop(open);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        command(&server, doc! {"ping": 1, "$db": "admin"})
            .get_f64("ok")
            .unwrap()
            == 1.0
    );
    assert!(server.stop().success());
}

#[test]
fn sigterm_checkpoints_and_closes_the_databases() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path(), &[]);
    let docs: Vec<Bson> = (0..500).map(|i| Bson::Document(doc! {"_id": i})).collect();
    let r = command(
        &server,
        doc! {"insert": "c", "documents": docs, "$db": "app"},
    );
    assert_eq!(r.get_i32("n").unwrap(), 500);
    // A connection idle between messages does not hold the shutdown up.
    let _idle = server.connect();
    let started = Instant::now();
    assert!(server.stop().success());
    assert!(started.elapsed() < Duration::from_secs(5));
    // Closed: the library opens the file (another process's open would be Busy) and
    // finds every document.
    let db =
        nexus::Database::open(dir.path().join("app.db"), nexus::OpenOptions::default()).unwrap();
    assert_eq!(db.collection("c").count_json("{}").unwrap(), 500);
}
