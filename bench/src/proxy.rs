//! `LatencyProxy`: a TCP proxy on 127.0.0.1 that delays every byte passing through it by a
//! one-way latency, in each direction, and can cap its bandwidth. Put in front of the S3 server,
//! it makes a bucket on loopback behave like a distant one at the level where a real network
//! acts: a new connection pays its handshake, each request a round trip, a large body its
//! transfer time at the cap. (A delay inside the client, before each request, would model only
//! the first of these.)
//!
//! Each direction of a connection is a reader and a writer joined by a queue of
//! `(due, bytes)`: the reader stamps what it reads with `now + one_way` and goes on reading, the
//! writer sleeps until each item is due, so the delay adds latency without serialising
//! requests. Loopback acknowledges lazily (delayed ACKs can add ~40 ms to a request/response
//! exchange), so every read re-arms `TCP_QUICKACK`, and `TCP_NODELAY` is set on both sides.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use socket2::SockRef;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Items queued per direction before the reader waits (each at most `READ_SIZE` bytes).
const QUEUE: usize = 256;
const READ_SIZE: usize = 64 * 1024;

/// A running proxy; stops accepting on drop (open connections end with their peers).
pub struct LatencyProxy {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl LatencyProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each connection to `upstream`, adding
    /// `rtt / 2` in each direction and, with `bandwidth` (bytes per second), pacing each
    /// direction of each connection to it.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        upstream: SocketAddr,
        rtt: Duration,
        bandwidth: Option<u64>,
    ) -> io::Result<LatencyProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let one_way = rtt / 2;
        let accepting = stop.clone();
        runtime.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("latency proxy: {e}"),
            };
            loop {
                let accepted = tokio::select! {
                    () = accepting.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((client, _)) => {
                        tokio::spawn(async move {
                            if let Err(e) = forward(client, upstream, one_way, bandwidth).await {
                                eprintln!("latency proxy: connection to {upstream}: {e}");
                            }
                        });
                    }
                    Err(e) => eprintln!("latency proxy: accept: {e}"),
                }
            }
        });
        Ok(LatencyProxy { addr, stop })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, one_way: Duration, bandwidth: Option<u64>) -> io::Result<()> {
    // The handshake with the server pays the delay too: the client's SYN would have crossed it.
    tokio::time::sleep(one_way * 2).await;
    let server = TcpStream::connect(upstream).await?;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = tokio::spawn(pump(client_read, server_write, one_way, bandwidth));
    let down = pump(server_read, client_write, one_way, bandwidth).await;
    let up = up.await.map_err(io::Error::other)?;
    // A peer that hangs up mid-exchange is normal for HTTP keep-alive; only report other errors.
    for r in [up, down] {
        if let Err(e) = r
            && !matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        {
            return Err(e);
        }
    }
    Ok(())
}

/// Moves bytes from `from` to `to`, each `one_way` after it was read, paced to `bandwidth`.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    one_way: Duration,
    bandwidth: Option<u64>,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(QUEUE);
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
        let mut free_at = Instant::now();
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.max(free_at)).await;
            to.write_all(&bytes).await?;
            if let Some(bps) = bandwidth.filter(|b| *b > 0) {
                free_at = Instant::now().max(free_at) + Duration::from_secs_f64(bytes.len() as f64 / bps as f64);
            }
        }
        to.shutdown().await
    };
    let (read, write) = tokio::join!(reader, writer);
    read.and(write)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: a round trip costs the RTT (twice the one-way delay,
    /// once each way), and the bytes come back intact.
    #[test]
    fn a_round_trip_through_the_proxy_costs_the_rtt() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let echo_addr = echo.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = echo.accept().await.unwrap();
                let mut buf = vec![0u8; 1024];
                loop {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
            let rtt = Duration::from_millis(40);
            let proxy = LatencyProxy::start(&tokio::runtime::Handle::current(), echo_addr, rtt, None).unwrap();
            let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
            c.set_nodelay(true).unwrap();
            for round in 0..3u8 {
                let sent = Instant::now();
                c.write_all(&[round; 100]).await.unwrap();
                let mut back = [0u8; 100];
                c.read_exact(&mut back).await.unwrap();
                // A lower bound only: the delay is the proxy's contract; the upper side is noise.
                assert!(sent.elapsed() >= rtt, "round {round} took {:?}", sent.elapsed());
                assert_eq!(back, [round; 100]);
            }
        });
    }
}
