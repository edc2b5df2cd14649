//! Sans-IO HTTP/1.1 for the 10250 server: request heads parsed from bytes with hard limits,
//! chunked request bodies decoded incrementally, response heads and chunks encoded. No sockets
//! here, so every path is unit-tested (and fuzzable) on bytes; malformed input is an error with
//! the status to answer, never a panic.

/// Hard limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers (the kubelet's MaxHeaderBytes: 1 MiB).
    pub max_head: usize,
    pub max_headers: usize,
    pub max_target: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 1 << 20,
            max_headers: 128,
            max_target: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: BodyKind,
    pub keep_alive: bool,
    /// HTTP/1.1 (else 1.0): a response of unknown length is chunked, not closed-delimited.
    pub http11: bool,
    /// Bytes of the head, including the blank line.
    pub head_len: usize,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    Incomplete,
    Complete(RequestHead),
}

/// Why a request is refused, and with which status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request URI too long")]
    UriTooLong,
    #[error("request header fields too large")]
    HeadTooLarge,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("transfer encoding {0:?} not implemented")]
    NotImplemented(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge => 413,
            HttpError::NotImplemented(_) => 501,
        }
    }
}

fn bad(m: impl Into<String>) -> HttpError {
    HttpError::BadRequest(m.into())
}

/// The values of every header called `name` (lowercase), in order.
fn get_all<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Parses a request head from the start of `buf`.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Parsed, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(bad(e.to_string())),
    };
    let head_len = match status {
        httparse::Status::Partial => {
            if buf.len() > limits.max_head {
                return Err(HttpError::HeadTooLarge);
            }
            // A request line longer than the target limit fails early, before the head is done.
            if req.path.is_some_and(|p| p.len() > limits.max_target)
                || (req.method.is_none() && buf.len() > limits.max_target && !buf.contains(&b'\n'))
            {
                return Err(HttpError::UriTooLong);
            }
            return Ok(Parsed::Incomplete);
        }
        httparse::Status::Complete(n) => n,
    };
    if head_len > limits.max_head {
        return Err(HttpError::HeadTooLarge);
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("");
    if target.len() > limits.max_target {
        return Err(HttpError::UriTooLong);
    }
    if !target.starts_with('/') {
        return Err(bad(format!(
            "request target {target:?} must be an absolute path"
        )));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let http11 = req.version == Some(1);
    let mut out = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| bad(format!("header {} is not UTF-8", h.name)))?;
        out.push((h.name.to_ascii_lowercase(), value.trim().to_string()));
    }

    let lengths: Vec<&str> = get_all(&out, "content-length").map(str::trim).collect();
    let te: Vec<String> = get_all(&out, "transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let body = if !te.is_empty() {
        if !lengths.is_empty() {
            return Err(bad("both Content-Length and Transfer-Encoding"));
        }
        if te != ["chunked"] {
            return Err(HttpError::NotImplemented(te.join(", ")));
        }
        BodyKind::Chunked
    } else if let Some(first) = lengths.first() {
        if lengths.iter().any(|l| l != first) {
            return Err(bad("conflicting Content-Length values"));
        }
        // Digits only, as Go's ParseUint (Rust's parse takes a leading `+`).
        let n: u64 = first
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| first.parse().ok())
            .flatten()
            .ok_or_else(|| bad(format!("invalid Content-Length {first:?}")))?;
        if n == 0 {
            BodyKind::None
        } else {
            BodyKind::Length(n)
        }
    } else {
        BodyKind::None
    };
    if http11 && get_all(&out, "host").count() != 1 {
        return Err(bad("HTTP/1.1 requests need exactly one Host header"));
    }
    let connection = get_all(&out, "connection")
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let keep_alive = if http11 {
        !connection.split(',').any(|t| t.trim() == "close")
    } else {
        connection.split(',').any(|t| t.trim() == "keep-alive")
    };
    Ok(Parsed::Complete(RequestHead {
        method,
        path,
        query,
        headers: out,
        body,
        keep_alive,
        http11,
        head_len,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailer,
    Done,
}

/// Decodes a chunked body incrementally, refusing more than `max_body` bytes of payload.
#[derive(Debug)]
pub struct ChunkDecoder {
    state: ChunkState,
    line: Vec<u8>,
    total: u64,
    max_body: u64,
}

impl ChunkDecoder {
    pub fn new(max_body: u64) -> ChunkDecoder {
        ChunkDecoder {
            state: ChunkState::Size,
            line: Vec::new(),
            total: 0,
            max_body,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes `input`, appending payload to `out`; returns how many bytes were used (the rest
    /// belongs to the next request once the body is done).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Size | ChunkState::Trailer | ChunkState::DataEnd => {
                    let b = input[i];
                    i += 1;
                    if b != b'\n' {
                        if self.line.len() >= 4096 {
                            return Err(bad("chunk line too long"));
                        }
                        self.line.push(b);
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    let line = line
                        .strip_suffix(b"\r")
                        .ok_or_else(|| bad("chunk line not ended by CRLF"))?;
                    self.state = match self.state {
                        ChunkState::DataEnd if line.is_empty() => ChunkState::Size,
                        ChunkState::DataEnd => return Err(bad("chunk data longer than its size")),
                        ChunkState::Trailer if line.is_empty() => ChunkState::Done,
                        ChunkState::Trailer => ChunkState::Trailer,
                        _ => {
                            let size_txt = std::str::from_utf8(line)
                                .map_err(|_| bad("chunk size is not text"))?;
                            let size_txt = size_txt.split(';').next().unwrap_or("").trim();
                            if size_txt.is_empty()
                                || size_txt.len() > 16
                                || !size_txt.bytes().all(|c| c.is_ascii_hexdigit())
                            {
                                return Err(bad(format!("invalid chunk size {size_txt:?}")));
                            }
                            let size = u64::from_str_radix(size_txt, 16)
                                .map_err(|_| bad("invalid chunk size"))?;
                            if size == 0 {
                                ChunkState::Trailer
                            } else {
                                self.total = self
                                    .total
                                    .checked_add(size)
                                    .ok_or(HttpError::BodyTooLarge)?;
                                if self.total > self.max_body {
                                    return Err(HttpError::BodyTooLarge);
                                }
                                ChunkState::Data(size)
                            }
                        }
                    };
                }
                ChunkState::Data(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::Done => {}
            }
        }
        Ok(i)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
    /// Until the connection closes (HTTP/1.0 streams).
    Close,
}

/// A response head.
pub fn response_head(
    status: u16,
    headers: &[(&str, &str)],
    framing: Framing,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        // Header values are ours; strip line breaks so nothing can be injected.
        let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    match framing {
        Framing::Length(n) => out.push_str(&format!("Content-Length: {n}\r\n")),
        Framing::Chunked => out.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    if !keep_alive || framing == Framing::Close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// One chunk of a chunked body (empty data is skipped: an empty chunk would end the body).
pub fn chunk(data: &[u8]) -> Vec<u8> {
    if data.is_empty() {
        return Vec::new();
    }
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The invariants the fuzz target (`fuzz/fuzz_targets/request.rs`) and the unit tests check on
/// arbitrary bytes: no panic; a complete head lies within the input; a tiny head limit gives an
/// error or Incomplete, never a head longer than the limit; a chunked body decodes to the same
/// bytes whole or split at any point.
#[doc(hidden)]
pub fn check_invariants(data: &[u8]) {
    let tiny = Limits {
        max_head: 64,
        max_headers: 4,
        max_target: 16,
    };
    if let Ok(Parsed::Complete(h)) = parse_head(data, &tiny) {
        assert!(h.head_len <= 64 && h.path.len() <= 16, "{h:?}");
    }
    let Ok(Parsed::Complete(h)) = parse_head(data, &Limits::default()) else {
        let _ = ChunkDecoder::new(1 << 16).feed(data, &mut Vec::new());
        return;
    };
    assert!(h.head_len <= data.len());
    assert!(!h.method.is_empty() && h.path.starts_with('/'), "{h:?}");
    if h.body != BodyKind::Chunked {
        return;
    }
    let rest = &data[h.head_len..];
    let whole = {
        let mut d = ChunkDecoder::new(1 << 16);
        let mut out = Vec::new();
        d.feed(rest, &mut out).map(|used| (used, out, d.is_done()))
    };
    let split_at = usize::from(data.first().copied().unwrap_or(0)) % (rest.len() + 1);
    let split = {
        let mut d = ChunkDecoder::new(1 << 16);
        let mut out = Vec::new();
        d.feed(&rest[..split_at], &mut out).and_then(|used| {
            let mut next = rest[used..split_at].to_vec();
            next.extend_from_slice(&rest[split_at..]);
            d.feed(&next, &mut out)
                .map(|used2| (used + used2, out, d.is_done()))
        })
    };
    if let (Ok(w), Ok(s)) = (&whole, &split) {
        assert!(w.0 <= rest.len());
        if w.2 || s.2 {
            assert_eq!((&w.1, w.2), (&s.1, s.2), "split at {split_at}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Parsed, HttpError> {
        parse_head(s.as_bytes(), &Limits::default())
    }

    fn complete(s: &str) -> RequestHead {
        match head(s) {
            Ok(Parsed::Complete(h)) => h,
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn parses_requests() {
        let h = complete(
            "GET /metrics/cadvisor?x=1&y=2 HTTP/1.1\r\nHost: n1:10250\r\nAuthorization: Bearer abc\r\n\r\nrest",
        );
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.query.as_str()),
            ("GET", "/metrics/cadvisor", "x=1&y=2")
        );
        assert_eq!(h.header("authorization"), Some("Bearer abc"));
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert_eq!(h.head_len, "GET /metrics/cadvisor?x=1&y=2 HTTP/1.1\r\nHost: n1:10250\r\nAuthorization: Bearer abc\r\n\r\n".len());
        let h = complete(
            "POST /exec/a/b/c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        );
        assert_eq!((h.body.clone(), h.keep_alive), (BodyKind::Length(5), false));
        let h = complete("POST /run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
        let h = complete("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        assert_eq!(
            head("GET /healthz HTTP/1.1\r\nHost: x\r\n"),
            Ok(Parsed::Incomplete)
        );
        assert_eq!(head(""), Ok(Parsed::Incomplete));
    }

    #[test]
    fn malformed_requests_get_their_status() {
        let cases: &[(&str, u16)] = &[
            ("GARBAGE\r\n\r\n", 400),
            ("GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4,4\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
                501,
            ),
            ("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n", 400),
        ];
        for (req, status) in cases {
            match head(req) {
                Err(e) => assert_eq!(e.status(), *status, "{req:?}: {e}"),
                Ok(p) => panic!("{req:?} accepted: {p:?}"),
            }
        }
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
        assert_eq!(head(&long_target).map_err(|e| e.status()), Err(414));
        let many = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-A: b\r\n".repeat(200)
        );
        assert_eq!(head(&many).map_err(|e| e.status()), Err(431));
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}",
            "a".repeat(1 << 20)
        );
        assert_eq!(
            head(&huge).map_err(|e| e.status()),
            Err(431),
            "an unfinished head over 1 MiB"
        );
    }

    #[test]
    fn chunked_bodies_decode_incrementally() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        // Byte by byte: the decoder keeps its state across calls.
        let mut d = ChunkDecoder::new(1024);
        let mut out = Vec::new();
        let mut used = 0;
        for b in wire.iter() {
            if d.is_done() {
                break;
            }
            used += d
                .feed(std::slice::from_ref(b), &mut out)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(d.is_done());
        assert_eq!(out, b"hello world");
        assert_eq!(&wire[used..], b"NEXT");
        for (bad_wire, status) in [
            (&b"zz\r\n"[..], 400),
            (b"5\r\nhelloXX\r\n", 400),
            (b"5\nhello", 400),
            (b"ffffffffffffffffff\r\n", 400),
            (b"800\r\n", 413),
        ] {
            let mut d = ChunkDecoder::new(1024);
            let err = d.feed(bad_wire, &mut Vec::new()).err();
            assert_eq!(
                err.map(|e| e.status()),
                Some(status),
                "{:?}",
                String::from_utf8_lossy(bad_wire)
            );
        }
    }

    #[test]
    fn responses_encode() {
        let h = response_head(
            401,
            &[("Content-Type", "text/plain; charset=utf-8")],
            Framing::Length(12),
            true,
        );
        assert_eq!(h, b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\n");
        let h = response_head(200, &[("X", "a\r\nInjected: 1")], Framing::Chunked, false);
        assert_eq!(h, b"HTTP/1.1 200 OK\r\nX: aInjected: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        assert_eq!(chunk(b"hello"), b"5\r\nhello\r\n");
        assert!(chunk(b"").is_empty());
        // What we encode, we decode.
        let mut wire = chunk(b"abc");
        wire.extend(chunk(&[b'x'; 300]));
        wire.extend_from_slice(LAST_CHUNK);
        let mut d = ChunkDecoder::new(1 << 20);
        let mut out = Vec::new();
        assert_eq!(d.feed(&wire, &mut out), Ok(wire.len()));
        assert!(d.is_done() && out.len() == 303);
    }

    /// Arbitrary bytes (and mutated valid requests) never panic the parser or the decoder,
    /// and the head length reported is always within the input.
    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seed = b"POST /exec/ns/p/c?command=ls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        for round in 0..20_000 {
            let buf: Vec<u8> = if round % 2 == 0 {
                (0..(rnd() % 300)).map(|_| rnd() as u8).collect()
            } else {
                let mut b = seed.to_vec();
                for _ in 0..(1 + rnd() % 4) {
                    let i = (rnd() as usize) % b.len();
                    b[i] = rnd() as u8;
                }
                b
            };
            check_invariants(&buf);
        }
    }
}
