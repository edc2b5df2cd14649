//! The 10250 connection layer: one async-io thread drives every connection's TLS and HTTP reads
//! and writes with deadlines (handshake and each request 10 s, 2 s for handshakes while their
//! share of the slot table is half full; keep-alive idle 90 s, 1 s while the table is half full;
//! a write that makes no progress for 90 s ends the connection). The slot table (`slots`)
//! evicts the longest-waiting connection that has not given a complete request when a new one
//! needs room. Requests that cannot block (cached authn/authz, a non-blocking route) are
//! answered on this thread; the rest go to a fixed pool of handler threads. Bodies are written
//! in pieces as the socket takes them; streamed bodies come from their producer's thread
//! through a bounded queue, and the client's going away stops the producer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::channel;
use smol::{Async, Timer, future};

use super::auth::Cert;
use super::http::{self, BodyKind, ChunkDecoder, Framing, HttpError, Limits, Parsed, RequestHead};
use super::slots::{Phase, Slot, Slots};
use super::stream::Streams;
use super::tls::ServerTls;
use super::{Body, Response, State, dispatch, dispatch_inline};

/// Open connections at most.
pub const MAX_CONNS: usize = 1024;
/// Of them, in their TLS handshake at most (past it, the longest-waiting one is closed).
pub const MAX_HANDSHAKES: usize = 256;
/// Handler threads.
pub const WORKERS: usize = 8;
const IDLE: Duration = Duration::from_secs(90);
const IDLE_SLICE: Duration = Duration::from_secs(1);
/// For the TLS handshake, and for each request from its first byte to its last.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// For a handshake while more than half the handshake slots are taken.
const BUSY_HANDSHAKE_DEADLINE: Duration = Duration::from_secs(2);
/// A write that makes no progress for this long ends the connection.
const WRITE_STALL: Duration = IDLE;
const MAX_BODY: u64 = 1 << 20;
/// Bytes of a whole body handed to TLS at once.
const PIECE: usize = 64 * 1024;

struct Job {
    cert: Cert,
    head: RequestHead,
    body: Vec<u8>,
    reply: channel::Sender<Response>,
}

/// What every connection task shares.
struct Shared {
    state: Arc<State>,
    tls: ServerTls,
    slots: Arc<Slots>,
    streams: Streams,
    jobs: channel::Sender<Job>,
}

/// Serves until the listener fails: the worker pool, then the I/O loop on this thread.
pub fn serve(listener: TcpListener, tls: ServerTls, state: Arc<State>) {
    let (jobs, queue) = channel::bounded::<Job>(WORKERS * 4);
    for i in 0..WORKERS {
        let (queue, state) = (queue.clone(), state.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("10250-worker-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(job) = queue.recv_blocking() {
                    let t0 = Instant::now();
                    let resp = dispatch(&state, job.cert, &job.head, &job.body);
                    state
                        .metrics
                        .observe(&job.head.path, resp.status, t0.elapsed());
                    let _ = job.reply.send_blocking(resp);
                }
            });
        if let Err(e) = spawned {
            crate::error!("starting a 10250 worker: {e}");
        }
    }
    let slots = Slots::new(MAX_CONNS, MAX_HANDSHAKES, state.metrics.connections.clone());
    let shared = Arc::new(Shared {
        state,
        tls,
        slots: slots.clone(),
        streams: Streams::default(),
        jobs,
    });
    super::slots::accept_loop(listener, slots, "10250", move |tcp, slot| {
        let shared = shared.clone();
        async move { connection(tcp, &shared, &slot).await }
    });
}

/// `f`, or `None` when `d` passes first.
async fn within<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        Timer::after(d).await;
        None
    })
    .await
}

/// One TLS connection: its socket, its rustls state, and plaintext read but not yet used.
struct Conn {
    tcp: Async<TcpStream>,
    tls: rustls::ServerConnection,
    plain: Vec<u8>,
}

fn invalid(e: rustls::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

impl Conn {
    /// Sends whatever rustls has queued (handshake flights, records, alerts).
    async fn flush(&mut self) -> std::io::Result<()> {
        let Conn { tcp, tls, .. } = self;
        while tls.wants_write() {
            tcp.write_with(|s| tls.write_tls(&mut &*s)).await?;
        }
        Ok(())
    }

    /// Reads TLS records from the socket and processes them; false at EOF.
    async fn read_records(&mut self) -> std::io::Result<bool> {
        let Conn { tcp, tls, .. } = self;
        let n = tcp.read_with(|s| tls.read_tls(&mut &*s)).await?;
        if n == 0 {
            return Ok(false);
        }
        if let Err(e) = self.tls.process_new_packets() {
            // Tell the peer why (the alert rustls queued), then give up.
            let _ = self.flush().await;
            return Err(invalid(e));
        }
        Ok(true)
    }

    /// The TLS handshake; the slot moves past [`Phase::Hello`] once the client's hello is in
    /// (the server has something to answer).
    async fn handshake(&mut self, slot: &Slot) -> std::io::Result<()> {
        let mut answered = false;
        loop {
            if !answered && self.tls.wants_write() {
                answered = true;
                slot.set(Phase::Handshake);
            }
            self.flush().await?;
            if !self.tls.is_handshaking() {
                return Ok(());
            }
            if !self.read_records().await? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Appends more plaintext; false when the peer closed the connection.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 8192];
        loop {
            self.flush().await?;
            match self.tls.reader().read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.plain.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if !self.read_records().await? {
                return Ok(false);
            }
        }
    }

    /// Hands `data` to TLS in what its send buffer takes, flushing each piece to the socket as
    /// it becomes writable: backpressure, whatever the size.
    async fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            let n = self.tls.writer().write(data)?;
            if n == 0 && !self.tls.wants_write() {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
            self.flush().await?;
        }
        Ok(())
    }

    /// [`Conn::write_all`] in pieces, each of which must go out within [`WRITE_STALL`].
    async fn write_stalling(&mut self, data: &[u8]) -> bool {
        for piece in data.chunks(PIECE) {
            if !matches!(
                within(WRITE_STALL, self.write_all(piece)).await,
                Some(Ok(()))
            ) {
                return false;
            }
        }
        true
    }

    /// Waits for the first byte of the next request: up to 90 s, or 1 s while the server is
    /// more than half full. False when the connection should close.
    async fn wait_for_request(&mut self, slots: &Slots) -> bool {
        let start = Instant::now();
        loop {
            if !self.plain.is_empty() {
                return true;
            }
            match within(IDLE_SLICE, self.fill()).await {
                Some(Ok(true)) => return true,
                Some(_) => return false,
                None => {
                    if start.elapsed() >= IDLE || slots.under_pressure() {
                        return false;
                    }
                }
            }
        }
    }

    /// One request: the head, then its body (at most 1 MiB).
    async fn read_request(&mut self, limits: &Limits) -> Result<(RequestHead, Vec<u8>), Failed> {
        let head = loop {
            match http::parse_head(&self.plain, limits) {
                Ok(Parsed::Complete(h)) => break h,
                Ok(Parsed::Incomplete) => {}
                Err(e) => return Err(Failed::Http(e)),
            }
            if !self.fill().await.map_err(|_| Failed::Closed)? {
                return Err(Failed::Closed);
            }
        };
        self.plain.drain(..head.head_len);
        let ended_early = || Failed::Http(HttpError::BadRequest("the body ended early".into()));
        let body = match head.body {
            BodyKind::None => Vec::new(),
            BodyKind::Length(n) if n > MAX_BODY => {
                return Err(Failed::Http(HttpError::BodyTooLarge));
            }
            BodyKind::Length(n) => {
                let n = n as usize;
                while self.plain.len() < n {
                    if !self.fill().await.map_err(|_| ended_early())? {
                        return Err(ended_early());
                    }
                }
                self.plain.drain(..n).collect()
            }
            BodyKind::Chunked => {
                let mut d = ChunkDecoder::new(MAX_BODY);
                let mut out = Vec::new();
                loop {
                    let used = d.feed(&self.plain, &mut out).map_err(Failed::Http)?;
                    self.plain.drain(..used);
                    if d.is_done() {
                        break out;
                    }
                    if !self.fill().await.map_err(|_| ended_early())? {
                        return Err(ended_early());
                    }
                }
            }
        };
        Ok((head, body))
    }
}

enum Failed {
    Closed,
    Http(HttpError),
}

/// How long the runtime's streaming server may take to accept a connection.
const STREAMING_CONNECT: Duration = Duration::from_secs(30);

/// Connects to the runtime's streaming server at `url` (plain HTTP on the node): the stream,
/// the host:port and the path.
async fn connect_streaming(url: &str) -> std::io::Result<(Async<TcpStream>, &str, &str)> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("the runtime's streaming URL is not http://"))?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
        .next()
        .ok_or_else(|| invalid("the runtime's streaming URL has no address"))?;
    let timed_out = async {
        Timer::after(STREAMING_CONNECT).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("not accepted in {} s", STREAMING_CONNECT.as_secs()),
        ))
    };
    let rt = future::or(Async::<TcpStream>::connect(addr), timed_out).await?;
    Ok((rt, hostport, path))
}

/// Passes an upgrade request (exec, attach, port-forward) on to the runtime's streaming server
/// at `url` and then copies bytes both ways until either side closes, as the kubelet's
/// streaming proxy. When the runtime cannot be reached the client is answered 502 with why.
async fn splice(c: &mut Conn, head: &RequestHead, url: &str) -> std::io::Result<()> {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rt, hostport, path) = match connect_streaming(url).await {
        Ok(t) => t,
        Err(e) => {
            // Not the path: it holds the session's token.
            let at = url.split('/').nth(2).unwrap_or("");
            let why = format!("connecting to the runtime's streaming server at {at}: {e}");
            let resp = Response::text(502, why.clone());
            let out = head_of(&resp, Framing::Length(why.len()), false);
            write_full(c, out, why.as_bytes(), head).await;
            return Err(e);
        }
    };
    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {hostport}\r\n",
        head.method,
        if path.is_empty() { "/" } else { path }
    );
    for (k, v) in &head.headers {
        if k != "host" && k != "authorization" {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    rt.write_all(req.as_bytes()).await?;
    if !c.plain.is_empty() {
        rt.write_all(&c.plain).await?;
        c.plain.clear();
    }
    let mut buf = vec![0u8; 16 * 1024];
    enum Side {
        Client(std::io::Result<bool>),
        Runtime(std::io::Result<usize>),
    }
    loop {
        // Only the reads race; each write finishes before the next race, so nothing is lost.
        let side = future::or(async { Side::Client(c.fill().await) }, async {
            Side::Runtime(rt.read(&mut buf).await)
        })
        .await;
        match side {
            Side::Client(Ok(true)) => {
                rt.write_all(&c.plain).await?;
                c.plain.clear();
            }
            Side::Client(Ok(false)) => return Ok(()),
            Side::Runtime(Ok(0)) => {
                c.tls.send_close_notify();
                return c.flush().await;
            }
            Side::Runtime(Ok(n)) => c.write_all(&buf[..n]).await?,
            Side::Client(Err(e)) | Side::Runtime(Err(e)) => return Err(e),
        }
    }
}

/// The head of `resp` with its framing.
fn head_of(resp: &Response, framing: Framing, keep_alive: bool) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", resp.content_type)];
    for (k, v) in &resp.headers {
        headers.push((k, v));
    }
    http::response_head(resp.status, &headers, framing, keep_alive)
}

/// Writes a whole-body response (no body for HEAD); false when the connection is to close.
async fn write_full(c: &mut Conn, out: Vec<u8>, body: &[u8], head: &RequestHead) -> bool {
    c.write_stalling(&out).await
        && (head.method == "HEAD" || c.write_stalling(body).await)
        && head.keep_alive
}

/// Writes `resp`: a whole body, or a stream from its producer's thread (chunked on HTTP/1.1,
/// else closed at its end); false when the connection is to close.
async fn write_response(c: &mut Conn, sh: &Shared, head: &RequestHead, mut resp: Response) -> bool {
    let body = std::mem::replace(&mut resp.body, Body::Full(Vec::new()));
    let producer = match body {
        Body::Full(body) => {
            let out = head_of(&resp, Framing::Length(body.len()), head.keep_alive);
            return write_full(c, out, &body, head).await;
        }
        Body::Stream(p) => p,
    };
    let chunked = head.http11;
    let keep_alive = head.keep_alive && chunked;
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Close
    };
    let stream_head = head_of(&resp, framing, keep_alive);
    drop(resp);
    if head.method == "HEAD" {
        return c.write_stalling(&stream_head).await && keep_alive;
    }
    let Some(chunks) = sh.streams.start(producer) else {
        const BUSY: &str = "too many streams in progress; retry later";
        let busy = Response::text(503, BUSY);
        let out = head_of(&busy, Framing::Length(BUSY.len()), head.keep_alive);
        return write_full(c, out, BUSY.as_bytes(), head).await;
    };
    if !c.write_stalling(&stream_head).await {
        return false;
    }
    enum Next {
        Chunk(Option<Vec<u8>>),
        Client(std::io::Result<bool>),
    }
    loop {
        // While waiting for the producer, a client that goes away is noticed (and the
        // producer stopped when `chunks` is dropped).
        let next = future::or(async { Next::Chunk(chunks.recv().await.ok()) }, async {
            Next::Client(c.fill().await)
        })
        .await;
        match next {
            Next::Chunk(Some(data)) => {
                let wire = if chunked { http::chunk(&data) } else { data };
                if !c.write_stalling(&wire).await {
                    return false;
                }
            }
            Next::Chunk(None) => break,
            // A pipelined request waits in `plain` until the stream is done.
            Next::Client(Ok(true)) if c.plain.len() <= Limits::default().max_head => {}
            Next::Client(_) => return false,
        }
    }
    if chunked && !c.write_stalling(http::LAST_CHUNK).await {
        return false;
    }
    keep_alive
}

/// One connection: handshake, then requests until close, a deadline, an error or eviction.
async fn connection(tcp: Async<TcpStream>, sh: &Shared, slot: &Slot) {
    let Ok(server) = rustls::ServerConnection::new(sh.tls.config.clone()) else {
        return;
    };
    let mut c = Conn {
        tcp,
        tls: server,
        plain: Vec::new(),
    };
    let deadline = if sh.slots.load().1 > MAX_HANDSHAKES / 2 {
        BUSY_HANDSHAKE_DEADLINE
    } else {
        REQUEST_DEADLINE
    };
    if !matches!(within(deadline, c.handshake(slot)).await, Some(Ok(()))) {
        return;
    }
    let cert = sh.tls.peer(&c.tls);
    let limits = Limits::default();
    let state = &sh.state;
    loop {
        slot.set(Phase::Idle);
        if !c.wait_for_request(&sh.slots).await {
            return;
        }
        slot.set(Phase::Reading);
        let (head, body) = match within(REQUEST_DEADLINE, c.read_request(&limits)).await {
            None | Some(Err(Failed::Closed)) => return,
            Some(Err(Failed::Http(e))) => {
                state.metrics.bad_request(e.status());
                let msg = e.to_string();
                let mut out = http::response_head(
                    e.status(),
                    &[("Content-Type", "text/plain; charset=utf-8")],
                    Framing::Length(msg.len()),
                    false,
                );
                out.extend_from_slice(msg.as_bytes());
                let _ = within(REQUEST_DEADLINE, c.write_all(&out)).await;
                return;
            }
            Some(Ok(r)) => r,
        };
        slot.set(Phase::Busy);
        let upgrade = head.header("upgrade").is_some();
        // Answered here when nothing can block (the common case: a certificate or a cached
        // token and review); otherwise a handler thread takes it.
        let t0 = Instant::now();
        let resp = match dispatch_inline(state, cert.clone(), &head, &body) {
            Some(resp) => {
                state.metrics.observe(&head.path, resp.status, t0.elapsed());
                resp
            }
            None => {
                let (reply, answer) = channel::bounded(1);
                let job = Job {
                    cert: cert.clone(),
                    head: head.clone(),
                    body,
                    reply,
                };
                if sh.jobs.send(job).await.is_err() {
                    return;
                }
                let Ok(resp) = answer.recv().await else {
                    return;
                };
                resp
            }
        };
        if let (Some(url), true) = (&resp.upgrade, upgrade) {
            if let Err(e) = splice(&mut c, &head, url).await {
                let at = url.split('/').nth(2).unwrap_or("");
                crate::vinfo!(2, "streaming to the runtime at {at}: {e}");
            }
            return;
        }
        if !write_response(&mut c, sh, &head, resp).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime's streaming URL: only plain http with an address; a port nobody serves is
    /// refused at once (the client is then answered 502, not dropped).
    #[test]
    fn streaming_urls_connect_or_say_why() {
        let nobody = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        let kind = |url: String| {
            smol::block_on(connect_streaming(&url))
                .err()
                .map(|e| e.kind())
        };
        assert_eq!(
            kind(format!("https://{nobody}/exec/t")),
            Some(std::io::ErrorKind::InvalidInput)
        );
        assert_eq!(
            kind(format!("http://{nobody}/exec/t")),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let at = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("http://{at}/exec/t");
        let (_, hostport, path) =
            smol::block_on(connect_streaming(&url)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((hostport, path), (at.to_string().as_str(), "/exec/t"));
    }
}
