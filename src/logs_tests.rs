//! Unit tests of the CRI log parser and the kubectl logs renderer: tail, since, limits, partial lines.

use super::*;

const LOG: &[u8] = b"2026-11-29T01:00:00.000000001Z stdout F hello\n\
2026-11-29T01:00:01.000000001Z stderr F oops\n\
2026-11-29T01:00:02.000000001Z stdout P par\n\
2026-11-29T01:00:02.000000002Z stdout F tial\n\
garbage\n\
2026-11-29T01:00:03.000000001Z stdout F last\n";

#[test]
fn lines_parse_or_say_why_not() {
    let l = parse_line(b"2026-11-29T01:00:00Z stdout P a b c", 1).unwrap_or_else(|e| panic!("{e}"));
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

fn all(o: Options) -> String {
    String::from_utf8_lossy(&render(LOG, &o)).into_owned()
}

#[test]
fn render_as_kubectl_logs_shows_it() {
    assert_eq!(all(Options::default()), "hello\noops\npartial\nlast\n");
    assert_eq!(
        all(Options {
            tail_lines: Some(4),
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
            timestamps: true,
            tail_lines: Some(4),
            ..Options::default()
        }),
        "2026-11-29T01:00:02.000000001Z partial\n2026-11-29T01:00:03.000000001Z last\n",
        "a joined line shows the time of its first entry"
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
    assert_eq!(
        String::from_utf8_lossy(&render(b"t stdout F", &Options::default())),
        "\n"
    );
}

/// As the kubelet's (cri-client's) findTailLineStartIndex and limitedNum: CRI lines counted
/// from the end, a partial entry and a malformed line each one; from there N lines that parse
/// are read, so a malformed one gives its place to none and an unterminated last line is shown
/// only while fewer than N were read.
#[test]
fn tail_counts_cri_lines_as_the_kubelet() {
    for (n, want) in [
        (0, ""),
        (1, "last\n"),
        (2, "last\n"),
        (3, "tial\nlast\n"),
        (4, "partial\nlast\n"),
        (5, "oops\npartial\nlast\n"),
        (6, "hello\noops\npartial\nlast\n"),
        (99, "hello\noops\npartial\nlast\n"),
    ] {
        let o = Options {
            tail_lines: Some(n),
            ..Options::default()
        };
        assert_eq!(all(o), want, "tail {n}");
    }
    let o = Options {
        tail_lines: Some(2),
        ..Options::default()
    };
    // An unterminated last line is not counted, and not read once N lines were.
    let log = b"t stdout F one\nt stdout F two\nt stdout P thr";
    assert_eq!(String::from_utf8_lossy(&render(log, &o)), "one\ntwo\n");
    let log = b"t stdout F one\nt stdout F two";
    assert_eq!(String::from_utf8_lossy(&render(log, &o)), "one\ntwo\n");
    let log = b"t stdout F one\nt stdout F two\nt stdout F thr";
    let o1 = Options {
        tail_lines: Some(1),
        ..o.clone()
    };
    assert_eq!(String::from_utf8_lossy(&render(log, &o1)), "two\n");
    // Following, tailLines picks the start only: the rest is read on.
    let follow = Options { follow: true, ..o1 };
    assert_eq!(String::from_utf8_lossy(&render(log, &follow)), "two\nthr\n");
    // A line of the other stream counts, as the kubelet writes it to nowhere.
    let log = b"t stdout F one\nt stderr F two\nt stdout F thr\n";
    let out = Options {
        tail_lines: Some(2),
        stream: Some(Stream::Stdout),
        ..Options::default()
    };
    assert_eq!(String::from_utf8_lossy(&render(log, &out)), "thr\n");
}

#[test]
fn since_keeps_later_lines() {
    let at = |s: &str| crate::timefmt::parse_rfc3339_nanos(s);
    let o = Options {
        since: at("2026-11-29T01:00:02.000000001Z"),
        ..Options::default()
    };
    assert_eq!(all(o), "partial\nlast\n");
    let o = Options {
        since: at("2026-11-29T01:00:03.5Z"),
        ..Options::default()
    };
    assert_eq!(all(o), "");
}

/// The streaming renderer gives the same output whatever the pieces it is fed.
#[test]
fn any_split_renders_the_same() {
    let opts = [
        Options::default(),
        Options {
            timestamps: true,
            ..Options::default()
        },
        Options {
            limit_bytes: Some(10),
            timestamps: true,
            ..Options::default()
        },
    ];
    for o in &opts {
        let whole = render(LOG, o);
        for step in 1..20 {
            let mut r = Renderer::new(o);
            let mut out = Vec::new();
            for piece in LOG.chunks(step) {
                r.feed(piece, &mut out);
            }
            r.finish(&mut out);
            assert_eq!(out, whole, "pieces of {step} with {o:?}");
        }
    }
}

/// A log of many blocks: tail and since read from near the end, and agree with a full read.
#[test]
fn big_logs_tail_and_since_match_a_full_read() {
    let mut log = Vec::new();
    let t0 = 1_795_910_400i64;
    for i in 0..40_000i64 {
        let t = crate::timefmt::Civil::from_system(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis((t0 * 1000 + i) as u64),
        );
        let time = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            t.year,
            t.month,
            t.day,
            t.hour,
            t.minute,
            t.second,
            (i % 1000) * 1_000_000
        );
        if i % 7 == 0 {
            log.extend_from_slice(format!("{time} stdout P part{i}-").as_bytes());
            log.push(b'\n');
        }
        log.extend_from_slice(format!("{time} stdout F line {i}\n").as_bytes());
    }
    assert!(log.len() > 20 * BLOCK);
    let full = String::from_utf8_lossy(&render(&log, &Options::default())).into_owned();
    let lines: Vec<&str> = full.lines().collect();
    let o = Options {
        tail_lines: Some(1234),
        ..Options::default()
    };
    // The last 1234 CRI lines (a partial entry is one), read whole.
    let nl: Vec<usize> = (0..log.len()).filter(|i| log[*i] == b'\n').collect();
    let from = nl[nl.len() - 1235] + 1;
    let tail = render(&log, &o);
    let want = render(&log[from..], &Options::default());
    assert!(
        tail == want && !tail.is_empty(),
        "tail 1234 is not the last 1234 lines"
    );
    let since = (t0 * 1000 + 31_000) * 1_000_000;
    let o = Options {
        since: Some(since),
        ..Options::default()
    };
    let got = String::from_utf8_lossy(&render(&log, &o)).into_owned();
    assert_eq!(got.lines().next(), Some("line 31000"));
    assert_eq!(got.lines().count(), lines.len() - 31_000);
    let mut c = std::io::Cursor::new(&log[..]);
    let start = since_start(&mut c, log.len() as u64, since).unwrap_or(0);
    assert!(start > 0, "bisected, not read from the top");
}

/// A line far longer than a chunk, and a header longer than any real one, cost no memory.
#[test]
fn hostile_lines_stream_or_are_skipped() {
    let mut log = b"t stdout F ".to_vec();
    log.extend(std::iter::repeat_n(b'x', 3 * CHUNK));
    log.extend_from_slice(b"\n");
    log.extend(std::iter::repeat_n(b'y', 1000));
    log.extend_from_slice(b" stdout F no\nt stdout F after\n");
    let out = render(&log, &Options::default());
    assert_eq!(out.len(), 3 * CHUNK + 1 + "after\n".len());
    assert!(out.ends_with(b"x\nafter\n"));
}

/// Random and mutated logs keep the renderer's and the tail's invariants.
#[test]
fn random_logs_keep_the_invariants() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words: [&[u8]; 8] = [
        b"2026-11-29T01:00:00.1Z ",
        b"stdout ",
        b"stderr ",
        b"P ",
        b"F ",
        b"msg",
        b"\n",
        b" ",
    ];
    for round in 0..5_000 {
        let log: Vec<u8> = if round % 3 == 0 {
            (0..(rnd() % 200)).map(|_| rnd() as u8).collect()
        } else {
            (0..(rnd() % 60))
                .flat_map(|_| words[(rnd() % 8) as usize].to_vec())
                .collect()
        };
        check_invariants(&log);
    }
}

/// The fuzzer's find, kept as a regression input: an empty partial entry at the end of the log
/// (which the runtime never writes) is outside the invariants, terminated or not, and renders
/// without a panic.
#[test]
fn an_unterminated_empty_partial_entry_at_the_end() {
    let data =
        b"20\0\0\0\x0000:00Z stderr F \ng0Z stderr F \ngarb\0\0\0\0\0#\0\x001\x01Z stdout P ";
    check_invariants(data);
    let mut whole = data.to_vec();
    whole.push(b'\n');
    check_invariants(&whole);
}

/// Every seed of the fuzz corpus (the fuzzer's finds among them) holds the invariants.
#[test]
fn the_fuzz_corpus_holds_the_invariants() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/logs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap_or_else(|e| panic!("{e}")).path();
        check_invariants(&std::fs::read(&path).unwrap_or_else(|e| panic!("{e}")));
        n += 1;
    }
    assert!(n >= 4, "{n} seeds in {}", dir.display());
}
