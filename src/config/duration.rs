//! Kubernetes `metav1.Duration`: Go `time.ParseDuration` strings (`1m`, `20s`, `2m0s`, `1.5h`).

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A non-negative duration that parses and prints like Go's `time.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct KubeDuration(pub Duration);

impl KubeDuration {
    pub const fn secs(s: u64) -> KubeDuration {
        KubeDuration(Duration::from_secs(s))
    }

    pub fn as_std(self) -> Duration {
        self.0
    }

    /// Parses Go duration syntax. Negative durations are rejected: no kubelet field takes one.
    pub fn parse(s: &str) -> Result<KubeDuration, String> {
        let bad = || {
            format!(
                "invalid duration {s:?}: want a number and unit (ns, us, ms, s, m, h), e.g. \"1m30s\""
            )
        };
        let mut rest = s.strip_prefix('+').unwrap_or(s);
        if rest.starts_with('-') {
            return Err(format!("invalid duration {s:?}: must not be negative"));
        }
        if rest == "0" {
            return Ok(KubeDuration(Duration::ZERO));
        }
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_nanos: u128 = 0;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("invalid duration {s:?}: missing unit"))?;
            let (num, tail) = rest.split_at(num_end);
            let unit_end = tail
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(unit_end);
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return Err(format!("invalid duration {s:?}: missing unit")),
                other => return Err(format!("invalid duration {s:?}: unknown unit {other:?}")),
            };
            let (int_part, frac_part) = match num.split_once('.') {
                Some((i, f)) => (i, f),
                None => (num, ""),
            };
            if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
                return Err(bad());
            }
            let int: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| bad())?
            };
            let mut nanos = int.checked_mul(unit_nanos).ok_or_else(bad)?;
            // Fractional digits beyond nanosecond precision are truncated, as Go does.
            let mut scale = unit_nanos;
            for d in frac_part.bytes() {
                scale /= 10;
                nanos += u128::from(d - b'0') * scale;
            }
            total_nanos = total_nanos.checked_add(nanos).ok_or_else(bad)?;
            rest = tail;
        }
        // Go's Duration is an int64 of nanoseconds.
        if total_nanos > i64::MAX as u128 {
            return Err(format!("invalid duration {s:?}: out of range"));
        }
        let secs = (total_nanos / 1_000_000_000) as u64;
        let sub = (total_nanos % 1_000_000_000) as u32;
        Ok(KubeDuration(Duration::new(secs, sub)))
    }
}

impl fmt::Display for KubeDuration {
    /// Prints like Go's `Duration.String()`: `1m0s`, `20s`, `1h30m0s`, `500ms`, `1.5s`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_nanos();
        if total == 0 {
            return f.write_str("0s");
        }
        if total < 1_000_000_000 {
            let (unit, div) = if total < 1_000 {
                ("ns", 1)
            } else if total < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(f, "{}{}", frac(total, div), unit);
        }
        let h = total / 3_600_000_000_000;
        let m = total / 60_000_000_000 % 60;
        let s = frac(total % 60_000_000_000, 1_000_000_000);
        if h > 0 {
            write!(f, "{h}h{m}m{s}s")
        } else if m > 0 {
            write!(f, "{m}m{s}s")
        } else {
            write!(f, "{s}s")
        }
    }
}

/// `value / div` with the fraction's trailing zeros trimmed.
fn frac(value: u128, div: u128) -> String {
    let int = value / div;
    let rem = value % div;
    if rem == 0 {
        return int.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{rem:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

impl Serialize for KubeDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for KubeDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KubeDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Duration {
        match KubeDuration::parse(s) {
            Ok(d) => d.0,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_go_syntax() {
        assert_eq!(p("1m"), Duration::from_secs(60));
        assert_eq!(p("20s"), Duration::from_secs(20));
        assert_eq!(p("2m0s"), Duration::from_secs(120));
        assert_eq!(p("1h30m"), Duration::from_secs(5400));
        assert_eq!(p("1.5h"), Duration::from_secs(5400));
        assert_eq!(p("500ms"), Duration::from_millis(500));
        assert_eq!(p("10us"), Duration::from_micros(10));
        assert_eq!(p("10µs"), Duration::from_micros(10));
        assert_eq!(p("7ns"), Duration::from_nanos(7));
        assert_eq!(p("0"), Duration::ZERO);
        assert_eq!(p(".5s"), Duration::from_millis(500));
        assert_eq!(p("+4h"), Duration::from_secs(4 * 3600));
    }

    #[test]
    fn rejects_bad_input() {
        for s in [
            "",
            "1",
            "10",
            "1x",
            "m",
            "-1s",
            "1.2.3s",
            "s1",
            "1 m",
            ".s",
            "9999999999h",
        ] {
            assert!(KubeDuration::parse(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn prints_like_go() {
        for (input, want) in [
            ("1m", "1m0s"),
            ("20s", "20s"),
            ("2m0s", "2m0s"),
            ("1h", "1h0m0s"),
            ("1h30m5s", "1h30m5s"),
            ("1.5s", "1.5s"),
            ("500ms", "500ms"),
            ("1500us", "1.5ms"),
            ("0", "0s"),
            ("4h", "4h0m0s"),
            ("10m", "10m0s"),
        ] {
            assert_eq!(p(input).as_nanos(), p(want).as_nanos(), "{input} vs {want}");
            assert_eq!(KubeDuration(p(input)).to_string(), want, "{input}");
        }
    }
}
