//! Container logs in the CRI format (`<RFC3339Nano> <stdout|stderr> <P|F> <message>\n`, P for a
//! partial line): a sans-IO line parser and the kubelet's reading of a log file for
//! `/containerLogs` (timestamps, tailLines, limitBytes, stream selection).

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
    /// Only this stream, when set.
    pub stream: Option<Stream>,
}

/// The messages of a CRI log file's bytes, as `kubectl logs` shows them. Malformed lines are
/// skipped (the kubelet logs and skips them too).
pub fn render(content: &[u8], o: &Options) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut pending: Option<Vec<u8>> = None;
    for (i, raw) in content.split(|b| *b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let Ok(l) = parse_line(raw, i + 1) else {
            continue;
        };
        if o.stream.is_some_and(|s| s != l.stream) {
            continue;
        }
        let buf = pending.get_or_insert_with(|| {
            if o.timestamps {
                let mut b = l.time.as_bytes().to_vec();
                b.push(b' ');
                b
            } else {
                Vec::new()
            }
        });
        buf.extend_from_slice(l.message);
        if !l.partial {
            buf.push(b'\n');
            lines.extend(pending.take());
        }
    }
    lines.extend(pending.take());
    if let Some(n) = o.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let mut out: Vec<u8> = lines.concat();
    if let Some(limit) = o.limit_bytes {
        out.truncate(limit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &[u8] = b"2026-11-29T01:00:00.000000001Z stdout F hello\n\
2026-11-29T01:00:01.000000001Z stderr F oops\n\
2026-11-29T01:00:02.000000001Z stdout P par\n\
2026-11-29T01:00:02.000000002Z stdout F tial\n\
garbage\n\
2026-11-29T01:00:03.000000001Z stdout F last\n";

    #[test]
    fn lines_parse_or_say_why_not() {
        let l =
            parse_line(b"2026-11-29T01:00:00Z stdout P a b c", 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (l.time, l.stream, l.partial, l.message),
            ("2026-11-29T01:00:00Z", Stream::Stdout, true, &b"a b c"[..])
        );
        assert_eq!(
            parse_line(b"t stdout F", 2).map(|l| l.message),
            Ok(&b""[..])
        );
        assert_eq!(
            parse_line(b"t stdin F x", 3),
            Err(LogError::Malformed(3, "stream is not stdout or stderr"))
        );
        assert_eq!(
            parse_line(b"t stdout X x", 4),
            Err(LogError::Malformed(4, "tag is not P or F"))
        );
        assert_eq!(
            parse_line(b"", 5),
            Err(LogError::Malformed(5, "no timestamp"))
        );
    }

    #[test]
    fn render_as_kubectl_logs_shows_it() {
        let all = |o: Options| String::from_utf8_lossy(&render(LOG, &o)).into_owned();
        assert_eq!(all(Options::default()), "hello\noops\npartial\nlast\n");
        assert_eq!(
            all(Options {
                tail_lines: Some(2),
                ..Options::default()
            }),
            "partial\nlast\n"
        );
        assert_eq!(
            all(Options {
                stream: Some(Stream::Stderr),
                ..Options::default()
            }),
            "oops\n"
        );
        assert_eq!(
            all(Options {
                timestamps: true,
                tail_lines: Some(1),
                ..Options::default()
            }),
            "2026-11-29T01:00:03.000000001Z last\n"
        );
        assert_eq!(
            all(Options {
                limit_bytes: Some(3),
                ..Options::default()
            }),
            "hel"
        );
        // A partial line at the end of the file is shown as it is.
        assert_eq!(
            String::from_utf8_lossy(&render(b"t stdout P abc", &Options::default())),
            "abc"
        );
    }
}
