//! Certificates on disk and the TLS bootstrap: the kubelet's file names and modes, atomic
//! `-current.pem` symlink swaps, key and CSR generation, the client-certificate bootstrap, the
//! managers that renew certificates and the thread that runs them (`keeper`).

pub mod bootstrap;
pub mod keeper;
pub mod manager;
pub mod selfsigned;
pub mod serving;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::timefmt::Civil;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{action} {path}: {err}")]
    Io {
        action: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("generating {what}: {message}")]
    Generate { what: &'static str, message: String },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CertError {
    let path = path.to_path_buf();
    move |err| CertError::Io { action, path, err }
}

/// Writes `data` to `path` with `mode` via a temporary file and a rename: readers see the old
/// file or the new one, never half of either.
/// The cert dir (and parents) with mode 0755, as client-go's certificate store makes it: a CA
/// kept there stays readable; the keys in it are 0600.
fn make_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), CertError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    f.write_all(data).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(io("setting the mode of", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming into place", path))
}

/// What a PEM certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub dns_names: Vec<String>,
    pub ips: Vec<std::net::IpAddr>,
}

impl CertInfo {
    pub fn valid_at(&self, t: SystemTime) -> bool {
        self.not_before <= t && t < self.not_after
    }
}

/// Parses the first certificate of a PEM bundle.
pub fn cert_info(pem: &[u8], path: &Path) -> Result<CertInfo, CertError> {
    use x509_parser::prelude::*;
    let invalid = |m: String| CertError::Invalid {
        path: path.to_path_buf(),
        message: m,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| invalid(format!("no PEM certificate: {e}")))?;
    let (_, cert) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    let subj = cert.subject();
    let at = |t: ASN1Time| UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64);
    let (mut dns_names, mut ips) = (Vec::new(), Vec::new());
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => ips.push(std::net::IpAddr::from(
                    <[u8; 4]>::try_from(*b).unwrap_or_default(),
                )),
                GeneralName::IPAddress(b) if b.len() == 16 => ips.push(std::net::IpAddr::from(
                    <[u8; 16]>::try_from(*b).unwrap_or_default(),
                )),
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        common_name: subj
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .unwrap_or("")
            .to_string(),
        organizations: subj
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(String::from))
            .collect(),
        not_before: at(cert.validity().not_before),
        not_after: at(cert.validity().not_after),
        dns_names,
        ips,
    })
}

/// A pair of files the kubelet keeps per purpose (`kubelet-client`, `kubelet-server`):
/// `<prefix>-<YYYY-MM-DD-HH-MM-SS>.pem` (certificate + key, 0600) and the
/// `<prefix>-current.pem` symlink to the one in use.
pub struct CertStore {
    dir: PathBuf,
    prefix: &'static str,
}

impl CertStore {
    pub fn new(dir: &Path, prefix: &'static str) -> CertStore {
        CertStore {
            dir: dir.to_path_buf(),
            prefix,
        }
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}-current.pem", self.prefix))
    }

    /// The current pair's certificate, if there is one that parses.
    pub fn current(&self) -> Result<Option<CertInfo>, CertError> {
        let p = self.current_path();
        match std::fs::read(&p) {
            Ok(b) => cert_info(&b, &p).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &p)(e)),
        }
    }

    /// Stores a new pair and points `-current.pem` at it, atomically (a `-updated.pem`
    /// symlink renamed over the old one, as the kubelet does).
    pub fn update(
        &self,
        cert_pem: &str,
        key_pem: &str,
        now: SystemTime,
    ) -> Result<PathBuf, CertError> {
        make_dir(&self.dir).map_err(io("creating", &self.dir))?;
        let c = Civil::from_system(now);
        let name = format!(
            "{}-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}.pem",
            self.prefix, c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        let file = self.dir.join(name);
        let mut both = cert_pem.trim_end().to_string();
        both.push('\n');
        both.push_str(key_pem.trim_end());
        both.push('\n');
        write_atomic(&file, both.as_bytes(), 0o600)?;
        let updated = self.dir.join(format!("{}-updated.pem", self.prefix));
        let _ = std::fs::remove_file(&updated);
        std::os::unix::fs::symlink(&file, &updated).map_err(io("linking", &updated))?;
        std::fs::rename(&updated, self.current_path())
            .map_err(io("renaming into place", &self.current_path()))?;
        Ok(file)
    }
}

/// Loads the ECDSA P-256 key kept at `path` (the key of a bootstrap in progress), or makes one
/// and keeps it there (0600), so a restart sends the same request.
pub fn load_or_create_key(path: &Path) -> Result<rcgen::KeyPair, CertError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => rcgen::KeyPair::from_pem(&pem).map_err(|e| CertError::Invalid {
            path: path.to_path_buf(),
            message: format!("not a private key: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key =
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| {
                    CertError::Generate {
                        what: "an ECDSA P-256 key",
                        message: e.to_string(),
                    }
                })?;
            if let Some(dir) = path.parent() {
                make_dir(dir).map_err(io("creating", dir))?;
            }
            write_atomic(path, key.serialize_pem().as_bytes(), 0o600)?;
            Ok(key)
        }
        Err(e) => Err(io("reading", path)(e)),
    }
}

/// A PKCS#10 request for `O=<org>, CN=<cn>` with the given SANs, signed by `key`.
pub fn make_csr(
    key: &rcgen::KeyPair,
    cn: &str,
    org: &str,
    dns: &[String],
    ips: &[std::net::IpAddr],
) -> Result<String, CertError> {
    let fail = |e: rcgen::Error| CertError::Generate {
        what: "a certificate request",
        message: e.to_string(),
    };
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, org);
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    for d in dns {
        p.subject_alt_names
            .push(rcgen::SanType::DnsName(d.clone().try_into().map_err(fail)?));
    }
    for ip in ips {
        p.subject_alt_names.push(rcgen::SanType::IpAddress(*ip));
    }
    p.serialize_request(key).and_then(|r| r.pem()).map_err(fail)
}

/// `node-csr-<hash>`: client-go's digestedName over the public key, subject and usages, so the
/// same key always names the same CSR object.
pub fn csr_name(key: &rcgen::KeyPair, cn: &str, orgs: &[&str], usages: &[&str]) -> String {
    use base64::Engine;
    use rcgen::PublicKeyData;
    let enc = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
    let mut input = String::new();
    let mut write = |d: &[u8]| {
        input.push_str(&enc(d));
        input.push('|');
    };
    write(&key.subject_public_key_info());
    write(cn.as_bytes());
    for o in orgs {
        write(o.as_bytes());
    }
    for u in usages {
        write(u.as_bytes());
    }
    let digest = ring::digest::digest(&ring::digest::SHA512_256, input.as_bytes());
    format!("node-csr-{}", enc(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_swaps_the_current_link_atomically() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = CertStore::new(dir.path(), "kubelet-client");
        assert_eq!(store.current().ok().flatten(), None);
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let mut p =
            rcgen::CertificateParams::new(vec!["n1".to_string()]).unwrap_or_else(|e| panic!("{e}"));
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:n1");
        let cert = p.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        let t = UNIX_EPOCH + Duration::from_secs(1_581_089_901);
        let file = store
            .update(&cert.pem(), &key.serialize_pem(), t)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            file.file_name().and_then(|n| n.to_str()),
            Some("kubelet-client-2020-02-07-15-38-21.pem")
        );
        assert_eq!(
            std::fs::read_link(store.current_path()).ok(),
            Some(file.clone())
        );
        assert_eq!(
            std::fs::metadata(&file)
                .map(|m| m.permissions().mode() & 0o777)
                .ok(),
            Some(0o600)
        );
        let info = store
            .current()
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no current cert"));
        assert_eq!(info.common_name, "system:node:n1");
        assert_eq!(info.dns_names, ["n1"]);
        assert!(!dir.path().join("kubelet-client-updated.pem").exists());
    }

    #[test]
    fn key_is_kept_and_csr_name_is_stable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("kubelet-client.key.tmp");
        let k1 = load_or_create_key(&path).unwrap_or_else(|e| panic!("{e}"));
        let k2 = load_or_create_key(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(k1.public_key_raw(), k2.public_key_raw());
        let usages = ["digital signature", "client auth"];
        let n1 = csr_name(&k1, "system:node:n1", &["system:nodes"], &usages);
        assert_eq!(
            n1,
            csr_name(&k2, "system:node:n1", &["system:nodes"], &usages)
        );
        assert_ne!(
            n1,
            csr_name(&k1, "system:node:n2", &["system:nodes"], &usages)
        );
        assert!(
            n1.starts_with("node-csr-") && n1.len() == "node-csr-".len() + 43,
            "{n1}"
        );
        let pem = make_csr(&k1, "system:node:n1", "system:nodes", &[], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        std::fs::write(&path, "garbage").unwrap_or_default();
        assert!(load_or_create_key(&path).is_err());
    }
}
