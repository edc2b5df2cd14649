//! The value types of the file: quantities, thresholds, signals, taints, enums, cipher suites, endpoints, CIDRs and the nested sections.

use super::*;

/// A quantity that deserializes through [`Quantity::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Q(pub Quantity);

impl<'de> Deserialize<'de> for Q {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Kubernetes accepts quantities written as YAML numbers too (`maxSize: 1000`).
        let text = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "expected a quantity such as \"100Mi\", found {}",
                    crate::config::yaml::kind(&other)
                )));
            }
        };
        Quantity::parse(&text)
            .map(Q)
            .map_err(serde::de::Error::custom)
    }
}

/// An eviction threshold value that deserializes through [`ThresholdValue::parse`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct T(pub ThresholdValue);

impl<'de> Deserialize<'de> for T {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ThresholdValue::parse(&s)
            .map(T)
            .map_err(serde::de::Error::custom)
    }
}

/// The eviction signals the kubelet knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Signal {
    #[serde(rename = "memory.available")]
    MemoryAvailable,
    #[serde(rename = "allocatableMemory.available")]
    AllocatableMemoryAvailable,
    #[serde(rename = "nodefs.available")]
    NodefsAvailable,
    #[serde(rename = "nodefs.inodesFree")]
    NodefsInodesFree,
    #[serde(rename = "imagefs.available")]
    ImagefsAvailable,
    #[serde(rename = "imagefs.inodesFree")]
    ImagefsInodesFree,
    #[serde(rename = "containerfs.available")]
    ContainerfsAvailable,
    #[serde(rename = "containerfs.inodesFree")]
    ContainerfsInodesFree,
    #[serde(rename = "pid.available")]
    PidAvailable,
}

impl Signal {
    /// The signal as the configuration and the kubelet's metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::AllocatableMemoryAvailable => "allocatableMemory.available",
            Signal::NodefsAvailable => "nodefs.available",
            Signal::NodefsInodesFree => "nodefs.inodesFree",
            Signal::ImagefsAvailable => "imagefs.available",
            Signal::ImagefsInodesFree => "imagefs.inodesFree",
            Signal::ContainerfsAvailable => "containerfs.available",
            Signal::ContainerfsInodesFree => "containerfs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }
}

/// Resources that `systemReserved`/`kubeReserved` may name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ReservedResource(String);

impl ReservedResource {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ReservedResource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "cpu" | "memory" | "ephemeral-storage" | "pid" => Ok(ReservedResource(s)),
            h if h.starts_with("hugepages-") && Quantity::parse(&h[10..]).is_ok() => {
                Ok(ReservedResource(s))
            }
            _ => Err(serde::de::Error::custom(format!(
                "unsupported resource {s:?}: want cpu, memory, ephemeral-storage, pid or hugepages-<size>"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: TaintEffect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<String>,
}

impl Taint {
    /// Checks key and value like the apiserver (qualified name; label value).
    pub fn validate(&self) -> Result<(), String> {
        crate::config::labels::validate_key(&self.key).map_err(|e| format!("taint key: {e}"))?;
        crate::config::labels::validate_value(&self.value).map_err(|e| format!("taint value: {e}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthorizationMode {
    Webhook,
    AlwaysAllow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Cgroupfs,
    Systemd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HairpinMode {
    #[serde(rename = "promiscuous-bridge")]
    PromiscuousBridge,
    #[serde(rename = "hairpin-veth")]
    HairpinVeth,
    #[serde(rename = "none")]
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsVersion {
    VersionTLS10,
    VersionTLS11,
    VersionTLS12,
    VersionTLS13,
}

/// Cipher suite names as Go's crypto/tls (and so the kubelet's `--tls-cipher-suites`) spell them.
pub const CIPHER_SUITES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_RC4_128_SHA",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CipherSuite(String);

impl CipherSuite {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CipherSuite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if CIPHER_SUITES.contains(&s.as_str()) {
            Ok(CipherSuite(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "unknown cipher suite {s:?}"
            )))
        }
    }
}

/// `containerRuntimeEndpoint`: a unix socket path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RuntimeEndpoint(pub(super) String);

impl RuntimeEndpoint {
    pub fn parse(s: &str) -> Result<RuntimeEndpoint, String> {
        match s.strip_prefix("unix://") {
            Some(p) if p.starts_with('/') && p.len() > 1 => Ok(RuntimeEndpoint(s.to_string())),
            Some(_) => Err(format!("{s:?}: want unix:///absolute/path.sock")),
            None if s.starts_with('/') => Ok(RuntimeEndpoint(format!("unix://{s}"))),
            None => Err(format!(
                "{s:?}: tinylet talks CRI over unix sockets only; want unix:///path/to/socket"
            )),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &str {
        &self.0["unix://".len()..]
    }
}

impl<'de> Deserialize<'de> for RuntimeEndpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RuntimeEndpoint::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An IPv4 or IPv6 CIDR such as `172.30.0.0/16`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Cidr(String);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("invalid CIDR {s:?}: want an address/prefix such as 10.244.0.0/16");
        let (ip, bits) = s.split_once('/').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse().map_err(|_| bad())?;
        let bits: u8 = bits.parse().map_err(|_| bad())?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cidr::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    pub x509: X509Authentication,
    pub webhook: WebhookAuthentication,
    pub anonymous: AnonymousAuthentication,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookAuthentication {
    pub enabled: bool,
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: KubeDuration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AnonymousAuthentication {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Authorization {
    pub mode: AuthorizationMode,
    pub webhook: WebhookAuthorization,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAuthorization {
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: KubeDuration,
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: KubeDuration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Logging {
    pub format: String,
    pub flush_frequency: KubeDuration,
    pub verbosity: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vmodule: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySwap {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub swap_behavior: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShutdownGracePeriodByPriority {
    pub priority: i32,
    pub shutdown_grace_period_seconds: i64,
}

pub type ThresholdMap = BTreeMap<Signal, T>;
pub type ReservedMap = BTreeMap<ReservedResource, Q>;
