//! kube-sim: a strict control-plane simulator for tinylet's tests (test-only; never shipped).
//!
//!   kube-sim --dir DIR [--listen 127.0.0.1:PORT] [--signing-duration 8760h] [--approve-serving-csrs]
//!            [--persist]   (objects kept in DIR/store.json: a restart on the same DIR resumes)
//!   kube-sim token create --kubeconfig DIR/admin.kubeconfig [--groups G] [--ttl 24h] [--description D]

mod api;
mod auth;
mod controllers;
mod openapi;
mod patch;
mod pki;
mod pod_rules;
mod proto;
mod proxy;
mod server;
mod store;
mod table;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::*;

use auth::User;

fn usage() -> ! {
    eprintln!(
        "usage:\n  kube-sim --dir DIR [--listen 127.0.0.1:PORT] [--signing-duration 8760h] [--approve-serving-csrs] [--bookmark-interval 60s] [--watch-history 2000] [--backdate 5m] [--max-token-expiration DUR] [--persist]\n  kube-sim token create --kubeconfig FILE [--groups G] [--ttl 24h] [--description D]"
    );
    std::process::exit(2)
}

/// Go-style durations: `24h`, `2m`, `90s`, `1h30m`, `0`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(format!("invalid duration {s:?}")),
        };
    }
    if !num.is_empty() {
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    Ok(Duration::from_secs_f64(total))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("token") {
        token_create(&args[1..])
    } else {
        serve(&args)
    };
    if let Err(e) = result {
        eprintln!("kube-sim: {e}");
        std::process::exit(1);
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix(&format!("{name}=")))
        })
}

/// `kube-sim token create`: what `kubeadm token create` does, through kubectl.
fn token_create(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) != Some("create") {
        usage();
    }
    let kubeconfig = flag(args, "--kubeconfig").unwrap_or_else(|| usage());
    let groups =
        flag(args, "--groups").unwrap_or("system:bootstrappers:kubeadm:default-node-token");
    for g in groups.split(',') {
        if !g.starts_with("system:bootstrappers:") {
            return Err(format!(
                "--groups: {g:?} must start with \"system:bootstrappers:\""
            ));
        }
    }
    let ttl = parse_duration(flag(args, "--ttl").unwrap_or("24h"))?;
    let description = flag(args, "--description").unwrap_or("");
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |n: usize| -> String {
        (0..n)
            .map(|_| ALNUM[rand::random_range(0..ALNUM.len())] as char)
            .collect()
    };
    let (id, secret) = (pick(6), pick(16));
    let mut data = serde_json::json!({
        "token-id": id, "token-secret": secret,
        "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
        "auth-extra-groups": groups,
    });
    if !description.is_empty() {
        data["description"] = serde_json::json!(description);
    }
    if !ttl.is_zero() {
        let exp = chrono::Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64);
        data["expiration"] =
            serde_json::json!(exp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    let secret_obj = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "stringData": data
    });
    let mut child = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            kubeconfig,
            "create",
            "-f",
            "-",
            "-o",
            "name",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("running kubectl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(secret_obj.to_string().as_bytes())
            .map_err(|e| format!("writing to kubectl: {e}"))?;
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for kubectl: {e}"))?;
    if !status.success() {
        return Err("kubectl create of the bootstrap token secret failed".into());
    }
    println!("{id}.{secret}");
    Ok(())
}

fn user_from_cert(der: &CertificateDer<'_>) -> Option<User> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let subj = cert.subject();
    let cn = subj.iter_common_name().next()?.as_str().ok()?.to_string();
    let mut groups: Vec<String> = subj
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    groups.push("system:authenticated".into());
    Some(User {
        name: cn,
        groups,
        uid: String::new(),
    })
}

/// Writes `p` whole or not at all (a reader waiting for `address` never sees it half written).
fn write_file(p: &Path, s: &str) -> Result<(), String> {
    let tmp = p.with_extension("partial");
    std::fs::write(&tmp, s)
        .and_then(|()| std::fs::rename(&tmp, p))
        .map_err(|e| format!("{}: {e}", p.display()))
}

fn kubeconfig(server: &str, ca: &str, cert: &str, key: &str, user: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {user}@kube-sim\n  context:\n    cluster: kube-sim\n    user: {user}\ncurrent-context: {user}@kube-sim\npreferences: {{}}\n",
        b(ca),
        b(cert),
        b(key)
    )
}

fn serve(args: &[String]) -> Result<(), String> {
    let dir = PathBuf::from(flag(args, "--dir").unwrap_or_else(|| usage()));
    let listen = flag(args, "--listen").unwrap_or("127.0.0.1:0").to_string();
    let signing = parse_duration(flag(args, "--signing-duration").unwrap_or("8760h"))?;
    let bookmark = parse_duration(flag(args, "--bookmark-interval").unwrap_or("60s"))?;
    let backdate = parse_duration(flag(args, "--backdate").unwrap_or("5m"))?;
    let max_token_expiration = flag(args, "--max-token-expiration")
        .map(parse_duration)
        .transpose()?;
    let approve_serving = args.iter().any(|a| a == "--approve-serving-csrs");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join("address"));

    let ca = pki::Ca::load_or_create(&dir)?;
    let (admin_c, admin_k) =
        pki::ensure_client_cert(&ca, &dir, "admin", "admin", &["system:masters"])?;
    pki::ensure_client_cert(
        &ca,
        &dir,
        "kube-controller-manager",
        "system:kube-controller-manager",
        &[],
    )?;
    let (kube_c, kube_k) =
        pki::ensure_client_cert(&ca, &dir, "kubernetes", "kubernetes-master", &["k8s"])?;
    let kubelet = proxy::KubeletClient::new(&ca.cert_pem, &kube_c, &kube_k)?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("listen {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server_url = format!("https://{addr}");
        let sans = vec![
            addr.ip().to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes.default.svc".to_string(),
        ];
        let (srv_c, srv_k) = ca.issue(
            "kube-apiserver",
            &[],
            &sans,
            true,
            Duration::from_secs(3650 * 86400),
        )?;
        write_file(&dir.join("apiserver.pem"), &srv_c)?;
        write_file(&dir.join("apiserver-key.pem"), &srv_k)?;
        write_file(
            &dir.join("admin.kubeconfig"),
            &kubeconfig(&server_url, &ca.cert_pem, &admin_c, &admin_k, "admin"),
        )?;

        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca.cert_pem.as_bytes()) {
            roots
                .add(c.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .allow_unauthenticated()
            .build()
            .map_err(|e| e.to_string())?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(srv_c.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let key = PrivateKeyDer::from_pem_slice(srv_k.as_bytes()).map_err(|e| e.to_string())?;
        let tls = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let history: usize = flag(args, "--watch-history")
            .unwrap_or("2000")
            .parse()
            .map_err(|_| "--watch-history: want a number".to_string())?;
        let mut store = store::Store::new(history);
        let loaded = if args.iter().any(|a| a == "--persist") {
            store.persist_to(dir.join("store.json"))?
        } else {
            false
        };
        if !loaded {
            controllers::seed(&mut store);
        }
        let state = Arc::new(server::State {
            kubelet,
            store: Mutex::new(store),
            tokens: Mutex::new(auth::Tokens::default()),
            ca_pem: ca.cert_pem.clone(),
            address: server_url.clone(),
            opts: server::Options {
                signing_duration: signing,
                backdate,
                approve_serving_csrs: approve_serving,
                bookmark_interval: bookmark,
                max_token_expiration,
            },
        });
        tokio::spawn(controllers::run(state.clone(), Arc::new(ca)));
        write_file(&dir.join("address"), &server_url)?;
        eprintln!("kube-sim: serving on {server_url} (dir {})", dir.display());

        let accept = async {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(user_from_cert);
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        let user = user.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                server::handle(state, user, req).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .with_upgrades()
                        .await;
                });
            }
        };
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| e.to_string())?;
        tokio::select! {
            _ = accept => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), String>(())
    })
}
