//! Kubernetes `resource.Quantity` (`100Mi`, `500m`, `1.5Gi`, `1e3`) and eviction threshold values
//! (a quantity or a percentage such as `10%`).

use std::fmt;

use serde::{Serialize, Serializer};

const NANO: i128 = 1_000_000_000;

/// A parsed quantity: its exact value in nano-units plus the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    nanos: i128,
    text: String,
}

impl Quantity {
    /// Parses the Kubernetes quantity grammar: `<signedNumber><suffix>` where suffix is a binary
    /// SI suffix (Ki..Ei), a decimal SI suffix (n, u, m, "", k, M, G, T, P, E) or an exponent
    /// (`e3`, `E-2`). Precision below one nano-unit rounds up, as Kubernetes does.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let bad = |why: &str| format!("invalid quantity {s:?}: {why}");
        let (neg, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (num, suffix) = body.split_at(num_end);
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(bad(
                "expected a number such as 100, 0.5 or 1.5 before the unit",
            ));
        }
        // value = digits * 10^exp10 * 2^exp2
        let (exp10, exp2): (i32, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            e if e.starts_with(['e', 'E']) => {
                let exp: i32 = e[1..].parse().map_err(|_| {
                    bad("unknown unit; use Ki, Mi, Gi, m, k, M, G or an exponent like e3")
                })?;
                (exp, 0)
            }
            _ => {
                return Err(bad(
                    "unknown unit; use Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E",
                ));
            }
        };
        let too_big = || bad("out of range");
        let digits: String = format!("{int_part}{frac_part}");
        let mantissa: i128 = digits.parse().map_err(|_| too_big())?;
        // Scale to nano-units: mantissa * 10^(exp10 - frac_len + 9) * 2^exp2.
        let pow10 = exp10 - frac_part.len() as i32 + 9;
        let mut nanos = mantissa.checked_mul(1i128 << exp2).ok_or_else(too_big)?;
        if pow10 >= 0 {
            let f = 10i128.checked_pow(pow10 as u32).ok_or_else(too_big)?;
            nanos = nanos.checked_mul(f).ok_or_else(too_big)?;
        } else {
            let f = 10i128.checked_pow(pow10.unsigned_abs()).ok_or_else(too_big);
            nanos = match f {
                Ok(f) => (nanos + f - 1) / f,
                // Smaller than a nano-unit: rounds up to 1n unless zero.
                Err(_) => i128::from(nanos > 0),
            };
        }
        // Kubernetes caps quantities at what an int64 of milli-units... stays far below i128.
        if nanos > i128::from(i64::MAX) * NANO {
            return Err(too_big());
        }
        Ok(Quantity {
            nanos: if neg { -nanos } else { nanos },
            text: s.to_string(),
        })
    }

    /// `n` mebibytes, written `<n>Mi`.
    pub fn mebibytes(n: i64) -> Quantity {
        Quantity {
            nanos: i128::from(n) * (1 << 20) * NANO,
            text: format!("{n}Mi"),
        }
    }

    /// Exact value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// Value rounded up to whole units (bytes for memory and storage, cores for cpu), as
    /// Kubernetes' `Quantity.Value()`.
    pub fn value(&self) -> i64 {
        let v = self.nanos.div_euclid(NANO) + i128::from(self.nanos.rem_euclid(NANO) != 0);
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Value in milli-units rounded up, as `Quantity.MilliValue()` (millicores for cpu).
    pub fn milli_value(&self) -> i64 {
        let v =
            self.nanos.div_euclid(1_000_000) + i128::from(self.nanos.rem_euclid(1_000_000) != 0);
        v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// An eviction threshold value (`memory.available: "100Mi"`, `nodefs.available: "10%"`).
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdValue {
    Quantity(Quantity),
    /// A percentage of capacity in (0, 100), as written (`10%` is `Percentage(10.0)`).
    Percentage(f64),
    /// `0%` and `100%` switch a threshold off, as in the kubelet.
    Disabled(String),
}

impl ThresholdValue {
    /// Parses like the kubelet's `parseThresholdStatement` for one signal.
    pub fn parse(s: &str) -> Result<ThresholdValue, String> {
        if let Some(p) = s.strip_suffix('%') {
            if s == "0%" || s == "100%" {
                return Ok(ThresholdValue::Disabled(s.to_string()));
            }
            let v: f64 = p
                .parse()
                .map_err(|_| format!("invalid percentage {s:?}: want a number followed by %"))?;
            if !v.is_finite() || v < 0.0 {
                return Err(format!("percentage {s:?} must be >= 0%"));
            }
            if v > 100.0 {
                return Err(format!("percentage {s:?} must be <= 100%"));
            }
            return Ok(ThresholdValue::Percentage(v));
        }
        let q = Quantity::parse(s)?;
        if q.is_negative() || q.is_zero() {
            return Err(format!("threshold {s:?} must be positive"));
        }
        Ok(ThresholdValue::Quantity(q))
    }
}

impl fmt::Display for ThresholdValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThresholdValue::Quantity(q) => q.fmt(f),
            ThresholdValue::Percentage(p) => write!(f, "{p}%"),
            ThresholdValue::Disabled(s) => f.write_str(s),
        }
    }
}

impl Serialize for ThresholdValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        match Quantity::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn parses_kubernetes_quantities() {
        assert_eq!(q("100Mi").value(), 100 * 1024 * 1024);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("500m").value(), 1); // rounds up, as Quantity.Value()
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("1k").value(), 1000);
        assert_eq!(q("1M").value(), 1_000_000);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E-3").milli_value(), 1);
        assert_eq!(q("0.1").milli_value(), 100);
        assert_eq!(q(".5").milli_value(), 500);
        assert_eq!(q("1n").nanos(), 1);
        assert_eq!(q("0.1n").nanos(), 1); // rounds up
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("1Ei").value(), 1 << 60);
        assert_eq!(q("0").value(), 0);
    }

    #[test]
    fn rejects_bad_quantities() {
        for s in [
            "", "Mi", "100MB", "1.2.3", "10 Mi", "1Mi5", "abc", "1e", "1e99", "--1", "%",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn threshold_values() {
        assert_eq!(
            ThresholdValue::parse("10%"),
            Ok(ThresholdValue::Percentage(10.0))
        );
        assert_eq!(
            ThresholdValue::parse("7.5%").map(|t| t.to_string()),
            Ok("7.5%".into())
        );
        assert!(matches!(
            ThresholdValue::parse("100Mi"),
            Ok(ThresholdValue::Quantity(_))
        ));
        assert!(matches!(
            ThresholdValue::parse("0%"),
            Ok(ThresholdValue::Disabled(_))
        ));
        assert!(ThresholdValue::parse("101%").is_err());
        assert!(ThresholdValue::parse("-5%").is_err());
        assert!(ThresholdValue::parse("0").is_err());
        assert!(ThresholdValue::parse("x%").is_err());
        assert_eq!(
            ThresholdValue::parse("15%").map(|t| t.to_string()),
            Ok("15%".into())
        );
    }
}
