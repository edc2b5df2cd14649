//! Civil (UTC) date and time from `SystemTime`, for log headers and timestamped file names.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Civil {
    /// Converts a point in time to UTC; times before 1970 clamp to the epoch.
    pub fn from_system(t: SystemTime) -> Civil {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() as i64;
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u32;
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod % 3600 / 60,
            second: sod % 60,
            micros: d.subsec_micros(),
        }
    }

    pub fn now() -> Civil {
        Civil::from_system(SystemTime::now())
    }

    /// `metav1.Time`: RFC 3339 in seconds (`2026-11-29T01:02:03Z`).
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `metav1.MicroTime`: RFC 3339 with microseconds (`2026-11-29T01:02:03.000456Z`).
    pub fn rfc3339_micros(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }
}

/// Seconds since the epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Seconds since the epoch of a `metav1.Time` (`2026-11-29T01:02:03Z`, fractions ignored);
/// None when it is not one.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    u64::try_from(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se).ok()
}

/// Howard Hinnant's `days_from_civil`: (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, mo: i64, d: i64) -> i64 {
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds since the epoch of an RFC 3339 time with any fraction and a `Z` or `±hh:mm`
/// offset (`2026-11-29T01:02:03.123456789Z`, the CRI log's and `sinceTime`'s format); None when
/// it is not one.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (rest, offset) = if let Some(r) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        (r, 0i64)
    } else {
        let (r, tz) = s.split_at(s.len().checked_sub(6)?);
        let t = tz.as_bytes();
        if !matches!(t[0], b'+' | b'-') || t[3] != b':' {
            return None;
        }
        let hh: i64 = tz.get(1..3)?.parse().ok()?;
        let mm: i64 = tz.get(4..6)?.parse().ok()?;
        let off = (hh * 60 + mm) * 60;
        (r, if t[0] == b'-' { -off } else { off })
    };
    let (whole, frac) = match rest.split_at_checked(19)? {
        (w, "") => (w, ""),
        (w, f) => (w, f.strip_prefix('.').filter(|f| !f.is_empty())?),
    };
    if frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs = i64::try_from(parse_rfc3339(&format!("{whole}Z"))?).ok()? - offset;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Civil {
        Civil::from_system(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn api_time_texts() {
        let c = Civil::from_system(UNIX_EPOCH + Duration::from_micros(1_795_910_399_000_456));
        assert_eq!(c.rfc3339(), "2026-11-28T23:59:59Z");
        assert_eq!(c.rfc3339_micros(), "2026-11-28T23:59:59.000456Z");
    }

    #[test]
    fn known_instants() {
        assert_eq!((at(0).year, at(0).month, at(0).day), (1970, 1, 1));
        // 2020-02-07T15:38:21Z, the seed's cert file time.
        let c = at(1_581_089_901);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2020, 2, 7, 15, 38, 21)
        );
        // Leap day and the day after.
        let c = at(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
        let c = at(951_868_800);
        assert_eq!((c.year, c.month, c.day), (2000, 3, 1));
        // 2026-11-28T23:59:59Z
        let c = at(1_795_910_399);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2026, 11, 28, 23, 59, 59)
        );
    }

    #[test]
    fn rfc3339_round_trips() {
        for secs in [0u64, 951_782_400, 1_796_000_000, 1_800_000_123] {
            let t = UNIX_EPOCH + std::time::Duration::from_secs(secs);
            assert_eq!(parse_rfc3339(&Civil::from_system(t).rfc3339()), Some(secs));
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1));
        assert_eq!(parse_rfc3339("2026-13-29T01:02:03Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn rfc3339_nanos_with_fractions_and_offsets() {
        let base = 1_795_910_399_i64 * 1_000_000_000;
        assert_eq!(parse_rfc3339_nanos("2026-11-28T23:59:59Z"), Some(base));
        assert_eq!(
            parse_rfc3339_nanos("2026-11-28T23:59:59.000000001Z"),
            Some(base + 1)
        );
        assert_eq!(
            parse_rfc3339_nanos("2026-11-28T23:59:59.5Z"),
            Some(base + 500_000_000)
        );
        assert_eq!(parse_rfc3339_nanos("2026-11-29T01:59:59+02:00"), Some(base));
        assert_eq!(parse_rfc3339_nanos("2026-11-28T22:59:59-01:00"), Some(base));
        for bad in [
            "",
            "2026-11-28T23:59:59",
            "2026-11-28T23:59:59.Z",
            "2026-11-28T23:59:59.1234567890Z",
            "2026-11-28T23:59:59+0200",
            "2026-11-28T23:59:59.x1Z",
            "2026-11-28T23:59:5é",
        ] {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{bad:?}");
        }
    }
}
