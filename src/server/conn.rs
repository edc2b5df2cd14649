//! The 10250 connection layer: one async-io thread drives every connection's TLS and HTTP reads
//! and writes with deadlines (handshake and each request 10 s, idle keep-alive 90 s, cut to 1 s
//! while more than half the connection slots are taken). Requests that cannot block (cached
//! authn/authz, a non-blocking route) are answered there; the rest go to a fixed pool of handler
//! threads (TokenReview/SubjectAccessReview, later streams). A slow or silent client costs one
//! connection slot and its buffers, never a handler; slots are capped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use smol::channel;
use smol::{Async, Executor, Timer, future};

use super::auth::User;
use super::http::{self, BodyKind, ChunkDecoder, HttpError, Limits, Parsed, RequestHead};
use super::{Response, State, cert_user, dispatch, dispatch_inline};

/// Open connections at most; more are closed at accept (and counted).
pub const MAX_CONNS: usize = 128;
/// Handler threads.
pub const WORKERS: usize = 8;
const IDLE: Duration = Duration::from_secs(90);
const IDLE_SLICE: Duration = Duration::from_secs(1);
/// For the TLS handshake, and for each request from its first byte to its last.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
const MAX_BODY: u64 = 1 << 20;

struct Job {
    user: Option<User>,
    head: RequestHead,
    body: Vec<u8>,
    reply: channel::Sender<Response>,
}

/// Counts an open connection until dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves until the listener fails: the worker pool, then the I/O loop on this thread.
pub fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let (jobs, queue) = channel::bounded::<Job>(WORKERS * 4);
    for i in 0..WORKERS {
        let (queue, state) = (queue.clone(), state.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("10250-worker-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                while let Ok(job) = queue.recv_blocking() {
                    let t0 = Instant::now();
                    let resp = dispatch(&state, job.user, &job.head, &job.body);
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
    let listener = match Async::new(listener) {
        Ok(l) => l,
        Err(e) => {
            crate::error!("10250 listener: {e}");
            return;
        }
    };
    let open = Arc::new(AtomicUsize::new(0));
    let ex = Executor::new();
    smol::block_on(ex.run(async {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of fds and the like: back off instead of spinning.
                    crate::vinfo!(2, "10250 accept: {e}");
                    Timer::after(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNS {
                open.fetch_sub(1, Ordering::SeqCst);
                state
                    .metrics
                    .rejected_connections
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let slot = Slot(open.clone());
            let task = connection(
                tcp,
                tls.clone(),
                state.clone(),
                jobs.clone(),
                open.clone(),
                slot,
            );
            ex.spawn(task).detach();
        }
    }));
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

    async fn handshake(&mut self) -> std::io::Result<()> {
        loop {
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

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.tls.writer().write_all(data)?;
        self.flush().await
    }

    /// Waits for the first byte of the next request: up to 90 s, or 1 s while the server is
    /// more than half full. False when the connection should close.
    async fn wait_for_request(&mut self, open: &AtomicUsize) -> bool {
        let start = Instant::now();
        loop {
            if !self.plain.is_empty() {
                return true;
            }
            match within(IDLE_SLICE, self.fill()).await {
                Some(Ok(true)) => return true,
                Some(_) => return false,
                None => {
                    if start.elapsed() >= IDLE || open.load(Ordering::SeqCst) > MAX_CONNS / 2 {
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

/// The bytes of a response (no body for HEAD).
fn encode(is_head: bool, keep_alive: bool, resp: &Response) -> Vec<u8> {
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", resp.content_type)];
    for (k, v) in &resp.headers {
        headers.push((k, v));
    }
    let mut out = http::response_head(resp.status, &headers, Some(resp.body.len()), keep_alive);
    if !is_head {
        out.extend_from_slice(&resp.body);
    }
    out
}

/// Passes an upgrade request (exec, attach, port-forward) on to the runtime's streaming server
/// at `url` (plain HTTP on the node) and then copies bytes both ways until either side closes,
/// as the kubelet's streaming proxy.
async fn splice(c: &mut Conn, head: &RequestHead, url: &str) -> std::io::Result<()> {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("the runtime's streaming URL is not http://"))?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)?
        .next()
        .ok_or_else(|| invalid("the runtime's streaming URL has no address"))?;
    let mut rt = Async::<TcpStream>::connect(addr).await?;
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

/// One connection: handshake, then requests until close, a deadline or an error.
async fn connection(
    tcp: Async<TcpStream>,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    jobs: channel::Sender<Job>,
    open: Arc<AtomicUsize>,
    _slot: Slot,
) {
    let Ok(server) = rustls::ServerConnection::new(tls) else {
        return;
    };
    let mut c = Conn {
        tcp,
        tls: server,
        plain: Vec::new(),
    };
    if !matches!(within(REQUEST_DEADLINE, c.handshake()).await, Some(Ok(()))) {
        return;
    }
    let user = cert_user(&c.tls);
    let limits = Limits::default();
    loop {
        if !c.wait_for_request(&open).await {
            return;
        }
        let (head, body) = match within(REQUEST_DEADLINE, c.read_request(&limits)).await {
            None | Some(Err(Failed::Closed)) => return,
            Some(Err(Failed::Http(e))) => {
                let msg = e.to_string();
                let mut out = http::response_head(
                    e.status(),
                    &[("Content-Type", "text/plain; charset=utf-8")],
                    Some(msg.len()),
                    false,
                );
                out.extend_from_slice(msg.as_bytes());
                let _ = within(REQUEST_DEADLINE, c.write_all(&out)).await;
                return;
            }
            Some(Ok(r)) => r,
        };
        let (keep_alive, is_head) = (head.keep_alive, head.method == "HEAD");
        let upgrade_head = head.header("upgrade").is_some().then(|| head.clone());
        // Answered here when nothing can block (the common case: a certificate or a cached
        // token and review); otherwise a handler thread takes it.
        let t0 = Instant::now();
        let resp = match dispatch_inline(&state, user.clone(), &head, &body) {
            Some(resp) => {
                state.metrics.observe(&head.path, resp.status, t0.elapsed());
                resp
            }
            None => {
                let (reply, answer) = channel::bounded(1);
                let job = Job {
                    user: user.clone(),
                    head,
                    body,
                    reply,
                };
                if jobs.send(job).await.is_err() {
                    return;
                }
                let Ok(resp) = answer.recv().await else {
                    return;
                };
                resp
            }
        };
        if let (Some(url), Some(h)) = (&resp.upgrade, &upgrade_head) {
            if let Err(e) = splice(&mut c, h, url).await {
                crate::vinfo!(2, "streaming to {url}: {e}");
            }
            return;
        }
        let out = encode(is_head, keep_alive, &resp);
        if !matches!(within(IDLE, c.write_all(&out)).await, Some(Ok(()))) || !keep_alive {
            return;
        }
    }
}
