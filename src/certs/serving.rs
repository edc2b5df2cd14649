//! Where the 10250 listener gets its certificate: the managed `kubelet-server-current.pem`
//! (`serverTLSBootstrap: true`) or `tlsCertFile`/`tlsPrivateKeyFile`, re-read whenever the files
//! change, and never an expired one (until one is issued, there is nothing to serve).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{CertError, CertInfo, CertStore, cert_info};

/// A certificate and key ready to hand to the TLS server.
#[derive(Debug)]
pub struct ServingCert {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub info: CertInfo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// `<cert-dir>/kubelet-server-current.pem` (certificate and key in one file).
    Managed(PathBuf),
    /// `tlsCertFile` and `tlsPrivateKeyFile`.
    Files { cert: PathBuf, key: PathBuf },
}

/// What identifies a version of the files: the link target, or modification times and sizes.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

pub struct ServingCerts {
    source: Source,
    cached: Mutex<Option<(Stamp, Arc<ServingCert>)>>,
}

fn stamp_of(paths: &[&Path]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            let target = std::fs::read_link(p).unwrap_or_else(|_| p.to_path_buf());
            let meta = std::fs::metadata(p).ok();
            (
                target,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect()
}

impl ServingCerts {
    /// The source the kubelet would use: the managed pair with serverTLSBootstrap, else the
    /// configured files, else the self-signed pair in `cert_dir` (made for `host` when it is
    /// not there yet; see [`super::selfsigned`]).
    pub fn new(
        cert_dir: &Path,
        server_tls_bootstrap: bool,
        tls_cert_file: &str,
        tls_private_key_file: &str,
        host: &str,
    ) -> Result<ServingCerts, CertError> {
        let source = if server_tls_bootstrap {
            Source::Managed(CertStore::new(cert_dir, "kubelet-server").current_path())
        } else if !tls_cert_file.is_empty() && !tls_private_key_file.is_empty() {
            Source::Files {
                cert: tls_cert_file.into(),
                key: tls_private_key_file.into(),
            }
        } else {
            let (cert, key, made) = super::selfsigned::ensure(cert_dir, host, SystemTime::now())?;
            if made {
                crate::info!(
                    "made a self-signed serving certificate {} (no serverTLSBootstrap, no tlsCertFile)",
                    cert.display()
                );
            }
            Source::Files { cert, key }
        };
        Ok(ServingCerts {
            source,
            cached: Mutex::new(None),
        })
    }

    /// The certificate to serve now: re-read if the files changed since the last call; `None`
    /// while there is none or it is not valid at `now`.
    pub fn current(&self, now: SystemTime) -> Result<Option<Arc<ServingCert>>, CertError> {
        let paths: Vec<&Path> = match &self.source {
            Source::Managed(p) => vec![p.as_path()],
            Source::Files { cert, key } => vec![cert.as_path(), key.as_path()],
        };
        let stamp = stamp_of(&paths);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match cached.as_ref() {
            Some((s, c)) if *s == stamp => Some(c.clone()),
            _ => None,
        };
        let cert = match fresh {
            Some(c) => c,
            None => {
                let read = |p: &Path| match std::fs::read(p) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(CertError::Io {
                        action: "reading",
                        path: p.to_path_buf(),
                        err: e,
                    }),
                };
                let (cert_pem, key_pem) = match &self.source {
                    Source::Managed(p) => match read(p)? {
                        Some(b) => (b.clone(), b),
                        None => return Ok(None),
                    },
                    Source::Files { cert, key } => match (read(cert)?, read(key)?) {
                        (Some(c), Some(k)) => (c, k),
                        _ => return Ok(None),
                    },
                };
                let info = cert_info(&cert_pem, paths[0])?;
                let c = Arc::new(ServingCert {
                    cert_pem,
                    key_pem,
                    info,
                });
                *cached = Some((stamp, c.clone()));
                c
            }
        };
        Ok(cert.info.valid_at(now).then_some(cert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn self_signed(cn: &str, days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut p =
            rcgen::CertificateParams::new(vec!["n1".to_string()]).unwrap_or_else(|e| panic!("{e}"));
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(days);
        let cert = p.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn configured_files_are_reloaded_when_they_change() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let s = ServingCerts::new(
            dir.path(),
            false,
            &c.display().to_string(),
            &k.display().to_string(),
            "n1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.current(SystemTime::now()).ok().flatten().is_none(),
            "nothing to serve yet"
        );
        let (cert, key) = self_signed("first", 10);
        std::fs::write(&c, cert).unwrap_or_default();
        std::fs::write(&k, key).unwrap_or_default();
        let first = s
            .current(SystemTime::now())
            .ok()
            .flatten()
            .map(|c| c.info.common_name.clone());
        assert_eq!(first.as_deref(), Some("first"));
        std::thread::sleep(Duration::from_millis(20));
        let (cert, key) = self_signed("second-longer-name", 10);
        std::fs::write(&c, cert).unwrap_or_default();
        std::fs::write(&k, key).unwrap_or_default();
        let second = s
            .current(SystemTime::now())
            .ok()
            .flatten()
            .map(|c| c.info.common_name.clone());
        assert_eq!(second.as_deref(), Some("second-longer-name"));
    }

    #[test]
    fn the_managed_pair_is_served_only_while_valid() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = ServingCerts::new(dir.path(), true, "", "", "n1").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.current(SystemTime::now()).ok().flatten().is_none(),
            "no serving cert before approval"
        );
        let (cert, key) = self_signed("system:node:n1", 1);
        CertStore::new(dir.path(), "kubelet-server")
            .update(&cert, &key, SystemTime::now())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.current(SystemTime::now()).ok().flatten().is_some());
        let later = SystemTime::now() + Duration::from_secs(3 * 86400);
        assert!(
            s.current(later).ok().flatten().is_none(),
            "an expired certificate is never presented"
        );
        // Neither: the self-signed pair, served at once.
        let s =
            ServingCerts::new(dir.path(), false, "", "", "n1").unwrap_or_else(|e| panic!("{e}"));
        let c = s.current(SystemTime::now()).ok().flatten();
        assert!(
            c.is_some_and(|c| c.info.common_name.starts_with("n1@")),
            "self-signed"
        );
        assert!(dir.path().join("kubelet.crt").exists() && dir.path().join("kubelet.key").exists());
    }
}
