//! The kubelet's client-certificate TLS bootstrap: with the bootstrap kubeconfig's token, send a
//! `kubernetes.io/kube-apiserver-client-kubelet` CSR for `system:node:<node>`, wait until it is
//! issued, store the pair as `kubelet-client-<time>.pem` + `kubelet-client-current.pem`, and
//! write `--kubeconfig` pointing at it.

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
const CLIENT_USAGES: [&str; 2] = ["digital signature", "client auth"];
const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot create certificate signing request: {0}")]
    Create(#[source] Box<KubeError>),
    #[error("waiting for certificate signing request {name}: {source}")]
    Wait {
        name: String,
        source: Box<KubeError>,
    },
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
    Client(#[source] Box<KubeError>),
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

impl Bootstrap<'_> {
    fn key_path(&self) -> PathBuf {
        self.cert_dir.join("kubelet-client.key.tmp")
    }

    /// One bootstrap attempt, start to finish. Safe to repeat after a failure or a restart: the
    /// key in progress is reused, so the same CSR object is found again.
    pub fn run(&self) -> Result<PathBuf, BootstrapError> {
        let client = Client::new(self.bootstrap, self.qps, self.burst)
            .map_err(|e| BootstrapError::Client(Box::new(e)))?;
        let key = load_or_create_key(&self.key_path())?;
        let cn = format!("system:node:{}", self.node_name);
        let request = make_csr(&key, &cn, "system:nodes", &[], &[])?;
        let name = csr_name(&key, &cn, &["system:nodes"], &CLIENT_USAGES);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&request);
        let csr = CertificateSigningRequest::new(
            &name,
            CsrSpec {
                request: b64,
                signer_name: CLIENT_SIGNER.into(),
                usages: CLIENT_USAGES.iter().map(|u| u.to_string()).collect(),
                ..CsrSpec::default()
            },
        );
        match client.create::<_, CertificateSigningRequest>(CSR_PATH, &csr) {
            Ok(_) => crate::info!("sent certificate signing request {name} for {cn}"),
            Err(e) if e.code() == Some(409) => {
                crate::info!("certificate signing request {name} exists already; waiting for it")
            }
            Err(e) => return Err(BootstrapError::Create(Box::new(e))),
        }
        let issued = self.wait(&client, &name)?;
        let cert_pem = base64::engine::general_purpose::STANDARD
            .decode(issued.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| BootstrapError::BadCertificate {
                name: name.clone(),
                message: "status.certificate is not base64 PEM".into(),
            })?;
        let info = cert_info(cert_pem.as_bytes(), Path::new(&name)).map_err(|e| {
            BootstrapError::BadCertificate {
                name: name.clone(),
                message: e.to_string(),
            }
        })?;
        if info.common_name != cn {
            return Err(BootstrapError::BadCertificate {
                name,
                message: format!("issued for {:?}, not {cn:?}", info.common_name),
            });
        }
        let store = CertStore::new(self.cert_dir, "kubelet-client");
        let file = store.update(&cert_pem, &key.serialize_pem(), SystemTime::now())?;
        let ca = match &self.bootstrap.ca {
            Some(src) => src.read().map_err(|e| CertError::Io {
                action: "reading the CA of",
                path: self.bootstrap.file.clone(),
                source: e,
            })?,
            None => Vec::new(),
        };
        let kc = Kubeconfig::for_kubelet_client(&self.bootstrap.server, &ca, &store.current_path());
        write_atomic(self.kubeconfig, kc.to_yaml().as_bytes(), 0o600)?;
        let _ = std::fs::remove_file(self.key_path());
        Ok(file)
    }

    /// Waits until the CSR is issued (its certificate, base64) or refused.
    fn wait(&self, client: &Client, name: &str) -> Result<String, BootstrapError> {
        let deadline = Instant::now() + self.approval_timeout;
        let werr = |source: KubeError| BootstrapError::Wait {
            name: name.to_string(),
            source: Box::new(source),
        };
        loop {
            let csr: CertificateSigningRequest =
                client.get(&format!("{CSR_PATH}/{name}")).map_err(werr)?;
            if let Some(done) = verdict(name, &csr) {
                return done;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(BootstrapError::Timeout(
                    self.approval_timeout,
                    name.to_string(),
                ));
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
}

/// `Some` once the CSR is issued, denied or failed.
fn verdict(name: &str, csr: &CertificateSigningRequest) -> Option<Result<String, BootstrapError>> {
    for c in &csr.status.conditions {
        let (reason, message) = (c.reason.clone(), c.message.clone());
        match c.type_.as_str() {
            "Denied" => {
                return Some(Err(BootstrapError::Denied {
                    name: name.into(),
                    reason,
                    message,
                }));
            }
            "Failed" => {
                return Some(Err(BootstrapError::Failed {
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
