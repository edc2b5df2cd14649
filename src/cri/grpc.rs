//! gRPC framing and status, sans-IO: length-prefixed messages from bytes, `grpc-status` /
//! `grpc-message` from header values, `grpc-timeout` values. No sockets here.

use std::fmt;
use std::time::Duration;

/// The 5-byte prefix of every message: a compressed flag and a big-endian length.
pub const PREFIX_LEN: usize = 5;

/// Frames one encoded message.
pub fn frame(message: &[u8], limit: usize) -> Result<Vec<u8>, FrameError> {
    if message.len() > limit {
        return Err(FrameError::TooLarge {
            len: message.len(),
            limit,
        });
    }
    let len = u32::try_from(message.len()).map_err(|_| FrameError::TooLarge {
        len: message.len(),
        limit,
    })?;
    let mut out = Vec::with_capacity(PREFIX_LEN + message.len());
    out.push(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

/// A problem with the framing of a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("compressed message, but no grpc-encoding was negotiated")]
    Compressed,
    #[error("bad compressed-flag byte {0:#04x}")]
    BadFlag(u8),
    #[error("body ends inside a message ({have} of {need} bytes)")]
    Truncated { have: usize, need: usize },
    #[error("expected exactly one response message, got {0}")]
    Count(usize),
}

/// Collects body bytes and yields whole messages. A message larger than `limit` is refused as
/// soon as its prefix is seen, before its bytes are buffered.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    limit: usize,
    messages: Vec<Vec<u8>>,
}

impl Decoder {
    pub fn new(limit: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            limit,
            messages: Vec::new(),
        }
    }

    /// Feeds body bytes.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FrameError> {
        while !data.is_empty() {
            if self.buf.len() < PREFIX_LEN {
                let take = (PREFIX_LEN - self.buf.len()).min(data.len());
                self.buf.extend_from_slice(&data[..take]);
                data = &data[take..];
                if self.buf.len() < PREFIX_LEN {
                    return Ok(());
                }
                match self.buf[0] {
                    0 => {}
                    1 => return Err(FrameError::Compressed),
                    b => return Err(FrameError::BadFlag(b)),
                }
                let need = self.need();
                if need > self.limit {
                    return Err(FrameError::TooLarge {
                        len: need,
                        limit: self.limit,
                    });
                }
            }
            let need = self.need();
            let have = self.buf.len() - PREFIX_LEN;
            let take = (need - have).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() - PREFIX_LEN == need {
                let message = self.buf.split_off(PREFIX_LEN);
                self.buf.clear();
                self.messages.push(message);
            }
        }
        Ok(())
    }

    fn need(&self) -> usize {
        u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize
    }

    /// Ends the body: all messages, or an error if it stopped inside one.
    pub fn finish(self) -> Result<Vec<Vec<u8>>, FrameError> {
        if !self.buf.is_empty() {
            let need = if self.buf.len() >= PREFIX_LEN {
                self.need()
            } else {
                PREFIX_LEN
            };
            let have = self
                .buf
                .len()
                .saturating_sub(PREFIX_LEN.min(self.buf.len()));
            return Err(FrameError::Truncated { have, need });
        }
        Ok(self.messages)
    }

    /// Ends the body of a unary call: exactly one message.
    pub fn finish_unary(self) -> Result<Vec<u8>, FrameError> {
        let mut messages = self.finish()?;
        match messages.len() {
            1 => Ok(messages.remove(0)),
            n => Err(FrameError::Count(n)),
        }
    }
}

/// gRPC status codes (google.golang.org/grpc/codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Ok,
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

const CODES: [(Code, &str); 17] = [
    (Code::Ok, "OK"),
    (Code::Canceled, "Canceled"),
    (Code::Unknown, "Unknown"),
    (Code::InvalidArgument, "InvalidArgument"),
    (Code::DeadlineExceeded, "DeadlineExceeded"),
    (Code::NotFound, "NotFound"),
    (Code::AlreadyExists, "AlreadyExists"),
    (Code::PermissionDenied, "PermissionDenied"),
    (Code::ResourceExhausted, "ResourceExhausted"),
    (Code::FailedPrecondition, "FailedPrecondition"),
    (Code::Aborted, "Aborted"),
    (Code::OutOfRange, "OutOfRange"),
    (Code::Unimplemented, "Unimplemented"),
    (Code::Internal, "Internal"),
    (Code::Unavailable, "Unavailable"),
    (Code::DataLoss, "DataLoss"),
    (Code::Unauthenticated, "Unauthenticated"),
];

impl Code {
    /// The code for a `grpc-status` number; numbers outside the table are `Unknown`, as grpc-go
    /// treats them.
    pub fn from_number(n: u32) -> Code {
        CODES.get(n as usize).map_or(Code::Unknown, |(c, _)| *c)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = CODES
            .iter()
            .find(|(c, _)| c == self)
            .map_or("Unknown", |(_, n)| n);
        f.write_str(name)
    }
}

/// A call's outcome as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub message: String,
}

/// A `grpc-status` that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("grpc-status {0:?} is not a number")]
pub struct BadStatus(pub String);

/// Reads `grpc-status` and `grpc-message` header values (either may be absent).
pub fn status(status: Option<&[u8]>, message: Option<&[u8]>) -> Result<Option<Status>, BadStatus> {
    let Some(raw) = status else { return Ok(None) };
    let text = String::from_utf8_lossy(raw);
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| BadStatus(text.to_string()))?;
    let code = Code::from_number(n);
    let mut message = message.map(percent_decode).unwrap_or_default();
    if code == Code::Unknown && n != 2 {
        // A number outside the table: keep it for the reader.
        message = format!("grpc-status {n}: {message}");
    }
    Ok(Some(Status { code, message }))
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec); invalid escapes stay as they are.
pub fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `grpc-timeout` header value for a deadline: at most 8 digits and a unit.
pub fn timeout_value(d: Duration) -> String {
    const MAX: u128 = 99_999_999;
    let units: [(u128, &str); 4] = [
        (1, "n"),
        (1_000, "u"),
        (1_000_000, "m"),
        (1_000_000_000, "S"),
    ];
    let nanos = d.as_nanos();
    for (div, unit) in units {
        let v = nanos.div_ceil(div);
        if v <= MAX {
            return format!("{v}{unit}");
        }
    }
    let minutes = d.as_secs().div_ceil(60);
    if u128::from(minutes) <= MAX {
        return format!("{minutes}M");
    }
    format!("{}H", d.as_secs().div_ceil(3600).min(MAX as u64))
}

/// The invariants the fuzz target (`fuzz/fuzz_targets/grpc.rs`) and the unit tests check on
/// arbitrary bytes: the decoder never panics, gives the same messages (or the same error)
/// whether a body comes whole or split anywhere, never holds a message over its limit, and
/// gives back what `frame` made; header parsing never panics.
#[doc(hidden)]
pub fn check_invariants(data: &[u8]) {
    let limit = 1 << 12;
    let whole = {
        let mut d = Decoder::new(limit);
        d.push(data).and_then(|()| d.finish())
    };
    let at = usize::from(data.first().copied().unwrap_or(0)) % (data.len() + 1);
    let split = {
        let mut d = Decoder::new(limit);
        d.push(&data[..at])
            .and_then(|()| d.push(&data[at..]))
            .and_then(|()| d.finish())
    };
    assert_eq!(whole, split, "split at {at}");
    if let Ok(messages) = &whole {
        assert!(messages.iter().all(|m| m.len() <= limit));
        let mut again = Vec::new();
        for m in messages {
            again.extend(frame(m, limit).unwrap_or_default());
        }
        assert_eq!(again, data, "re-framed messages are the body");
    }
    let _ = status(Some(data), Some(data));
    let _ = percent_decode(data);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_any_split() {
        let mut body = frame(b"hello", 100).unwrap();
        body.extend(frame(b"", 100).unwrap());
        body.extend(frame(&[7u8; 300], 1000).unwrap());
        for split in 0..body.len() {
            let mut d = Decoder::new(1000);
            d.push(&body[..split]).unwrap();
            d.push(&body[split..]).unwrap();
            let got = d.finish().unwrap();
            assert_eq!(got, vec![b"hello".to_vec(), vec![], vec![7u8; 300]]);
        }
        // One byte at a time.
        let mut d = Decoder::new(1000);
        for b in &body {
            d.push(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(d.finish().unwrap().len(), 3);
    }

    #[test]
    fn refuses_oversized_before_buffering() {
        let mut d = Decoder::new(10);
        let prefix = [0u8, 0, 0, 0, 11];
        assert_eq!(
            d.push(&prefix),
            Err(FrameError::TooLarge { len: 11, limit: 10 })
        );
        let mut d = Decoder::new(u32::MAX as usize);
        d.push(&[0, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert!(frame(&[0; 11], 10).is_err());
    }

    #[test]
    fn rejects_compression_bad_flags_truncation_and_counts() {
        assert_eq!(
            Decoder::new(10).push(&[1, 0, 0, 0, 1]),
            Err(FrameError::Compressed)
        );
        assert_eq!(Decoder::new(10).push(&[9]).and(Ok(())), Ok(()));
        assert_eq!(
            Decoder::new(10).push(&[9, 0, 0, 0, 0]),
            Err(FrameError::BadFlag(9))
        );
        let mut d = Decoder::new(10);
        d.push(&[0, 0, 0, 0, 4, 1, 2]).unwrap();
        assert_eq!(d.finish(), Err(FrameError::Truncated { have: 2, need: 4 }));
        let mut d = Decoder::new(10);
        d.push(&[0, 0, 0]).unwrap();
        assert!(matches!(d.finish(), Err(FrameError::Truncated { .. })));
        assert_eq!(Decoder::new(10).finish_unary(), Err(FrameError::Count(0)));
        let mut d = Decoder::new(10);
        d.push(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(d.finish_unary(), Err(FrameError::Count(2)));
    }

    #[test]
    fn status_and_message() {
        assert_eq!(status(None, Some(b"x")).unwrap(), None);
        let s = status(
            Some(b"12"),
            Some(b"unknown method Foo%20bar %E2%9C%93 %zz %"),
        )
        .unwrap();
        assert_eq!(
            s,
            Some(Status {
                code: Code::Unimplemented,
                message: "unknown method Foo bar \u{2713} %zz %".to_string()
            })
        );
        let s = status(Some(b"42"), Some(b"odd")).unwrap().unwrap();
        assert_eq!(
            (s.code, s.message.as_str()),
            (Code::Unknown, "grpc-status 42: odd")
        );
        assert!(status(Some(b"ok"), None).is_err());
        assert_eq!(Code::from_number(0), Code::Ok);
        assert_eq!(Code::DeadlineExceeded.to_string(), "DeadlineExceeded");
    }

    #[test]
    fn timeout_values() {
        assert_eq!(timeout_value(Duration::from_secs(120)), "120000m");
        assert_eq!(timeout_value(Duration::from_secs(99)), "99000000u");
        assert_eq!(timeout_value(Duration::from_millis(1)), "1000000n");
        assert_eq!(timeout_value(Duration::from_secs(2_000_000)), "2000000S");
        assert_eq!(timeout_value(Duration::from_secs(500_000_000)), "8333334M");
        assert!(timeout_value(Duration::from_secs(u64::MAX / 2)).ends_with('H'));
    }

    /// Arbitrary bytes and mutated valid bodies keep the decoder's invariants.
    #[test]
    fn random_bodies_keep_the_invariants() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut seed = frame(b"hello", 1 << 12).unwrap_or_default();
        seed.extend(frame(&[7u8; 300], 1 << 12).unwrap_or_default());
        for round in 0..20_000 {
            let body: Vec<u8> = if round % 2 == 0 {
                (0..(rnd() % 64)).map(|_| rnd() as u8).collect()
            } else {
                let mut b = seed.clone();
                let i = (rnd() as usize) % b.len();
                b[i] = rnd() as u8;
                b.truncate((rnd() as usize) % (b.len() + 1));
                b
            };
            check_invariants(&body);
        }
    }
}
