//! The kubelet API on port 10250: TLS (serving certificate hot-swapped, client certificates asked
//! for but not required), an async connection layer with a bounded pool of handler threads over
//! the sans-IO HTTP core, and a router whose every route is reached only through authentication
//! and authorization.

pub mod auth;
mod conn;
pub mod http;
pub mod metrics;

pub use conn::{MAX_CONNS, WORKERS, serve};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::serving::ServingCerts;
use auth::{Auth, Decision, User};
use http::{Limits, Parsed, RequestHead};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("client CA file {path}: {message}")]
    ClientCa { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// What a handler answers.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
    /// The connection is to be spliced to this runtime streaming URL (exec, attach,
    /// port-forward), the request's upgrade passed on, as the kubelet proxies them.
    pub upgrade: Option<String>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
            headers: Vec::new(),
            upgrade: None,
        }
    }
    pub fn json(v: &serde_json::Value) -> Response {
        Response {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_default(),
            headers: Vec::new(),
            upgrade: None,
        }
    }
}

/// One request, as a handler sees it (already authenticated and authorized).
pub struct Request<'a> {
    pub head: &'a RequestHead,
    pub body: &'a [u8],
    pub user: &'a User,
}

type Handler = fn(&State, &Request) -> Response;

/// A route: a path (exact, or a prefix when it ends with `/`), its methods, whether it is a
/// debugging handler (405 when `enableDebuggingHandlers: false`), and its handler. Routes are
/// only ever called from [`dispatch`], after authentication and authorization.
pub struct Route {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub debug: bool,
    /// The handler may block (streams, runtime calls): it always runs on a handler thread.
    /// Others run on the I/O thread when authn/authz need no API call.
    pub blocking: bool,
    handler: Handler,
}

impl Route {
    const fn new(path: &'static str, methods: &'static [&'static str], handler: Handler) -> Route {
        Route {
            path,
            methods,
            debug: false,
            blocking: false,
            handler,
        }
    }

    const fn on_worker(self) -> Route {
        Route {
            blocking: true,
            ..self
        }
    }

    /// A debugging handler: 405 `Debug endpoints are disabled.` unless enableDebuggingHandlers.
    const fn debug(
        path: &'static str,
        methods: &'static [&'static str],
        handler: Handler,
    ) -> Route {
        Route {
            path,
            methods,
            debug: true,
            blocking: false,
            handler,
        }
    }
}

fn healthz(_: &State, _: &Request) -> Response {
    Response::text(200, "ok")
}

fn pod_list(items: Vec<serde_json::Value>) -> Response {
    Response::json(
        &serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
    )
}

fn pods(s: &State, _: &Request) -> Response {
    pod_list(s.pods.read().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Pods with a running container, as the runtime shows them.
fn running_pods(s: &State, _: &Request) -> Response {
    let running = |p: &&serde_json::Value| {
        p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["state"]["running"].is_object()))
    };
    let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
    pod_list(list.iter().filter(running).cloned().collect())
}

fn query<'a>(q: &'a str, key: &str) -> Option<&'a str> {
    q.split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The runtime id of container `container` of pod `ns/pod`, or the 404 to answer.
fn container_id(s: &State, ns: &str, pod: &str, container: &str) -> Result<String, Response> {
    let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
    let p = list
        .iter()
        .find(|p| p["metadata"]["namespace"] == ns && p["metadata"]["name"] == pod)
        .ok_or_else(|| Response::text(404, format!("pod {pod:?} does not exist\n")))?;
    p["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            p["status"]["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .find(|c| c["name"] == container && c["state"]["running"].is_object())
        .and_then(|c| c["containerID"].as_str())
        .and_then(|id| id.split_once("://").map(|(_, id)| id.to_string()))
        .ok_or_else(|| {
            Response::text(
                404,
                format!("container {container:?} not found in pod {pod:?}\n"),
            )
        })
}

/// The 101 that hands the connection over to the runtime's streaming `url`.
fn upgrade_to(url: String) -> Response {
    Response {
        status: 101,
        content_type: "",
        body: Vec::new(),
        headers: Vec::new(),
        upgrade: Some(url),
    }
}

/// The `<ns>/<pod>[/<more>]` of a streaming route's path, after an upgrade check; or the 400.
fn stream_target<'a>(r: &'a Request, route: &str, n: usize) -> Result<Vec<&'a str>, Response> {
    let parts: Vec<&str> = r.head.path.trim_start_matches(route).split('/').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        let shape = if n == 3 {
            "<namespace>/<pod>/<container>"
        } else {
            "<namespace>/<pod>"
        };
        return Err(Response::text(400, format!("path must be {route}{shape}")));
    }
    if r.head.header("upgrade").is_none() {
        return Err(Response::text(400, "Upgrade request required"));
    }
    Ok(parts)
}

fn stream_flags(q: &str) -> (bool, bool, bool, bool) {
    let flag = |k: &str| matches!(query(q, k), Some("1" | "true"));
    (
        flag("input") || flag("stdin"),
        flag("output") || flag("stdout"),
        flag("error") || flag("stderr"),
        flag("tty"),
    )
}

/// `/exec/<ns>/<pod>/<container>?command=...&stdin=1&stdout=1&stderr=1&tty=1`: a CRI Exec,
/// whose streaming URL the connection is then spliced to (the upgrade passes through).
fn exec(s: &State, r: &Request) -> Response {
    let parts = match stream_target(r, "/exec/", 3) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let id = match container_id(s, parts[0], parts[1], parts[2]) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let q = r.head.query.as_str();
    let cmd: Vec<String> = q
        .split('&')
        .filter_map(|kv| kv.strip_prefix("command="))
        .map(|c| crate::cri::grpc::percent_decode(c.replace('+', " ").as_bytes()))
        .collect();
    if cmd.is_empty() {
        return Response::text(400, "you must specify at least 1 command");
    }
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    let (stdin, stdout, stderr, tty) = stream_flags(q);
    match rt.exec(&crate::cri::api::ExecRequest {
        container_id: id,
        cmd,
        tty,
        stdin,
        stdout,
        stderr,
    }) {
        Ok(resp) => upgrade_to(resp.url),
        Err(e) => Response::text(500, format!("failed to exec in container: {e}")),
    }
}

/// `/attach/<ns>/<pod>/<container>?stdin=1&stdout=1&stderr=1&tty=1`: a CRI Attach to the
/// container's own streams, spliced like exec.
fn attach(s: &State, r: &Request) -> Response {
    let parts = match stream_target(r, "/attach/", 3) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let id = match container_id(s, parts[0], parts[1], parts[2]) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    let (stdin, stdout, stderr, tty) = stream_flags(&r.head.query);
    match rt.attach(&crate::cri::api::AttachRequest {
        container_id: id,
        stdin,
        tty,
        stdout,
        stderr,
    }) {
        Ok(resp) => upgrade_to(resp.url),
        Err(e) => Response::text(500, format!("failed to attach to container: {e}")),
    }
}

/// `/portForward/<ns>/<pod>[/<uid>]`: a CRI PortForward to the pod's sandbox (the ports come in
/// the stream's headers, or as `port=` for websockets), spliced like exec.
fn port_forward(s: &State, r: &Request) -> Response {
    let n = r
        .head
        .path
        .trim_start_matches("/portForward/")
        .split('/')
        .count();
    let parts = match stream_target(r, "/portForward/", n.clamp(2, 3)) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let uid = {
        let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|p| p["metadata"]["namespace"] == parts[0] && p["metadata"]["name"] == parts[1])
            .and_then(|p| p["metadata"]["uid"].as_str().map(String::from))
    };
    let Some(uid) = uid.filter(|u| parts.get(2).is_none_or(|want| want == u)) else {
        return Response::text(404, format!("pod {:?} does not exist\n", parts[1]));
    };
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    let sandbox = rt
        .list_pod_sandbox(&crate::cri::api::ListPodSandboxRequest {
            filter: Some(crate::cri::api::PodSandboxFilter {
                label_selector: [("io.kubernetes.pod.uid".to_string(), uid)].into(),
                state: Some(crate::cri::api::PodSandboxStateValue {
                    state: crate::cri::api::PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            }),
        })
        .ok()
        .and_then(|l| l.items.into_iter().next());
    let Some(sandbox) = sandbox else {
        return Response::text(404, format!("pod {:?} has no running sandbox\n", parts[1]));
    };
    let port = r
        .head
        .query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("port="))
        .filter_map(|p| p.parse::<i32>().ok())
        .collect();
    match rt.port_forward(&crate::cri::api::PortForwardRequest {
        pod_sandbox_id: sandbox.id,
        port,
    }) {
        Ok(resp) => upgrade_to(resp.url),
        Err(e) => Response::text(500, format!("failed to forward ports: {e}")),
    }
}

/// `/containerLogs/<ns>/<pod>/<container>`: the container's CRI log file as `kubectl logs`
/// shows it (`previous`, `timestamps`, `tailLines`, `limitBytes`; `follow` answers what is
/// there now).
fn container_logs(s: &State, r: &Request) -> Response {
    let parts: Vec<&str> = r
        .head
        .path
        .trim_start_matches("/containerLogs/")
        .split('/')
        .collect();
    let [ns, pod, container] = parts.as_slice() else {
        return Response::text(
            400,
            "path must be /containerLogs/<namespace>/<pod>/<container>",
        );
    };
    let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
    let Some(p) = list
        .iter()
        .find(|p| p["metadata"]["namespace"] == *ns && p["metadata"]["name"] == *pod)
    else {
        return Response::text(404, format!("pod {pod:?} does not exist\n"));
    };
    let Some(status) = p["status"]["containerStatuses"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == *container))
    else {
        return Response::text(
            404,
            format!("container {container:?} not found in pod {pod:?}\n"),
        );
    };
    let q = r.head.query.as_str();
    let restarts = status["restartCount"].as_u64().unwrap_or(0);
    let attempt = if query(q, "previous") == Some("true") {
        match restarts.checked_sub(1) {
            Some(a) => a,
            None => {
                return Response::text(
                    400,
                    format!("previous terminated container {container:?} in pod {pod:?} not found"),
                );
            }
        }
    } else {
        restarts
    };
    let uid = p["metadata"]["uid"].as_str().unwrap_or("");
    let path = s
        .pod_logs_dir
        .join(format!("{ns}_{pod}_{uid}"))
        .join(container)
        .join(format!("{attempt}.log"));
    let content = match std::fs::read(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Response::text(500, format!("reading {}: {e}", path.display()));
        }
    };
    let o = crate::logs::Options {
        timestamps: query(q, "timestamps") == Some("true"),
        tail_lines: query(q, "tailLines").and_then(|v| v.parse().ok()),
        limit_bytes: query(q, "limitBytes").and_then(|v| v.parse().ok()),
        stream: None,
    };
    Response {
        status: 200,
        content_type: "text/plain",
        body: crate::logs::render(&content, &o),
        headers: Vec::new(),
        upgrade: None,
    }
}

fn configz(s: &State, _: &Request) -> Response {
    Response::json(&serde_json::json!({"kubeletconfig": s.config_json}))
}

fn metrics_route(s: &State, _: &Request) -> Response {
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        body: s.metrics.render(s).into_bytes(),
        headers: Vec::new(),
        upgrade: None,
    }
}

fn not_yet(_: &State, _: &Request) -> Response {
    Response::text(404, "404 page not found\n")
}

/// The route table (pkg/kubelet/server/server.go). Routes of later issues answer 404 after
/// authentication and authorization until they are implemented.
pub static ROUTES: &[Route] = &[
    Route::new("/healthz", &["GET", "HEAD"], healthz),
    Route::new("/healthz/ping", &["GET", "HEAD"], healthz),
    Route::new("/healthz/log", &["GET", "HEAD"], healthz),
    Route::new("/healthz/syncloop", &["GET", "HEAD"], healthz),
    Route::new("/pods", &["GET"], pods),
    Route::debug("/runningpods/", &["GET"], running_pods),
    Route::new("/metrics", &["GET"], metrics_route),
    Route::new("/configz", &["GET"], configz),
    Route::new("/metrics/cadvisor", &["GET"], not_yet),
    Route::new("/metrics/resource", &["GET"], not_yet),
    Route::new("/metrics/probes", &["GET"], not_yet),
    Route::new("/stats/", &["GET", "POST"], not_yet).on_worker(),
    Route::debug("/containerLogs/", &["GET"], container_logs).on_worker(),
    Route::debug("/exec/", &["GET", "POST"], exec).on_worker(),
    Route::debug("/attach/", &["GET", "POST"], attach).on_worker(),
    Route::debug("/portForward/", &["GET", "POST"], port_forward).on_worker(),
    Route::debug("/run/", &["POST"], not_yet).on_worker(),
    Route::debug("/logs/", &["GET"], not_yet).on_worker(),
];

fn find_route(path: &str) -> Option<&'static Route> {
    // Exact matches win over prefixes; `/logs` is served like `/logs/`.
    ROUTES.iter().find(|r| r.path == path).or_else(|| {
        ROUTES
            .iter()
            .filter(|r| r.path.ends_with('/'))
            .find(|r| path.starts_with(r.path) || path == r.path.trim_end_matches('/'))
    })
}

/// Everything the server needs.
pub struct State {
    pub auth: Auth,
    pub config_json: serde_json::Value,
    pub debugging_handlers: bool,
    pub metrics: metrics::Metrics,
    /// The pods the agent runs (the pod owner writes it).
    pub pods: crate::pods::Snapshot,
    pub pod_logs_dir: std::path::PathBuf,
    /// The container runtime, for exec.
    pub runtime: Option<std::sync::Arc<crate::cri::Runtime>>,
}

/// Authentication, authorization, then the route: the only way into a handler. May call the
/// API server (TokenReview, SubjectAccessReview), so it runs on a handler thread.
pub fn dispatch(
    state: &State,
    cert_user: Option<User>,
    head: &RequestHead,
    body: &[u8],
) -> Response {
    let decision = state.auth.decide(
        cert_user,
        head.header("authorization"),
        &head.method,
        &head.path,
    );
    respond(state, decision, head, body)
}

/// [`dispatch`] for a request that can be answered without blocking: a non-blocking route (or
/// none) and an authn/authz decision that needs no API call. `None`: use [`dispatch`].
pub fn dispatch_inline(
    state: &State,
    cert_user: Option<User>,
    head: &RequestHead,
    body: &[u8],
) -> Option<Response> {
    if find_route(&head.path).is_some_and(|r| r.blocking) {
        return None;
    }
    let decision = state.auth.decide_cached(
        cert_user,
        head.header("authorization"),
        &head.method,
        &head.path,
    )?;
    Some(respond(state, decision, head, body))
}

fn respond(state: &State, decision: Decision, head: &RequestHead, body: &[u8]) -> Response {
    let user = match decision {
        Decision::Allow(u) => u,
        Decision::Unauthenticated => return Response::text(401, "Unauthorized"),
        Decision::Forbidden(d) => return Response::text(403, format!("Forbidden ({d})")),
        Decision::Error(d) => return Response::text(500, format!("Authorization error ({d})")),
    };
    let Some(route) = find_route(&head.path) else {
        return Response::text(404, "404 page not found\n");
    };
    if route.debug && !state.debugging_handlers {
        return Response::text(405, "Debug endpoints are disabled.");
    }
    if !route.methods.contains(&head.method.as_str()) {
        let mut r = Response::text(405, "Method Not Allowed");
        r.headers.push(("Allow", route.methods.join(", ")));
        return r;
    }
    (route.handler)(
        state,
        &Request {
            head,
            body,
            user: &user,
        },
    )
}

/// Picks the current serving certificate for each handshake; none means the handshake fails.
#[derive(Debug)]
struct CertResolver {
    certs: Arc<ServingCerts>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::server::ResolvesServerCert for CertResolver {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let cert = match self.certs.current(SystemTime::now()) {
            Ok(Some(c)) => c,
            Ok(None) => {
                crate::vinfo!(2, "no serving certificate available for the kubelet");
                return None;
            }
            Err(e) => {
                crate::error!("loading the serving certificate: {e}");
                return None;
            }
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert.cert_pem)
            .filter_map(Result::ok)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(&cert.key_pem).ok()?;
        rustls::sign::CertifiedKey::from_der(chain, key, &self.provider)
            .ok()
            .map(Arc::new)
    }
}

impl std::fmt::Debug for ServingCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServingCerts")
    }
}

/// The rustls cipher suites for `tlsCipherSuites` (Go's names). TLS 1.3 suites are always on,
/// as in Go, where they are not configurable; TLS 1.2 suites rustls lacks (CBC, RSA key
/// exchange, 3DES, RC4) are dropped with a warning, and a list with none left is an error.
pub fn cipher_suites(names: &[String]) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    let rustls_name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
    let mut out: Vec<rustls::SupportedCipherSuite> = all
        .iter()
        .filter(|s| rustls_name(s).starts_with("TLS13_"))
        .copied()
        .collect();
    let mut unsupported = Vec::new();
    let mut tls12 = 0;
    for n in names {
        if let Some(rest) = n
            .strip_prefix("TLS_")
            .filter(|r| r.starts_with("AES_") || r.starts_with("CHACHA20_"))
        {
            // A TLS 1.3 suite by Go's name: already on.
            let _ = rest;
            continue;
        }
        let want = if n.ends_with("CHACHA20_POLY1305") {
            format!("{n}_SHA256")
        } else {
            n.clone()
        };
        match all.iter().find(|s| rustls_name(s) == want) {
            Some(s) => {
                if !out.iter().any(|o| o.suite() == s.suite()) {
                    out.push(*s);
                }
                tls12 += 1;
            }
            None => unsupported.push(n.clone()),
        }
    }
    if !unsupported.is_empty() {
        crate::warn!(
            "tlsCipherSuites: not supported by tinylet's TLS library (rustls), ignored: {}",
            unsupported.join(", ")
        );
    }
    if tls12 == 0
        && names
            .iter()
            .any(|n| !n.starts_with("TLS_AES_") && !n.starts_with("TLS_CHACHA20_"))
    {
        return Err(format!(
            "none of tlsCipherSuites is supported for TLS 1.2 (supported: {})",
            all.iter()
                .map(rustls_name)
                .filter(|n| !n.starts_with("TLS13_"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(out)
}

/// The TLS configuration: `tlsMinVersion` (rustls speaks TLS 1.2 and 1.3 only, so VersionTLS10
/// and VersionTLS11 mean 1.2), `tlsCipherSuites`, and client certificates from `clientCAFile`
/// asked for but optional.
pub fn tls_config(
    certs: Arc<ServingCerts>,
    client_ca_file: &str,
    min_version: Option<crate::config::kubelet::TlsVersion>,
    suites: &[String],
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    use crate::config::kubelet::TlsVersion;
    let tls_err = |m: String| ServerError::Tls(m);
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = cipher_suites(suites).map_err(tls_err)?;
    let provider = Arc::new(provider);
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        Some(TlsVersion::VersionTLS13) => &[&rustls::version::TLS13],
        Some(v @ (TlsVersion::VersionTLS10 | TlsVersion::VersionTLS11)) => {
            crate::warn!(
                "tlsMinVersion {v:?}: tinylet speaks TLS 1.2 and 1.3 only; the minimum is TLS 1.2"
            );
            &[&rustls::version::TLS12, &rustls::version::TLS13]
        }
        _ => &[&rustls::version::TLS12, &rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| tls_err(e.to_string()))?;
    let builder = if client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let ca_err = |m: String| ServerError::ClientCa {
            path: client_ca_file.into(),
            message: m,
        };
        let pem = std::fs::read(client_ca_file).map_err(|e| ca_err(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(c.map_err(|e| ca_err(e.to_string()))?)
                .map_err(|e| ca_err(e.to_string()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| ca_err(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    Ok(Arc::new(builder.with_cert_resolver(Arc::new(
        CertResolver { certs, provider },
    ))))
}

fn cert_user(conn: &rustls::ServerConnection) -> Option<User> {
    let der = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let name = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(User { name, groups })
}

/// `/healthz` on plain HTTP (healthzBindAddress:healthzPort), answering `ok`.
pub fn serve_healthz(listener: TcpListener) {
    for mut stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap_or(0);
        let (status, body) = match http::parse_head(&buf[..n], &Limits::default()) {
            Ok(Parsed::Complete(h)) if h.path == "/healthz" => (200, "ok"),
            Ok(Parsed::Complete(_)) => (404, "404 page not found\n"),
            _ => (400, "bad request"),
        };
        let _ = stream.write_all(&http::response_head(
            status,
            &[("Content-Type", "text/plain; charset=utf-8")],
            Some(body.len()),
            false,
        ));
        let _ = stream.write_all(body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[rustls::SupportedCipherSuite]) -> Vec<String> {
        v.iter().map(|s| format!("{:?}", s.suite())).collect()
    }

    #[test]
    fn go_cipher_names_map_to_rustls() {
        let got = cipher_suites(&[
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305".into(),
            "TLS_RSA_WITH_AES_128_CBC_SHA".into(),
            "TLS_AES_128_GCM_SHA256".into(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let n = names(&got);
        assert!(
            n.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()),
            "{n:?}"
        );
        assert!(
            n.contains(&"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256".to_string()),
            "{n:?}"
        );
        assert!(!n.iter().any(|x| x.contains("CBC")), "{n:?}");
        assert!(
            n.iter().filter(|x| x.starts_with("TLS13_")).count() == 3,
            "TLS 1.3 suites stay on: {n:?}"
        );
        assert!(cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).is_err());
        assert_eq!(
            cipher_suites(&[]).map(|v| v.len()).ok(),
            Some(rustls::crypto::ring::ALL_CIPHER_SUITES.len())
        );
    }
}
