//! The MongoDB protocol's connections, each served by an OS thread of its own with blocking
//! socket I/O (as mongod does): read one framed message, run it, write the reply, with no
//! hand-off between threads on the way. The commands are synchronous calls into the `nexus`
//! library, so an async task per connection paid a thread switch or two per request
//! (tokio's blocking pool, then `block_in_place`), most of the one-client latency measured in
//! benchmarks/server.md.
//!
//! [`WireServer::start`] binds nothing itself: it takes the bound listener, and one thread
//! accepts on it. At most `max_connections` are open at once (past it a new connection is
//! closed on accept, with a log line). With `--tls-cert` the connection's thread makes the TLS
//! handshake (rustls over the blocking socket, [`TLS_HANDSHAKE_TIMEOUT`] at most) before the
//! first message. A message's first bytes may be awaited for ever (an idle connection), its
//! remaining bytes for [`MESSAGE_TIMEOUT`] at most. TCP_NODELAY is on (a reply is one write).
//!
//! Shutdown ([`WireServer::stop`], then [`WireServer::finish`]): the accepting thread stops,
//! and every open connection's socket is shut for reading, which ends a connection waiting
//! for its next message at once and lets one running a command write its reply first. After
//! the grace period the connections still open are shut both ways.

use super::state::Server;
use super::{commands, wire, MESSAGE_TIMEOUT, TLS_HANDSHAKE_TIMEOUT};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio_rustls::rustls;

/// The read buffer of a connection: a request of this size or less arrives in one read.
const READ_BUFFER: usize = 64 * 1024;
/// A message buffer grown past this is given back after its message.
const KEEP_BUFFER: usize = 1024 * 1024;

/// What the accepting thread and the connections' threads share.
struct Shared {
    server: Arc<Server>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Set by [`WireServer::stop`] (under the `open` lock, so no connection is added after
    /// the sweep that shuts the open ones).
    stopping: AtomicBool,
    /// The open connections by id: a handle of each socket, to shut it at stop.
    open: Mutex<HashMap<u64, TcpStream>>,
    /// Notified when a connection ends.
    closed: Condvar,
}

/// The MongoDB protocol's front end: the accepting thread and the connections it started.
pub struct WireServer {
    shared: Arc<Shared>,
    local: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl WireServer {
    /// Starts accepting on `listener` (blocking mode).
    pub fn start(
        server: Arc<Server>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(false)?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            server,
            tls,
            stopping: AtomicBool::new(false),
            open: Mutex::new(HashMap::new()),
            closed: Condvar::new(),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("nexus-accept".into())
                .spawn(move || accept_loop(&shared, &listener))?
        };
        Ok(Self {
            shared,
            local,
            accept: Some(accept),
        })
    }

    /// Stops accepting and ends the connections waiting for a message; those running a
    /// command write its reply, then end.
    pub fn stop(&mut self) {
        {
            let open = self.shared.open.lock();
            self.shared.stopping.store(true, Ordering::SeqCst);
            for s in open.values() {
                let _ = s.shutdown(Shutdown::Read);
            }
        }
        // The accepting thread sees the flag on its next accept: make one.
        let wake = SocketAddr::new(
            match self.local.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            },
            self.local.port(),
        );
        match TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
            Ok(_) => {
                if let Some(t) = self.accept.take() {
                    let _ = t.join();
                }
            }
            // The thread stays blocked in accept and ends with the process.
            Err(e) => log::warn!("cannot wake the accepting thread at {wake}: {e}"),
        }
    }

    /// Waits up to `grace` for the open connections to end; true when they all did. Those
    /// still open then are shut both ways (their threads end at their next read or write).
    pub fn finish(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut open = self.shared.open.lock();
        while !open.is_empty() {
            if self
                .shared
                .closed
                .wait_until(&mut open, deadline)
                .timed_out()
            {
                for s in open.values() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                return open.is_empty();
            }
        }
        true
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let max = shared.server.limits.max_connections;
    let mut next_id = 1u64;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let handle = match stream.try_clone() {
            Ok(h) => h,
            Err(e) => {
                log::warn!("{peer}: refused: {e}");
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        {
            let mut open = shared.open.lock();
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            if open.len() >= max {
                log::warn!("{peer}: refused, {max} connections are open (the limit)");
                continue;
            }
            open.insert(id, handle);
        }
        let _ = stream.set_nodelay(true);
        let spawned = {
            let shared = Arc::clone(shared);
            std::thread::Builder::new()
                .name(format!("nexus-conn-{id}"))
                .spawn(move || connection_thread(&shared, stream, peer, id))
        };
        if let Err(e) = spawned {
            log::warn!("{peer}: refused, no thread for it: {e}");
            shared.open.lock().remove(&id);
            shared.closed.notify_all();
        }
    }
}

/// Takes a connection off the open list when its thread ends, however it ends.
struct Leave<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let killed = self.shared.server.close_connection_cursors(self.id);
        if killed > 0 {
            log::info!("connection {}: killed its {killed} cursors", self.id);
        }
        self.shared.open.lock().remove(&self.id);
        self.shared.closed.notify_all();
    }
}

fn connection_thread(shared: &Shared, stream: TcpStream, peer: SocketAddr, id: u64) {
    let _leave = Leave { shared, id };
    log::info!("connection {id} from {peer}");
    match serve(shared, stream, id) {
        Ok(()) => log::info!("connection {id} from {peer} closed"),
        Err(e) => log::warn!("connection {id} from {peer} closed: {e}"),
    }
}

fn serve(shared: &Shared, stream: TcpStream, id: u64) -> Result<(), String> {
    let ctl = stream.try_clone().map_err(|e| e.to_string())?;
    match &shared.tls {
        None => messages(shared, stream, &ctl, id),
        Some(config) => {
            let mut tls = rustls::ServerConnection::new(Arc::clone(config))
                .map_err(|e| format!("TLS: {e}"))?;
            let mut sock = stream;
            handshake(&mut tls, &mut sock)?;
            messages(shared, rustls::StreamOwned::new(tls, sock), &ctl, id)
        }
    }
}

/// The TLS handshake, [`TLS_HANDSHAKE_TIMEOUT`] at most.
fn handshake(tls: &mut rustls::ServerConnection, sock: &mut TcpStream) -> Result<(), String> {
    let deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
    let timed_out = || "TLS handshake timed out".to_owned();
    while tls.is_handshaking() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(timed_out)?;
        sock.set_read_timeout(Some(left))
            .and_then(|()| sock.set_write_timeout(Some(left)))
            .map_err(|e| e.to_string())?;
        match tls.complete_io(sock) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("TLS handshake: {e}")),
        }
    }
    sock.set_read_timeout(None)
        .and_then(|()| sock.set_write_timeout(None))
        .map_err(|e| e.to_string())
}

/// Serves the messages of one connection until the peer closes it, a message is refused,
/// or the server stops (its socket shut for reading: seen when the next message is awaited,
/// so a request in progress finishes). `ctl`: the socket, for read timeouts.
fn messages<S: Read + Write>(
    shared: &Shared,
    io: S,
    ctl: &TcpStream,
    id: u64,
) -> Result<(), String> {
    let server = &*shared.server;
    let mut rd = BufReader::with_capacity(READ_BUFFER, io);
    let mut state = commands::ConnState::default();
    let mut buf = Vec::new();
    loop {
        let mut head = [0u8; 4];
        match rd.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let len = wire::frame_len(&head, server.limits.max_message).map_err(|e| e.0)?;
        buf.clear();
        if buf.capacity() > KEEP_BUFFER {
            buf = Vec::new();
        }
        buf.extend_from_slice(&head);
        read_rest(&mut rd, ctl, &mut buf, len)?;
        // A panic ends this connection only, with the same error a failed command gives.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            super::handle(server, id, &mut state, &buf)
        }))
        .map_err(|_| "a command failed unexpectedly".to_string())??;
        if let Some(reply) = reply {
            let w = rd.get_mut();
            w.write_all(&reply)
                .and_then(|()| w.flush())
                .map_err(|e| e.to_string())?;
        }
    }
}

/// Reads the rest of a `len`-byte message into `buf` (which holds its first 4 bytes): at
/// once when it is buffered already, else within [`MESSAGE_TIMEOUT`]. The buffer grows with
/// the bytes that arrive, not with the length a peer claims.
fn read_rest<R: Read>(
    rd: &mut BufReader<R>,
    ctl: &TcpStream,
    buf: &mut Vec<u8>,
    len: usize,
) -> Result<(), String> {
    let need = len - buf.len();
    let have = rd.buffer();
    if have.len() >= need {
        buf.extend_from_slice(&have[..need]);
        rd.consume(need);
        return Ok(());
    }
    let deadline = Instant::now() + MESSAGE_TIMEOUT;
    let timed_out = || format!("a message took more than {MESSAGE_TIMEOUT:?} to arrive");
    let mut result = Ok(());
    while buf.len() < len {
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            result = Err(timed_out());
            break;
        };
        if let Err(e) = ctl.set_read_timeout(Some(left)) {
            result = Err(e.to_string());
            break;
        }
        match rd.fill_buf() {
            Ok([]) => {
                result = Err(format!("connection closed inside a {len}-byte message"));
                break;
            }
            Ok(b) => {
                let n = b.len().min(len - buf.len());
                buf.extend_from_slice(&b[..n]);
                rd.consume(n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                result = Err(timed_out());
                break;
            }
            Err(e) => {
                result = Err(e.to_string());
                break;
            }
        }
    }
    let _ = ctl.set_read_timeout(None);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected loopback pair: (the server's end, the client's end).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn a_message_in_several_writes_is_read_whole_and_the_next_stays_buffered() {
        let (server, mut client) = pair();
        let ctl = server.try_clone().unwrap();
        let mut rd = BufReader::with_capacity(8, server);
        let first: Vec<u8> = (0u8..40).collect();
        let writer = std::thread::spawn(move || {
            client.write_all(&first[..3]).unwrap();
            client.write_all(&first[3..]).unwrap();
            client.write_all(&[7, 7, 7, 7]).unwrap();
            client
        });
        let mut buf = Vec::new();
        let mut head = [0u8; 4];
        rd.read_exact(&mut head).unwrap();
        buf.extend_from_slice(&head);
        read_rest(&mut rd, &ctl, &mut buf, 40).unwrap();
        assert_eq!(buf, (0u8..40).collect::<Vec<u8>>());
        let _client = writer.join().unwrap();
        let mut next = [0u8; 4];
        rd.read_exact(&mut next).unwrap();
        assert_eq!(next, [7, 7, 7, 7]);
    }

    #[test]
    fn a_peer_closing_inside_a_message_is_an_error() {
        let (server, mut client) = pair();
        let ctl = server.try_clone().unwrap();
        let mut rd = BufReader::with_capacity(READ_BUFFER, server);
        client.write_all(&[100, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(client);
        let mut head = [0u8; 4];
        rd.read_exact(&mut head).unwrap();
        let mut buf = head.to_vec();
        let e = read_rest(&mut rd, &ctl, &mut buf, 100).unwrap_err();
        assert!(e.contains("closed inside a 100-byte message"), "{e}");
        assert_eq!(buf, [100, 0, 0, 0, 1, 2, 3]);
    }
}
