//! Container logs in the CRI format (`<RFC3339Nano> <stdout|stderr> <P|F> <message>\n`, P for a
//! partial line): a sans-IO line parser, a streaming renderer that turns a log's bytes into what
//! `kubectl logs` shows (timestamps, since, limitBytes) holding no more than one line's header,
//! and the seeks that find where `tailLines` (read from the end) and `sinceTime` (bisected)
//! start. A log of any size is served in bounded memory: [`LogReader`] reads it in chunks.

use std::io::{Read, Seek, SeekFrom};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub time: &'a str,
    pub stream: Stream,
    /// A partial line: the message continues in the next entry (no newline after it).
    pub partial: bool,
    pub message: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("log line {0}: {1}")]
    Malformed(usize, &'static str),
}

/// Parses one line (without its trailing newline).
pub fn parse_line(line: &[u8], n: usize) -> Result<LogLine<'_>, LogError> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = parts
        .next()
        .and_then(|t| std::str::from_utf8(t).ok())
        .filter(|t| !t.is_empty())
        .ok_or(LogError::Malformed(n, "no timestamp"))?;
    let stream = match parts.next() {
        Some(b"stdout") => Stream::Stdout,
        Some(b"stderr") => Stream::Stderr,
        _ => return Err(LogError::Malformed(n, "stream is not stdout or stderr")),
    };
    let partial = match parts.next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(LogError::Malformed(n, "tag is not P or F")),
    };
    Ok(LogLine {
        time,
        stream,
        partial,
        message: parts.next().unwrap_or(b""),
    })
}

/// What `/containerLogs` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    /// Only lines at or after this time (nanoseconds since the epoch): sinceTime/sinceSeconds.
    pub since: Option<i64>,
    /// Only this stream, when set.
    pub stream: Option<Stream>,
    /// Following: `tailLines` only picks where to start (the kubelet's limited mode is off).
    pub follow: bool,
}

/// The longest line header (timestamp, stream, tag) accepted; a longer one is malformed.
const HEADER_MAX: usize = 128;
/// The longest timestamp the fuzz invariants hold logs to (RFC 3339 with nanoseconds and an
/// offset is 35 bytes): one past the header a reader looks at is outside them.
const TIME_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a line's header; `spaces` seen so far.
    Header { spaces: u8 },
    /// Passing a line's message through (`emit`: shown; `partial`: no newline after it).
    Message { emit: bool, partial: bool },
    /// A malformed line: skipped to its end.
    Skip,
}

/// The header of a line, parsed: what to do with its message.
fn classify(header: &[u8], o: &Options) -> Option<(bool, bool)> {
    let l = parse_line(header, 0).ok()?;
    if o.stream.is_some_and(|s| s != l.stream) {
        return Some((false, l.partial));
    }
    if let Some(since) = o.since {
        // A line whose time cannot be read cannot be placed: it is not shown.
        let t = crate::timefmt::parse_rfc3339_nanos(l.time)?;
        if t < since {
            return Some((false, l.partial));
        }
    }
    Some((true, l.partial))
}

/// A sans-IO renderer of a CRI log's bytes, fed in pieces of any size: each line's message as
/// `kubectl logs` shows it (partial lines joined, the timestamp before each whole line when
/// asked), malformed lines skipped (as the kubelet skips them), stopping at `limitBytes`.
#[derive(Debug, Clone)]
pub struct Renderer {
    o: Options,
    state: State,
    header: [u8; HEADER_MAX],
    header_len: usize,
    /// The last line shown was partial: the next shown message continues its line.
    mid_line: bool,
    written: usize,
    /// Lines still to read with `tailLines` and no follow (each CRI line that parses counts,
    /// shown or not, as the kubelet's limitedNum).
    lines_left: Option<usize>,
}

impl Renderer {
    pub fn new(o: &Options) -> Renderer {
        Renderer {
            o: o.clone(),
            state: State::Header { spaces: 0 },
            header: [0; HEADER_MAX],
            header_len: 0,
            mid_line: false,
            written: 0,
            lines_left: o.tail_lines.filter(|_| !o.follow),
        }
    }

    /// `limitBytes` reached, or the `tailLines` read: nothing more will be written.
    pub fn is_done(&self) -> bool {
        self.o.limit_bytes.is_some_and(|l| self.written >= l) || self.lines_left == Some(0)
    }

    /// Appends `data` to `out` within the limit.
    fn put(&mut self, out: &mut Vec<u8>, data: &[u8]) {
        let n = match self.o.limit_bytes {
            Some(l) => data.len().min(l.saturating_sub(self.written)),
            None => data.len(),
        };
        out.extend_from_slice(&data[..n]);
        self.written += n;
    }

    /// A header is complete (at its third space, or at the end of a line without a message).
    fn header_done(&mut self, out: &mut Vec<u8>) {
        let header = &self.header[..self.header_len];
        // The header without its trailing space, as parse_line wants it.
        let trimmed = header.strip_suffix(b" ").unwrap_or(header);
        self.state = match classify(trimmed, &self.o) {
            None => State::Skip,
            Some((emit, partial)) => {
                if emit && !self.mid_line && self.o.timestamps {
                    let time_len = trimmed.iter().position(|b| *b == b' ').unwrap_or(0);
                    let mut t = [0u8; HEADER_MAX];
                    t[..time_len].copy_from_slice(&self.header[..time_len]);
                    self.put(out, &t[..time_len]);
                    self.put(out, b" ");
                }
                State::Message { emit, partial }
            }
        };
        self.header_len = 0;
    }

    /// The end of a line's message.
    fn line_done(&mut self, out: &mut Vec<u8>) {
        if let (State::Message { .. }, Some(n)) = (self.state, self.lines_left.as_mut()) {
            *n = n.saturating_sub(1);
        }
        if let State::Message {
            emit: true,
            partial,
        } = self.state
        {
            if partial {
                self.mid_line = true;
            } else {
                self.put(out, b"\n");
                self.mid_line = false;
            }
        }
        self.state = State::Header { spaces: 0 };
    }

    /// Renders `input` (the next bytes of the log) onto `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.is_done() {
            match self.state {
                State::Header { spaces } => {
                    let b = input[0];
                    input = &input[1..];
                    if b == b'\n' {
                        // A line that ends in its header: valid with an empty message when it
                        // has its stream and tag (`<time> stdout F`).
                        if spaces == 2 {
                            self.header_done(out);
                            self.line_done(out);
                        } else {
                            self.header_len = 0;
                            self.state = State::Header { spaces: 0 };
                        }
                        continue;
                    }
                    if self.header_len == HEADER_MAX {
                        self.header_len = 0;
                        self.state = State::Skip;
                        continue;
                    }
                    self.header[self.header_len] = b;
                    self.header_len += 1;
                    if b == b' ' {
                        if spaces == 2 {
                            self.header_done(out);
                        } else {
                            self.state = State::Header { spaces: spaces + 1 };
                        }
                    }
                }
                State::Message { emit, .. } => {
                    let end = input.iter().position(|b| *b == b'\n');
                    let msg = &input[..end.unwrap_or(input.len())];
                    if emit {
                        self.put(out, msg);
                    }
                    input = &input[msg.len()..];
                    if end.is_some() {
                        input = &input[1..];
                        self.line_done(out);
                    }
                }
                State::Skip => match input.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        input = &input[i + 1..];
                        self.state = State::Header { spaces: 0 };
                    }
                    None => input = &[],
                },
            }
        }
    }

    /// The end of the log: a last line without its newline ends there (a full one gets its
    /// newline, as when each line is read whole).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.is_done() {
            return;
        }
        match self.state {
            State::Header { spaces: 2 } => {
                self.header_done(out);
                self.line_done(out);
            }
            State::Message { .. } => self.line_done(out),
            _ => {}
        }
    }
}

/// Reading a log backwards in blocks, for finding line starts from the end.
struct Backwards<'a, R> {
    r: &'a mut R,
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    at: u64,
}

const BLOCK: usize = 64 * 1024;

impl<R: Read + Seek> Backwards<'_, R> {
    fn read_at(&mut self, pos: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.r.seek(SeekFrom::Start(pos))?;
        let mut v = Vec::with_capacity(len);
        self.r.by_ref().take(len as u64).read_to_end(&mut v)?;
        Ok(v)
    }

    /// The offset of the last newline before `before`, if any.
    fn newline_before(&mut self, before: u64) -> std::io::Result<Option<u64>> {
        let mut before = before;
        loop {
            let end = self.at + self.buf.len() as u64;
            if before > self.at && before <= end {
                let upto = (before - self.at) as usize;
                if let Some(i) = self.buf[..upto].iter().rposition(|b| *b == b'\n') {
                    return Ok(Some(self.at + i as u64));
                }
                before = self.at;
            }
            if before == 0 {
                return Ok(None);
            }
            let start = before.saturating_sub(BLOCK as u64);
            self.buf = self.read_at(start, (before - start) as usize)?;
            self.at = start;
            if self.buf.is_empty() {
                return Ok(None);
            }
        }
    }
}

/// Where the last `n` lines of a log of `len` bytes begin, as the kubelet's
/// findTailLineStartIndex counts them: CRI lines (each partial entry one, a malformed one too),
/// a last line without its newline not counted; found by reading from the end in blocks, so
/// memory stays at one block whatever the log's size. The renderer then reads `n` lines on.
pub fn tail_start<R: Read + Seek>(r: &mut R, len: u64, n: usize) -> std::io::Result<u64> {
    let mut b = Backwards {
        r,
        buf: Vec::new(),
        at: len,
    };
    // Just after the newline n+1 from the end (the top when there are fewer).
    let mut pos = len;
    for _ in 0..=n {
        match b.newline_before(pos)? {
            Some(i) => pos = i,
            None => return Ok(0),
        }
    }
    Ok(pos + 1)
}

/// The start of the first line at or after `mid` within `[mid, hi)` and its time, looking at
/// most one block ahead; lines without a readable time are passed over.
fn line_after<R: Read + Seek>(r: &mut R, mid: u64, hi: u64) -> std::io::Result<Option<(u64, i64)>> {
    r.seek(SeekFrom::Start(mid))?;
    let mut buf = Vec::with_capacity(BLOCK);
    r.by_ref()
        .take((hi - mid).min(BLOCK as u64))
        .read_to_end(&mut buf)?;
    let mut i = match buf.iter().position(|b| *b == b'\n') {
        Some(i) if mid > 0 => i + 1,
        _ if mid == 0 => 0,
        _ => return Ok(None),
    };
    while i < buf.len() {
        let line = &buf[i..];
        let line = &line[..line.iter().position(|b| *b == b'\n').unwrap_or(line.len())];
        if let Some(t) = parse_line(line, 0)
            .ok()
            .and_then(|l| crate::timefmt::parse_rfc3339_nanos(l.time))
        {
            return Ok(Some((mid + i as u64, t)));
        }
        i += line.len() + 1;
    }
    Ok(None)
}

/// A line start at or before the first line of time >= `since` in a log of `len` bytes,
/// bisected on the lines' times (a CRI log is written in time order), so that a read for
/// `sinceTime` starts near it instead of at the top; the renderer still drops earlier lines.
pub fn since_start<R: Read + Seek>(r: &mut R, len: u64, since: i64) -> std::io::Result<u64> {
    let (mut lo, mut hi) = (0u64, len);
    while hi - lo > BLOCK as u64 {
        let mid = lo + (hi - lo) / 2;
        match line_after(r, mid, hi)? {
            Some((start, t)) if t < since => lo = start,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// What one [`LogReader::read_chunk`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bytes were read (the output may still be empty: skipped lines).
    More,
    /// The end of the file for now (a follower waits and reads again).
    Eof,
    /// `limitBytes` reached.
    Done,
}

/// Reads a log file from where its options start it (tail or since), in chunks of at most
/// `CHUNK` bytes of input, each rendered on the way out.
pub struct LogReader<R> {
    r: R,
    renderer: Renderer,
    buf: Vec<u8>,
}

/// Bytes of the log read per chunk.
pub const CHUNK: usize = 32 * 1024;

impl<R: Read + Seek> LogReader<R> {
    pub fn new(mut r: R, o: &Options) -> std::io::Result<LogReader<R>> {
        let len = r.seek(SeekFrom::End(0))?;
        let mut start = 0;
        if let Some(since) = o.since {
            start = since_start(&mut r, len, since)?;
        }
        if let Some(n) = o.tail_lines {
            start = start.max(tail_start(&mut r, len, n)?);
        }
        r.seek(SeekFrom::Start(start))?;
        Ok(LogReader {
            r,
            renderer: Renderer::new(o),
            buf: vec![0; CHUNK],
        })
    }

    /// Reads the next chunk and appends what it renders to `out`.
    pub fn read_chunk(&mut self, out: &mut Vec<u8>) -> std::io::Result<Progress> {
        if self.renderer.is_done() {
            return Ok(Progress::Done);
        }
        let n = loop {
            match self.r.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            return Ok(Progress::Eof);
        }
        self.renderer.feed(&self.buf[..n], out);
        Ok(if self.renderer.is_done() {
            Progress::Done
        } else {
            Progress::More
        })
    }

    /// The file being read.
    pub fn get_ref(&self) -> &R {
        &self.r
    }

    /// Goes on in `r` from its start: a follower's next file after a rotation (what was
    /// rendered so far, and the limits, carry on).
    pub fn reopen(&mut self, r: R) {
        self.r = r;
    }

    /// The end of the log, for a reader that does not follow.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.renderer.finish(out);
    }

    /// Everything from the start to the end of the file (for small outputs: termination
    /// messages, tests).
    pub fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while self.read_chunk(&mut out)? == Progress::More {}
        self.finish(&mut out);
        Ok(out)
    }
}

/// The messages of a CRI log's bytes, as `kubectl logs` shows them.
pub fn render(content: &[u8], o: &Options) -> Vec<u8> {
    LogReader::new(std::io::Cursor::new(content), o)
        .and_then(|mut r| r.read_all())
        .unwrap_or_default()
}

/// The invariants the fuzz target (`fuzz/fuzz_targets/logs.rs`) and the unit tests check on
/// arbitrary log bytes: no panic; the renderer gives the same output whatever the pieces it
/// is fed; `limitBytes` is never passed; on a well-formed log, `tailLines` N gives a full read
/// of the last N CRI lines (the kubelet's count: a partial entry is a line, an unterminated
/// last line is not).
#[doc(hidden)]
pub fn check_invariants(data: &[u8]) {
    let n = usize::from(data.first().copied().unwrap_or(0) % 8);
    for o in [
        Options::default(),
        Options {
            timestamps: true,
            limit_bytes: Some(1 + n * 7),
            ..Options::default()
        },
    ] {
        let whole = render(data, &o);
        if let Some(l) = o.limit_bytes {
            assert!(whole.len() <= l);
        }
        let step = 1 + n;
        let mut r = Renderer::new(&o);
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            r.feed(piece, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out, whole, "pieces of {step}");
    }
    // As the runtime writes a log: a partial (P) entry is never empty (containerd cuts a line
    // only when its buffer is full), and a timestamp is RFC 3339 (35 bytes at most).
    // An empty line is not one (the kubelet reads a line more): only after the last newline.
    let pieces: Vec<&[u8]> = data.split(|c| *c == b'\n').collect();
    let well_formed = pieces.iter().enumerate().all(|(i, l)| {
        (l.is_empty() && i + 1 == pieces.len())
            || parse_line(l, 0).is_ok_and(|p| {
                !(p.message.contains(&b'\n') || p.partial && p.message.is_empty())
                    && p.time.len() <= TIME_MAX
            })
    });
    if !well_formed {
        return;
    }
    // The kubelet's tail: from just after the newline n+1 from the end, n CRI lines.
    let newlines: Vec<usize> = (0..data.len()).filter(|i| data[*i] == b'\n').collect();
    let start = match newlines.len().checked_sub(n + 1) {
        Some(i) => newlines[i] + 1,
        None => 0,
    };
    let after: Vec<usize> = newlines.iter().copied().filter(|i| *i >= start).collect();
    // An unterminated last line is read only while fewer than n lines were.
    let end = match after.get(n.wrapping_sub(1)) {
        Some(i) if n > 0 => i + 1,
        _ if n == 0 => start,
        _ => data.len(),
    };
    let want = render(&data[start..end], &Options::default());
    let tail = render(
        data,
        &Options {
            tail_lines: Some(n),
            ..Options::default()
        },
    );
    assert_eq!(tail, want, "tail {n}");
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
