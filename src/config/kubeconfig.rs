//! kubeconfig files (`--kubeconfig`, `--bootstrap-kubeconfig`): the format kubectl reads and
//! writes, resolved through `current-context` into what a client needs to reach the API server.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("kubeconfig {path}: cannot read: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("kubeconfig {path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("kubeconfig {path}: cannot write: {err}")]
    Write { path: PathBuf, err: std::io::Error },
}

/// The kubeconfig file format (clientcmd v1), field names as kubectl writes them. Unknown fields
/// are ignored, as client-go does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion", default = "v1")]
    pub api_version: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub clusters: Vec<NamedCluster>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub contexts: Vec<NamedContext>,
    #[serde(
        rename = "current-context",
        default,
        deserialize_with = "null_as_default"
    )]
    pub current_context: String,
    #[serde(default = "config_kind")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub preferences: serde_yaml::Mapping,
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<NamedUser>,
}

/// kubectl writes `clusters: null` for an empty list; treat null like a missing field.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn v1() -> String {
    "v1".into()
}

fn config_kind() -> String {
    "Config".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub user: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    #[serde(default)]
    pub user: AuthInfo,
}

#[derive(Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(rename = "tokenFile", default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

impl fmt::Debug for AuthInfo {
    /// Never prints a token or key: only which fields are set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInfo")
            .field("client_certificate", &self.client_certificate)
            .field(
                "client_certificate_data",
                &self.client_certificate_data.as_ref().map(|_| "<set>"),
            )
            .field("client_key", &self.client_key)
            .field(
                "client_key_data",
                &self.client_key_data.as_ref().map(|_| "<redacted>"),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

/// Bytes from a file or embedded in the kubeconfig.
#[derive(Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Inline(Vec<u8>),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "File({})", p.display()),
            Source::Inline(b) => write!(f, "Inline({} bytes)", b.len()),
        }
    }
}

impl Source {
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Source::File(p) => std::fs::read(p),
            Source::Inline(b) => Ok(b.clone()),
        }
    }
}

/// A bearer token that never shows up in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    Token(Secret),
    TokenFile(PathBuf),
    ClientCert { cert: Source, key: Source },
}

/// What a client needs from a kubeconfig: the current context resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiServer {
    /// The kubeconfig this came from.
    pub file: PathBuf,
    pub server: String,
    pub ca: Option<Source>,
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
    pub credentials: Credentials,
}

impl Kubeconfig {
    pub fn load(path: &Path) -> Result<Kubeconfig, KubeconfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| KubeconfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        Kubeconfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Kubeconfig, KubeconfigError> {
        serde_yaml::from_str(text).map_err(|e| KubeconfigError::Invalid {
            path: path.to_path_buf(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })
    }

    /// Resolves `current-context`; relative file paths resolve against the kubeconfig's directory.
    pub fn resolve(&self, path: &Path) -> Result<ApiServer, KubeconfigError> {
        let invalid = |message: String| KubeconfigError::Invalid {
            path: path.to_path_buf(),
            line: None,
            message,
        };
        if self.current_context.is_empty() {
            return Err(invalid("current-context is not set".into()));
        }
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .ok_or_else(|| {
                invalid(format!(
                    "context {:?} (current-context) is not defined",
                    self.current_context
                ))
            })?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| {
                invalid(format!(
                    "cluster {:?} (context {:?}) is not defined",
                    ctx.context.cluster, ctx.name
                ))
            })?;
        let user = self
            .users
            .iter()
            .find(|u| u.name == ctx.context.user)
            .ok_or_else(|| {
                invalid(format!(
                    "user {:?} (context {:?}) is not defined",
                    ctx.context.user, ctx.name
                ))
            })?;
        let c = &cluster.cluster;
        let server = validate_server(&c.server)
            .map_err(|e| invalid(format!("cluster {:?}: {e}", cluster.name)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let field = |what: &str, file: &Option<String>, data: &Option<String>, owner: &str| {
            source(dir, file, data).map_err(|e| invalid(format!("{owner}: {what}: {e}")))
        };
        let cluster_owner = format!("cluster {:?}", cluster.name);
        let ca = field(
            "certificate-authority",
            &c.certificate_authority,
            &c.certificate_authority_data,
            &cluster_owner,
        )?;
        let u = &user.user;
        let user_owner = format!("user {:?}", user.name);
        let cert = field(
            "client-certificate",
            &u.client_certificate,
            &u.client_certificate_data,
            &user_owner,
        )?;
        let key = field("client-key", &u.client_key, &u.client_key_data, &user_owner)?;
        let credentials = match (cert, key, &u.token, &u.token_file) {
            (Some(cert), Some(key), _, _) => Credentials::ClientCert { cert, key },
            (Some(_), None, _, _) => {
                return Err(invalid(format!(
                    "{user_owner}: client-certificate without client-key"
                )));
            }
            (None, Some(_), _, _) => {
                return Err(invalid(format!(
                    "{user_owner}: client-key without client-certificate"
                )));
            }
            (None, None, Some(t), _) if !t.is_empty() => Credentials::Token(Secret(t.clone())),
            (None, None, _, Some(f)) if !f.is_empty() => Credentials::TokenFile(dir.join(f)),
            _ => Credentials::None,
        };
        Ok(ApiServer {
            file: path.to_path_buf(),
            server,
            ca,
            insecure_skip_tls_verify: c.insecure_skip_tls_verify,
            tls_server_name: c.tls_server_name.clone(),
            credentials,
        })
    }

    /// The kubeconfig the kubelet writes after TLS bootstrap: cluster `default-cluster`, user
    /// `default-auth` with cert and key both in `cert_file`, context `default-context`.
    pub fn for_kubelet_client(server: &str, ca_pem: &[u8], cert_file: &Path) -> Kubeconfig {
        let cert = cert_file.display().to_string();
        Kubeconfig {
            api_version: v1(),
            clusters: vec![NamedCluster {
                name: "default-cluster".into(),
                cluster: Cluster {
                    certificate_authority_data: Some(
                        base64::engine::general_purpose::STANDARD.encode(ca_pem),
                    ),
                    server: server.into(),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: "default-context".into(),
                context: Context {
                    cluster: "default-cluster".into(),
                    namespace: Some("default".into()),
                    user: "default-auth".into(),
                },
            }],
            current_context: "default-context".into(),
            kind: config_kind(),
            preferences: serde_yaml::Mapping::new(),
            users: vec![NamedUser {
                name: "default-auth".into(),
                user: AuthInfo {
                    client_certificate: Some(cert.clone()),
                    client_key: Some(cert),
                    ..AuthInfo::default()
                },
            }],
        }
    }

    pub fn to_yaml(&self) -> String {
        // Serializing plain strings, lists and maps cannot fail.
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

fn source(
    dir: &Path,
    file: &Option<String>,
    data: &Option<String>,
) -> Result<Option<Source>, String> {
    match (
        data.as_deref().filter(|d| !d.is_empty()),
        file.as_deref().filter(|f| !f.is_empty()),
    ) {
        (Some(d), _) => {
            let clean: String = d.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map(|b| Some(Source::Inline(b)))
                .map_err(|e| format!("-data is not valid base64: {e}"))
        }
        (None, Some(f)) => Ok(Some(Source::File(dir.join(f)))),
        (None, None) => Ok(None),
    }
}

/// The server must be an absolute http(s) URL with a host.
fn validate_server(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("server {s:?} must be an https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("server {s:?} has no host"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOTSTRAP: &str = "\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: aGVsbG8=
    server: https://172.27.138.251:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubelet-bootstrap
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: kubelet-bootstrap
  user:
    token: 2sb8wy.euialqfpxfbcljby
";

    #[test]
    fn resolves_bootstrap_kubeconfig() {
        let p = Path::new("/etc/kubernetes/kubelet-bootstrap.kubeconfig");
        let k = Kubeconfig::parse(p, BOOTSTRAP).unwrap_or_else(|e| panic!("{e}"));
        let a = k.resolve(p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.server, "https://172.27.138.251:6443");
        assert_eq!(a.ca, Some(Source::Inline(b"hello".to_vec())));
        assert_eq!(
            a.credentials,
            Credentials::Token(Secret("2sb8wy.euialqfpxfbcljby".into()))
        );
        let dbg = format!("{a:?} {k:?}");
        assert!(
            !dbg.contains("euialqfpxfbcljby"),
            "token leaked into Debug: {dbg}"
        );
    }

    #[test]
    fn relative_paths_and_errors() {
        let text = BOOTSTRAP
            .replace(
                "certificate-authority-data: aGVsbG8=",
                "certificate-authority: ca.pem",
            )
            .replace(
                "token: 2sb8wy.euialqfpxfbcljby",
                "client-certificate: c.pem\n    client-key: /abs/k.pem",
            );
        let p = Path::new("/etc/kubernetes/x.kubeconfig");
        let a = Kubeconfig::parse(p, &text)
            .and_then(|k| k.resolve(p))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.ca, Some(Source::File("/etc/kubernetes/ca.pem".into())));
        assert_eq!(
            a.credentials,
            Credentials::ClientCert {
                cert: Source::File("/etc/kubernetes/c.pem".into()),
                key: Source::File("/abs/k.pem".into())
            }
        );
        let bad_ctx = BOOTSTRAP.replace("current-context: default", "current-context: nope");
        let e = Kubeconfig::parse(p, &bad_ctx)
            .and_then(|k| k.resolve(p))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "kubeconfig /etc/kubernetes/x.kubeconfig: context \"nope\" (current-context) is not defined"
            )
        );
        let bad_b64 = BOOTSTRAP.replace("aGVsbG8=", "not*base64");
        assert!(
            Kubeconfig::parse(p, &bad_b64)
                .and_then(|k| k.resolve(p))
                .is_err()
        );
        let e = Kubeconfig::parse(p, "clusters: 5\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("kubeconfig /etc/kubernetes/x.kubeconfig:1: "),
            "{e}"
        );
    }

    #[test]
    fn kubelet_client_kubeconfig_resolves_to_its_cert() {
        let k = Kubeconfig::for_kubelet_client(
            "https://10.0.0.1:6443",
            b"CA",
            Path::new("/etc/kubernetes/cert/kubelet-client-current.pem"),
        );
        let p = Path::new("/etc/kubernetes/kubelet.kubeconfig");
        let back = Kubeconfig::parse(p, &k.to_yaml()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, k);
        let a = back.resolve(p).unwrap_or_else(|e| panic!("{e}"));
        let pem = Source::File("/etc/kubernetes/cert/kubelet-client-current.pem".into());
        assert_eq!(
            a.credentials,
            Credentials::ClientCert {
                cert: pem.clone(),
                key: pem
            }
        );
    }
}
