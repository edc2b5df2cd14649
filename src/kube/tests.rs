//! Unit tests of the API client: the client-side rate limiter, retries of idempotent calls only, clients that follow their credential files.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn bucket_allows_burst_then_paces() {
    let t0 = Instant::now();
    let mut b = Bucket {
        qps: 10.0,
        burst: 3.0,
        tokens: 3.0,
        last: t0,
    };
    for _ in 0..3 {
        assert_eq!(b.take(t0), Duration::ZERO);
    }
    let wait = b.take(t0);
    assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
    // A second later the bucket has refilled to its burst.
    let mut b = Bucket {
        qps: 10.0,
        burst: 3.0,
        tokens: 0.0,
        last: t0,
    };
    assert_eq!(b.take(t0 + Duration::from_secs(1)), Duration::ZERO);
    assert!((b.tokens - 2.0).abs() < 1e-9);
}

#[test]
fn try_take_refuses_without_waiting_or_borrowing() {
    let mut b = Bucket::new(1.0, 2.0);
    let t0 = b.last;
    assert!(b.try_take(t0) && b.try_take(t0), "the burst");
    assert!(!b.try_take(t0), "empty: refused");
    assert!(
        !b.try_take(t0 + Duration::from_millis(500)),
        "half a token is not one"
    );
    assert!(
        b.try_take(t0 + Duration::from_millis(1000)),
        "refilled at qps"
    );
}

/// A plain-HTTP server that answers 503 `failures` times, then 200 `{}`; counts requests.
fn flaky(failures: usize) -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let n = count.fetch_add(1, Ordering::SeqCst);
            let (code, body) = if n < failures {
                (
                    "503 Service Unavailable",
                    r#"{"kind":"Status","status":"Failure","message":"etcd is sad","reason":"ServiceUnavailable","code":503}"#,
                )
            } else {
                ("200 OK", "{}")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://{addr}"), seen)
}

fn client(server: &str) -> Client {
    let api = ApiServer {
        file: PathBuf::from("/test.kubeconfig"),
        server: server.into(),
        ca: None,
        insecure_skip_tls_verify: false,
        tls_server_name: None,
        credentials: Credentials::None,
    };
    Client::new(&api, 1000, 1000).unwrap_or_else(|e| panic!("{e}"))
}

/// A rewritten kubeconfig or token file (a rotation, a new bootstrap) gives a new client at
/// the next call; nothing changed, the same one.
#[test]
fn lazy_clients_follow_their_files() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kc = d.path().join("kubeconfig");
    let token = d.path().join("token");
    std::fs::write(&token, "t1").unwrap_or_else(|e| panic!("{e}"));
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    tokenFile: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        token.display()
    );
    std::fs::write(&kc, &yaml).unwrap_or_else(|e| panic!("{e}"));
    let lazy = Lazy::new(Some(kc.clone()), 5, 10);
    let a = lazy.get().unwrap_or_else(|e| panic!("{e}"));
    let b = lazy.get().unwrap_or_else(|e| panic!("{e}"));
    assert!(Arc::ptr_eq(&a, &b), "unchanged files: the same client");
    // A new file in place, as an atomic rename writes it.
    let tmp = d.path().join("token.new");
    std::fs::write(&tmp, "t2").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, &token).unwrap_or_else(|e| panic!("{e}"));
    let c = lazy.get().unwrap_or_else(|e| panic!("{e}"));
    assert!(!Arc::ptr_eq(&a, &c), "a new token file: a new client");
}

#[test]
fn idempotent_calls_are_retried_and_creates_are_not() {
    let (url, seen) = flaky(2);
    let got: serde_json::Value = client(&url)
        .get("/api/v1/nodes/n1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got, serde_json::json!({}));
    assert_eq!(seen.load(Ordering::SeqCst), 3, "two 503s, then the answer");

    let (url, seen) = flaky(2);
    let err = client(&url)
        .create::<_, serde_json::Value>("/api/v1/namespaces/default/events", &serde_json::json!({}))
        .err();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "a POST that reached the server is not repeated"
    );
    let err = err.unwrap_or_else(|| panic!("the 503 must surface"));
    assert_eq!(err.code(), Some(503));
    assert_eq!(err.to_string(), "etcd is sad");
    assert!(err.is_transient());
}

/// A client certificate rustls will not take (its key is another's, or it is not a
/// certificate webpki parses) is an error naming the kubeconfig when the client is made, not
/// a panic inside the HTTP library at the first connection.
#[test]
fn an_unusable_client_certificate_is_an_error() {
    use crate::config::kubeconfig::Source;
    let make = |cn: &str| {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut p =
            rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        (cert.pem(), key.serialize_pem())
    };
    let (cert_a, key_a) = make("a");
    let (_, key_b) = make("b");
    let api = |cert: &str, key: &str| ApiServer {
        file: PathBuf::from("/etc/kubernetes/kubelet.kubeconfig"),
        server: "https://127.0.0.1:1".into(),
        ca: None,
        insecure_skip_tls_verify: false,
        tls_server_name: None,
        credentials: Credentials::ClientCert {
            cert: Source::Inline(cert.as_bytes().to_vec()),
            key: Source::Inline(key.as_bytes().to_vec()),
        },
    };
    assert!(Client::new(&api(&cert_a, &key_a), 1, 1).is_ok());
    let err = Client::new(&api(&cert_a, &key_b), 1, 1)
        .err()
        .unwrap_or_else(|| panic!("a key of another certificate"));
    assert!(
        err.to_string().starts_with(
            "client-certificate of kubeconfig /etc/kubernetes/kubelet.kubeconfig: not usable as a client identity"
        ),
        "{err}"
    );
    let garbage = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";
    assert!(Client::new(&api(garbage, &key_a), 1, 1).is_err());
}
