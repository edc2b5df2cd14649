//! kube-sim's kubelet proxy against a fake kubelet: `kubectl logs` and `nodes/proxy` reach it
//! over TLS as kubernetes-master, and an upgraded (exec-style) connection is spliced through.
//! Also the ServiceAccount admission plugin's kube-api-access volume.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{Sim, kubectl, openssl, text};

/// A kubelet serving cert for 127.0.0.1 signed by kube-sim's CA (as a kubelet-serving CSR would be).
fn kubelet_cert(dir: &Path) -> (String, String) {
    let (key, csr) = common::key_and_csr(dir, "kubelet", "/O=system:nodes/CN=system:node:n1", None);
    let pkcs8 = dir.join("kubelet-pkcs8.key");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &key.display().to_string(),
        "-out",
        &pkcs8.display().to_string(),
    ]);
    let cert = common::sign_with_ca(
        dir,
        &csr,
        "kubelet",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    (
        std::fs::read_to_string(cert).unwrap_or_default(),
        std::fs::read_to_string(pkcs8).unwrap_or_default(),
    )
}

/// A fake kubelet: requires a client cert from the cluster CA, answers /containerLogs and
/// /healthz, and echoes bytes on an upgraded /exec connection. Each answer names the client CN.
async fn fake_kubelet(ca_pem: String, cert: String, key: String) -> SocketAddr {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap_or_else(|e| panic!("{e}"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let cn = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| {
                        x509_parser::parse_x509_certificate(c.as_ref())
                            .ok()
                            .and_then(|(_, x)| {
                                x.subject()
                                    .iter_common_name()
                                    .next()
                                    .and_then(|n| n.as_str().ok())
                                    .map(String::from)
                            })
                    })
                    .unwrap_or_default();
                let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let cn = cn.clone();
                    async move {
                        let path = req.uri().to_string();
                        if path.starts_with("/exec/") {
                            let up = hyper::upgrade::on(&mut req);
                            tokio::spawn(async move {
                                if let Ok(io) = up.await {
                                    let mut io = TokioIo::new(io);
                                    let mut buf = [0u8; 64];
                                    if let Ok(n) = io.read(&mut buf).await {
                                        let _ = io.write_all(&buf[..n]).await;
                                    }
                                }
                            });
                            let mut r = Response::new(http_body_util::Full::new(Bytes::new()));
                            *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
                            r.headers_mut().insert(
                                "connection",
                                hyper::header::HeaderValue::from_static("Upgrade"),
                            );
                            r.headers_mut().insert(
                                "upgrade",
                                hyper::header::HeaderValue::from_static("test-echo"),
                            );
                            return Ok::<_, std::convert::Infallible>(r);
                        }
                        Ok(Response::new(http_body_util::Full::new(Bytes::from(
                            format!("kubelet saw {path} from {cn}\n"),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_node_proxy_and_upgrades_reach_the_kubelet() {
    let sim = Sim::start(&[]);
    let dir = sim.dir.path().to_path_buf();
    let (cert, key) = kubelet_cert(&dir);
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap_or_default();
    let kaddr = fake_kubelet(ca.clone(), cert, key).await;

    let node = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}], "daemonEndpoints": {"kubeletEndpoint": {"Port": kaddr.port()}}}});
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"nodeName": "n1", "containers": [{"name": "c1", "image": "busybox"}]}});
    // kubectl blocks; run it off the async workers.
    let run = |args: Vec<String>, stdin: Option<String>| {
        kubectl(
            Some(&sim.admin()),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            stdin.as_deref(),
        )
    };
    let o = tokio::task::block_in_place(|| {
        run(
            vec!["create".into(), "-f".into(), "-".into()],
            Some(node.to_string()),
        )
    });
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = tokio::task::block_in_place(|| {
        run(
            vec!["create".into(), "-f".into(), "-".into()],
            Some(pod.to_string()),
        )
    });
    assert!(o.status.success(), "{}", text(&o.stderr));

    // kubectl logs: /containerLogs/<ns>/<pod>/<container> with the query passed on.
    let o = tokio::task::block_in_place(|| {
        run(vec!["logs".into(), "p1".into(), "--tail=5".into()], None)
    });
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("kubelet saw /containerLogs/default/p1/c1?")
            && out.contains("tailLines=5")
            && out.trim_end().ends_with("from kubernetes-master"),
        "{out}"
    );

    // nodes/proxy: as the real API server, never to a loopback address (this kubelet's).
    let o = tokio::task::block_in_place(|| {
        run(
            vec![
                "get".into(),
                "--raw".into(),
                "/api/v1/nodes/n1/proxy/metrics/cadvisor".into(),
            ],
            None,
        )
    });
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("address not allowed"),
        "{}",
        text(&o.stderr)
    );

    // An upgraded connection (as exec/attach/portforward make) is spliced through.
    let admin = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots
            .add(c.unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(admin("admin.pem").as_bytes())
            .map(|c| c.unwrap_or_else(|e| panic!("{e}")))
            .collect();
    let key = PrivateKeyDer::from_pem_slice(admin("admin-key.pem").as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap_or_else(|e| panic!("{e}"));
    let sim_addr = admin("address").trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&sim_addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(
            ServerName::try_from("127.0.0.1").unwrap_or_else(|e| panic!("{e}")),
            tcp,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = format!(
        "POST /api/v1/namespaces/default/pods/p1/exec?command=cat&stdin=true&container=c1 HTTP/1.1\r\nHost: {sim_addr}\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tls.read(&mut byte).await.unwrap_or(0);
        assert!(
            n == 1,
            "connection closed in the response head: {}",
            text(&head)
        );
        head.push(byte[0]);
    }
    assert!(text(&head).starts_with("HTTP/1.1 101"), "{}", text(&head));
    tls.write_all(b"ping through the splice")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got = vec![0u8; 23];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut got))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text(&got), "ping through the splice");
}

#[test]
fn service_account_admission_injects_kube_api_access() {
    let sim = Sim::start(&[]);
    let o = kubectl(Some(&sim.admin()), &["run", "p1", "--image=busybox"], None);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kubectl(
        Some(&sim.admin()),
        &["get", "pod", "p1", "-o", "json"],
        None,
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    let vol = &v["spec"]["volumes"][0];
    assert!(
        vol["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("kube-api-access-")),
        "{v}"
    );
    let sources = &vol["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let mount = &v["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(
        mount["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount["readOnly"], true);
    assert_eq!(v["spec"]["serviceAccountName"], "default");
    let o = kubectl(
        Some(&sim.admin()),
        &[
            "run",
            "p2",
            "--image=busybox",
            "--overrides={\"spec\":{\"serviceAccountName\":\"ghost\"}}",
        ],
        None,
    );
    assert!(
        text(&o.stderr).contains(
            "error looking up service account default/ghost: serviceaccount \"ghost\" not found"
        ),
        "{}",
        text(&o.stderr)
    );
}
