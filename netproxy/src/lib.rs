//! A TCP proxy on 127.0.0.1 for tests and benchmarks, put in front of an S3-compatible server.
//!
//! - **Latency**: every byte passing through waits half the round-trip time in each direction,
//!   and each direction of the link can be capped to a bandwidth shared by all connections (as
//!   a laptop's Wi-Fi is), so a bucket on loopback behaves like a distant one at the level where
//!   a real network acts: a new connection pays its handshake, each request a round trip, a
//!   large body its transfer time, and many parallel connections share one link. (A delay inside the client,
//!   before each request, would model only the second.)
//! - **Faults** ([`Faults`]): some connections are broken part-way through what the server
//!   sends: reset (RST) mid-body, cut short with a clean close (a truncated body), or stalled for
//!   longer than any sane client timeout. These are the failures a laptop on hotel Wi-Fi sees,
//!   and they exercise the client's own timeouts and retries, not a simulation of them.
//!
//! HTTP-level faults (5xx answers, wrong ETags) are the [`http`] module's [`HttpProxy`].
//!
//! Each direction of a connection is a reader and a writer joined by a queue of `(due, bytes)`:
//! the reader stamps what it reads with `now + one_way` and goes on reading, the writer sleeps
//! until each item is due, so the delay adds latency without serialising requests. Loopback
//! acknowledges lazily (delayed ACKs can add ~40 ms to a request/response exchange), so every
//! read re-arms `TCP_QUICKACK`, and `TCP_NODELAY` is set on both sides.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use socket2::SockRef;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub mod http;
pub use http::{HttpFaultKind, HttpFaults, HttpProxy};

/// Items queued per direction before the reader waits (each at most `READ_SIZE` bytes).
const QUEUE: usize = 256;
const READ_SIZE: usize = 64 * 1024;
/// A fault strikes within this many bytes of the server's side of a connection.
const FAULT_WITHIN: u64 = 256 * 1024;

/// How a connection is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Both sides are closed with a TCP reset, mid-body.
    Reset,
    /// The client's side is closed cleanly mid-body: the response is shorter than it said.
    Truncate,
    /// Nothing more is forwarded for [`Faults::stall`], then the connection is closed.
    Stall,
}

const KINDS: [FaultKind; 3] = [FaultKind::Reset, FaultKind::Truncate, FaultKind::Stall];

/// A seeded xorshift generator, shared between threads: faults drawn from it replay exactly
/// from the same seed (the proxy's, and the tests' own fault decorators).
#[derive(Debug)]
pub struct Xorshift(AtomicU64);

impl Xorshift {
    /// Starts from `seed` (any value; zero is made odd, as xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Xorshift {
        Xorshift(AtomicU64::new(seed | 1))
    }

    /// The next number.
    pub fn next(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        x
    }
}

/// Faults to inject, shared with the proxy so a test can turn them on and off and count them.
/// Which connections break is fixed (the first while on, then every `every`-th), so a test is
/// sure to see faults however few connections its client pools; the kinds take turns, and where
/// in the stream each strikes is a seeded xorshift roll, so a failing run can be replayed.
#[derive(Debug)]
pub struct Faults {
    on: AtomicBool,
    every: u64,
    /// How long a stall lasts.
    pub stall: Duration,
    connections: AtomicU64,
    rolls: Xorshift,
    injected: [AtomicU64; 3],
}

impl Faults {
    /// Breaks the first connection and every `every`-th after it (1: all), in turn reset,
    /// truncated and stalled (for `stall`); on from the start.
    pub fn new(every: u64, stall: Duration, seed: u64) -> Arc<Faults> {
        Arc::new(Faults {
            on: AtomicBool::new(true),
            every: every.max(1),
            stall,
            connections: AtomicU64::new(0),
            rolls: Xorshift::new(seed),
            injected: Default::default(),
        })
    }

    /// Turns injection on or off (connections already broken stay broken).
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    /// Faults injected so far, of one kind.
    pub fn injected(&self, kind: FaultKind) -> u64 {
        self.injected[kind as usize].load(Ordering::SeqCst)
    }

    /// Faults injected so far, all kinds.
    pub fn total(&self) -> u64 {
        KINDS.iter().map(|k| self.injected(*k)).sum()
    }

    /// The fault for a new connection, if it gets one: which, and after how many bytes.
    fn draw(&self) -> Option<(FaultKind, u64)> {
        if !self.on.load(Ordering::SeqCst) {
            return None;
        }
        let n = self.connections.fetch_add(1, Ordering::SeqCst);
        if !n.is_multiple_of(self.every) {
            return None;
        }
        Some((KINDS[((n / self.every) % 3) as usize], self.rolls.next() % FAULT_WITHIN))
    }
}

/// A running proxy; stops accepting on drop (open connections end with their peers).
pub struct Proxy {
    addr: SocketAddr,
    stop: CancellationToken,
    /// Bytes delivered to clients, all connections: what a client downloaded at the wire.
    delivered: Arc<AtomicU64>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `upstream`, adding
    /// `rtt / 2` in each direction and, with `bandwidth` (bytes per second), pacing each
    /// direction of the link, all connections together, to it.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        upstream: SocketAddr,
        rtt: Duration,
        bandwidth: Option<u64>,
    ) -> io::Result<Proxy> {
        Proxy::with_faults(runtime, upstream, rtt, bandwidth, None)
    }

    /// [`Proxy::start`], breaking connections as `faults` says.
    pub fn with_faults(
        runtime: &tokio::runtime::Handle,
        upstream: SocketAddr,
        rtt: Duration,
        bandwidth: Option<u64>,
        faults: Option<Arc<Faults>>,
    ) -> io::Result<Proxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let delivered = Arc::new(AtomicU64::new(0));
        let pacer = || bandwidth.filter(|b| *b > 0).map(|bps| Arc::new(Pacer::new(bps)));
        let link = Link { upstream, one_way: rtt / 2, up: pacer(), down: pacer() };
        let accepting = stop.clone();
        let counter = Arc::clone(&delivered);
        runtime.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("proxy: {e}"),
            };
            loop {
                let accepted = tokio::select! {
                    () = accepting.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((client, _)) => {
                        let fault = faults.as_ref().and_then(|f| f.draw().map(|d| (Arc::clone(f), d)));
                        let counter = Arc::clone(&counter);
                        let link = link.clone();
                        tokio::spawn(async move {
                            if let Err(e) = link.forward(client, fault, &counter).await {
                                eprintln!("proxy: connection to {upstream}: {e}");
                            }
                        });
                    }
                    Err(e) => eprintln!("proxy: accept: {e}"),
                }
            }
        });
        Ok(Proxy { addr, stop, delivered })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes written to clients so far, over every connection (HTTP headers included): what
    /// clients downloaded through the proxy, whichever client it was and whatever it counts
    /// itself. Bytes the server sent that a client hung up on before they were due are not
    /// counted.
    pub fn bytes_delivered(&self) -> u64 {
        self.delivered.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Debug, Clone)]
struct Link {
    upstream: SocketAddr,
    one_way: Duration,
    /// Client to server, and server to client: shared by every connection.
    up: Option<Arc<Pacer>>,
    down: Option<Arc<Pacer>>,
}

/// One direction of a link of limited bandwidth: bytes cross it one after another, whichever
/// connection they belong to.
#[derive(Debug)]
struct Pacer {
    bytes_per_second: u64,
    /// When the link has carried everything queued on it so far.
    free_at: std::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(bytes_per_second: u64) -> Pacer {
        Pacer { bytes_per_second, free_at: std::sync::Mutex::new(Instant::now()) }
    }

    /// When `len` bytes that reach the link at `ready` have crossed it: after everything
    /// queued before them.
    fn crossed(&self, ready: Instant, len: usize) -> Instant {
        let mut free_at = self.free_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *free_at = (*free_at).max(ready) + Duration::from_secs_f64(len as f64 / self.bytes_per_second as f64);
        *free_at
    }
}

/// A fault drawn for one connection: the shared switchboard, which kind, after how many bytes.
type Drawn = (Arc<Faults>, (FaultKind, u64));

impl Link {
    /// Both directions run in this one task on borrowed halves, so when a fault ends the
    /// connection, dropping the streams closes them at once (with a reset when the fault set
    /// `SO_LINGER` 0), rather than after a half-close.
    async fn forward(&self, mut client: TcpStream, fault: Option<Drawn>, delivered: &AtomicU64) -> io::Result<()> {
        // The handshake with the server pays the delay too: the client's SYN would have crossed it.
        tokio::time::sleep(self.one_way * 2).await;
        let mut server = TcpStream::connect(self.upstream).await?;
        for s in [&client, &server] {
            s.set_nodelay(true)?;
        }
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = self.pump(client_read, server_write, self.up.as_deref(), None, None);
        let down = self.pump(server_read, client_write, self.down.as_deref(), fault, Some(delivered));
        tokio::pin!(up, down);
        let result = tokio::select! {
            d = &mut down => match d {
                Ok(()) => up.await,
                broken => broken,
            },
            u = &mut up => down.await.and(u),
        };
        // A peer that hangs up mid-exchange is normal for HTTP keep-alive, and an injected
        // fault is the point; only report others.
        match result {
            Err(e) if !matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves bytes from `from` to `to`, each `one_way` after it was read and after the link
    /// (`pacer`) has carried it, and broken as `fault` says; adds what it wrote to `written`.
    async fn pump(
        &self,
        mut from: ReadHalf<'_>,
        mut to: WriteHalf<'_>,
        pacer: Option<&Pacer>,
        fault: Option<Drawn>,
        written: Option<&AtomicU64>,
    ) -> io::Result<()> {
        let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(QUEUE);
        let one_way = self.one_way;
        let reader = async move {
            let mut buf = vec![0u8; READ_SIZE];
            loop {
                let n = from.read(&mut buf).await?;
                // Not permanent in the kernel: re-armed after every read.
                let _ = SockRef::from(from.as_ref()).set_tcp_quickack(true);
                if n == 0 {
                    return Ok::<(), io::Error>(());
                }
                if tx.send((Instant::now() + one_way, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                    return Ok(());
                }
            }
        };
        let writer = async move {
            let mut sent = 0u64;
            while let Some((due, mut bytes)) = rx.recv().await {
                let due = pacer.map_or(due, |p| p.crossed(due, bytes.len()));
                tokio::time::sleep_until(due).await;
                if let Some((faults, (kind, after))) = &fault
                    && sent + bytes.len() as u64 > *after
                {
                    let part = bytes.split_to((after - sent) as usize);
                    to.write_all(&part).await?;
                    if let Some(w) = written {
                        w.fetch_add(part.len() as u64, Ordering::Relaxed);
                    }
                    faults.injected[*kind as usize].fetch_add(1, Ordering::SeqCst);
                    return break_off(to, *kind, faults.stall).await;
                }
                to.write_all(&bytes).await?;
                sent += bytes.len() as u64;
                if let Some(w) = written {
                    w.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                }
            }
            to.shutdown().await
        };
        // The writer ends when the reader has ended and the queue is drained, or at once on an
        // error or a fault: then the reader is dropped too, mid-read if need be.
        tokio::pin!(reader, writer);
        tokio::select! {
            w = &mut writer => w,
            r = &mut reader => writer.await.and(r),
        }
    }
}

/// Ends a connection the way `kind` says.
async fn break_off(mut to: WriteHalf<'_>, kind: FaultKind, stall: Duration) -> io::Result<()> {
    match kind {
        FaultKind::Reset => {
            // SO_LINGER 0: closing (when `forward` drops the stream) sends a reset, not a FIN.
            SockRef::from(to.as_ref()).set_linger(Some(Duration::ZERO))?;
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected reset"))
        }
        FaultKind::Truncate => {
            to.shutdown().await?;
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected truncation"))
        }
        FaultKind::Stall => {
            tokio::time::sleep(stall).await;
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "injected stall"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = echo.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// An echo server behind the proxy: the bytes come back intact, and no sooner than the
    /// round trip the proxy adds (a lower bound the proxy guarantees; no upper bound is
    /// asserted, the machine is shared).
    #[test]
    fn bytes_come_back_intact_after_the_round_trip() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let rtt = Duration::from_millis(40);
            let proxy = Proxy::start(&tokio::runtime::Handle::current(), echo_server().await, rtt, None).unwrap();
            let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
            c.set_nodelay(true).unwrap();
            for round in 0..3u8 {
                let sent = Instant::now();
                c.write_all(&[round; 100]).await.unwrap();
                let mut back = [0u8; 100];
                c.read_exact(&mut back).await.unwrap();
                assert!(sent.elapsed() >= rtt, "round {round} took {:?}", sent.elapsed());
                assert_eq!(back, [round; 100]);
            }
            assert_eq!(proxy.bytes_delivered(), 300, "every byte the client got is counted, once");
        });
    }

    /// A server that answers each connection's first read (a request) with `len` bytes (a
    /// response body), then waits for the client to go.
    async fn answering_server(len: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut request = [0u8; 16];
                    if s.read(&mut request).await.is_ok() {
                        let _ = s.write_all(&vec![7u8; len]).await;
                        let _ = s.read(&mut request).await;
                    }
                });
            }
        });
        addr
    }

    /// The bandwidth is the link's: two connections downloading at once share it, so together
    /// they take at least their bytes' worth of it (a lower bound the pacing guarantees; no
    /// upper bound is asserted, the machine is shared).
    #[test]
    fn connections_share_the_link() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let len = 200_000;
            let bps = 1_000_000;
            let proxy = Proxy::start(
                &tokio::runtime::Handle::current(),
                answering_server(len).await,
                Duration::ZERO,
                Some(bps),
            )
            .unwrap();
            let started = Instant::now();
            let download = || async {
                let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
                c.write_all(b"GET").await.unwrap();
                let mut body = vec![0u8; len];
                c.read_exact(&mut body).await.unwrap();
            };
            tokio::join!(download(), download());
            let least = Duration::from_secs_f64(2.0 * len as f64 / bps as f64);
            assert!(started.elapsed() >= least, "{:?} for 400 kB at 1 MB/s", started.elapsed());
            assert_eq!(proxy.bytes_delivered(), 2 * len as u64);
        });
    }

    /// Every connection broken: each kind shows as the client sees it (a reset, an early end, or
    /// silence), after some of the bytes; with faults off, connections work again.
    #[test]
    fn broken_connections_fail_the_way_they_say() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let faults = Faults::new(1, Duration::from_secs(30), 11);
            let len = 2 * FAULT_WITHIN as usize;
            let proxy = Proxy::with_faults(
                &tokio::runtime::Handle::current(),
                answering_server(len).await,
                Duration::ZERO,
                None,
                Some(Arc::clone(&faults)),
            )
            .unwrap();
            // What the client saw: a clean early end, a reset, silence.
            let mut seen = [0u64; 3];
            for _ in 0..12 {
                let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
                c.write_all(b"GET").await.unwrap();
                let mut got = Vec::new();
                let result = tokio::time::timeout(Duration::from_millis(1500), c.read_to_end(&mut got)).await;
                let got = got.len();
                assert!(got < len, "a broken connection delivers less than was sent: {got}");
                let kind = match result {
                    Ok(Ok(_)) => FaultKind::Truncate,
                    Ok(Err(e)) => {
                        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
                        FaultKind::Reset
                    }
                    Err(_) => FaultKind::Stall,
                };
                seen[kind as usize] += 1;
            }
            let injected: Vec<u64> = KINDS.iter().map(|k| faults.injected(*k)).collect();
            assert_eq!(seen.to_vec(), injected, "each connection failed the way its fault said");
            assert_eq!(injected, [4, 4, 4], "the kinds take turns");
            faults.set_on(false);
            let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
            c.write_all(b"GET").await.unwrap();
            let mut whole = vec![0u8; len];
            c.read_exact(&mut whole).await.unwrap();
            assert!(whole.iter().all(|b| *b == 7), "with faults off the whole answer comes through");
        });
    }
}
