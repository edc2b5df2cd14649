//! The simulator's PKI: a CA (reused from DIR when present), the client certificates the seed
//! guide's control plane uses, the listener's serving certificate, and CSR signing.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

pub struct Ca {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

fn write(path: &Path, content: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).map_err(|e| io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io(path, e))
}

impl Ca {
    /// Loads `dir/ca.pem` + `dir/ca-key.pem`, or creates them.
    pub fn load_or_create(dir: &Path) -> Result<Ca, String> {
        let (cp, kp) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        if cp.exists() && kp.exists() {
            let cert_pem = std::fs::read_to_string(&cp).map_err(|e| io(&cp, e))?;
            let key_pem = std::fs::read_to_string(&kp).map_err(|e| io(&kp, e))?;
            let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", kp.display()))?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
                .map_err(|e| format!("{}: {e}", cp.display()))?;
            return Ok(Ca { cert_pem, issuer });
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, "kube-sim-ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(3650);
        let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        write(&cp, &cert_pem, 0o644)?;
        write(&kp, &key_pem, 0o600)?;
        let issuer = Issuer::new(p, key);
        Ok(Ca { cert_pem, issuer })
    }

    /// Issues a key pair and certificate; returns (cert PEM, key PEM).
    pub fn issue(
        &self,
        cn: &str,
        orgs: &[&str],
        sans: &[String],
        server: bool,
        validity: Duration,
    ) -> Result<(String, String), String> {
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        p.distinguished_name = rcgen::DistinguishedName::new();
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        p.distinguished_name.push(DnType::CommonName, cn);
        for s in sans {
            p.subject_alt_names
                .push(match s.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => {
                        SanType::DnsName(s.clone().try_into().map_err(|e| format!("{s}: {e}"))?)
                    }
                });
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let now = OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + time::Duration::try_from(validity).map_err(|e| e.to_string())?;
        let cert = p.signed_by(&key, &self.issuer).map_err(|e| e.to_string())?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs a PKCS#10 request as kube-controller-manager's signer does: subject and SANs from
    /// the request, usages from the CSR object, NotBefore `backdate` in the past (KCM: 5
    /// minutes), NotAfter `duration` from now (its PermissiveSigningPolicy for short-lived certs).
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        usages: &[String],
        duration: Duration,
        backdate: Duration,
    ) -> Result<String, String> {
        let mut req = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("invalid certificate request: {e}"))?;
        let p = &mut req.params;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages.clear();
        p.extended_key_usages.clear();
        for u in usages {
            match u.as_str() {
                "digital signature" => p.key_usages.push(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => p.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                "client auth" => p
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => p
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth),
                other => return Err(format!("unsupported usage {other:?}")),
            }
        }
        let now = OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::try_from(backdate).map_err(|e| e.to_string())?;
        p.not_after = now + time::Duration::try_from(duration).map_err(|e| e.to_string())?;
        p.use_authority_key_identifier_extension = true;
        let mut serial = [0u8; 16];
        rand::fill(&mut serial[..]);
        serial[0] &= 0x7f;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        req.signed_by(&self.issuer)
            .map(|c| c.pem())
            .map_err(|e| e.to_string())
    }
}

/// Writes `name.pem` / `name-key.pem` into `dir` unless both exist.
pub fn ensure_client_cert(
    ca: &Ca,
    dir: &Path,
    name: &str,
    cn: &str,
    orgs: &[&str],
) -> Result<(String, String), String> {
    let (cp, kp) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    if cp.exists() && kp.exists() {
        let c = std::fs::read_to_string(&cp).map_err(|e| io(&cp, e))?;
        let k = std::fs::read_to_string(&kp).map_err(|e| io(&kp, e))?;
        return Ok((c, k));
    }
    let (c, k) = ca.issue(cn, orgs, &[], false, Duration::from_secs(3650 * 86400))?;
    write(&cp, &c, 0o644)?;
    write(&kp, &k, 0o600)?;
    Ok((c, k))
}
