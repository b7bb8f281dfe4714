//! Accepting the connections of the HTTP and gRPC front ends: at most `max_connections` open
//! at once per front end (past it, new connections wait in the kernel's backlog), each
//! through the TLS handshake of `--tls-cert` / `--tls-key` when given (in a task of its own,
//! [`TLS_HANDSHAKE_TIMEOUT`] at most, so one slow client does not hold up the others). The
//! accepted streams arrive on a channel ([`Incoming`]), which axum takes as its listener and
//! tonic as its stream of connections ([`Incoming::into_stream`]).

use super::TLS_HANDSHAKE_TIMEOUT;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// A byte stream: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An accepted connection; its slot of the connection limit is freed when it is dropped.
pub struct Conn {
    inner: Box<dyn Io>,
    pub peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The accepting task, stopped when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The accepted connections of one listening socket.
pub struct Incoming {
    rx: mpsc::Receiver<Conn>,
    local: SocketAddr,
    _task: AbortOnDrop,
}

/// [`Incoming`] as a stream of connections (tonic's `serve_with_incoming_shutdown`).
pub struct IncomingStream {
    rx: mpsc::Receiver<Conn>,
    _task: AbortOnDrop,
}

impl tokio_stream::Stream for IncomingStream {
    type Item = std::io::Result<Conn>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = SocketAddr;
    fn connect_info(&self) -> SocketAddr {
        self.peer
    }
}

impl Incoming {
    /// Starts accepting on `listener` (`what` names the front end in log lines).
    pub fn start(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        max_connections: usize,
        what: &'static str,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let slots = Arc::new(Semaphore::new(max_connections.max(1)));
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        log::warn!("{what} accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match &tls {
                    None => {
                        let conn = Conn {
                            inner: Box::new(stream),
                            peer,
                            _slot: slot,
                        };
                        if tx.send(conn).await.is_err() {
                            return;
                        }
                    }
                    Some(acceptor) => {
                        let (acceptor, tx) = (acceptor.clone(), tx.clone());
                        tokio::spawn(async move {
                            match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(s)) => {
                                    let conn = Conn {
                                        inner: Box::new(s),
                                        peer,
                                        _slot: slot,
                                    };
                                    let _ = tx.send(conn).await;
                                }
                                Ok(Err(e)) => log::warn!("{what} {peer}: TLS handshake: {e}"),
                                Err(_) => log::warn!("{what} {peer}: TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        Ok(Self {
            rx,
            local,
            _task: AbortOnDrop(task),
        })
    }

    /// The next connection; None once accepting stopped.
    pub async fn next(&mut self) -> Option<Conn> {
        self.rx.recv().await
    }

    /// The connections as a stream.
    pub fn into_stream(self) -> IncomingStream {
        IncomingStream {
            rx: self.rx,
            _task: self._task,
        }
    }
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.next().await {
            Some(c) => {
                let peer = c.peer;
                (c, peer)
            }
            // The accept task ended (only when the runtime shuts down): wait for the end.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
