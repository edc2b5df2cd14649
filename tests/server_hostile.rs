//! The 10250 and healthz servers against hostile clients (issue #14): a flood of clients
//! dribbling their TLS hello and redialling when closed does not lock out a legitimate client;
//! silent TCP clients and heads split over segments do not stall healthz; the wire details of
//! the kubelet's authenticators (bearer scheme in any case, exactly one space, client
//! certificates from a foreign CA) and of Go's HTTP parser (`Content-Length: +4`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::https::{ServingNode, bearer, openssl_client, read_all, send_and_close};
use common::*;

/// The metric's value in a /metrics text, 0 when absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `n` clients that each open a TCP connection, send a TLS record header announcing a 512-byte
/// ClientHello and then one byte every `every`, and redial at once when the server closes
/// them. Runs until `stop`; counts the redials.
fn dribblers(
    port: u16,
    n: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
    redials: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let dial = || {
            let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_nonblocking(true).ok()?;
            (&s).write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).ok()?;
            Some(s)
        };
        let mut conns: Vec<Option<TcpStream>> = (0..n).map(|_| dial()).collect();
        let mut last_byte = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let send = last_byte.elapsed() >= every;
            if send {
                last_byte = Instant::now();
            }
            for c in conns.iter_mut() {
                let closed = match c {
                    None => true,
                    Some(s) => {
                        let mut b = [0u8; 64];
                        let gone = matches!(s.read(&mut b), Ok(0))
                            || matches!(s.read(&mut b), Err(e) if e.kind() != std::io::ErrorKind::WouldBlock);
                        gone || (send && s.write_all(&[0x01]).is_err())
                    }
                };
                if closed {
                    redials.fetch_add(1, Ordering::Relaxed);
                    *c = dial();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// D4: 300 clients dribble a ClientHello a byte a second and redial the moment they are
/// closed; a legitimate client, the API server's certificate, gets every request through.
#[test]
fn a_handshake_flood_does_not_lock_out_a_legitimate_client() {
    let tmp = tempdir();
    let node = ServingNode::start(tmp.path(), "");
    let admin = node.admin();
    assert_eq!(node.curl("/healthz", &admin).0, "200");
    let stop = Arc::new(AtomicBool::new(false));
    let redials = Arc::new(AtomicUsize::new(0));
    let flood = dribblers(
        node.port,
        300,
        Duration::from_secs(1),
        stop.clone(),
        redials.clone(),
    );
    std::thread::sleep(Duration::from_secs(3));
    let mut served = 0;
    let mut failures = Vec::new();
    for _ in 0..30 {
        let mut a = admin.clone();
        a.extend(["--max-time".to_string(), "5".to_string()]);
        match node.curl("/pods", &a) {
            (code, _) if code == "200" => served += 1,
            other => failures.push(other),
        }
    }
    let (code, metrics) = node.curl("/metrics", &admin);
    stop.store(true, Ordering::SeqCst);
    let _ = flood.join();
    assert_eq!(
        served, 30,
        "requests served during the flood; failures: {failures:?}"
    );
    assert_eq!(code, "200");
    let evicted = metric(
        &metrics,
        "tinylet_evicted_connections_total{phase=\"handshake\"}",
    );
    assert!(
        evicted > 0 && redials.load(Ordering::Relaxed) > 0,
        "the flood was past the handshake share: {evicted} evicted"
    );
    assert_eq!(metric(&metrics, "tinylet_rejected_connections_total"), 0);
}

/// D7: healthz serves every connection at once: silent TCP clients hold nobody up, and a
/// request head split over two segments is read whole.
#[test]
fn healthz_is_not_stalled_by_silent_clients_or_split_heads() {
    let tmp = tempdir();
    let node = ServingNode::start(tmp.path(), "");
    let hport = node.healthz_port;
    let silent: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", hport)).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for path in ["/healthz", "/healthz/syncloop", "/healthz/ping"] {
        let out = run(std::process::Command::new("curl").args([
            "-s",
            "--max-time",
            "2",
            &format!("http://127.0.0.1:{hport}{path}"),
        ]));
        assert_eq!(text(&out.stdout), "ok", "{path} with three silent clients");
    }
    let mut split = TcpStream::connect(("127.0.0.1", hport)).unwrap_or_else(|e| panic!("{e}"));
    split
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .unwrap_or_else(|e| panic!("{e}"));
    split.flush().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(300));
    split
        .write_all(b"st: x\r\n\r\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut answer = String::new();
    let _ = split.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer:?}");
    assert!(answer.ends_with("\r\n\r\nok"), "{answer:?}");
    drop(silent);
}

/// D10: the authenticators' and the parser's wire details, as the kubelet's.
#[test]
fn wire_details_match_the_kubelet() {
    let tmp = tempdir();
    let node = ServingNode::start(tmp.path(), "");
    let token = node.api_admin_token("wire");
    let header = |h: &str| vec!["-H".to_string(), format!("Authorization: {h}")];
    assert_eq!(
        node.curl("/pods", &header(&format!("bearer {token}"))).0,
        "200",
        "the scheme in lower case"
    );
    assert_eq!(
        node.curl("/pods", &header(&format!("BEARER {token}"))).0,
        "200"
    );
    assert_eq!(
        node.curl("/pods", &header(&format!("Bearer  {token}"))),
        ("401".into(), "Unauthorized".into()),
        "two spaces: an empty token"
    );
    // A client certificate from a foreign CA: the handshake completes, the x509
    // authenticator refuses it, and a valid bearer token on the same request is honoured.
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap_or_else(|e| panic!("{e}"));
    let fca = make_ca(&foreign);
    let key = foreign.join("client-key.pem");
    let csr = foreign.join("client.csr");
    let crt = foreign.join("client.pem");
    let ok = |out: std::process::Output| {
        assert!(out.status.success(), "openssl: {}", text(&out.stderr));
    };
    ok(run(std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-subj", "/O=system:masters/CN=admin", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr)));
    let ext = foreign.join("ext.cnf");
    write(&ext, "extendedKeyUsage=clientAuth\n");
    ok(run(std::process::Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-extfile"])
        .arg(&ext)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&fca)
        .arg("-CAkey")
        .arg(foreign.join("ca-key.pem"))
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(&crt)));
    let foreign_cert = vec![
        "--cert".to_string(),
        crt.display().to_string(),
        "--key".to_string(),
        key.display().to_string(),
    ];
    assert_eq!(
        node.curl("/pods", &foreign_cert),
        ("401".into(), "Unauthorized".into()),
        "a foreign CA's certificate authenticates nobody"
    );
    let mut both = foreign_cert.clone();
    both.extend(bearer(&token));
    assert_eq!(node.curl("/pods", &both).0, "200", "the token still counts");
    // Go's ParseUint takes no sign: `Content-Length: +4` is a bad request, and counted.
    let mut s = openssl_client(node.port, &node.ca, None);
    send_and_close(
        &mut s,
        b"POST /pods HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd",
    );
    let answer = read_all(&mut s);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    let (_, metrics) = node.curl("/metrics", &node.admin());
    assert!(
        metric(&metrics, "tinylet_http_bad_requests_total{code=\"400\"}") >= 1,
        "{metrics}"
    );
}
