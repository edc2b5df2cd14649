//! The 10250 API, the seed guide's step 7 with curl: no credentials or a bad token ->
//! `Unauthorized`; the kube-controller-manager cert -> the seed's `Forbidden (...)`; the admin
//! cert or a ServiceAccount token bound to system:kubelet-api-admin -> Prometheus text; the same
//! token refused once the binding is gone and the authorized cache expired. Plus healthz, the
//! route table walk and malformed requests.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::https::{
    ServingNode, bearer, cert_args, curl, free_port, openssl_client, read_all, send_and_close,
};
use common::*;

#[test]
fn seed_step_7_authn_and_authz() {
    let tmp = tempdir();
    let ServingNode {
        seed,
        agent,
        port,
        healthz_port: hport,
        ca,
    } = ServingNode::start(tmp.path(), "");
    let cert = |name: &str| cert_args(&seed.sim_dir, name);
    assert_eq!(
        curl(port, "/metrics", &ca, &[]),
        ("401".into(), "Unauthorized".into())
    );
    assert_eq!(
        curl(port, "/metrics", &ca, &bearer("123456")),
        ("401".into(), "Unauthorized".into())
    );
    assert_eq!(
        curl(port, "/metrics", &ca, &cert("kube-controller-manager")),
        ("403".into(), "Forbidden (user=system:kube-controller-manager, verb=get, resource=nodes, subresource=metrics)".into())
    );
    let (code, body) = curl(port, "/metrics", &ca, &cert("admin"));
    assert_eq!(code, "200", "{body}");
    assert!(
        body.contains("# TYPE kubelet_http_requests_total counter"),
        "{body}"
    );
    check_prometheus_text(&body);
    let families = parse_with_prometheus_client(&body);
    for want in [
        "kubelet_http_requests",
        "kubernetes_build_info",
        "process_resident_memory_bytes",
    ] {
        assert!(
            families.iter().any(|f| f == want),
            "{want} not in {families:?}"
        );
    }

    // A ServiceAccount token bound to system:kubelet-api-admin, as in the guide.
    seed.kubectl(&["create", "sa", "kubelet-api-test"]);
    seed.kubectl(&[
        "create",
        "clusterrolebinding",
        "kubelet-api-test",
        "--clusterrole=system:kubelet-api-admin",
        "--serviceaccount=default:kubelet-api-test",
    ]);
    let token = seed
        .kubectl(&["create", "token", "kubelet-api-test"])
        .trim()
        .to_string();
    let (code, body) = curl(port, "/metrics", &ca, &bearer(&token));
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("process_resident_memory_bytes"), "{body}");
    seed.kubectl(&["delete", "clusterrolebinding", "kubelet-api-test"]);
    std::thread::sleep(Duration::from_millis(1300)); // past cacheAuthorizedTTL
    assert_eq!(
        curl(port, "/metrics", &ca, &bearer(&token)),
        ("403".into(), "Forbidden (user=system:serviceaccount:default:kubelet-api-test, verb=get, resource=nodes, subresource=metrics)".into())
    );

    // Routes: /pods, /configz, a later route (404 after authz), a wrong method (405).
    let admin = cert("admin");
    let (code, body) = curl(port, "/pods", &ca, &admin);
    assert_eq!(
        (code.as_str(), body.as_str()),
        (
            "200",
            "{\"apiVersion\":\"v1\",\"items\":[],\"kind\":\"PodList\",\"metadata\":{}}"
        )
    );
    let (code, body) = curl(port, "/configz", &ca, &admin);
    assert!(
        code == "200"
            && body.contains("\"kubeletconfig\"")
            && body.contains(&format!("\"port\":{port}")),
        "{body}"
    );
    assert_eq!(
        curl(port, "/containerLogs/default/p/c", &ca, &admin).0,
        "404"
    );
    let mut post = admin.clone();
    post.extend(["-X".to_string(), "POST".to_string()]);
    assert_eq!(curl(port, "/pods", &ca, &post).0, "405");
    // Every route answers 401 without credentials: none skips authentication.
    for r in tinylet::server::ROUTES {
        let path = if r.path.ends_with('/') {
            format!("{}x", r.path)
        } else {
            r.path.to_string()
        };
        assert_eq!(
            curl(port, &path, &ca, &[]),
            ("401".into(), "Unauthorized".into()),
            "{path}"
        );
    }
    // The authn/authz matrix: every route x method x credential.
    seed.kubectl(&["create", "sa", "matrix"]);
    seed.kubectl(&[
        "create",
        "clusterrolebinding",
        "matrix",
        "--clusterrole=system:kubelet-api-admin",
        "--serviceaccount=default:matrix",
    ]);
    let good_token = seed
        .kubectl(&["create", "token", "matrix"])
        .trim()
        .to_string();
    for r in tinylet::server::ROUTES {
        let path = if r.path.ends_with('/') {
            format!("{}x", r.path)
        } else {
            r.path.to_string()
        };
        for method in ["GET", "POST"] {
            let with = |creds: Vec<String>| {
                let mut a = vec!["-X".to_string(), method.to_string()];
                a.extend(creds);
                curl(port, &path, &ca, &a)
            };
            assert_eq!(with(vec![]).0, "401", "{method} {path} no credentials");
            assert_eq!(
                with(bearer("not-a-token")).0,
                "401",
                "{method} {path} bad token"
            );
            let (code, body) = with(cert("kube-controller-manager"));
            assert_eq!(code, "403", "{method} {path} unauthorized cert: {body}");
            let verb = if method == "GET" { "get" } else { "create" };
            assert!(body.starts_with(&format!("Forbidden (user=system:kube-controller-manager, verb={verb}, resource=nodes, subresource=")), "{body}");
            for creds in [cert("admin"), bearer(&good_token)] {
                let (code, body) = with(creds);
                assert!(
                    code != "401" && code != "403",
                    "{method} {path} authorized: {code} {body}"
                );
            }
        }
    }

    // healthz on plain HTTP.
    let out = run(Command::new("curl").args(["-s", &format!("http://127.0.0.1:{hport}/healthz")]));
    assert_eq!(text(&out.stdout), "ok");

    // Malformed requests over TLS get 400 and the server keeps serving.
    let mut s = openssl_client(port, &ca, None);
    send_and_close(&mut s, b"GARBAGE\r\n\r\n");
    let answer = read_all(&mut s);
    assert!(answer.contains("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        curl(port, "/healthz", &ca, &admin),
        ("200".into(), "ok".into())
    );
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
}

#[test]
fn tls_files_min_version_anonymous_and_always_allow() {
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &[]);
    let (port, ca) = (free_port(), seed.sim_dir.join("ca.pem"));
    // kube-sim's own serving cert (SAN 127.0.0.1) as tlsCertFile; TLS 1.3 only; anonymous on;
    // AlwaysAllow: no API server is needed to answer.
    let cfg = tmp.path().join("kubelet.yaml");
    write(
        &cfg,
        &format!(
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\naddress: 127.0.0.1\nport: {port}\nhealthzPort: 0\n\
             tlsCertFile: {}\ntlsPrivateKeyFile: {}\ntlsMinVersion: VersionTLS13\n\
             authentication:\n  anonymous:\n    enabled: true\nauthorization:\n  mode: AlwaysAllow\n",
            common::https::pem_pair(&seed.sim_dir, "apiserver")
                .0
                .display(),
            common::https::pem_pair(&seed.sim_dir, "apiserver")
                .1
                .display()
        ),
    );
    let mut agent = Agent::start(&[
        format!("--config={}", cfg.display()),
        "--hostname-override=n1".into(),
    ]);
    agent.expect("kubelet API on https://127.0.0.1:");
    assert_eq!(
        curl(port, "/pods", &ca, &[]).0,
        "200",
        "anonymous + AlwaysAllow"
    );
    assert_eq!(
        curl(port, "/healthz", &ca, &["--tls-max".into(), "1.2".into()]).0,
        "000",
        "TLS 1.2 refused with tlsMinVersion VersionTLS13"
    );
    let (code, _) = curl(port, "/nope", &ca, &[]);
    assert_eq!(code, "404");
    // Slow and silent clients hold no handler thread: with 12 idle TLS sessions, 12 TCP
    // connections that never start the handshake and 12 sessions stopped in the middle of a
    // request head (each more than the 8 handler threads), a new client is served, and the
    // stalled heads are still being waited for afterwards (they complete with a 200).
    let idle: Vec<std::process::Child> = (0..12).map(|_| openssl_client(port, &ca, None)).collect();
    let silent: Vec<std::net::TcpStream> = (0..12)
        .map(|_| {
            std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let mut slow: Vec<std::process::Child> =
        (0..12).map(|_| openssl_client(port, &ca, None)).collect();
    for c in &mut slow {
        let stdin = c.stdin.as_mut().unwrap_or_else(|| panic!("no stdin"));
        stdin
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
            .unwrap_or_else(|e| panic!("{e}"));
        stdin.flush().unwrap_or_else(|e| panic!("{e}"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        curl(port, "/healthz", &ca, &["--max-time".into(), "8".into()]).0,
        "200",
        "a new client is served"
    );
    for mut c in slow {
        send_and_close(&mut c, b"\r\n");
        let out = read_all(&mut c);
        assert!(
            out.starts_with("HTTP/1.1 200 OK"),
            "a stalled head completes: {out:?}"
        );
    }
    drop(silent);
    for mut c in idle {
        let _ = c.kill();
        let _ = c.wait();
    }
    // Handshakes are capped: past their share of the slots, the longest-waiting one is closed
    // to make room (counted), and a new client is still served.
    let cap = tinylet::server::MAX_HANDSHAKES;
    let flood: Vec<std::net::TcpStream> = (0..cap + 4)
        .map(|_| {
            std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let closed = flood
        .iter()
        .filter(|t| {
            let mut s: &std::net::TcpStream = t;
            let _ = s.set_nonblocking(true);
            matches!(s.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(closed >= 4, "{closed} of {} closed to make room", cap + 4);
    let (code, metrics) = curl(port, "/metrics", &ca, &[]);
    assert_eq!(code, "200", "a new client is served during the flood");
    drop(flood);
    let evicted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tinylet_evicted_connections_total{phase=\"handshake\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(evicted >= 4, "evicted handshakes counted: {evicted}");
    assert_eq!(agent.stop().0, Some(0));
}

/// The family names, as the Prometheus project's own parser reads the exposition.
fn parse_with_prometheus_client(body: &str) -> Vec<String> {
    common::prometheus_families(body)
        .iter()
        .filter_map(|l| l.split(' ').next().map(str::to_string))
        .collect()
}

/// The Prometheus text exposition format, checked line by line: every sample belongs to a family
/// announced by HELP and TYPE, names and label sets are well-formed, values are numbers.
fn check_prometheus_text(body: &str) {
    let mut typed = std::collections::HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split_whitespace();
            let name = p.next().unwrap_or("");
            let kind = p.next().unwrap_or("");
            assert!(
                matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ),
                "{line}"
            );
            typed.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(value.parse::<f64>().is_ok(), "value of {line}");
        let name = series.split('{').next().unwrap_or("");
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "name in {line}"
        );
        // A histogram's (or summary's) samples are its name with _bucket, _sum or _count.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|b| {
                typed
                    .get(*b)
                    .is_some_and(|k| k == "histogram" || k == "summary")
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "{name} has no TYPE line");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(
                labels.starts_with('{') && labels.ends_with('}'),
                "labels in {line}"
            );
        }
    }
}
