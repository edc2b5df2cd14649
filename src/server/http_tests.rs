//! Unit tests of the sans-IO HTTP/1.1 parser: framing, limits, hostile requests.

use super::*;

fn head(s: &str) -> Result<Parsed, HttpError> {
    parse_head(s.as_bytes(), &Limits::default())
}

fn complete(s: &str) -> RequestHead {
    match head(s) {
        Ok(Parsed::Complete(h)) => h,
        other => panic!("{s:?}: {other:?}"),
    }
}

#[test]
fn parses_requests() {
    let h = complete(
        "GET /metrics/cadvisor?x=1&y=2 HTTP/1.1\r\nHost: n1:10250\r\nAuthorization: Bearer abc\r\n\r\nrest",
    );
    assert_eq!(
        (h.method.as_str(), h.path.as_str(), h.query.as_str()),
        ("GET", "/metrics/cadvisor", "x=1&y=2")
    );
    assert_eq!(h.header("authorization"), Some("Bearer abc"));
    assert_eq!(h.body, BodyKind::None);
    assert!(h.keep_alive);
    assert_eq!(h.head_len, "GET /metrics/cadvisor?x=1&y=2 HTTP/1.1\r\nHost: n1:10250\r\nAuthorization: Bearer abc\r\n\r\n".len());
    let h = complete(
        "POST /exec/a/b/c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((h.body.clone(), h.keep_alive), (BodyKind::Length(5), false));
    let h = complete("POST /run HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.body, BodyKind::Chunked);
    let h = complete("GET / HTTP/1.0\r\n\r\n");
    assert!(!h.keep_alive);
    assert_eq!(
        head("GET /healthz HTTP/1.1\r\nHost: x\r\n"),
        Ok(Parsed::Incomplete)
    );
    assert_eq!(head(""), Ok(Parsed::Incomplete));
}

#[test]
fn malformed_requests_get_their_status() {
    let cases: &[(&str, u16)] = &[
        ("GARBAGE\r\n\r\n", 400),
        ("GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4,4\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            400,
        ),
        (
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        ("GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n", 400),
    ];
    for (req, status) in cases {
        match head(req) {
            Err(e) => assert_eq!(e.status(), *status, "{req:?}: {e}"),
            Ok(p) => panic!("{req:?} accepted: {p:?}"),
        }
    }
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(20_000));
    assert_eq!(head(&long_target).map_err(|e| e.status()), Err(414));
    let many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        "X-A: b\r\n".repeat(200)
    );
    assert_eq!(head(&many).map_err(|e| e.status()), Err(431));
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}",
        "a".repeat(1 << 20)
    );
    assert_eq!(
        head(&huge).map_err(|e| e.status()),
        Err(431),
        "an unfinished head over 1 MiB"
    );
}

#[test]
fn chunked_bodies_decode_incrementally() {
    let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    // Byte by byte: the decoder keeps its state across calls.
    let mut d = ChunkDecoder::new(1024);
    let mut out = Vec::new();
    let mut used = 0;
    for b in wire.iter() {
        if d.is_done() {
            break;
        }
        used += d
            .feed(std::slice::from_ref(b), &mut out)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(d.is_done());
    assert_eq!(out, b"hello world");
    assert_eq!(&wire[used..], b"NEXT");
    for (bad_wire, status) in [
        (&b"zz\r\n"[..], 400),
        (b"5\r\nhelloXX\r\n", 400),
        (b"5\nhello", 400),
        (b"ffffffffffffffffff\r\n", 400),
        (b"800\r\n", 413),
    ] {
        let mut d = ChunkDecoder::new(1024);
        let err = d.feed(bad_wire, &mut Vec::new()).err();
        assert_eq!(
            err.map(|e| e.status()),
            Some(status),
            "{:?}",
            String::from_utf8_lossy(bad_wire)
        );
    }
}

#[test]
fn responses_encode() {
    let h = response_head(
        401,
        &[("Content-Type", "text/plain; charset=utf-8")],
        Framing::Length(12),
        true,
    );
    assert_eq!(h, b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 12\r\n\r\n");
    let h = response_head(200, &[("X", "a\r\nInjected: 1")], Framing::Chunked, false);
    assert_eq!(h, b"HTTP/1.1 200 OK\r\nX: aInjected: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    assert_eq!(chunk(b"hello"), b"5\r\nhello\r\n");
    assert!(chunk(b"").is_empty());
    // What we encode, we decode.
    let mut wire = chunk(b"abc");
    wire.extend(chunk(&[b'x'; 300]));
    wire.extend_from_slice(LAST_CHUNK);
    let mut d = ChunkDecoder::new(1 << 20);
    let mut out = Vec::new();
    assert_eq!(d.feed(&wire, &mut out), Ok(wire.len()));
    assert!(d.is_done() && out.len() == 303);
}

/// Arbitrary bytes (and mutated valid requests) never panic the parser or the decoder,
/// and the head length reported is always within the input.
#[test]
fn random_input_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seed = b"POST /exec/ns/p/c?command=ls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    for round in 0..20_000 {
        let buf: Vec<u8> = if round % 2 == 0 {
            (0..(rnd() % 300)).map(|_| rnd() as u8).collect()
        } else {
            let mut b = seed.to_vec();
            for _ in 0..(1 + rnd() % 4) {
                let i = (rnd() as usize) % b.len();
                b[i] = rnd() as u8;
            }
            b
        };
        check_invariants(&buf);
    }
}
