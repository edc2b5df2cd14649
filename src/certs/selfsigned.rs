//! The kubelet's self-signed serving certificate: with neither `serverTLSBootstrap` nor
//! `tlsCertFile`/`tlsPrivateKeyFile`, `<cert-dir>/kubelet.crt` and `kubelet.key` are made once
//! (a CA `<host>-ca@<unix>` and a certificate `<host>@<unix>` for the host name, valid a year,
//! the chain in `kubelet.crt`) and kept, as client-go's `GenerateSelfSignedCertKey` makes them
//! for the kubelet of every kubeadm node. The keys are ECDSA P-256 where upstream's are RSA 2048.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{CertError, make_dir, write_atomic};
use crate::timefmt::Civil;

/// `<cert-dir>/kubelet.crt` and `<cert-dir>/kubelet.key`.
pub fn paths(cert_dir: &Path) -> (PathBuf, PathBuf) {
    (cert_dir.join("kubelet.crt"), cert_dir.join("kubelet.key"))
}

/// The pair in `cert_dir`, made for `host` unless both files can already be read (a pair made
/// before, or put there by an admin, is kept as the kubelet keeps it). Returns the paths and
/// whether they were made now.
pub fn ensure(
    cert_dir: &Path,
    host: &str,
    now: SystemTime,
) -> Result<(PathBuf, PathBuf, bool), CertError> {
    let (cert, key) = paths(cert_dir);
    if std::fs::read(&cert).is_ok() && std::fs::read(&key).is_ok() {
        return Ok((cert, key, false));
    }
    let (cert_pem, key_pem) = generate(host, now)?;
    make_dir(cert_dir).map_err(|err| CertError::Io {
        action: "creating",
        path: cert_dir.to_path_buf(),
        err,
    })?;
    write_atomic(&key, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert, cert_pem.as_bytes(), 0o644)?;
    Ok((cert, key, true))
}

/// The chain (serving certificate, then its CA) and the serving key, PEM.
fn generate(host: &str, now: SystemTime) -> Result<(String, String), CertError> {
    let fail = |what: &'static str| {
        move |e: rcgen::Error| CertError::Generate {
            what,
            message: e.to_string(),
        }
    };
    let unix = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let date = |t: SystemTime| {
        let c = Civil::from_system(t);
        rcgen::date_time_ymd(c.year as i32, c.month as u8, c.day as u8)
    };
    let not_before = date(now);
    let not_after = date(now + Duration::from_secs(365 * 24 * 3600));
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(fail("an ECDSA P-256 key"))?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail("a CA"))?;
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host}-ca@{unix}"));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key).map_err(fail("a CA"))?;
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(fail("an ECDSA P-256 key"))?;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(fail("a serving certificate"))?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host}@{unix}"));
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => p.subject_alt_names.push(rcgen::SanType::IpAddress(ip)),
        Err(_) => p.subject_alt_names.push(rcgen::SanType::DnsName(
            host.to_string()
                .try_into()
                .map_err(fail("a serving certificate"))?,
        )),
    }
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = not_before;
    p.not_after = not_after;
    let leaf = p
        .signed_by(&key, &issuer)
        .map_err(fail("a serving certificate"))?;
    Ok((
        format!("{}{}", leaf.pem(), ca_cert.pem()),
        key.serialize_pem(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_for_the_host_and_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cert_dir = dir.path().join("pki");
        let now = SystemTime::now();
        let (cert, key, made) = ensure(&cert_dir, "edge-01", now).unwrap_or_else(|e| panic!("{e}"));
        assert!(made);
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!((mode(&cert), mode(&key)), (0o644, 0o600));
        let pem = std::fs::read(&cert).unwrap_or_default();
        let info = super::super::cert_info(&pem, &cert).unwrap_or_else(|e| panic!("{e}"));
        assert!(info.valid_at(now), "{info:?}");
        assert!(info.valid_at(now + Duration::from_secs(364 * 24 * 3600)));
        let text = String::from_utf8_lossy(&pem);
        assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "the chain");
        // The leaf names the host; its issuer is the CA that follows it.
        let blocks: Vec<_> = x509_parser::pem::Pem::iter_from_buffer(&pem)
            .map(|b| b.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let leaf = blocks[0].parse_x509().unwrap_or_else(|e| panic!("{e}"));
        let ca = blocks[1].parse_x509().unwrap_or_else(|e| panic!("{e}"));
        assert!(leaf.subject().to_string().starts_with("CN=edge-01@"));
        assert_eq!(leaf.issuer(), ca.subject());
        assert!(ca.subject().to_string().starts_with("CN=edge-01-ca@"));
        let san = leaf
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| format!("{:?}", s.value.general_names))
            .unwrap_or_default();
        assert!(san.contains("edge-01"), "{san}");
        let ca_key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            ca.public_key().subject_public_key.data.to_vec(),
        );
        assert!(
            ca_key
                .verify(leaf.tbs_certificate.as_ref(), &leaf.signature_value.data)
                .is_ok(),
            "the leaf is signed by the CA"
        );

        // Kept: a second start reuses it.
        let (_, _, again) = ensure(&cert_dir, "edge-01", now).unwrap_or_else(|e| panic!("{e}"));
        assert!(!again);
        assert_eq!(std::fs::read(&cert).unwrap_or_default(), pem);
        // An IP as the host name goes in as an IP SAN.
        let ipdir = dir.path().join("ip");
        ensure(&ipdir, "10.0.0.7", now).unwrap_or_else(|e| panic!("{e}"));
        let pem = std::fs::read(ipdir.join("kubelet.crt")).unwrap_or_default();
        let b = x509_parser::pem::Pem::iter_from_buffer(&pem)
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("a PEM block"));
        let leaf = b.parse_x509().unwrap_or_else(|e| panic!("{e}"));
        let san = leaf
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|s| format!("{:?}", s.value.general_names))
            .unwrap_or_default();
        assert!(san.contains("IPAddress([10, 0, 0, 7])"), "{san}");
    }
}
