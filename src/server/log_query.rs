//! The node log query of `enableSystemLogQuery` (the `NodeLogQuery` gate): `/logs/?query=...`
//! parsed and validated as the kubelet's kubelet_server_journal.go does, with its error texts
//! (a field.ErrorList aggregate), and the journalctl command it runs. Sans-IO except for the
//! file check of a one-file query, which resolves inside the log directory as Go's os.Root.

use std::path::Path;

use super::re2;

const MAX_TAIL_LINES: i64 = 100_000;
const MAX_SERVICE_LENGTH: usize = 256;
const MAX_SERVICES: usize = 4;

/// An RFC 3339 time as Go keeps it: the instant and the offset it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time {
    /// Seconds since the epoch, UTC.
    pub secs: i64,
    pub nanos: u32,
    /// The written offset from UTC, in seconds.
    pub offset: i64,
}

impl Time {
    /// Go's `time.Parse(time.RFC3339, s)`: `2026-01-02T03:04:05[.frac](Z|±hh:mm)`, the date
    /// and clock checked (February 30 is refused), any number of fraction digits.
    pub fn parse(s: &str) -> Option<Time> {
        let b = s.as_bytes();
        if !s.is_ascii() || b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| num_in(s, r);
        let sep = |i: usize, c: u8| b.get(i) == Some(&c);
        if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let max_day = *month_days.get(usize::try_from(mo - 1).ok()?)?;
        if d < 1 || d > max_day || h > 23 || mi > 59 || se > 59 {
            return None;
        }
        let mut rest = &s[19..];
        let mut nanos = 0u32;
        if let Some(f) = rest.strip_prefix('.') {
            let digits = f.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            let kept: String = f[..digits]
                .chars()
                .chain(std::iter::repeat('0'))
                .take(9)
                .collect();
            nanos = kept.parse().ok()?;
            rest = &f[digits..];
        }
        let offset = match rest {
            "Z" => 0,
            tz if tz.len() == 6
                && matches!(tz.as_bytes()[0], b'+' | b'-')
                && tz.as_bytes()[3] == b':' =>
            {
                let (hh, mm) = (num_in(tz, 1..3)?, num_in(tz, 4..6)?);
                if hh > 23 || mm > 59 {
                    return None;
                }
                let off = hh * 3600 + mm * 60;
                if tz.starts_with('-') { -off } else { off }
            }
            _ => return None,
        };
        let wall = crate::timefmt::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
        Some(Time {
            secs: wall - offset,
            nanos,
            offset,
        })
    }

    /// The wall clock where it was written: (year, month, day, hour, minute, second).
    fn wall(&self) -> (i64, u32, u32, i64, i64, i64) {
        let w = self.secs + self.offset;
        let (y, mo, d) = crate::timefmt::civil_from_days(w.div_euclid(86_400));
        let t = w.rem_euclid(86_400);
        (y, mo, d, t / 3600, t % 3600 / 60, t % 60)
    }

    /// The kubelet's journalctl layout, "2006-1-2 15:4:5" (only the hour padded).
    pub fn journal(&self) -> String {
        let (y, mo, d, h, mi, s) = self.wall();
        format!("{y:04}-{mo}-{d} {h:02}:{mi}:{s}")
    }

    /// Go's JSON of a time.Time: RFC 3339 with the fraction's trailing zeros cut.
    pub fn json(&self) -> String {
        let (y, mo, d, h, mi, s) = self.wall();
        let mut out = format!("\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
        if self.nanos > 0 {
            let f = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
        if self.offset == 0 {
            out.push('Z');
        } else {
            let a = self.offset.abs();
            let sign = if self.offset < 0 { '-' } else { '+' };
            out.push_str(&format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60));
        }
        out.push('"');
        out
    }

    fn after(&self, other: &Time) -> bool {
        (self.secs, self.nanos) > (other.secs, other.nanos)
    }
}

fn num_in(s: &str, r: std::ops::Range<usize>) -> Option<i64> {
    let t = s.get(r)?;
    t.bytes()
        .all(|c| c.is_ascii_digit())
        .then(|| t.parse().ok())?
}

/// The query's options (Go's `options`: any set makes a file query invalid).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub since: Option<Time>,
    pub until: Option<Time>,
    pub tail_lines: Option<i64>,
    pub boot: Option<i64>,
    pub pattern: String,
}

/// A node log query: services (journald units, or files by the heuristics) or one file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub services: Vec<String>,
    pub files: Vec<String>,
    pub options: Options,
}

/// One of field.ErrorList's errors, printed as apimachinery prints it.
#[derive(Debug, PartialEq, Eq)]
pub struct FieldError {
    field: &'static str,
    kind: &'static str,
    /// The bad value as Go renders it (`%q` for a string, JSON otherwise); None for none.
    value: Option<String>,
    detail: String,
}

impl FieldError {
    fn invalid(field: &'static str, value: String, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        FieldError {
            field,
            kind: "Invalid value",
            value: Some(value),
            detail,
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.kind)?;
        if let Some(v) = &self.value {
            write!(f, ": {v}")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// `errs.ToAggregate().Error()`: one message, or `[a, b]` with repeats dropped.
pub fn aggregate(errs: &[FieldError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let m = e.to_string();
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => String::new(),
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

/// Go's `%q` of a string.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal` of a []string (HTML characters escaped).
fn go_json(v: &[String]) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Go's `%v` of a []string: `[a b]`.
fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// Go's strconv.Atoi on a 64-bit machine, with its error text.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(s)
        ));
    }
    s.trim_start_matches('+')
        .parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {}: value out of range", go_quote(s)))
}

/// newNodeLogQuery: None when the request has no query at all (a plain `/logs/` read).
pub fn parse(pairs: &[(String, String)]) -> Result<Option<Query>, Vec<FieldError>> {
    let mut q = Query::default();
    let mut errs = Vec::new();
    let queries: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "query")
        .map(|(_, v)| v.clone())
        .collect();
    for v in &queries {
        if v.contains(['/', '\\']) {
            q.files.push(v.clone());
        } else if !v.trim().is_empty() {
            q.services.push(v.clone());
        }
    }
    if !queries.is_empty() && q.files.is_empty() && q.services.is_empty() {
        errs.push(FieldError::invalid(
            "query",
            go_json(&queries),
            "query cannot be empty",
        ));
    }
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    for (field, slot) in [
        ("sinceTime", &mut q.options.since),
        ("untilTime", &mut q.options.until),
    ] {
        if let Some(v) = first(field) {
            match Time::parse(v) {
                Some(t) => *slot = Some(t),
                None => errs.push(FieldError::invalid(
                    field,
                    go_quote(v),
                    "invalid time format",
                )),
            }
        }
    }
    for (field, slot) in [
        ("boot", &mut q.options.boot),
        ("tailLines", &mut q.options.tail_lines),
    ] {
        if let Some(v) = first(field) {
            match atoi(v) {
                Ok(n) => *slot = Some(n),
                Err(e) => errs.push(FieldError::invalid(field, go_quote(v), e)),
            }
        }
    }
    if let Some(p) = first("pattern") {
        q.options.pattern = p.to_string();
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok((q != Query::default()).then_some(q))
}

/// safeServiceName.
fn service_name_error(s: &str) -> Option<&'static str> {
    if s.len() > MAX_SERVICE_LENGTH {
        // Sic: the kubelet's text.
        return Some("length must be less than 100");
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '@');
    (!s.chars().all(safe)).then_some("input contains unsupported characters")
}

impl Query {
    /// The kubelet's validate(): every error, as a 406's body names them.
    pub fn validate(&self, log_dir: &Path) -> Vec<FieldError> {
        let mut errs = Vec::new();
        for s in &self.services {
            if let Some(e) = service_name_error(s) {
                errs.push(FieldError::invalid("query", go_quote(s), e));
            }
        }
        if self.services.len() > MAX_SERVICES {
            errs.push(FieldError {
                field: "query",
                kind: "Too many",
                value: Some(self.services.len().to_string()),
                detail: format!("must have at most {MAX_SERVICES} items"),
            });
        }
        let files = go_json(&self.files);
        match (self.files.len(), self.services.len()) {
            (0, 0) => errs.push(FieldError {
                field: "query",
                kind: "Required value",
                value: None,
                detail: "cannot be empty with options".into(),
            }),
            (f, s) if f > 0 && s > 0 => errs.push(FieldError::invalid(
                "query",
                go_quote(&format!(
                    "{}, {}",
                    go_list(&self.files),
                    go_list(&self.services)
                )),
                "cannot specify a file and service",
            )),
            (f, _) if f > 1 => errs.push(FieldError::invalid(
                "query",
                files,
                "cannot specify more than one file",
            )),
            (1, _) if self.options != Options::default() => errs.push(FieldError::invalid(
                "query",
                files,
                "cannot specify file with options",
            )),
            (1, _) => {
                if let Err(e) = root_stat(log_dir, &self.files[0]) {
                    errs.push(FieldError::invalid("query", files, e));
                }
            }
            _ => {}
        }
        let o = &self.options;
        if let (Some(since), Some(until)) = (&o.since, &o.until)
            && since.after(until)
        {
            errs.push(FieldError::invalid(
                "untilTime",
                until.json(),
                "must be after `sinceTime`",
            ));
        }
        if let Some(b) = o.boot
            && b > 0
        {
            errs.push(FieldError::invalid(
                "boot",
                b.to_string(),
                "must be less than 1",
            ));
        }
        if let Some(n) = o.tail_lines
            && !(0..=MAX_TAIL_LINES).contains(&n)
        {
            errs.push(FieldError::invalid(
                "tailLines",
                n.to_string(),
                format!("must be between 0 and {MAX_TAIL_LINES}, inclusive"),
            ));
        }
        if let Err(e) = re2::check(&o.pattern) {
            errs.push(FieldError::invalid(
                "pattern",
                go_quote(&o.pattern),
                e.to_string(),
            ));
        }
        errs
    }

    /// The kubelet's journalctl arguments (getLoggingCmd, Linux) for these services.
    pub fn journalctl_args(&self, services: &[String]) -> Vec<String> {
        let o = &self.options;
        let mut args: Vec<String> = ["--utc", "--no-pager", "--output=short-precise"]
            .map(String::from)
            .into();
        if let Some(t) = &o.since {
            args.push(format!("--since={}", t.journal()));
        }
        if let Some(t) = &o.until {
            args.push(format!("--until={}", t.journal()));
        }
        if let Some(n) = o.tail_lines {
            args.push("--pager-end".into());
            args.push(format!("--lines={n}"));
        }
        args.extend(
            services
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| format!("--unit={s}")),
        );
        if !o.pattern.is_empty() {
            args.push(format!("--grep={}", o.pattern));
        }
        if let Some(b) = o.boot {
            args.push("--boot".into());
            args.push(b.to_string());
        }
        args
    }
}

/// Go's `os.Root.Stat(name)` in `root`: a name never leaves it (an absolute name, a `..` above
/// it or a symlink out "escapes from parent"); the error text as Go prints it.
pub fn root_stat(root: &Path, name: &str) -> Result<std::fs::Metadata, String> {
    root_resolve_path(root, name)
        .and_then(|real| std::fs::metadata(&real).map_err(|e| e.to_string()))
        .map_err(|e| format!("statat {name}: {e}"))
}

/// Where `name` lands inside `root`, symlinks followed only while they stay inside; the error
/// as Go's os.Root words it (without the operation).
pub fn root_resolve_path(root: &Path, name: &str) -> Result<std::path::PathBuf, String> {
    const ESCAPES: &str = "path escapes from parent";
    if name.starts_with('/') {
        return Err(ESCAPES.into());
    }
    let mut depth = 0i32;
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(ESCAPES.into());
                }
            }
            _ => depth += 1,
        }
    }
    // Go's syscall texts are the C library's with a lower-case first letter.
    let errno = |e: std::io::Error| {
        let text = e
            .raw_os_error()
            .map(|n| nix::errno::Errno::from_raw(n).desc().to_string())
            .unwrap_or_else(|| e.to_string());
        let mut c = text.chars();
        c.next()
            .map(|f| f.to_lowercase().chain(c).collect())
            .unwrap_or(text)
    };
    let base = root.canonicalize().map_err(errno)?;
    let real = base.join(name).canonicalize().map_err(errno)?;
    if real.starts_with(&base) {
        Ok(real)
    } else {
        Err(ESCAPES.into())
    }
}

#[cfg(test)]
#[path = "log_query_tests.rs"]
mod tests;
