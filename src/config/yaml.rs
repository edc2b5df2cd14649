//! Decoding YAML documents field by field: every problem is collected with its file, line and
//! field path instead of stopping at the first one.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

/// What is wrong with one field of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Dotted field path (`authentication.webhook.cacheTTL`, `registerWithTaints[0].effect`);
    /// empty for whole-document problems.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Maps field paths to the line they are written on, for block-style YAML (what kubelet
/// configs and kubeconfigs use). Keys inside flow collections (`{a: 1}`) are not located; their
/// problems point at the nearest enclosing key that is.
#[derive(Debug, Default)]
pub struct Locator {
    entries: Vec<(String, usize)>,
}

struct Frame {
    indent: usize,
    path: String,
    seq_item: bool,
    items: usize,
}

impl Locator {
    pub fn new(text: &str) -> Locator {
        let mut entries = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut block_scalar_indent: Option<usize> = None;
        for (idx, raw) in text.lines().enumerate() {
            let lineno = idx + 1;
            let indent = raw.len() - raw.trim_start_matches(' ').len();
            let content = strip_comment(&raw[indent..]).trim_end();
            if content.is_empty() {
                continue;
            }
            if let Some(min) = block_scalar_indent {
                if indent > min {
                    continue;
                }
                block_scalar_indent = None;
            }
            if content == "---" || content == "..." {
                stack.clear();
                continue;
            }
            let mut col = indent;
            let mut rest = content;
            while rest == "-" || rest.starts_with("- ") {
                while stack
                    .last()
                    .is_some_and(|f| f.indent > col || (f.indent == col && f.seq_item))
                {
                    stack.pop();
                }
                let parent = stack.last_mut();
                let (base, index) = match parent {
                    Some(p) => {
                        p.items += 1;
                        (p.path.clone(), p.items - 1)
                    }
                    None => (String::new(), 0),
                };
                let path = format!("{base}[{index}]");
                entries.push((path.clone(), lineno));
                stack.push(Frame {
                    indent: col,
                    path,
                    seq_item: true,
                    items: 0,
                });
                let after = &rest[1..];
                let trimmed = after.trim_start_matches(' ');
                col += 1 + after.len() - trimmed.len();
                rest = trimmed;
            }
            if let Some((key, value)) = split_key(rest) {
                while stack.last().is_some_and(|f| f.indent >= col) {
                    stack.pop();
                }
                let path = match stack.last() {
                    Some(p) if !p.path.is_empty() => format!("{}.{key}", p.path),
                    _ => key.to_string(),
                };
                entries.push((path.clone(), lineno));
                stack.push(Frame {
                    indent: col,
                    path,
                    seq_item: false,
                    items: 0,
                });
                let v = value.trim();
                if v.starts_with('|') || v.starts_with('>') {
                    block_scalar_indent = Some(col);
                }
            }
        }
        Locator { entries }
    }

    /// The line of `path`, or of its nearest located ancestor.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some((_, l)) = self.entries.iter().find(|(k, _)| k == p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn strip_comment(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return &s[..i],
            None => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    s
}

/// Splits `key: value` (plain or quoted key) off a line; `None` if the line holds no key.
fn split_key(s: &str) -> Option<(&str, &str)> {
    let (key, rest) = if let Some(q @ ('"' | '\'')) = s.chars().next() {
        let end = s[1..].find(q)? + 1;
        (&s[1..end], &s[end + 1..])
    } else {
        let end = s
            .find(": ")
            .or_else(|| s.strip_suffix(':').map(|k| k.len()))?;
        let key = &s[..end];
        if key.starts_with(['{', '[', '&', '*', '!', '|', '>']) {
            return None;
        }
        (key, &s[end..])
    };
    let value = rest.strip_prefix(':')?;
    if !(value.is_empty() || value.starts_with(' ')) {
        return None;
    }
    Some((key.trim(), value))
}

/// Collects problems while a document is decoded.
pub struct Ctx<'a> {
    file: &'a Path,
    locator: Locator,
    pub problems: Vec<Problem>,
    pub unknown: Vec<Problem>,
}

/// A mapping being decoded, with its path; keys are removed as they are read.
pub struct Obj {
    path: String,
    map: Mapping,
}

impl Obj {
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Removes the entry at the dotted `path` (through nested mappings) when `unset` says its
    /// value means "not set", as a zero value does for the kubelet's non-pointer fields.
    pub fn drop_where(&mut self, path: &str, unset: impl Fn(&Value) -> bool) {
        let mut map = &mut self.map;
        let mut parts = path.split('.').peekable();
        while let Some(key) = parts.next() {
            if parts.peek().is_none() {
                if map.get(key).is_some_and(&unset) {
                    map.remove(key);
                }
                return;
            }
            match map.get_mut(key) {
                Some(Value::Mapping(m)) => map = m,
                _ => return,
            }
        }
    }
}

impl<'a> Ctx<'a> {
    /// Parses `text` as one YAML document whose top level must be a mapping.
    pub fn parse(file: &'a Path, text: &str) -> Result<(Ctx<'a>, Obj), Problem> {
        let syntax = |line: Option<usize>, message: String| Problem {
            file: file.to_path_buf(),
            line,
            field: String::new(),
            message,
        };
        let value: Value = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            syntax(line, format!("not valid YAML: {e}"))
        })?;
        let map = match value {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            other => {
                return Err(syntax(
                    Some(1),
                    format!(
                        "expected a mapping at the top level, found {}",
                        kind(&other)
                    ),
                ));
            }
        };
        let ctx = Ctx {
            file,
            locator: Locator::new(text),
            problems: Vec::new(),
            unknown: Vec::new(),
        };
        Ok((
            ctx,
            Obj {
                path: String::new(),
                map,
            },
        ))
    }

    fn problem(&self, field: &str, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            line: self.locator.line_of(field),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Records an invalid value at `field`.
    pub fn invalid(&mut self, field: &str, message: impl Into<String>) {
        let p = self.problem(field, message);
        self.problems.push(p);
    }

    fn child_path(parent: &str, key: &str) -> String {
        if parent.is_empty() {
            key.to_string()
        } else {
            format!("{parent}.{key}")
        }
    }

    /// Removes `key` and returns its raw value (null counts as absent) with its path.
    pub fn raw(&mut self, obj: &mut Obj, key: &str) -> Option<(String, Value)> {
        match obj.map.remove(key)? {
            Value::Null => None,
            v => Some((Self::child_path(&obj.path, key), v)),
        }
    }

    /// Removes `key` and decodes it with serde; a type error is recorded and `None` returned.
    pub fn take<T: DeserializeOwned>(&mut self, obj: &mut Obj, key: &str) -> Option<T> {
        let (path, v) = self.raw(obj, key)?;
        self.decode(&path, v)
    }

    /// Decodes `v` (found at `path`) with serde, recording a failure.
    pub fn decode<T: DeserializeOwned>(&mut self, path: &str, v: Value) -> Option<T> {
        match serde_yaml::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.invalid(path, e.to_string());
                None
            }
        }
    }

    /// Decodes `key` into `slot` if present, leaving the default otherwise.
    pub fn set<T: DeserializeOwned>(&mut self, obj: &mut Obj, key: &str, slot: &mut T) {
        if let Some(v) = self.take(obj, key) {
            *slot = v;
        }
    }

    /// Decodes a mapping entry by entry, so a bad key or value is reported at its own line
    /// (`evictionHard.memory.available`). Entries that fail are left out.
    pub fn set_map<K, V>(
        &mut self,
        obj: &mut Obj,
        key: &str,
        slot: &mut std::collections::BTreeMap<K, V>,
    ) where
        K: DeserializeOwned + Ord,
        V: DeserializeOwned,
    {
        let Some((path, v)) = self.raw(obj, key) else {
            return;
        };
        let Value::Mapping(m) = v else {
            self.invalid(&path, format!("expected a mapping, found {}", kind(&v)));
            return;
        };
        let mut out = std::collections::BTreeMap::new();
        for (k, v) in m {
            let name = match &k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            let epath = format!("{path}.{name}");
            let key = self.decode::<K>(&epath, k);
            let value = self.decode::<V>(&epath, v);
            if let (Some(k), Some(v)) = (key, value) {
                out.insert(k, v);
            }
        }
        *slot = out;
    }

    /// Removes `key` and opens it as a nested mapping.
    pub fn obj(&mut self, obj: &mut Obj, key: &str) -> Option<Obj> {
        let (path, v) = self.raw(obj, key)?;
        match v {
            Value::Mapping(map) => Some(Obj { path, map }),
            other => {
                self.invalid(&path, format!("expected a mapping, found {}", kind(&other)));
                None
            }
        }
    }

    /// Removes `key` and opens it as a sequence of mappings.
    pub fn list(&mut self, obj: &mut Obj, key: &str) -> Option<Vec<Obj>> {
        let (path, v) = self.raw(obj, key)?;
        let Value::Sequence(items) = v else {
            self.invalid(&path, format!("expected a list, found {}", kind(&v)));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            match item {
                Value::Mapping(map) => out.push(Obj { path: ipath, map }),
                other => self.invalid(
                    &ipath,
                    format!("expected a mapping, found {}", kind(&other)),
                ),
            }
        }
        Some(out)
    }

    /// Every key left in `obj` is unknown; each is recorded once with its line, and with the
    /// closest known name when one is near.
    pub fn finish(&mut self, obj: Obj, known: &[&str]) {
        for (k, _) in obj.map {
            let name = match &k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            };
            let path = Self::child_path(&obj.path, &name);
            let mut message = "unknown field".to_string();
            if let Some(s) = closest(&name, known) {
                message.push_str(&format!(" (did you mean {s:?}?)"));
            }
            let p = self.problem(&path, message);
            self.unknown.push(p);
        }
    }
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The known name closest to `name` (case-insensitive edit distance <= 2, and less than half the
/// name's length), for typo hints.
pub fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= 2 && *d < name.len() / 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
kind: KubeletConfiguration   # comment
address: \"10.0.0.1\"
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 2m
\"quoted\": 1
registerWithTaints:
- key: a
  effect: NoSchedule
-   key: b
    effect: NoExecute
evictionHard: {memory.available: 100Mi}
note: |
  fake: line
tail: 1
";

    #[test]
    fn locates_block_keys() {
        let l = Locator::new(DOC);
        assert_eq!(l.line_of("kind"), Some(1));
        assert_eq!(l.line_of("authentication.webhook.cacheTTL"), Some(8));
        assert_eq!(l.line_of("authentication.anonymous.enabled"), Some(5));
        assert_eq!(l.line_of("quoted"), Some(9));
        assert_eq!(l.line_of("registerWithTaints[0].effect"), Some(12));
        assert_eq!(l.line_of("registerWithTaints[1].key"), Some(13));
        assert_eq!(l.line_of("registerWithTaints[1].effect"), Some(14));
        // Flow mapping: falls back to the enclosing key.
        assert_eq!(l.line_of("evictionHard.memory.available"), Some(15));
        // Block scalar contents are not keys.
        assert_eq!(l.line_of("note.fake"), Some(16));
        assert_eq!(l.line_of("tail"), Some(18));
        assert_eq!(l.line_of("missing"), None);
    }

    #[test]
    fn sequence_at_parent_indent() {
        let l = Locator::new("a:\n- x: 1\n- x: 2\nb: 3\n");
        assert_eq!(l.line_of("a[1].x"), Some(3));
        assert_eq!(l.line_of("b"), Some(4));
    }

    #[test]
    fn typo_hints() {
        assert_eq!(
            closest("kubeAPIOPS", &["kubeAPIQPS", "kubeAPIBurst"]),
            Some("kubeAPIQPS")
        );
        assert_eq!(closest("completelyDifferent", &["kubeAPIQPS"]), None);
    }

    #[test]
    fn collects_every_problem_with_lines() {
        let path = Path::new("/etc/k.yaml");
        let Ok((mut ctx, mut top)) = Ctx::parse(path, "a: x\nb: 1\nc: 2\nzz: 1\n") else {
            panic!("parse failed");
        };
        let a: Option<u32> = ctx.take(&mut top, "a");
        let b: Option<u32> = ctx.take(&mut top, "b");
        let c: Option<String> = ctx.take(&mut top, "c");
        ctx.finish(top, &["a", "b", "c"]);
        assert_eq!((a, b, c), (None, Some(1), None));
        assert_eq!(ctx.problems.len(), 2);
        assert!(
            ctx.problems[0]
                .to_string()
                .starts_with("/etc/k.yaml:1: a: invalid type")
        );
        assert!(
            ctx.problems[1]
                .to_string()
                .starts_with("/etc/k.yaml:3: c: invalid type")
        );
        assert_eq!(
            ctx.unknown[0].to_string(),
            "/etc/k.yaml:4: zz: unknown field"
        );
    }

    #[test]
    fn syntax_errors_have_lines() {
        let Err(p) = Ctx::parse(Path::new("f"), "a: 1\n b: 2\n") else {
            panic!("should fail");
        };
        assert_eq!(p.line, Some(2));
        assert!(Ctx::parse(Path::new("f"), "- 1\n").is_err());
    }
}
