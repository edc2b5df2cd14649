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
#[path = "http_tests.rs"]
mod tests;
