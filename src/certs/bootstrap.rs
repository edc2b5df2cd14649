//! Getting certificates through the CSR API: the kubelet's certificate templates (client and
//! serving), one request-and-wait step shared by bootstrap and rotation, and the client
//! certificate bootstrap itself (the bootstrap token's CSR, then `--kubeconfig`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;

use super::{
    CertError, CertStore, cert_info, csr_name, load_or_create_key, make_csr, write_atomic,
};
use crate::config::kubeconfig::{ApiServer, Credentials, Kubeconfig};
use crate::kube::types::{CertificateSigningRequest, CsrSpec};
use crate::kube::{Client, KubeError};

pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
const CLIENT_USAGES: [&str; 2] = ["digital signature", "client auth"];
const SERVING_USAGES: [&str; 2] = ["digital signature", "server auth"];
const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("cannot create certificate signing request: {0}")]
    Create(Box<KubeError>),
    #[error("waiting for certificate signing request {name}: {err}")]
    Wait { name: String, err: Box<KubeError> },
    #[error("certificate signing request {name} is denied, reason: {reason}, message: {message}")]
    Denied {
        name: String,
        reason: String,
        message: String,
    },
    #[error("certificate signing request {name} failed, reason: {reason}, message: {message}")]
    Failed {
        name: String,
        reason: String,
        message: String,
    },
    #[error("timed out after {0:?} waiting for certificate signing request {1} to be issued")]
    Timeout(Duration, String),
    #[error("the issued certificate for {name} is unusable: {message}")]
    BadCertificate { name: String, message: String },
    #[error(transparent)]
    Cert(#[from] CertError),
    #[error("connecting with the bootstrap kubeconfig: {0}")]
    Client(Box<KubeError>),
}

/// Where the bootstrap reads and writes.
pub struct Bootstrap<'a> {
    pub node_name: &'a str,
    pub cert_dir: &'a Path,
    pub kubeconfig: &'a Path,
    pub bootstrap: &'a ApiServer,
    pub qps: i32,
    pub burst: i32,
    /// How long to wait for approval before starting over (the kubelet waits up to an hour).
    pub approval_timeout: Duration,
}

/// Whether `kubeconfig` exists and its client certificate (if it uses one) is valid now: then
/// the kubelet skips the bootstrap.
pub fn kubeconfig_usable(kubeconfig: &Path) -> bool {
    let Ok(api) = Kubeconfig::load(kubeconfig).and_then(|k| k.resolve(kubeconfig)) else {
        return false;
    };
    match &api.credentials {
        Credentials::ClientCert { cert, .. } => match cert.read() {
            Ok(pem) => cert_info(&pem, kubeconfig).is_ok_and(|c| c.valid_at(SystemTime::now())),
            Err(_) => false,
        },
        _ => true,
    }
}

/// What a certificate must say: the kubelet's certificate template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// File prefix in the cert dir: `kubelet-client` or `kubelet-server`.
    pub prefix: &'static str,
    pub signer: &'static str,
    pub usages: &'static [&'static str],
    pub common_name: String,
    pub organization: &'static str,
    /// Sorted and deduplicated.
    pub dns_names: Vec<String>,
    /// Sorted and deduplicated.
    pub ips: Vec<std::net::IpAddr>,
}

impl Template {
    pub fn client(node: &str) -> Template {
        Template {
            prefix: "kubelet-client",
            signer: CLIENT_SIGNER,
            usages: &CLIENT_USAGES,
            common_name: format!("system:node:{node}"),
            organization: "system:nodes",
            dns_names: Vec::new(),
            ips: Vec::new(),
        }
    }

    /// The serving certificate: the hostname as a DNS name (unless it is an IP) and the node's
    /// IPs, sorted and deduplicated, as the kubelet's serving-cert template.
    pub fn serving(node: &str, hostname: &str, ips: &[std::net::IpAddr]) -> Template {
        let mut dns_names = Vec::new();
        let mut ips = ips.to_vec();
        match hostname.parse::<std::net::IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) if !hostname.is_empty() => dns_names.push(hostname.to_string()),
            Err(_) => {}
        }
        ips.sort();
        ips.dedup();
        Template {
            prefix: "kubelet-server",
            signer: SERVING_SIGNER,
            usages: &SERVING_USAGES,
            common_name: format!("system:node:{node}"),
            organization: "system:nodes",
            dns_names,
            ips,
        }
    }

    /// Whether an existing certificate still fits (CN, O, SANs): after an IP change it does not.
    pub fn matches(&self, info: &super::CertInfo) -> bool {
        let mut dns = info.dns_names.clone();
        dns.sort();
        dns.dedup();
        let mut ips = info.ips.clone();
        ips.sort();
        ips.dedup();
        info.common_name == self.common_name
            && info.organizations == [self.organization]
            && dns == self.dns_names
            && ips == self.ips
    }
}

/// Sends a CSR for `tmpl` with the key kept at `<cert_dir>/<prefix>.key.tmp` (reused after a
/// restart, so the same CSR object is found again), waits until it is issued, and stores the pair
/// as `<prefix>-<time>.pem` + `<prefix>-current.pem`. The key file is removed once stored.
pub fn obtain(
    client: &Client,
    tmpl: &Template,
    cert_dir: &Path,
    approval_timeout: Duration,
) -> Result<PathBuf, CsrError> {
    let key_path = cert_dir.join(format!("{}.key.tmp", tmpl.prefix));
    let key = load_or_create_key(&key_path)?;
    let request = make_csr(
        &key,
        &tmpl.common_name,
        tmpl.organization,
        &tmpl.dns_names,
        &tmpl.ips,
    )?;
    let name = csr_name(&key, &tmpl.common_name, &[tmpl.organization], tmpl.usages);
    let csr = CertificateSigningRequest::new(
        &name,
        CsrSpec {
            request: base64::engine::general_purpose::STANDARD.encode(&request),
            signer_name: tmpl.signer.into(),
            usages: tmpl.usages.iter().map(|u| u.to_string()).collect(),
            ..CsrSpec::default()
        },
    );
    match client.create::<_, CertificateSigningRequest>(CSR_PATH, &csr) {
        Ok(_) => crate::info!(
            "sent certificate signing request {name} for {} ({})",
            tmpl.common_name,
            tmpl.signer
        ),
        Err(e) if e.code() == Some(409) => {
            crate::info!("certificate signing request {name} exists already; waiting for it")
        }
        Err(e) => return Err(CsrError::Create(Box::new(e))),
    }
    let issued = wait(client, &name, approval_timeout)?;
    let bad = |message: String| CsrError::BadCertificate {
        name: name.clone(),
        message,
    };
    let cert_pem = base64::engine::general_purpose::STANDARD
        .decode(issued.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| bad("status.certificate is not base64 PEM".into()))?;
    let info = cert_info(cert_pem.as_bytes(), Path::new(&name)).map_err(|e| bad(e.to_string()))?;
    if info.common_name != tmpl.common_name {
        return Err(bad(format!(
            "issued for {:?}, not {:?}",
            info.common_name, tmpl.common_name
        )));
    }
    let store = CertStore::new(cert_dir, tmpl.prefix);
    let file = store.update(&cert_pem, &key.serialize_pem(), SystemTime::now())?;
    let _ = std::fs::remove_file(&key_path);
    Ok(file)
}

impl Bootstrap<'_> {
    /// One bootstrap attempt, start to finish: the client certificate with the bootstrap
    /// token, then `--kubeconfig`. Safe to repeat after a failure or a restart.
    pub fn run(&self) -> Result<PathBuf, CsrError> {
        let client = Client::new(self.bootstrap, self.qps, self.burst)
            .map_err(|e| CsrError::Client(Box::new(e)))?;
        let tmpl = Template::client(self.node_name);
        let store = CertStore::new(self.cert_dir, tmpl.prefix);
        // A valid pair already in the cert dir (a crash after storing it, before the kubeconfig
        // was written) is used as it is, as the kubelet's LoadClientCert does.
        let file = match store.current() {
            Ok(Some(info)) if info.valid_at(SystemTime::now()) && tmpl.matches(&info) => {
                crate::info!(
                    "using the valid client certificate already in {}",
                    store.current_path().display()
                );
                store.current_path()
            }
            _ => obtain(&client, &tmpl, self.cert_dir, self.approval_timeout)?,
        };
        let ca = match &self.bootstrap.ca {
            Some(src) => src.read().map_err(|e| CertError::Io {
                action: "reading the CA of",
                path: self.bootstrap.file.clone(),
                err: e,
            })?,
            None => Vec::new(),
        };
        let kc = Kubeconfig::for_kubelet_client(&self.bootstrap.server, &ca, &store.current_path());
        write_atomic(self.kubeconfig, kc.to_yaml().as_bytes(), 0o600)?;
        Ok(file)
    }
}

/// Waits until the CSR is issued (its certificate, base64) or refused.
fn wait(client: &Client, name: &str, timeout: Duration) -> Result<String, CsrError> {
    let deadline = Instant::now() + timeout;
    let werr = |err: KubeError| CsrError::Wait {
        name: name.to_string(),
        err: Box::new(err),
    };
    loop {
        let csr: CertificateSigningRequest =
            client.get(&format!("{CSR_PATH}/{name}")).map_err(werr)?;
        if let Some(done) = verdict(name, &csr) {
            return done;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(CsrError::Timeout(timeout, name.to_string()));
        }
        let watch = client.watch(
            CSR_PATH,
            &format!("fieldSelector=metadata.name%3D{name}"),
            &csr.metadata.resource_version,
            left.min(Duration::from_secs(300)),
        );
        match watch {
            Ok(events) => {
                for ev in events {
                    match ev {
                        Ok(ev) if ev.kind == "ADDED" || ev.kind == "MODIFIED" => {
                            if let Ok(c) =
                                serde_json::from_value::<CertificateSigningRequest>(ev.object)
                                && let Some(done) = verdict(name, &c)
                            {
                                return done;
                            }
                        }
                        Ok(_) => {}
                        // Gone or a broken stream: re-read and watch again.
                        Err(_) => break,
                    }
                }
            }
            Err(e) if e.is_transient() => std::thread::sleep(Duration::from_secs(1)),
            Err(e) => return Err(werr(e)),
        }
    }
}

/// `Some` once the CSR is issued, denied or failed.
fn verdict(name: &str, csr: &CertificateSigningRequest) -> Option<Result<String, CsrError>> {
    for c in &csr.status.conditions {
        let (reason, message) = (c.reason.clone(), c.message.clone());
        match c.type_.as_str() {
            "Denied" => {
                return Some(Err(CsrError::Denied {
                    name: name.into(),
                    reason,
                    message,
                }));
            }
            "Failed" => {
                return Some(Err(CsrError::Failed {
                    name: name.into(),
                    reason,
                    message,
                }));
            }
            _ => {}
        }
    }
    (!csr.status.certificate.is_empty()).then(|| Ok(csr.status.certificate.clone()))
}
