//! A client connection's socket and its message loop. pgwire writes one message at a time
//! through its codec into a buffer it flushes every 8 KiB; a large result is millions of
//! DataRow messages, and copying each through pgwire cost the connection's task more than
//! DuckDB took to produce them. Rows arrive already framed ([`super::encode::Frames`]), so the
//! socket here takes them beside pgwire's messages and writes them as they are, in order.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, DefaultClient, NoopHandler, PgWireConnectionState};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{MaybeTls, PgWireMessageServerCodec, negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::codec::{Framed, FramedParts};

use super::handler::{CancelRegistry, ClientHandler};
use super::statement::Statement;

/// How long a client has to start up and authenticate (pgwire's own limit).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection as pgwire's handlers see it.
pub type Connection = Framed<Wire, PgWireMessageServerCodec<Statement>>;

/// Framed rows waiting for the socket; the connection's handler queues them, its socket
/// writes them.
#[derive(Clone, Default)]
pub struct RawRows(Arc<Mutex<VecDeque<Bytes>>>);

impl RawRows {
    /// Writes `frames` (whole messages) to `client`'s socket after every message sent before.
    pub async fn send<C>(&self, client: &mut C, frames: Bytes) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin,
        PgWireError: From<C::Error>,
    {
        // pgwire's buffered messages reach the socket first, then these
        client.flush().await?;
        self.lock().push_back(frames);
        client.flush().await?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Bytes>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The socket: pgwire's stream, writing queued [`RawRows`] before anything after them.
pub struct Wire {
    io: MaybeTls,
    raw: RawRows,
}

impl Wire {
    /// Writes the queued rows; ready when none are left.
    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut queue = self.raw.lock();
        while let Some(front) = queue.front_mut() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, front))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            front.advance(n);
            if front.is_empty() {
                queue.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_raw(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Serves a Unix socket connection with `client` until it ends.
pub async fn serve_unix(
    stream: tokio::net::UnixStream,
    client: Arc<ClientHandler>,
    cancels: Arc<CancelRegistry>,
) -> io::Result<()> {
    // as pgwire does: a Unix peer has no address
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let wire = Wire { io: MaybeTls::Unix(stream), raw: client.raw_rows() };
    let mut socket = Framed::new(wire, PgWireMessageServerCodec::new(DefaultClient::new(addr, false)));
    let started_by = Instant::now() + STARTUP_TIMEOUT;
    match tokio::time::timeout_at(started_by, refuse_encryption(&mut socket)).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) | Err(_) => return Ok(()),
        Ok(Err(e)) => return Err(e),
    }
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    serve(socket, client, cancels, started_by).await
}

/// Answers a client's SSLRequest and GSSENCRequest with `N`, as a PostgreSQL server without
/// TLS does on a Unix socket: libpq with `sslmode=prefer` (connectorx's default, Polars'
/// engine) asks first, then starts up in the clear. `false` when the client went away.
async fn refuse_encryption(socket: &mut Connection) -> io::Result<bool> {
    use pgwire::messages::SslNegotiationMetaMessage;
    use pgwire::messages::response::{GssEncResponse, SslResponse};
    loop {
        let answer = match socket.next().await {
            Some(Ok(PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresSsl(_)))) => {
                PgWireBackendMessage::SslResponse(SslResponse::Refuse)
            }
            Some(Ok(PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::PostgresGss(_)))) => {
                PgWireBackendMessage::GssEncResponse(GssEncResponse::Refuse)
            }
            // A startup or cancel request: nothing was consumed, it is read next.
            Some(Ok(PgWireFrontendMessage::SslNegotiation(SslNegotiationMetaMessage::None))) => return Ok(true),
            Some(Ok(_)) | Some(Err(_)) | None => return Ok(false),
        };
        socket.send(answer).await?;
    }
}

/// Serves a TCP connection with `client` until it ends (TLS is refused: TCP is loopback only).
pub async fn serve_tcp(
    stream: tokio::net::TcpStream,
    client: Arc<ClientHandler>,
    cancels: Arc<CancelRegistry>,
) -> io::Result<()> {
    let started_by = Instant::now() + STARTUP_TIMEOUT;
    let Ok(negotiated) = tokio::time::timeout_at(started_by, negotiate_tls::<Statement>(stream, None)).await else {
        return Ok(());
    };
    let Some(plain) = negotiated? else { return Ok(()) };
    // the same stream and codec state, behind a Wire
    let old = plain.into_parts();
    let mut parts = FramedParts::new::<PgWireBackendMessage>(Wire { io: old.io, raw: client.raw_rows() }, old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    serve(Framed::from_parts(parts), client, cancels, started_by).await
}

/// pgwire's message loop (its `process_socket`'s), over a [`Wire`]; `client` handles every
/// message but CancelRequests; a client not started up by `started_by` is dropped.
async fn serve(
    mut socket: Connection,
    client: Arc<ClientHandler>,
    cancels: Arc<CancelRegistry>,
    started_by: Instant,
) -> io::Result<()> {
    let startup = tokio::time::sleep_until(started_by);
    tokio::pin!(startup);
    // COPY FROM is not served: pgwire's no-op handler refuses its data
    let copy = Arc::new(NoopHandler);
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        let message = if starting {
            tokio::select! {
                _ = &mut startup => None,
                m = socket.next() => m,
            }
        } else {
            socket.next().await
        };
        let Some(Ok(message)) = message else { break };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // a CancelRequest comes on a connection of its own, closed once it is handled
        let cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        let result = process_message(
            message,
            &mut socket,
            client.clone(),
            client.clone(),
            client.clone(),
            copy.clone(),
            cancels.clone(),
        )
        .await;
        if let Err(e) = result {
            let fatal = e.is_fatal();
            process_error(&mut socket, e, extended_query).await?;
            if fatal {
                break;
            }
        }
        if cancel_request {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use pgwire::api::results::Tag;
    use tokio::io::AsyncReadExt;

    use super::*;

    fn complete(tag: &str) -> PgWireBackendMessage {
        PgWireBackendMessage::CommandComplete(Tag::new(tag).into())
    }

    #[tokio::test]
    async fn queued_rows_are_written_between_the_messages_sent_around_them() {
        let (server, mut peer) = tokio::net::UnixStream::pair().expect("socket pair");
        let raw = RawRows::default();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let wire = Wire { io: MaybeTls::Unix(server), raw: raw.clone() };
        let mut socket: Connection = Framed::new(wire, PgWireMessageServerCodec::new(DefaultClient::new(addr, false)));
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            peer.read_to_end(&mut all).await.map(|_| all)
        });
        // more than a socket buffer holds: written in parts as the peer reads
        let rows: Bytes = (0..4 << 20).map(|i: u32| i as u8).collect::<Vec<u8>>().into();
        socket.feed(complete("BEFORE")).await.expect("feed");
        raw.send(&mut socket, rows.clone()).await.expect("rows");
        socket.feed(complete("AFTER")).await.expect("feed");
        socket.close().await.expect("close");
        drop(socket);
        let got = reader.await.expect("reader").expect("read");
        let mut expected = BytesMut::new();
        complete("BEFORE").encode(&mut expected).expect("encode");
        expected.extend_from_slice(&rows);
        complete("AFTER").encode(&mut expected).expect("encode");
        assert_eq!(got.len(), expected.len());
        assert!(got == expected[..], "bytes out of order");
    }
}
