//! Unit tests of probes: HTTP, TCP, exec and gRPC checks, thresholds and timing.

use super::*;
use serde_json::json;

/// A one-connection gRPC server on TCP answering Health/Check with `status` (None: grpc
/// status 12, unimplemented; Some(-1): never answers).
fn health_server(status: Option<i32>) -> SocketAddr {
    use prost::Message;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let a = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        smol::block_on(async move {
            let l = smol::Async::new(l).unwrap_or_else(|e| panic!("{e}"));
            let (sock, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
            let mut conn = h2::server::handshake(crate::cri::conn::Io::new(sock))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            while let Some(Ok((req, mut respond))) = conn.accept().await {
                assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
                let resp = http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(())
                    .unwrap_or_else(|e| panic!("{e}"));
                match status {
                    Some(-1) => {
                        smol::Timer::after(Duration::from_secs(5)).await;
                    }
                    Some(st) => {
                        let mut send = respond
                            .send_response(resp, false)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let msg = HealthCheckResponse { status: st }.encode_to_vec();
                        let body = crate::cri::grpc::frame(&msg, 1 << 20)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let _ = send.send_data(bytes::Bytes::from(body), false);
                        let mut t = http::HeaderMap::new();
                        t.insert("grpc-status", http::HeaderValue::from_static("0"));
                        let _ = send.send_trailers(t);
                    }
                    None => {
                        let mut send = respond
                            .send_response(resp, false)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let mut t = http::HeaderMap::new();
                        t.insert("grpc-status", http::HeaderValue::from_static("12"));
                        t.insert(
                            "grpc-message",
                            http::HeaderValue::from_static("unknown service"),
                        );
                        let _ = send.send_trailers(t);
                    }
                }
            }
        })
    });
    a
}

#[test]
fn grpc_health_checks_as_the_kubelet() {
    let t = Duration::from_secs(2);
    assert_eq!(grpc_check(health_server(Some(1)), "", t), Ok(()));
    assert_eq!(
        grpc_check(health_server(Some(2)), "svc", t),
        Err("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    let e = grpc_check(health_server(None), "", t)
        .err()
        .unwrap_or_default();
    assert!(
        e.starts_with("error: this server does not implement the grpc health protocol"),
        "{e}"
    );
    let e = grpc_check(health_server(Some(-1)), "", Duration::from_secs(1))
        .err()
        .unwrap_or_default();
    assert_eq!(e, "timeout: health rpc did not complete within 1s");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("{e}"));
    let e = grpc_check(closed, "", t).err().unwrap_or_default();
    assert!(e.starts_with("error: failed to connect service at"), "{e}");
}

#[test]
fn a_slow_probe_holds_one_worker_not_the_others() {
    let ep = crate::config::kubelet::RuntimeEndpoint::parse("unix:///nonexistent/cri.sock")
        .unwrap_or_else(|e| panic!("{e}"));
    let rt: std::sync::Arc<dyn Cri> = std::sync::Arc::new(
        crate::cri::Runtime::new(&ep, None, crate::cri::Options::new(Duration::from_secs(1)))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let (tx, done) = std::sync::mpsc::channel();
    let jobs = workers(2, rt, move |d| tx.send(d).is_ok());
    let hung = health_server(Some(-1));
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let job = |name: &str, v: Value| Job {
        uid: "u".into(),
        pod: "p".into(),
        namespace: "default".into(),
        container: name.into(),
        kind: Kind::Liveness,
        container_id: "c".into(),
        probe: probe(v),
        pod_ip: "127.0.0.1".into(),
        ports: vec![],
    };
    let send = |j| jobs.send(j).unwrap_or_else(|e| panic!("{e}"));
    send(job(
        "slow",
        json!({"grpc": {"port": hung.port()}, "timeoutSeconds": 2}),
    ));
    let port = open.local_addr().map(|a| a.port()).unwrap_or(0);
    send(job("fast", json!({"tcpSocket": {"port": port}})));
    let first = done.recv().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.job.container, "fast");
    assert_eq!(first.outcome, Outcome::Success);
    let second = done.recv().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.job.container, "slow");
    assert!(matches!(second.outcome, Outcome::Failure(ref w) if w.starts_with("timeout")));
}

fn probe(v: Value) -> Probe {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn defaults_timing_and_thresholds() {
    let p = probe(
        json!({"exec": {"command": ["true"]}, "initialDelaySeconds": 2, "successThreshold": 2}),
    );
    assert_eq!(
        (p.period_seconds, p.timeout_seconds, p.failure_threshold),
        (10, 1, 3)
    );
    let mut t = Tracker::new("c1");
    assert!(!t.due(&p, 1_500, 0), "initial delay");
    assert!(t.due(&p, 2_000, 0));
    assert!(
        !t.record(&p, 2_000, &Outcome::Success),
        "one success of two"
    );
    assert!(!t.due(&p, 11_999, 0), "period");
    assert!(t.record(&p, 12_000, &Outcome::Success));
    assert_eq!(t.result, Some(true));
    let fail = Outcome::Failure("no".into());
    assert!(!t.record(&p, 22_000, &fail));
    assert!(!t.record(&p, 32_000, &fail));
    assert!(t.record(&p, 42_000, &fail), "third failure flips it");
    assert_eq!((t.result, t.last_failure.as_str()), (Some(false), "no"));
}

#[test]
fn ports_by_number_or_name() {
    let ports = [ContainerPort {
        name: "http".into(),
        container_port: 8080,
    }];
    assert_eq!(port(&json!(80), &ports), Ok(80));
    assert_eq!(port(&json!("http"), &ports), Ok(8080));
    assert_eq!(port(&json!("81"), &ports), Ok(81));
    assert_eq!(
        port(&json!("web"), &ports),
        Err("no container port named \"web\"".into())
    );
    assert_eq!(port(&json!(0), &ports), Err("invalid port 0".into()));
}

#[test]
fn tcp_and_http_probes_against_local_listeners() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let p = l.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = std::thread::spawn(move || {
        for (i, s) in l.incoming().enumerate() {
            let Ok(mut s) = s else { continue };
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let code = if i == 0 { 200 } else { 500 };
            let _ = write!(s, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            if i == 1 {
                return;
            }
        }
    });
    let rt = crate::cri::Runtime::new(
        &crate::config::kubelet::RuntimeEndpoint::parse("unix:///nonexistent.sock")
            .unwrap_or_else(|e| panic!("{e}")),
        None,
        crate::cri::Options::new(Duration::from_secs(1)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let http = probe(json!({"httpGet": {"path": "/ready", "port": p}}));
    assert_eq!(
        run(&http.handler, timeout(&http), &rt, "c", "127.0.0.1", &[]),
        Outcome::Success
    );
    assert_eq!(
        run(&http.handler, timeout(&http), &rt, "c", "127.0.0.1", &[]),
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    let _ = server.join();
    let tcp = probe(json!({"tcpSocket": {"port": p}}));
    assert!(
        matches!(
            run(&tcp.handler, timeout(&tcp), &rt, "c", "127.0.0.1", &[]),
            Outcome::Failure(_)
        ),
        "closed port"
    );
    let exec = probe(json!({"exec": {"command": ["true"]}}));
    assert!(
        matches!(
            run(&exec.handler, timeout(&exec), &rt, "c", "127.0.0.1", &[]),
            Outcome::Failure(_)
        ),
        "no runtime"
    );
}

/// `scheme: HTTPS`: the GET goes over TLS to a pod serving a self-signed certificate, which is
/// taken unverified, as the kubelet's prober does.
#[test]
fn https_probes_take_the_pods_self_signed_certificate() {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let params = rcgen::CertificateParams::new(vec!["pod.local".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("{e}"))
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let p = l.local_addr().map(|a| a.port()).unwrap_or(0);
    let served = std::thread::spawn(move || {
        let (tcp, _) = l.accept().unwrap_or_else(|e| panic!("{e}"));
        let conn = rustls::ServerConnection::new(std::sync::Arc::new(server))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut s = rustls::StreamOwned::new(conn, tcp);
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = write!(s, "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
        let _ = s.flush();
        String::from_utf8_lossy(&got).into_owned()
    });
    let rt = crate::cri::Runtime::new(
        &crate::config::kubelet::RuntimeEndpoint::parse("unix:///nonexistent.sock")
            .unwrap_or_else(|e| panic!("{e}")),
        None,
        crate::cri::Options::new(Duration::from_secs(1)),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let https = probe(json!({"httpGet": {"path": "/healthz", "port": p, "scheme": "HTTPS"}}));
    assert_eq!(
        run(
            &https.handler,
            Duration::from_secs(5),
            &rt,
            "c",
            "127.0.0.1",
            &[]
        ),
        Outcome::Success
    );
    let request = served.join().unwrap_or_default();
    assert!(
        request.starts_with("GET /healthz HTTP/1.1\r\n"),
        "{request}"
    );
}
