//! TLS for 10250: the serving certificate picked per handshake (hot-swapped), `tlsMinVersion`
//! and `tlsCipherSuites` by Go's names, and client certificates as the kubelet asks for them
//! (`tls.RequestClientCert` with `clientCAFile`): requested, never required, and not checked in
//! the handshake. The chain is verified against the client CA after it, by the x509
//! authenticator, so a certificate from a foreign CA fails authentication (401 unless a bearer
//! token on the same connection authenticates), not the handshake.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::ServerError;
use super::auth::{Cert, User};
use crate::certs::serving::ServingCerts;

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

/// `tls.RequestClientCert`: asks for a certificate (naming the client CA's subjects), takes
/// whatever comes, and checks only that the client holds its key (the handshake signature).
#[derive(Debug)]
struct RequestClientCert {
    ca: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

/// The server's TLS configuration and the client CA its connections' certificates are
/// checked against after the handshake.
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
}

impl ServerTls {
    /// What the peer's certificate says: nothing, a verified user (CN, O), or why not.
    pub fn peer(&self, conn: &rustls::ServerConnection) -> Cert {
        let (Some(ca), Some(chain)) = (&self.client_ca, conn.peer_certificates()) else {
            return Cert::None;
        };
        let Some((ee, intermediates)) = chain.split_first() else {
            return Cert::None;
        };
        if let Err(e) = ca.verify_client_cert(ee, intermediates, UnixTime::now()) {
            return Cert::Invalid(format!("verifying certificate failed: {e}"));
        }
        match user_of(ee) {
            Some(u) => Cert::Verified(u),
            None => Cert::Invalid("the certificate has no common name".into()),
        }
    }
}

/// The user a client certificate names: CN, groups from O.
fn user_of(der: &CertificateDer<'_>) -> Option<User> {
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
        let tls13 = n
            .strip_prefix("TLS_")
            .is_some_and(|r| r.starts_with("AES_") || r.starts_with("CHACHA20_"));
        if tls13 {
            // A TLS 1.3 suite by Go's name: already on.
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
/// requested as the kubelet does.
pub fn tls_config(
    certs: Arc<ServingCerts>,
    client_ca_file: &str,
    min_version: Option<crate::config::kubelet::TlsVersion>,
    suites: &[String],
) -> Result<ServerTls, ServerError> {
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
    let (builder, client_ca) = if client_ca_file.is_empty() {
        (builder.with_no_client_auth(), None)
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
        let ca: Arc<dyn ClientCertVerifier> =
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ca_err(e.to_string()))?;
        let request = Arc::new(RequestClientCert { ca: ca.clone() });
        (builder.with_client_cert_verifier(request), Some(ca))
    };
    let config = builder.with_cert_resolver(Arc::new(CertResolver { certs, provider }));
    Ok(ServerTls {
        config: Arc::new(config),
        client_ca,
    })
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
