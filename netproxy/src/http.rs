//! HTTP-level faults: a reverse proxy that answers a share of requests the way an overloaded
//! S3-compatible service does (`500 InternalError`, `503 SlowDown`, with S3's XML error body)
//! and gives others a wrong `ETag` (as if the object had been replaced between two requests),
//! forwarding everything else unchanged.
//!
//! Where [`crate::Faults`] breaks connections, these faults are well-formed answers: they
//! exercise the store client's retry of 5xx answers and the cache's check that every range of
//! an object comes from the same version of it. Each request draws its own fault (a
//! per-connection fault would miss most requests of a client that keeps connections alive),
//! from a seeded roll, so a failing run replays from its seed.
//!
//! Requests are forwarded with their headers untouched (`Host` included, so SigV4 signatures
//! made for the proxy's address still verify upstream); it can sit in front of the TCP
//! [`crate::Proxy`] to combine both kinds of faults.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_TYPE, ETAG, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Xorshift;

/// How a request is failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpFaultKind {
    /// `500 Internal Server Error` with S3's `InternalError` body; the request never reaches
    /// the server.
    InternalError,
    /// `503 Service Unavailable` with S3's `SlowDown` body; the request never reaches the server.
    SlowDown,
    /// The server's answer, with its `ETag` replaced by one no version of the object has.
    WrongEtag,
}

const KINDS: [HttpFaultKind; 3] = [HttpFaultKind::InternalError, HttpFaultKind::SlowDown, HttpFaultKind::WrongEtag];

/// Faults to inject, shared with the proxy so a test can turn them on and off and count them.
#[derive(Debug)]
pub struct HttpFaults {
    on: AtomicBool,
    percent: u64,
    kinds: Vec<HttpFaultKind>,
    rolls: Xorshift,
    requests: AtomicU64,
    injected: [AtomicU64; 3],
}

impl HttpFaults {
    /// Fails `percent` of requests (a seeded roll per request), with `kinds` in turn as drawn;
    /// on from the start.
    pub fn new(percent: u64, kinds: &[HttpFaultKind], seed: u64) -> Arc<HttpFaults> {
        Arc::new(HttpFaults {
            on: AtomicBool::new(true),
            percent: percent.min(100),
            kinds: if kinds.is_empty() { KINDS.to_vec() } else { kinds.to_vec() },
            rolls: Xorshift::new(seed),
            requests: AtomicU64::new(0),
            injected: Default::default(),
        })
    }

    /// Turns injection on or off.
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    /// Faults injected so far, of one kind.
    pub fn injected(&self, kind: HttpFaultKind) -> u64 {
        self.injected[kind as usize].load(Ordering::SeqCst)
    }

    /// Faults injected so far, all kinds.
    pub fn total(&self) -> u64 {
        KINDS.iter().map(|k| self.injected(*k)).sum()
    }

    /// Requests the proxy has seen, failed or not.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// The fault for one request, if it gets one.
    fn draw(&self) -> Option<HttpFaultKind> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if !self.on.load(Ordering::SeqCst) {
            return None;
        }
        let roll = self.rolls.next();
        if roll % 100 >= self.percent {
            return None;
        }
        let kind = self.kinds[((roll / 100) % self.kinds.len() as u64) as usize];
        self.injected[kind as usize].fetch_add(1, Ordering::SeqCst);
        Some(kind)
    }
}

/// A running HTTP fault proxy; stops accepting on drop.
pub struct HttpProxy {
    addr: SocketAddr,
    stop: CancellationToken,
}

type Body = BoxBody<Bytes, hyper::Error>;

impl HttpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards each HTTP/1.1 request to `upstream`,
    /// failing some as `faults` says.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        upstream: SocketAddr,
        faults: Arc<HttpFaults>,
    ) -> io::Result<HttpProxy> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let accepting = stop.clone();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
        runtime.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return eprintln!("http proxy: {e}"),
            };
            loop {
                let accepted = tokio::select! {
                    () = accepting.cancelled() => return,
                    a = listener.accept() => a,
                };
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        eprintln!("http proxy: accept: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (client, faults) = (client.clone(), Arc::clone(&faults));
                let service = service_fn(move |request| {
                    let (client, faults) = (client.clone(), Arc::clone(&faults));
                    async move { Ok::<_, Infallible>(answer(&client, upstream, &faults, request).await) }
                });
                tokio::spawn(async move {
                    // A client hanging up between requests is normal keep-alive behaviour.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(HttpProxy { addr, stop })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One request's answer: a drawn fault, or the server's (with a wrong ETag if so drawn). An
/// upstream that cannot be reached is a `502`, as any reverse proxy answers.
async fn answer(
    client: &Client<HttpConnector, Incoming>,
    upstream: SocketAddr,
    faults: &HttpFaults,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let fault = faults.draw();
    match fault {
        Some(HttpFaultKind::InternalError) => {
            return s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "We encountered an internal error.");
        }
        Some(HttpFaultKind::SlowDown) => {
            return s3_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate.");
        }
        Some(HttpFaultKind::WrongEtag) | None => {}
    }
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = match format!("http://{upstream}{path}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("bad request target: {e}")),
    };
    *request.uri_mut() = uri;
    match client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            if fault == Some(HttpFaultKind::WrongEtag) {
                let wrong = format!("\"warmlake-fault-{}\"", faults.requests());
                if let Ok(value) = HeaderValue::from_str(&wrong) {
                    parts.headers.insert(ETAG, value);
                }
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => plain(StatusCode::BAD_GATEWAY, format!("upstream {upstream}: {e}")),
    }
}

/// An error answer with S3's XML body, which clients parse for the code.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = plain(status, body);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn plain(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    // The connection stays usable: the error is the request's, not the connection's.
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("keep-alive"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// An HTTP/1.1 server that answers every request with `200`, an ETag and `hello`, keeping
    /// the connection open.
    async fn hello_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = service_fn(|_request: Request<Incoming>| async {
                        let mut r = Response::new(Full::new(Bytes::from_static(b"hello")));
                        r.headers_mut().insert(ETAG, HeaderValue::from_static("\"v1\""));
                        Ok::<_, Infallible>(r)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    /// Sends `n` GETs on one kept-alive connection, returning (status, etag, body) of each.
    async fn get_n(addr: SocketAddr, n: usize) -> Vec<(u16, String, String)> {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        let mut out = Vec::new();
        for _ in 0..n {
            let request = Request::get("/bucket/key").header("host", "example").body(String::new()).unwrap();
            sender.ready().await.unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let etag = response.headers().get(ETAG).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            out.push((status, etag, String::from_utf8(body.to_vec()).unwrap()));
        }
        out
    }

    /// A share of requests on one connection fail, each kind the way it says, the rest pass
    /// through unchanged; with faults off, every request passes.
    #[test]
    fn requests_fail_the_way_they_say_and_the_rest_pass() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let faults = HttpFaults::new(40, &[], 7);
            let proxy = HttpProxy::start(&tokio::runtime::Handle::current(), hello_server().await, Arc::clone(&faults))
                .unwrap();
            let answers = get_n(proxy.addr(), 200).await;
            let mut seen = [0u64; 3];
            for (status, etag, body) in &answers {
                match status {
                    500 => {
                        assert!(body.contains("<Code>InternalError</Code>"), "{body}");
                        seen[HttpFaultKind::InternalError as usize] += 1;
                    }
                    503 => {
                        assert!(body.contains("<Code>SlowDown</Code>"), "{body}");
                        seen[HttpFaultKind::SlowDown as usize] += 1;
                    }
                    200 if etag != "\"v1\"" => {
                        assert_eq!(body, "hello");
                        seen[HttpFaultKind::WrongEtag as usize] += 1;
                    }
                    200 => assert_eq!(body, "hello"),
                    other => panic!("unexpected status {other}"),
                }
            }
            let injected = KINDS.map(|k| faults.injected(k));
            assert_eq!(seen, injected, "each request failed the way its fault said");
            assert!(injected.iter().all(|n| *n > 0), "every kind drawn: {injected:?}");
            let total: u64 = injected.iter().sum();
            assert!((40..=120).contains(&total), "about 40 % of 200 requests failed: {total}");
            assert_eq!(faults.requests(), 200);
            faults.set_on(false);
            assert!(get_n(proxy.addr(), 20).await.iter().all(|(s, e, b)| *s == 200 && e == "\"v1\"" && b == "hello"));
        });
    }

    /// An upstream that is gone is a 502, not a hang or a dropped connection.
    #[test]
    fn a_missing_upstream_is_a_bad_gateway() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let gone = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
            let faults = HttpFaults::new(0, &[], 1);
            let proxy = HttpProxy::start(&tokio::runtime::Handle::current(), gone, faults).unwrap();
            let mut c = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
            c.write_all(b"GET /x HTTP/1.1\r\nhost: example\r\n\r\n").await.unwrap();
            let mut head = [0u8; 12];
            c.read_exact(&mut head).await.unwrap();
            assert_eq!(&head, b"HTTP/1.1 502");
        });
    }
}
