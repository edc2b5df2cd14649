//! Go's `regexp/syntax.Parse(pattern, syntax.Perl)` as a check only: whether the node log query's
//! `pattern` parses, and Go's error text when it does not (`error parsing regexp: missing
//! closing ): `(a``), without building the regexp. One pass, no recursion, on a `&str` (so the
//! invalid UTF-8 case cannot arise). The accept set follows Go 1.26, held to it by table tests
//! whose verdicts were taken from Go itself.

/// Go's ErrorCode texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidCharRange,
    InvalidEscape,
    InvalidNamedCapture,
    InvalidPerlOp,
    InvalidRepeatOp,
    InvalidRepeatSize,
    MissingBracket,
    MissingParen,
    MissingRepeatArgument,
    TrailingBackslash,
    UnexpectedParen,
}

impl Code {
    pub fn text(self) -> &'static str {
        match self {
            Code::InvalidCharRange => "invalid character class range",
            Code::InvalidEscape => "invalid escape sequence",
            Code::InvalidNamedCapture => "invalid named capture",
            Code::InvalidPerlOp => "invalid or unsupported Perl syntax",
            Code::InvalidRepeatOp => "invalid nested repetition operator",
            Code::InvalidRepeatSize => "invalid repeat count",
            Code::MissingBracket => "missing closing ]",
            Code::MissingParen => "missing closing )",
            Code::MissingRepeatArgument => "missing argument to repetition operator",
            Code::TrailingBackslash => "trailing backslash at end of expression",
            Code::UnexpectedParen => "unexpected )",
        }
    }
}

/// A parse error: the code and the part of the expression Go names.
#[derive(Debug, PartialEq, Eq)]
pub struct Error {
    pub code: Code,
    pub expr: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error parsing regexp: {}: `{}`",
            self.code.text(),
            self.expr
        )
    }
}

/// Go's limit on a repeat count, and on the product of nested counts.
const MAX_REPEAT: u64 = 1000;

/// The Unicode class names Go's `\p{...}` accepts, in Go's canonical form (first letter upper,
/// the rest lower, no `_`, `-` or space): its Categories, Scripts (as its lookup finds them)
/// and category aliases, `Any`, `Assigned` and `Ascii`. Taken from Go 1.26.
#[rustfmt::skip]
const UNICODE_NAMES: &[&str] = &[
    "Adlam", "Ahom", "Any", "Arabic", "Armenian", "Ascii", "Assigned", "Avestan", "Balinese",
    "Bamum", "Batak", "Bengali", "Bhaiksuki", "Bopomofo", "Brahmi", "Braille", "Buginese", "Buhid",
    "C", "Carian", "Casedletter", "Cc", "Cf", "Chakma", "Cham", "Cherokee", "Chorasmian",
    "Closepunctuation", "Cn", "Cntrl", "Co", "Combiningmark", "Common", "Connectorpunctuation",
    "Control", "Coptic", "Cs", "Cuneiform", "Currencysymbol", "Cypriot", "Cyrillic",
    "Dashpunctuation", "Decimalnumber", "Deseret", "Devanagari", "Digit", "Dogra", "Duployan",
    "Elbasan", "Elymaic", "Enclosingmark", "Ethiopic", "Finalpunctuation", "Format", "Georgian",
    "Glagolitic", "Gothic", "Grantha", "Greek", "Gujarati", "Gurmukhi", "Han", "Hangul", "Hanunoo",
    "Hatran", "Hebrew", "Hiragana", "Inherited", "Initialpunctuation", "Javanese", "Kaithi",
    "Kannada", "Katakana", "Kawi", "Kharoshthi", "Khmer", "Khojki", "Khudawadi", "L", "Lao",
    "Latin", "Lc", "Lepcha", "Letter", "Letternumber", "Limbu", "Lineseparator", "Lisu", "Ll",
    "Lm", "Lo", "Lowercaseletter", "Lt", "Lu", "Lycian", "Lydian", "M", "Mahajani", "Makasar",
    "Malayalam", "Mandaic", "Manichaean", "Marchen", "Mark", "Mathsymbol", "Mc", "Me",
    "Medefaidrin", "Miao", "Mn", "Modi", "Modifierletter", "Modifiersymbol", "Mongolian", "Mro",
    "Multani", "Myanmar", "N", "Nabataean", "Nandinagari", "Nd", "Newa", "Nko", "Nl", "No",
    "Nonspacingmark", "Number", "Nushu", "Ogham", "Openpunctuation", "Oriya", "Osage", "Osmanya",
    "Other", "Otherletter", "Othernumber", "Otherpunctuation", "Othersymbol", "P", "Palmyrene",
    "Paragraphseparator", "Pc", "Pd", "Pe", "Pf", "Phoenician", "Pi", "Po", "Privateuse", "Ps",
    "Punct", "Punctuation", "Rejang", "Runic", "S", "Samaritan", "Saurashtra", "Sc", "Separator",
    "Sharada", "Shavian", "Siddham", "Sinhala", "Sk", "Sm", "So", "Sogdian", "Soyombo",
    "Spaceseparator", "Spacingmark", "Sundanese", "Surrogate", "Symbol", "Syriac", "Tagalog",
    "Tagbanwa", "Takri", "Tamil", "Tangsa", "Tangut", "Telugu", "Thaana", "Thai", "Tibetan",
    "Tifinagh", "Tirhuta", "Titlecaseletter", "Toto", "Ugaritic", "Unassigned", "Uppercaseletter",
    "Vai", "Vithkuqi", "Wancho", "Yezidi", "Yi", "Z", "Zl", "Zp", "Zs",
];

/// The POSIX classes of `[[:name:]]`.
#[rustfmt::skip]
const POSIX_NAMES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Go's canonicalName.
fn canonical(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().filter(|c| !matches!(c, '_' | '-' | ' ')) {
        if out.is_empty() {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One open group: the largest product of nested repeat counts in it so far.
struct Group {
    weight: u64,
}

/// What the next repetition operator would repeat.
#[derive(Clone, Copy)]
enum Last {
    /// Nothing: the start, after `(` or `|`.
    Nothing,
    /// An expression of this weight (product of its nested repeat counts).
    Expr(u64),
    /// A repetition that started at this byte, over an expression of this weight.
    Repeat(usize, u64),
}

/// Checks `pattern` as Go's parser does with the Perl flags.
pub fn check(pattern: &str) -> Result<(), Error> {
    let s = pattern;
    let err = |code, expr: &str| Error {
        code,
        expr: expr.to_string(),
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut top = Group { weight: 1 };
    let mut last = Last::Nothing;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let c = rest.chars().next().unwrap_or('\0');
        // Anything but a repetition ends a run of them.
        let mut next = match last {
            Last::Repeat(_, w) => Last::Expr(w),
            other => other,
        };
        match c {
            '(' if rest.starts_with("(?") => {
                let (len, opens) = perl_group(rest)?;
                if opens {
                    groups.push(std::mem::replace(&mut top, Group { weight: 1 }));
                    next = Last::Nothing;
                }
                i += len;
            }
            '(' => {
                groups.push(std::mem::replace(&mut top, Group { weight: 1 }));
                next = Last::Nothing;
                i += 1;
            }
            ')' => {
                let Some(outer) = groups.pop() else {
                    return Err(err(Code::UnexpectedParen, s));
                };
                let inner = std::mem::replace(&mut top, outer);
                next = Last::Expr(inner.weight);
                i += 1;
            }
            '|' => {
                next = Last::Nothing;
                i += 1;
            }
            '*' | '+' | '?' | '{' => {
                let (len, counts) = if c == '{' {
                    match repeat_counts(rest) {
                        Some((len, min, max)) => (len, Some((min, max))),
                        None => {
                            // Not a repeat: a literal `{`.
                            last = Last::Expr(1);
                            i += 1;
                            continue;
                        }
                    }
                } else {
                    (1, None)
                };
                if let Some((min, max)) = counts {
                    let too_big = |n: u64| n > MAX_REPEAT;
                    if too_big(min) || max.is_some_and(|m| too_big(m) || m < min) {
                        return Err(err(Code::InvalidRepeatSize, &rest[..len]));
                    }
                }
                let end = i + len + usize::from(s[i + len..].starts_with('?'));
                let weight = match last {
                    Last::Nothing => {
                        return Err(err(Code::MissingRepeatArgument, &s[i..end]));
                    }
                    Last::Repeat(start, _) => {
                        return Err(err(Code::InvalidRepeatOp, &s[start..end]));
                    }
                    Last::Expr(w) => w,
                };
                let weight = match counts {
                    // Go's repeatIsValid: counts multiply along nested repeats; `{0}` empties.
                    Some((_, Some(0))) => 1,
                    Some((min, max)) => {
                        let m = max.unwrap_or(min).max(1);
                        let w = weight.saturating_mul(m);
                        if (min >= 2 || max.is_some_and(|m| m >= 2)) && w > MAX_REPEAT {
                            return Err(err(Code::InvalidRepeatSize, &rest[..len]));
                        }
                        w
                    }
                    None => weight,
                };
                next = Last::Repeat(i, weight);
                i = end;
            }
            '[' => {
                i += class(rest)?;
                next = Last::Expr(1);
            }
            '\\' => {
                let (len, atom) = escape_outside_class(rest)?;
                if atom {
                    next = Last::Expr(1);
                }
                i += len;
            }
            _ => {
                next = Last::Expr(1);
                i += c.len_utf8();
            }
        }
        if let Last::Expr(w) = next {
            top.weight = top.weight.max(w);
        }
        if let Last::Repeat(_, w) = next {
            top.weight = top.weight.max(w);
        }
        last = next;
    }
    if !groups.is_empty() {
        return Err(err(Code::MissingParen, s));
    }
    Ok(())
}

/// `(?...`: a named capture or flags. The bytes taken and whether a group opens (`(?i)` only
/// sets flags).
fn perl_group(t: &str) -> Result<(usize, bool), Error> {
    let b = t.as_bytes();
    let named = (t.len() > 4 && b[2] == b'P' && b[3] == b'<') || (t.len() > 3 && b[2] == b'<');
    if named {
        let begin = if b[2] == b'P' { 4 } else { 3 };
        let Some(end) = t.find('>') else {
            return Err(Error {
                code: Code::InvalidNamedCapture,
                expr: t.to_string(),
            });
        };
        let name = &t[begin..end];
        let valid =
            !name.is_empty() && name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric());
        if !valid {
            return Err(Error {
                code: Code::InvalidNamedCapture,
                expr: t[..=end].to_string(),
            });
        }
        return Ok((end + 1, true));
    }
    let mut negated = false;
    let mut saw_flag = false;
    let mut at = 2;
    for c in t[2..].chars() {
        at += c.len_utf8();
        match c {
            'i' | 'm' | 's' | 'U' => saw_flag = true,
            '-' if !negated => {
                negated = true;
                saw_flag = false;
            }
            ':' | ')' if !negated || saw_flag => return Ok((at, c == ':')),
            _ => break,
        }
    }
    Err(Error {
        code: Code::InvalidPerlOp,
        expr: t[..at].to_string(),
    })
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `t`: its length and counts (u64::MAX for a count
/// Go's parseInt gives up on); None when it is not one (a literal `{`).
fn repeat_counts(t: &str) -> Option<(usize, u64, Option<u64>)> {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let number = |s: &str| {
        if s.len() > 8 {
            u64::MAX
        } else {
            s.parse().unwrap_or(u64::MAX)
        }
    };
    let n = digits(&t[1..]);
    if n == 0 {
        return None;
    }
    let min = number(&t[1..1 + n]);
    let mut at = 1 + n;
    let max = if t[at..].starts_with(',') {
        at += 1;
        let m = digits(&t[at..]);
        let max = (m > 0).then(|| number(&t[at..at + m]));
        at += m;
        max
    } else {
        Some(min)
    };
    t[at..].starts_with('}').then_some((at + 1, min, max))
}

/// An escape outside a class: its length and whether it is something a repetition can take
/// (`\Q\E` is not).
fn escape_outside_class(t: &str) -> Result<(usize, bool), Error> {
    let b = t.as_bytes();
    if b.len() >= 2 {
        match b[1] {
            b'A' | b'b' | b'B' | b'z' => return Ok((2, true)),
            b'C' => {
                return Err(Error {
                    code: Code::InvalidEscape,
                    expr: t[..2].to_string(),
                });
            }
            b'Q' => {
                let lit = &t[2..];
                return Ok(match lit.find("\\E") {
                    Some(end) => (2 + end + 2, end > 0),
                    None => (t.len(), !lit.is_empty()),
                });
            }
            _ => {}
        }
    }
    if let Some(len) = unicode_class(t)? {
        return Ok((len, true));
    }
    if perl_class(t) {
        return Ok((2, true));
    }
    Ok((escape(t)?, true))
}

/// `\d \D \s \S \w \W`.
fn perl_class(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 2 && b[0] == b'\\' && b"dDsSwW".contains(&b[1])
}

/// `\pL`, `\p{Greek}`, `\P{^Han}` at the start of `t`: its length; None when `t` is not one.
fn unicode_class(t: &str) -> Result<Option<usize>, Error> {
    let b = t.as_bytes();
    if b.len() < 2 || b[0] != b'\\' || (b[1] != b'p' && b[1] != b'P') {
        return Ok(None);
    }
    let (seq, name) = match t[2..].chars().next() {
        Some('{') => {
            let Some(end) = t.find('}') else {
                return Err(Error {
                    code: Code::InvalidCharRange,
                    expr: t.to_string(),
                });
            };
            (&t[..=end], &t[3..end])
        }
        Some(c) => (&t[..2 + c.len_utf8()], &t[2..2 + c.len_utf8()]),
        None => (t, ""),
    };
    let name = name.strip_prefix('^').unwrap_or(name);
    let name = canonical(name);
    if UNICODE_NAMES.binary_search(&name.as_str()).is_err() {
        return Err(Error {
            code: Code::InvalidCharRange,
            expr: seq.to_string(),
        });
    }
    Ok(Some(seq.len()))
}

/// Go's parseEscape: one escaped character at the start of `t` (which starts with `\`); its
/// length.
fn escape(t: &str) -> Result<usize, Error> {
    let invalid = |len: usize| Error {
        code: Code::InvalidEscape,
        expr: t[..len].to_string(),
    };
    let mut chars = t[1..].char_indices().map(|(i, c)| (i + 1, c));
    let Some((_, c)) = chars.next() else {
        return Err(Error {
            code: Code::TrailingBackslash,
            expr: String::new(),
        });
    };
    let after = |i: usize, c: char| i + c.len_utf8();
    let b = t.as_bytes();
    let octal = |i: usize| b.get(i).is_some_and(|d| (b'0'..=b'7').contains(d));
    match c {
        '1'..='7' if !octal(2) => Err(invalid(2)),
        '0'..='7' => {
            let mut at = 2;
            while at < 4 && octal(at) {
                at += 1;
            }
            Ok(at)
        }
        'x' => {
            let Some((i, c)) = chars.next() else {
                return Err(invalid(2));
            };
            if c == '{' {
                let (mut value, mut digits) = (0u32, 0);
                let mut at = after(i, c);
                for (i, c) in chars {
                    at = after(i, c);
                    if c == '}' {
                        return if digits == 0 {
                            Err(invalid(at))
                        } else {
                            Ok(at)
                        };
                    }
                    let Some(v) = c.to_digit(16) else {
                        return Err(invalid(at));
                    };
                    value = value * 16 + v;
                    if value > 0x10_FFFF {
                        return Err(invalid(at));
                    }
                    digits += 1;
                }
                return Err(invalid(at));
            }
            let Some((j, d)) = chars.next() else {
                return Err(invalid(after(i, c)));
            };
            let at = after(j, d);
            if c.is_ascii_hexdigit() && d.is_ascii_hexdigit() {
                Ok(at)
            } else {
                Err(invalid(at))
            }
        }
        'a' | 'f' | 'n' | 'r' | 't' | 'v' => Ok(2),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(2),
        c => Err(invalid(1 + c.len_utf8())),
    }
}

/// A class `[...]` at the start of `t`: its length.
fn class(t: &str) -> Result<usize, Error> {
    let missing = || Error {
        code: Code::MissingBracket,
        expr: t.to_string(),
    };
    let mut at = 1;
    if t[at..].starts_with('^') {
        at += 1;
    }
    let mut first = true;
    loop {
        let rest = &t[at..];
        if rest.starts_with(']') && !first {
            return Ok(at + 1);
        }
        first = false;
        if rest.is_empty() {
            return Err(missing());
        }
        if rest.len() > 2
            && rest.starts_with("[:")
            && let Some(end) = rest[2..].find(":]")
        {
            let name = &rest[..end + 4];
            let bare = &name[2..name.len() - 2];
            if !POSIX_NAMES.contains(&bare.strip_prefix('^').unwrap_or(bare)) {
                return Err(Error {
                    code: Code::InvalidCharRange,
                    expr: name.to_string(),
                });
            }
            at += name.len();
            continue;
        }
        if let Some(len) = unicode_class(rest)? {
            at += len;
            continue;
        }
        if perl_class(rest) {
            at += 2;
            continue;
        }
        let (lo, len) = class_char(rest, missing)?;
        at += len;
        let tail = &t[at..];
        if tail.len() >= 2 && tail.starts_with('-') && !tail[1..].starts_with(']') {
            let (hi, len) = class_char(&tail[1..], missing)?;
            at += 1 + len;
            if hi < lo {
                return Err(Error {
                    code: Code::InvalidCharRange,
                    expr: rest[..rest.len() - t[at..].len()].to_string(),
                });
            }
        }
    }
}

/// One character of a class (escaped or not): its value (for ranges) and length.
fn class_char(t: &str, missing: impl Fn() -> Error) -> Result<(u32, usize), Error> {
    let Some(c) = t.chars().next() else {
        return Err(missing());
    };
    if c != '\\' {
        return Ok((u32::from(c), c.len_utf8()));
    }
    let len = escape(t)?;
    Ok((escaped_value(&t[..len]), len))
}

/// The character an escape that [`escape`] accepted stands for.
fn escaped_value(e: &str) -> u32 {
    let body = &e[1..];
    let hex = |s: &str| u32::from_str_radix(s, 16).unwrap_or(0);
    match body.as_bytes().first() {
        Some(b'x') if body.starts_with("x{") => {
            hex(body.trim_start_matches("x{").trim_end_matches('}'))
        }
        Some(b'x') => hex(&body[1..]),
        Some(b'0'..=b'7') => u32::from_str_radix(body, 8).unwrap_or(0),
        Some(b'a') => 7,
        Some(b'f') => 12,
        Some(b'n') => 10,
        Some(b'r') => 13,
        Some(b't') => 9,
        Some(b'v') => 11,
        _ => body.chars().next().map_or(0, u32::from),
    }
}

#[cfg(test)]
#[path = "re2_tests.rs"]
mod tests;
