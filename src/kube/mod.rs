//! The synchronous Kubernetes API client (ureq + rustls): kubeconfig credentials, JSON, typed
//! `Status` errors, client-side rate limiting, retries of idempotent calls, and watch.

pub mod patch;
pub mod types;
pub mod watch;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use crate::config::kubeconfig::{ApiServer, Credentials, Secret, Source};
use types::Status;

/// What went wrong talking to the API server. `Api` keeps the server's message verbatim.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("{}", .status.message)]
    Api {
        method: &'static str,
        url: String,
        status: Status,
    },
    #[error("{method} {url}: {err}")]
    Transport {
        method: &'static str,
        url: String,
        err: ureq::Error,
    },
    #[error("{method} {url}: decoding the response: {err}")]
    Decode {
        method: &'static str,
        url: String,
        err: serde_json::Error,
    },
    #[error("{what} {path}: {err}")]
    Credentials {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{what}: {message}")]
    Tls { what: String, message: String },
    #[error("watch {url}: the resourceVersion is too old (410 Gone); re-list")]
    Gone { url: String },
}

impl KubeError {
    /// The HTTP status of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Api { status, .. } => Some(status.code),
            KubeError::Gone { .. } => Some(410),
            _ => None,
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            KubeError::Api { status, .. } => &status.reason,
            _ => "",
        }
    }
    /// Worth retrying later: the server or the network, not the request, failed.
    pub fn is_transient(&self) -> bool {
        match self {
            KubeError::Transport { .. } => true,
            KubeError::Api { status, .. } => status.code == 429 || status.code >= 500,
            _ => false,
        }
    }
}

/// How a PATCH body is to be read.
#[derive(Debug, Clone, Copy)]
pub enum PatchKind {
    Merge,
    Strategic,
    Json,
}

impl PatchKind {
    fn content_type(self) -> &'static str {
        match self {
            PatchKind::Merge => "application/merge-patch+json",
            PatchKind::Strategic => "application/strategic-merge-patch+json",
            PatchKind::Json => "application/json-patch+json",
        }
    }
}

/// client-go's token bucket: `qps` tokens a second, at most `burst` saved up.
pub(crate) struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(qps: f64, burst: f64) -> Bucket {
        Bucket {
            qps,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// client-go's TryAccept: a token if one is there now, else nothing is taken.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long to wait before the next request may go.
    fn take(&mut self, now: Instant) -> Duration {
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.qps).min(self.burst);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

/// The agent's API client, built from its kubeconfig on first use (the file exists once the
/// bootstrap is done) and built again after [`Lazy::forget`] or when the kubeconfig or a file it
/// names (client certificate, key, CA, token file) changed, so a rotated or re-bootstrapped
/// client certificate is picked up by every loop at its next call.
pub struct Lazy {
    kubeconfig: Option<PathBuf>,
    qps: i32,
    burst: i32,
    slot: Mutex<Option<Built>>,
}

struct Built {
    client: Arc<Client>,
    files: Vec<PathBuf>,
    stamp: Vec<Option<(u64, std::time::SystemTime)>>,
}

/// What says a file changed: its inode (through symlinks) and modification time.
fn stamp(files: &[PathBuf]) -> Vec<Option<(u64, std::time::SystemTime)>> {
    use std::os::unix::fs::MetadataExt;
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            Some((m.ino(), m.modified().ok()?))
        })
        .collect()
}

/// The files a client is made of.
fn files_of(kubeconfig: &std::path::Path, api: &ApiServer) -> Vec<PathBuf> {
    let mut files = vec![kubeconfig.to_path_buf()];
    let mut add = |s: &Source| {
        if let Source::File(p) = s {
            files.push(p.clone());
        }
    };
    if let Some(ca) = &api.ca {
        add(ca);
    }
    match &api.credentials {
        Credentials::ClientCert { cert, key } => {
            add(cert);
            add(key);
        }
        Credentials::TokenFile(p) => files.push(p.clone()),
        Credentials::None | Credentials::Token(_) => {}
    }
    files
}

impl Lazy {
    pub fn new(kubeconfig: Option<PathBuf>, qps: i32, burst: i32) -> Lazy {
        Lazy {
            kubeconfig,
            qps,
            burst,
            slot: Mutex::new(None),
        }
    }

    pub fn get(&self) -> Result<Arc<Client>, String> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = slot.as_ref()
            && stamp(&b.files) == b.stamp
        {
            return Ok(b.client.clone());
        }
        let path = self
            .kubeconfig
            .as_ref()
            .ok_or("no kubeconfig to reach the API server")?;
        let api = crate::config::kubeconfig::Kubeconfig::load(path)
            .and_then(|k| k.resolve(path))
            .map_err(|e| e.to_string())?;
        let files = files_of(path, &api);
        let before = stamp(&files);
        let c = Arc::new(Client::new(&api, self.qps, self.burst).map_err(|e| e.to_string())?);
        *slot = Some(Built {
            client: c.clone(),
            stamp: before,
            files,
        });
        Ok(c)
    }

    pub fn forget(&self) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

pub struct Client {
    server: String,
    auth: Credentials,
    ca: Option<Source>,
    kubeconfig: PathBuf,
    agent: RwLock<ureq::Agent>,
    bucket: Mutex<Bucket>,
    retries: u32,
}

fn read_source(
    s: &Source,
    what: &'static str,
    kubeconfig: &std::path::Path,
) -> Result<Vec<u8>, KubeError> {
    s.read().map_err(|err| KubeError::Credentials {
        what,
        path: match s {
            Source::File(p) => p.clone(),
            Source::Inline(_) => kubeconfig.to_path_buf(),
        },
        err,
    })
}

/// Whether rustls takes `chain` and `key` as a client identity (a parsable v3 certificate whose
/// public key is the key's): ureq would otherwise panic on the first connection.
fn check_client_cert(
    chain: &[Certificate<'static>],
    key: &PrivateKey<'static>,
) -> Result<(), String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::try_from(key.der().to_vec()).map_err(|e| format!("the key: {e}"))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(certs, key)
        .map(|_| ())
        .map_err(|e| format!("not usable as a client identity: {e}"))
}

impl Client {
    /// A client for the server a kubeconfig names. `qps`/`burst` as kubeAPIQPS/kubeAPIBurst
    /// (0 means client-go's defaults, 5 and 10).
    pub fn new(api: &ApiServer, qps: i32, burst: i32) -> Result<Client, KubeError> {
        let qps = if qps > 0 { f64::from(qps) } else { 5.0 };
        let burst = if burst > 0 { f64::from(burst) } else { 10.0 };
        let client = Client {
            server: api.server.clone(),
            auth: api.credentials.clone(),
            ca: api.ca.clone(),
            kubeconfig: api.file.clone(),
            agent: RwLock::new(ureq::Agent::new_with_defaults()),
            bucket: Mutex::new(Bucket {
                qps,
                burst,
                tokens: burst,
                last: Instant::now(),
            }),
            retries: 4,
        };
        client.reload()?;
        Ok(client)
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Re-reads the CA and client certificate and starts a new connection pool, so a rotated
    /// certificate is used from the next request on; pooled connections with the old one are
    /// dropped with the old agent.
    pub fn reload(&self) -> Result<(), KubeError> {
        let mut tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
        if let Some(ca) = &self.ca {
            let pem = read_source(ca, "certificate-authority", &self.kubeconfig)?;
            let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(KubeError::Tls {
                    what: format!("kubeconfig {}", self.kubeconfig.display()),
                    message: "certificate-authority holds no PEM certificate".into(),
                });
            }
            tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
        }
        if let Credentials::ClientCert { cert, key } = &self.auth {
            let cert_pem = read_source(cert, "client-certificate", &self.kubeconfig)?;
            let key_pem = read_source(key, "client-key", &self.kubeconfig)?;
            let chain: Vec<Certificate<'static>> = ureq::tls::parse_pem(&cert_pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            let key = PrivateKey::from_pem(&key_pem).map_err(|e| KubeError::Tls {
                what: format!("client-key of kubeconfig {}", self.kubeconfig.display()),
                message: e.to_string(),
            })?;
            if chain.is_empty() {
                return Err(KubeError::Tls {
                    what: format!(
                        "client-certificate of kubeconfig {}",
                        self.kubeconfig.display()
                    ),
                    message: "no PEM certificate".into(),
                });
            }
            check_client_cert(&chain, &key).map_err(|message| KubeError::Tls {
                what: format!(
                    "client-certificate of kubeconfig {}",
                    self.kubeconfig.display()
                ),
                message,
            })?;
            tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        let config = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("tinylet/", env!("CARGO_PKG_VERSION")))
            .build();
        *self.agent.write().unwrap_or_else(|p| p.into_inner()) = config.into();
        Ok(())
    }

    fn bearer(&self) -> Result<Option<String>, KubeError> {
        Ok(match &self.auth {
            Credentials::Token(t) => Some(format!("Bearer {}", t.expose())),
            Credentials::TokenFile(p) => {
                let t = std::fs::read_to_string(p).map_err(|err| KubeError::Credentials {
                    what: "tokenFile",
                    path: p.clone(),
                    err,
                })?;
                Some(format!(
                    "Bearer {}",
                    Secret::new(t.trim().to_string()).expose()
                ))
            }
            _ => None,
        })
    }

    fn throttle(&self) {
        let wait = self
            .bucket
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// One request; retried with backoff when it is idempotent (or was never sent) and the
    /// failure was the network's or the server's.
    fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>, KubeError> {
        let url = format!("{}{path}", self.server);
        let idempotent = method != "POST" && method != "PATCH";
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(method, &url, body.as_ref()) {
                Err(e)
                    if e.is_transient()
                        && attempt <= self.retries
                        && (idempotent || never_sent(&e)) =>
                {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    fn send_once(
        &self,
        method: &'static str,
        url: &str,
        body: Option<&(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>, KubeError> {
        self.throttle();
        let agent = self.agent.read().unwrap_or_else(|p| p.into_inner()).clone();
        let transport = |err| KubeError::Transport {
            method,
            url: url.to_string(),
            err,
        };
        let bearer = self.bearer()?;
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Accept", "application/json");
        let req = match &bearer {
            Some(b) => req.header("Authorization", b),
            None => req,
        };
        let resp = match body {
            Some((ctype, bytes)) => {
                let r = req
                    .header("Content-Type", *ctype)
                    .body(bytes.clone())
                    .map_err(|e| transport(ureq::Error::Http(e)))?;
                agent.run(r)
            }
            None => {
                let r = req.body(()).map_err(|e| transport(ureq::Error::Http(e)))?;
                agent.run(r)
            }
        }
        .map_err(transport)?;
        let code = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(transport)?;
        if (200..300).contains(&code) {
            return Ok(bytes);
        }
        let status = status_of(code, &bytes);
        Err(KubeError::Api {
            method,
            url: url.to_string(),
            status,
        })
    }

    fn decode<T: DeserializeOwned>(
        method: &'static str,
        url: &str,
        bytes: &[u8],
    ) -> Result<T, KubeError> {
        serde_json::from_slice(bytes).map_err(|err| KubeError::Decode {
            method,
            url: url.to_string(),
            err,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, KubeError> {
        let b = self.send("GET", path, None)?;
        Self::decode("GET", &self.url(path), &b)
    }

    /// A request with a JSON body; the JSON answer decoded.
    fn with_body<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        ctype: &str,
        body: &B,
    ) -> Result<T, KubeError> {
        let url = self.url(path);
        let json = serde_json::to_vec(body).map_err(|err| KubeError::Decode {
            method,
            url: url.clone(),
            err,
        })?;
        let b = self.send(method, path, Some((ctype, json)))?;
        Self::decode(method, &url, &b)
    }

    pub fn create<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, KubeError> {
        self.with_body("POST", path, "application/json", body)
    }

    pub fn update<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, KubeError> {
        self.with_body("PUT", path, "application/json", body)
    }

    pub fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        kind: PatchKind,
        body: &serde_json::Value,
    ) -> Result<T, KubeError> {
        self.with_body("PATCH", path, kind.content_type(), body)
    }

    /// DELETE with DeleteOptions (grace period, preconditions).
    pub fn delete(
        &self,
        path: &str,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value, KubeError> {
        self.with_body("DELETE", path, "application/json", options)
    }

    /// Opens a watch: `path` without query; events after `resource_version`, bookmarks on.
    pub fn watch(
        &self,
        path: &str,
        query: &str,
        resource_version: &str,
        timeout: Duration,
    ) -> Result<Watch, KubeError> {
        let sep = if query.is_empty() { "" } else { "&" };
        let url = format!(
            "{}{path}?{query}{sep}watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}&timeoutSeconds={}",
            self.server,
            timeout.as_secs().max(1)
        );
        self.throttle();
        let agent = self.agent.read().unwrap_or_else(|p| p.into_inner()).clone();
        let transport = |err| KubeError::Transport {
            method: "GET",
            url: url.clone(),
            err,
        };
        let mut req = agent.get(&url).header("Accept", "application/json");
        if let Some(b) = self.bearer()? {
            req = req.header("Authorization", &b);
        }
        let resp = req
            .config()
            .timeout_recv_body(None)
            .timeout_global(None)
            .build()
            .call()
            .map_err(transport)?;
        let code = resp.status().as_u16();
        if code != 200 {
            let bytes = resp.into_body().read_to_vec().map_err(transport)?;
            let status = status_of(code, &bytes);
            return Err(KubeError::Api {
                method: "GET",
                url,
                status,
            });
        }
        Ok(Watch {
            reader: BufReader::new(Box::new(resp.into_body().into_reader())),
            url,
        })
    }
}

/// The `Status` in a failed response, or one made from the code and body when it is not one.
fn status_of(code: u16, body: &[u8]) -> Status {
    serde_json::from_slice::<Status>(body)
        .ok()
        .filter(|s| s.code != 0)
        .unwrap_or_else(|| Status {
            code,
            message: format!(
                "the server responded {code}: {}",
                String::from_utf8_lossy(body).trim()
            ),
            ..Status::default()
        })
}

fn never_sent(e: &KubeError) -> bool {
    matches!(
        e,
        KubeError::Transport {
            err: ureq::Error::ConnectionFailed | ureq::Error::HostNotFound,
            ..
        }
    ) || matches!(e, KubeError::Transport { err: ureq::Error::Io(io), .. } if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// A watch stream: line-delimited JSON events.
pub struct Watch {
    reader: BufReader<Box<dyn std::io::Read + Send>>,
    url: String,
}

impl Iterator for Watch {
    type Item = Result<types::WatchEvent, KubeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => break,
                Err(e) => {
                    return Some(Err(KubeError::Transport {
                        method: "GET",
                        url: self.url.clone(),
                        err: ureq::Error::Io(e),
                    }));
                }
            }
        }
        let ev: types::WatchEvent = match serde_json::from_str(&line) {
            Ok(e) => e,
            Err(err) => {
                return Some(Err(KubeError::Decode {
                    method: "GET",
                    url: self.url.clone(),
                    err,
                }));
            }
        };
        if ev.kind == "ERROR" {
            let status: Status = serde_json::from_value(ev.object.clone()).unwrap_or_default();
            if status.code == 410 {
                return Some(Err(KubeError::Gone {
                    url: self.url.clone(),
                }));
            }
            return Some(Err(KubeError::Api {
                method: "GET",
                url: self.url.clone(),
                status,
            }));
        }
        Some(Ok(ev))
    }
}

#[cfg(test)]
mod tests;
