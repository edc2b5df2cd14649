//! `KubeletConfiguration` (`kubelet.config.k8s.io/v1beta1`): the typed file, upstream defaults,
//! decoding with every problem located, and the kubelet's cross-field validation.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::duration::KubeDuration;
use super::quantity::{Quantity, ThresholdValue};
use super::yaml::{Ctx, Obj};

pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
pub const KIND: &str = "KubeletConfiguration";

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
                    super::yaml::kind(&other)
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
        super::labels::validate_key(&self.key).map_err(|e| format!("taint key: {e}"))?;
        super::labels::validate_value(&self.value).map_err(|e| format!("taint value: {e}"))
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
pub struct RuntimeEndpoint(String);

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

/// The kubelet's configuration file, with upstream defaults for everything not written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub enable_server: bool,
    pub static_pod_path: String,
    pub pod_logs_dir: String,
    pub sync_frequency: KubeDuration,
    pub file_check_frequency: KubeDuration,
    pub http_check_frequency: KubeDuration,
    #[serde(rename = "staticPodURL")]
    pub static_pod_url: String,
    #[serde(
        rename = "staticPodURLHeader",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub static_pod_url_header: BTreeMap<String, Vec<String>>,
    pub address: IpAddr,
    pub port: u16,
    pub read_only_port: u16,
    pub tls_cert_file: String,
    pub tls_private_key_file: String,
    pub tls_cipher_suites: Vec<CipherSuite>,
    #[serde(rename = "tlsMinVersion", skip_serializing_if = "Option::is_none")]
    pub tls_min_version: Option<TlsVersion>,
    pub rotate_certificates: bool,
    #[serde(rename = "serverTLSBootstrap")]
    pub server_tls_bootstrap: bool,
    pub authentication: Authentication,
    pub authorization: Authorization,
    #[serde(rename = "registryPullQPS")]
    pub registry_pull_qps: i32,
    pub registry_burst: i32,
    #[serde(rename = "eventRecordQPS")]
    pub event_record_qps: i32,
    pub event_burst: i32,
    pub enable_debugging_handlers: bool,
    pub enable_contention_profiling: bool,
    pub healthz_port: u16,
    pub healthz_bind_address: IpAddr,
    pub oom_score_adj: i32,
    pub cluster_domain: String,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<IpAddr>,
    pub streaming_connection_idle_timeout: KubeDuration,
    pub node_status_update_frequency: KubeDuration,
    pub node_status_report_frequency: KubeDuration,
    pub node_lease_duration_seconds: i32,
    #[serde(rename = "imageMinimumGCAge")]
    pub image_minimum_gc_age: KubeDuration,
    #[serde(rename = "imageMaximumGCAge")]
    pub image_maximum_gc_age: KubeDuration,
    #[serde(rename = "imageGCHighThresholdPercent")]
    pub image_gc_high_threshold_percent: i32,
    #[serde(rename = "imageGCLowThresholdPercent")]
    pub image_gc_low_threshold_percent: i32,
    pub volume_stats_agg_period: KubeDuration,
    pub kubelet_cgroups: String,
    pub system_cgroups: String,
    pub cgroup_root: String,
    #[serde(rename = "cgroupsPerQOS")]
    pub cgroups_per_qos: bool,
    pub cgroup_driver: CgroupDriver,
    pub cpu_manager_policy: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_manager_policy_options: BTreeMap<String, String>,
    pub cpu_manager_reconcile_period: KubeDuration,
    pub memory_manager_policy: String,
    pub topology_manager_policy: String,
    pub topology_manager_scope: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub topology_manager_policy_options: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub qos_reserved: BTreeMap<String, String>,
    pub runtime_request_timeout: KubeDuration,
    pub hairpin_mode: HairpinMode,
    pub max_pods: i32,
    #[serde(rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Cidr>,
    pub pod_pids_limit: i64,
    pub resolv_conf: String,
    pub run_once: bool,
    #[serde(rename = "cpuCFSQuota")]
    pub cpu_cfs_quota: bool,
    #[serde(rename = "cpuCFSQuotaPeriod")]
    pub cpu_cfs_quota_period: KubeDuration,
    pub node_status_max_images: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel_image_pulls: Option<i32>,
    pub max_open_files: i64,
    pub content_type: String,
    #[serde(rename = "kubeAPIQPS")]
    pub kube_api_qps: i32,
    #[serde(rename = "kubeAPIBurst")]
    pub kube_api_burst: i32,
    pub serialize_image_pulls: bool,
    pub eviction_hard: ThresholdMap,
    pub eviction_soft: ThresholdMap,
    pub eviction_soft_grace_period: BTreeMap<Signal, KubeDuration>,
    pub eviction_pressure_transition_period: KubeDuration,
    pub eviction_max_pod_grace_period: i32,
    pub eviction_minimum_reclaim: ThresholdMap,
    pub pods_per_core: i32,
    pub enable_controller_attach_detach: bool,
    pub protect_kernel_defaults: bool,
    #[serde(rename = "makeIPTablesUtilChains")]
    pub make_iptables_util_chains: bool,
    #[serde(rename = "iptablesMasqueradeBit")]
    pub iptables_masquerade_bit: i32,
    #[serde(rename = "iptablesDropBit")]
    pub iptables_drop_bit: i32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    pub fail_swap_on: bool,
    pub memory_swap: MemorySwap,
    pub container_log_max_size: Q,
    pub container_log_max_files: i32,
    pub container_log_max_workers: i32,
    pub container_log_monitor_interval: KubeDuration,
    pub config_map_and_secret_change_detection_strategy: String,
    pub system_reserved: ReservedMap,
    pub kube_reserved: ReservedMap,
    #[serde(rename = "reservedSystemCPUs")]
    pub reserved_system_cpus: String,
    pub show_hidden_metrics_for_version: String,
    pub system_reserved_cgroup: String,
    pub kube_reserved_cgroup: String,
    pub enforce_node_allocatable: Vec<String>,
    pub allowed_unsafe_sysctls: Vec<String>,
    pub volume_plugin_dir: String,
    #[serde(rename = "providerID")]
    pub provider_id: String,
    pub kernel_memcg_notification: bool,
    pub logging: Logging,
    pub enable_system_log_handler: bool,
    pub enable_system_log_query: bool,
    pub shutdown_grace_period: KubeDuration,
    pub shutdown_grace_period_critical_pods: KubeDuration,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shutdown_grace_period_by_pod_priority: Vec<ShutdownGracePeriodByPriority>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crash_loop_back_off: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_memory: Option<Value>,
    pub enable_profiling_handler: bool,
    pub enable_debug_flags_handler: bool,
    pub seccomp_default: bool,
    pub memory_throttling_factor: f64,
    pub register_with_taints: Vec<Taint>,
    pub register_node: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Value>,
    pub local_storage_capacity_isolation: bool,
    pub container_runtime_endpoint: RuntimeEndpoint,
    pub image_service_endpoint: String,
    pub fail_cgroup_v1: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_process_oom_kill: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_namespaces: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_default_eviction_settings: Option<bool>,
}

fn d(s: u64) -> KubeDuration {
    KubeDuration::secs(s)
}

/// `evictionHard` when the file does not set it (pkg/kubelet/apis/config/v1beta1/defaults.go).
pub fn default_eviction_hard() -> ThresholdMap {
    BTreeMap::from([
        (
            Signal::MemoryAvailable,
            T(ThresholdValue::Quantity(Quantity::mebibytes(100))),
        ),
        (Signal::NodefsAvailable, T(ThresholdValue::Percentage(10.0))),
        (Signal::NodefsInodesFree, T(ThresholdValue::Percentage(5.0))),
        (
            Signal::ImagefsAvailable,
            T(ThresholdValue::Percentage(15.0)),
        ),
    ])
}

impl Default for KubeletConfiguration {
    /// Upstream's v1beta1 defaults.
    fn default() -> Self {
        KubeletConfiguration {
            enable_server: true,
            static_pod_path: String::new(),
            pod_logs_dir: "/var/log/pods".into(),
            sync_frequency: d(60),
            file_check_frequency: d(20),
            http_check_frequency: d(20),
            static_pod_url: String::new(),
            static_pod_url_header: BTreeMap::new(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 10250,
            read_only_port: 0,
            tls_cert_file: String::new(),
            tls_private_key_file: String::new(),
            tls_cipher_suites: Vec::new(),
            tls_min_version: None,
            rotate_certificates: false,
            server_tls_bootstrap: false,
            authentication: Authentication {
                x509: X509Authentication::default(),
                webhook: WebhookAuthentication {
                    enabled: true,
                    cache_ttl: d(120),
                },
                anonymous: AnonymousAuthentication { enabled: false },
            },
            authorization: Authorization {
                mode: AuthorizationMode::Webhook,
                webhook: WebhookAuthorization {
                    cache_authorized_ttl: d(300),
                    cache_unauthorized_ttl: d(30),
                },
            },
            registry_pull_qps: 5,
            registry_burst: 10,
            event_record_qps: 50,
            event_burst: 100,
            enable_debugging_handlers: true,
            enable_contention_profiling: false,
            healthz_port: 10248,
            healthz_bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            oom_score_adj: -999,
            cluster_domain: String::new(),
            cluster_dns: Vec::new(),
            streaming_connection_idle_timeout: d(4 * 3600),
            node_status_update_frequency: d(10),
            node_status_report_frequency: d(300),
            node_lease_duration_seconds: 40,
            image_minimum_gc_age: d(120),
            image_maximum_gc_age: d(0),
            image_gc_high_threshold_percent: 85,
            image_gc_low_threshold_percent: 80,
            volume_stats_agg_period: d(60),
            kubelet_cgroups: String::new(),
            system_cgroups: String::new(),
            cgroup_root: String::new(),
            cgroups_per_qos: true,
            cgroup_driver: CgroupDriver::Cgroupfs,
            cpu_manager_policy: "none".into(),
            cpu_manager_policy_options: BTreeMap::new(),
            cpu_manager_reconcile_period: d(10),
            memory_manager_policy: "None".into(),
            topology_manager_policy: "none".into(),
            topology_manager_scope: "container".into(),
            topology_manager_policy_options: BTreeMap::new(),
            qos_reserved: BTreeMap::new(),
            runtime_request_timeout: d(120),
            hairpin_mode: HairpinMode::PromiscuousBridge,
            max_pods: 110,
            pod_cidr: None,
            pod_pids_limit: -1,
            resolv_conf: "/etc/resolv.conf".into(),
            run_once: false,
            cpu_cfs_quota: true,
            cpu_cfs_quota_period: KubeDuration(std::time::Duration::from_millis(100)),
            node_status_max_images: 50,
            max_parallel_image_pulls: None,
            max_open_files: 1_000_000,
            content_type: "application/vnd.kubernetes.protobuf".into(),
            kube_api_qps: 50,
            kube_api_burst: 100,
            serialize_image_pulls: true,
            eviction_hard: default_eviction_hard(),
            eviction_soft: BTreeMap::new(),
            eviction_soft_grace_period: BTreeMap::new(),
            eviction_pressure_transition_period: d(300),
            eviction_max_pod_grace_period: 0,
            eviction_minimum_reclaim: BTreeMap::new(),
            pods_per_core: 0,
            enable_controller_attach_detach: true,
            protect_kernel_defaults: false,
            make_iptables_util_chains: true,
            iptables_masquerade_bit: 14,
            iptables_drop_bit: 15,
            feature_gates: BTreeMap::new(),
            fail_swap_on: true,
            memory_swap: MemorySwap::default(),
            container_log_max_size: Q(Quantity::mebibytes(10)),
            container_log_max_files: 5,
            container_log_max_workers: 1,
            container_log_monitor_interval: d(10),
            config_map_and_secret_change_detection_strategy: "Watch".into(),
            system_reserved: BTreeMap::new(),
            kube_reserved: BTreeMap::new(),
            reserved_system_cpus: String::new(),
            show_hidden_metrics_for_version: String::new(),
            system_reserved_cgroup: String::new(),
            kube_reserved_cgroup: String::new(),
            enforce_node_allocatable: vec!["pods".into()],
            allowed_unsafe_sysctls: Vec::new(),
            volume_plugin_dir: "/usr/libexec/kubernetes/kubelet-plugins/volume/exec/".into(),
            provider_id: String::new(),
            kernel_memcg_notification: false,
            logging: Logging {
                format: "text".into(),
                flush_frequency: d(5),
                verbosity: 0,
                vmodule: None,
                options: None,
            },
            enable_system_log_handler: true,
            enable_system_log_query: false,
            shutdown_grace_period: d(0),
            shutdown_grace_period_critical_pods: d(0),
            shutdown_grace_period_by_pod_priority: Vec::new(),
            crash_loop_back_off: None,
            reserved_memory: None,
            enable_profiling_handler: true,
            enable_debug_flags_handler: true,
            seccomp_default: false,
            memory_throttling_factor: 0.9,
            register_with_taints: Vec::new(),
            register_node: true,
            tracing: None,
            local_storage_capacity_isolation: true,
            container_runtime_endpoint: RuntimeEndpoint(
                "unix:///run/containerd/containerd.sock".into(),
            ),
            image_service_endpoint: String::new(),
            fail_cgroup_v1: false,
            single_process_oom_kill: None,
            user_namespaces: None,
            merge_default_eviction_settings: None,
        }
    }
}

/// Every top-level field name, in upstream's order.
pub const FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "enableServer",
    "staticPodPath",
    "podLogsDir",
    "syncFrequency",
    "fileCheckFrequency",
    "httpCheckFrequency",
    "staticPodURL",
    "staticPodURLHeader",
    "address",
    "port",
    "readOnlyPort",
    "tlsCertFile",
    "tlsPrivateKeyFile",
    "tlsCipherSuites",
    "tlsMinVersion",
    "rotateCertificates",
    "serverTLSBootstrap",
    "authentication",
    "authorization",
    "registryPullQPS",
    "registryBurst",
    "eventRecordQPS",
    "eventBurst",
    "enableDebuggingHandlers",
    "enableContentionProfiling",
    "healthzPort",
    "healthzBindAddress",
    "oomScoreAdj",
    "clusterDomain",
    "clusterDNS",
    "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency",
    "nodeStatusReportFrequency",
    "nodeLeaseDurationSeconds",
    "imageMinimumGCAge",
    "imageMaximumGCAge",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "volumeStatsAggPeriod",
    "kubeletCgroups",
    "systemCgroups",
    "cgroupRoot",
    "cgroupsPerQOS",
    "cgroupDriver",
    "cpuManagerPolicy",
    "cpuManagerPolicyOptions",
    "cpuManagerReconcilePeriod",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "topologyManagerPolicyOptions",
    "qosReserved",
    "runtimeRequestTimeout",
    "hairpinMode",
    "maxPods",
    "podCIDR",
    "podPidsLimit",
    "resolvConf",
    "runOnce",
    "cpuCFSQuota",
    "cpuCFSQuotaPeriod",
    "nodeStatusMaxImages",
    "maxParallelImagePulls",
    "maxOpenFiles",
    "contentType",
    "kubeAPIQPS",
    "kubeAPIBurst",
    "serializeImagePulls",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod",
    "evictionMinimumReclaim",
    "mergeDefaultEvictionSettings",
    "podsPerCore",
    "enableControllerAttachDetach",
    "protectKernelDefaults",
    "makeIPTablesUtilChains",
    "iptablesMasqueradeBit",
    "iptablesDropBit",
    "featureGates",
    "failSwapOn",
    "memorySwap",
    "containerLogMaxSize",
    "containerLogMaxFiles",
    "containerLogMaxWorkers",
    "containerLogMonitorInterval",
    "configMapAndSecretChangeDetectionStrategy",
    "systemReserved",
    "kubeReserved",
    "reservedSystemCPUs",
    "showHiddenMetricsForVersion",
    "systemReservedCgroup",
    "kubeReservedCgroup",
    "enforceNodeAllocatable",
    "allowedUnsafeSysctls",
    "volumePluginDir",
    "providerID",
    "kernelMemcgNotification",
    "logging",
    "enableSystemLogHandler",
    "enableSystemLogQuery",
    "shutdownGracePeriod",
    "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority",
    "crashLoopBackOff",
    "reservedMemory",
    "enableProfilingHandler",
    "enableDebugFlagsHandler",
    "seccompDefault",
    "memoryThrottlingFactor",
    "registerWithTaints",
    "registerNode",
    "tracing",
    "localStorageCapacityIsolation",
    "containerRuntimeEndpoint",
    "imageServiceEndpoint",
    "failCgroupV1",
    "singleProcessOOMKill",
    "userNamespaces",
];

/// Decodes the top-level mapping of a config file onto the defaults.
pub fn decode(ctx: &mut Ctx, mut m: Obj) -> KubeletConfiguration {
    let mut c = KubeletConfiguration::default();
    match ctx.take::<String>(&mut m, "apiVersion").as_deref() {
        Some(API_VERSION) => {}
        Some(other) => ctx.invalid(
            "apiVersion",
            format!("{other:?} is not supported; want {API_VERSION:?}"),
        ),
        None => ctx.invalid("apiVersion", format!("missing; want {API_VERSION:?}")),
    }
    match ctx.take::<String>(&mut m, "kind").as_deref() {
        Some(KIND) => {}
        Some(other) => ctx.invalid("kind", format!("{other:?} is not supported; want {KIND:?}")),
        None => ctx.invalid("kind", format!("missing; want {KIND:?}")),
    }
    ctx.set(&mut m, "enableServer", &mut c.enable_server);
    ctx.set(&mut m, "staticPodPath", &mut c.static_pod_path);
    ctx.set(&mut m, "podLogsDir", &mut c.pod_logs_dir);
    ctx.set(&mut m, "syncFrequency", &mut c.sync_frequency);
    ctx.set(&mut m, "fileCheckFrequency", &mut c.file_check_frequency);
    ctx.set(&mut m, "httpCheckFrequency", &mut c.http_check_frequency);
    ctx.set(&mut m, "staticPodURL", &mut c.static_pod_url);
    ctx.set_map(&mut m, "staticPodURLHeader", &mut c.static_pod_url_header);
    ctx.set(&mut m, "address", &mut c.address);
    ctx.set(&mut m, "port", &mut c.port);
    ctx.set(&mut m, "readOnlyPort", &mut c.read_only_port);
    ctx.set(&mut m, "tlsCertFile", &mut c.tls_cert_file);
    ctx.set(&mut m, "tlsPrivateKeyFile", &mut c.tls_private_key_file);
    ctx.set(&mut m, "tlsCipherSuites", &mut c.tls_cipher_suites);
    if let Some(v) = ctx.take(&mut m, "tlsMinVersion") {
        c.tls_min_version = Some(v);
    }
    ctx.set(&mut m, "rotateCertificates", &mut c.rotate_certificates);
    ctx.set(&mut m, "serverTLSBootstrap", &mut c.server_tls_bootstrap);
    if let Some(mut a) = ctx.obj(&mut m, "authentication") {
        if let Some(mut x) = ctx.obj(&mut a, "x509") {
            ctx.set(
                &mut x,
                "clientCAFile",
                &mut c.authentication.x509.client_ca_file,
            );
            ctx.finish(x, &["clientCAFile"]);
        }
        if let Some(mut w) = ctx.obj(&mut a, "webhook") {
            ctx.set(&mut w, "enabled", &mut c.authentication.webhook.enabled);
            ctx.set(&mut w, "cacheTTL", &mut c.authentication.webhook.cache_ttl);
            ctx.finish(w, &["enabled", "cacheTTL"]);
        }
        if let Some(mut an) = ctx.obj(&mut a, "anonymous") {
            ctx.set(&mut an, "enabled", &mut c.authentication.anonymous.enabled);
            ctx.finish(an, &["enabled"]);
        }
        ctx.finish(a, &["x509", "webhook", "anonymous"]);
    }
    if let Some(mut a) = ctx.obj(&mut m, "authorization") {
        ctx.set(&mut a, "mode", &mut c.authorization.mode);
        if let Some(mut w) = ctx.obj(&mut a, "webhook") {
            let ww = &mut c.authorization.webhook;
            ctx.set(&mut w, "cacheAuthorizedTTL", &mut ww.cache_authorized_ttl);
            ctx.set(
                &mut w,
                "cacheUnauthorizedTTL",
                &mut ww.cache_unauthorized_ttl,
            );
            ctx.finish(w, &["cacheAuthorizedTTL", "cacheUnauthorizedTTL"]);
        }
        ctx.finish(a, &["mode", "webhook"]);
    }
    ctx.set(&mut m, "registryPullQPS", &mut c.registry_pull_qps);
    ctx.set(&mut m, "registryBurst", &mut c.registry_burst);
    ctx.set(&mut m, "eventRecordQPS", &mut c.event_record_qps);
    ctx.set(&mut m, "eventBurst", &mut c.event_burst);
    ctx.set(
        &mut m,
        "enableDebuggingHandlers",
        &mut c.enable_debugging_handlers,
    );
    ctx.set(
        &mut m,
        "enableContentionProfiling",
        &mut c.enable_contention_profiling,
    );
    ctx.set(&mut m, "healthzPort", &mut c.healthz_port);
    ctx.set(&mut m, "healthzBindAddress", &mut c.healthz_bind_address);
    ctx.set(&mut m, "oomScoreAdj", &mut c.oom_score_adj);
    ctx.set(&mut m, "clusterDomain", &mut c.cluster_domain);
    ctx.set(&mut m, "clusterDNS", &mut c.cluster_dns);
    ctx.set(
        &mut m,
        "streamingConnectionIdleTimeout",
        &mut c.streaming_connection_idle_timeout,
    );
    ctx.set(
        &mut m,
        "nodeStatusUpdateFrequency",
        &mut c.node_status_update_frequency,
    );
    ctx.set(
        &mut m,
        "nodeStatusReportFrequency",
        &mut c.node_status_report_frequency,
    );
    ctx.set(
        &mut m,
        "nodeLeaseDurationSeconds",
        &mut c.node_lease_duration_seconds,
    );
    ctx.set(&mut m, "imageMinimumGCAge", &mut c.image_minimum_gc_age);
    ctx.set(&mut m, "imageMaximumGCAge", &mut c.image_maximum_gc_age);
    ctx.set(
        &mut m,
        "imageGCHighThresholdPercent",
        &mut c.image_gc_high_threshold_percent,
    );
    ctx.set(
        &mut m,
        "imageGCLowThresholdPercent",
        &mut c.image_gc_low_threshold_percent,
    );
    ctx.set(
        &mut m,
        "volumeStatsAggPeriod",
        &mut c.volume_stats_agg_period,
    );
    ctx.set(&mut m, "kubeletCgroups", &mut c.kubelet_cgroups);
    ctx.set(&mut m, "systemCgroups", &mut c.system_cgroups);
    ctx.set(&mut m, "cgroupRoot", &mut c.cgroup_root);
    ctx.set(&mut m, "cgroupsPerQOS", &mut c.cgroups_per_qos);
    ctx.set(&mut m, "cgroupDriver", &mut c.cgroup_driver);
    ctx.set(&mut m, "cpuManagerPolicy", &mut c.cpu_manager_policy);
    ctx.set_map(
        &mut m,
        "cpuManagerPolicyOptions",
        &mut c.cpu_manager_policy_options,
    );
    ctx.set(
        &mut m,
        "cpuManagerReconcilePeriod",
        &mut c.cpu_manager_reconcile_period,
    );
    ctx.set(&mut m, "memoryManagerPolicy", &mut c.memory_manager_policy);
    ctx.set(
        &mut m,
        "topologyManagerPolicy",
        &mut c.topology_manager_policy,
    );
    ctx.set(
        &mut m,
        "topologyManagerScope",
        &mut c.topology_manager_scope,
    );
    ctx.set_map(
        &mut m,
        "topologyManagerPolicyOptions",
        &mut c.topology_manager_policy_options,
    );
    ctx.set_map(&mut m, "qosReserved", &mut c.qos_reserved);
    ctx.set(
        &mut m,
        "runtimeRequestTimeout",
        &mut c.runtime_request_timeout,
    );
    ctx.set(&mut m, "hairpinMode", &mut c.hairpin_mode);
    ctx.set(&mut m, "maxPods", &mut c.max_pods);
    if let Some((path, v)) = ctx.raw(&mut m, "podCIDR") {
        // An empty string is upstream's "unset".
        if v.as_str() != Some("") {
            c.pod_cidr = ctx.decode(&path, v);
        }
    }
    ctx.set(&mut m, "podPidsLimit", &mut c.pod_pids_limit);
    ctx.set(&mut m, "resolvConf", &mut c.resolv_conf);
    ctx.set(&mut m, "runOnce", &mut c.run_once);
    ctx.set(&mut m, "cpuCFSQuota", &mut c.cpu_cfs_quota);
    ctx.set(&mut m, "cpuCFSQuotaPeriod", &mut c.cpu_cfs_quota_period);
    ctx.set(&mut m, "nodeStatusMaxImages", &mut c.node_status_max_images);
    if let Some(v) = ctx.take(&mut m, "maxParallelImagePulls") {
        c.max_parallel_image_pulls = Some(v);
    }
    ctx.set(&mut m, "maxOpenFiles", &mut c.max_open_files);
    ctx.set(&mut m, "contentType", &mut c.content_type);
    ctx.set(&mut m, "kubeAPIQPS", &mut c.kube_api_qps);
    ctx.set(&mut m, "kubeAPIBurst", &mut c.kube_api_burst);
    ctx.set(&mut m, "serializeImagePulls", &mut c.serialize_image_pulls);
    ctx.set_map(&mut m, "evictionHard", &mut c.eviction_hard);
    ctx.set_map(&mut m, "evictionSoft", &mut c.eviction_soft);
    ctx.set_map(
        &mut m,
        "evictionSoftGracePeriod",
        &mut c.eviction_soft_grace_period,
    );
    ctx.set(
        &mut m,
        "evictionPressureTransitionPeriod",
        &mut c.eviction_pressure_transition_period,
    );
    ctx.set(
        &mut m,
        "evictionMaxPodGracePeriod",
        &mut c.eviction_max_pod_grace_period,
    );
    ctx.set_map(
        &mut m,
        "evictionMinimumReclaim",
        &mut c.eviction_minimum_reclaim,
    );
    if let Some(v) = ctx.take(&mut m, "mergeDefaultEvictionSettings") {
        c.merge_default_eviction_settings = Some(v);
    }
    ctx.set(&mut m, "podsPerCore", &mut c.pods_per_core);
    ctx.set(
        &mut m,
        "enableControllerAttachDetach",
        &mut c.enable_controller_attach_detach,
    );
    ctx.set(
        &mut m,
        "protectKernelDefaults",
        &mut c.protect_kernel_defaults,
    );
    ctx.set(
        &mut m,
        "makeIPTablesUtilChains",
        &mut c.make_iptables_util_chains,
    );
    ctx.set(
        &mut m,
        "iptablesMasqueradeBit",
        &mut c.iptables_masquerade_bit,
    );
    ctx.set(&mut m, "iptablesDropBit", &mut c.iptables_drop_bit);
    ctx.set_map(&mut m, "featureGates", &mut c.feature_gates);
    ctx.set(&mut m, "failSwapOn", &mut c.fail_swap_on);
    if let Some(mut s) = ctx.obj(&mut m, "memorySwap") {
        ctx.set(&mut s, "swapBehavior", &mut c.memory_swap.swap_behavior);
        ctx.finish(s, &["swapBehavior"]);
    }
    ctx.set(&mut m, "containerLogMaxSize", &mut c.container_log_max_size);
    ctx.set(
        &mut m,
        "containerLogMaxFiles",
        &mut c.container_log_max_files,
    );
    ctx.set(
        &mut m,
        "containerLogMaxWorkers",
        &mut c.container_log_max_workers,
    );
    ctx.set(
        &mut m,
        "containerLogMonitorInterval",
        &mut c.container_log_monitor_interval,
    );
    ctx.set(
        &mut m,
        "configMapAndSecretChangeDetectionStrategy",
        &mut c.config_map_and_secret_change_detection_strategy,
    );
    ctx.set_map(&mut m, "systemReserved", &mut c.system_reserved);
    ctx.set_map(&mut m, "kubeReserved", &mut c.kube_reserved);
    ctx.set(&mut m, "reservedSystemCPUs", &mut c.reserved_system_cpus);
    ctx.set(
        &mut m,
        "showHiddenMetricsForVersion",
        &mut c.show_hidden_metrics_for_version,
    );
    ctx.set(
        &mut m,
        "systemReservedCgroup",
        &mut c.system_reserved_cgroup,
    );
    ctx.set(&mut m, "kubeReservedCgroup", &mut c.kube_reserved_cgroup);
    ctx.set(
        &mut m,
        "enforceNodeAllocatable",
        &mut c.enforce_node_allocatable,
    );
    ctx.set(
        &mut m,
        "allowedUnsafeSysctls",
        &mut c.allowed_unsafe_sysctls,
    );
    ctx.set(&mut m, "volumePluginDir", &mut c.volume_plugin_dir);
    ctx.set(&mut m, "providerID", &mut c.provider_id);
    ctx.set(
        &mut m,
        "kernelMemcgNotification",
        &mut c.kernel_memcg_notification,
    );
    if let Some(mut l) = ctx.obj(&mut m, "logging") {
        ctx.set(&mut l, "format", &mut c.logging.format);
        ctx.set(&mut l, "flushFrequency", &mut c.logging.flush_frequency);
        ctx.set(&mut l, "verbosity", &mut c.logging.verbosity);
        c.logging.vmodule = ctx.raw(&mut l, "vmodule").map(|(_, v)| v);
        c.logging.options = ctx.raw(&mut l, "options").map(|(_, v)| v);
        ctx.finish(
            l,
            &[
                "format",
                "flushFrequency",
                "verbosity",
                "vmodule",
                "options",
            ],
        );
    }
    ctx.set(
        &mut m,
        "enableSystemLogHandler",
        &mut c.enable_system_log_handler,
    );
    ctx.set(
        &mut m,
        "enableSystemLogQuery",
        &mut c.enable_system_log_query,
    );
    ctx.set(&mut m, "shutdownGracePeriod", &mut c.shutdown_grace_period);
    ctx.set(
        &mut m,
        "shutdownGracePeriodCriticalPods",
        &mut c.shutdown_grace_period_critical_pods,
    );
    ctx.set(
        &mut m,
        "shutdownGracePeriodByPodPriority",
        &mut c.shutdown_grace_period_by_pod_priority,
    );
    c.crash_loop_back_off = ctx.raw(&mut m, "crashLoopBackOff").map(|(_, v)| v);
    c.reserved_memory = ctx.raw(&mut m, "reservedMemory").map(|(_, v)| v);
    ctx.set(
        &mut m,
        "enableProfilingHandler",
        &mut c.enable_profiling_handler,
    );
    ctx.set(
        &mut m,
        "enableDebugFlagsHandler",
        &mut c.enable_debug_flags_handler,
    );
    ctx.set(&mut m, "seccompDefault", &mut c.seccomp_default);
    ctx.set(
        &mut m,
        "memoryThrottlingFactor",
        &mut c.memory_throttling_factor,
    );
    ctx.set(&mut m, "registerWithTaints", &mut c.register_with_taints);
    ctx.set(&mut m, "registerNode", &mut c.register_node);
    c.tracing = ctx.raw(&mut m, "tracing").map(|(_, v)| v);
    ctx.set(
        &mut m,
        "localStorageCapacityIsolation",
        &mut c.local_storage_capacity_isolation,
    );
    ctx.set(
        &mut m,
        "containerRuntimeEndpoint",
        &mut c.container_runtime_endpoint,
    );
    ctx.set(
        &mut m,
        "imageServiceEndpoint",
        &mut c.image_service_endpoint,
    );
    ctx.set(&mut m, "failCgroupV1", &mut c.fail_cgroup_v1);
    if let Some(v) = ctx.take(&mut m, "singleProcessOOMKill") {
        c.single_process_oom_kill = Some(v);
    }
    c.user_namespaces = ctx.raw(&mut m, "userNamespaces").map(|(_, v)| v);
    ctx.finish(m, FIELDS);
    c
}

/// The kubelet's `ValidateKubeletConfiguration` rules that apply to what tinylet reads.
/// Each failure names the field it is about.
pub fn validate(c: &KubeletConfiguration) -> Vec<(&'static str, String)> {
    let mut errs: Vec<(&'static str, String)> = Vec::new();
    let mut check = |ok: bool, field: &'static str, msg: String| {
        if !ok {
            errs.push((field, msg));
        }
    };
    check(c.port != 0, "port", "must be between 1 and 65535".into());
    for p in &c.allowed_unsafe_sysctls {
        if let Err(e) = crate::pods::sysctls::check_pattern(p) {
            check(false, "allowedUnsafeSysctls", e);
        }
    }
    for (field, v) in [
        ("registryPullQPS", c.registry_pull_qps),
        ("registryBurst", c.registry_burst),
        ("eventRecordQPS", c.event_record_qps),
        ("eventBurst", c.event_burst),
        ("kubeAPIQPS", c.kube_api_qps),
        ("kubeAPIBurst", c.kube_api_burst),
        ("maxPods", c.max_pods),
        ("podsPerCore", c.pods_per_core),
        ("evictionMaxPodGracePeriod", c.eviction_max_pod_grace_period),
    ] {
        check(v >= 0, field, format!("{v} must not be negative"));
    }
    check(
        (-1000..=1000).contains(&c.oom_score_adj),
        "oomScoreAdj",
        format!("{} must be between -1000 and 1000", c.oom_score_adj),
    );
    check(
        c.node_status_update_frequency.as_std() > std::time::Duration::ZERO,
        "nodeStatusUpdateFrequency",
        "must be greater than 0".into(),
    );
    check(
        c.node_status_report_frequency.as_std() > std::time::Duration::ZERO,
        "nodeStatusReportFrequency",
        "must be greater than 0".into(),
    );
    check(
        c.node_lease_duration_seconds > 0,
        "nodeLeaseDurationSeconds",
        format!("{} must be greater than 0", c.node_lease_duration_seconds),
    );
    for (field, v) in [
        (
            "imageGCHighThresholdPercent",
            c.image_gc_high_threshold_percent,
        ),
        (
            "imageGCLowThresholdPercent",
            c.image_gc_low_threshold_percent,
        ),
    ] {
        check(
            (0..=100).contains(&v),
            field,
            format!("{v} must be between 0 and 100"),
        );
    }
    check(
        c.image_gc_low_threshold_percent < c.image_gc_high_threshold_percent,
        "imageGCLowThresholdPercent",
        format!(
            "{} must be less than imageGCHighThresholdPercent ({})",
            c.image_gc_low_threshold_percent, c.image_gc_high_threshold_percent
        ),
    );
    let ms = |d: KubeDuration| d.as_std().as_millis();
    check(
        (1..=1000).contains(&ms(c.cpu_cfs_quota_period)),
        "cpuCFSQuotaPeriod",
        format!("{} must be between 1ms and 1s", c.cpu_cfs_quota_period),
    );
    check(
        c.node_status_max_images >= -1,
        "nodeStatusMaxImages",
        format!("{} must be -1 or greater", c.node_status_max_images),
    );
    if let Some(n) = c.max_parallel_image_pulls {
        check(
            n >= 1,
            "maxParallelImagePulls",
            format!("{n} must be 1 or greater"),
        );
        check(
            n == 1 || !c.serialize_image_pulls,
            "maxParallelImagePulls",
            "must be 1 or unset when serializeImagePulls is true".into(),
        );
    }
    check(
        c.container_log_max_files > 1,
        "containerLogMaxFiles",
        format!("{} must be greater than 1", c.container_log_max_files),
    );
    check(
        c.container_log_max_size.0.nanos() > 0,
        "containerLogMaxSize",
        format!("{} must be greater than 0", c.container_log_max_size.0),
    );
    check(
        c.container_log_max_workers >= 1,
        "containerLogMaxWorkers",
        "must be 1 or greater".into(),
    );
    for (field, reserved) in [
        ("systemReserved", &c.system_reserved),
        ("kubeReserved", &c.kube_reserved),
    ] {
        for (name, q) in reserved {
            check(
                !q.0.is_negative(),
                field,
                format!("{}: {} must not be negative", name.as_str(), q.0),
            );
        }
    }
    for signal in c.eviction_soft.keys() {
        check(
            c.eviction_soft_grace_period.contains_key(signal),
            "evictionSoft",
            format!(
                "grace period must be specified for the soft eviction threshold {}",
                signal_name(*signal)
            ),
        );
    }
    check(
        c.memory_throttling_factor > 0.0 && c.memory_throttling_factor <= 1.0,
        "memoryThrottlingFactor",
        format!(
            "{} must be greater than 0 and at most 1.0",
            c.memory_throttling_factor
        ),
    );
    check(
        c.shutdown_grace_period_critical_pods <= c.shutdown_grace_period,
        "shutdownGracePeriodCriticalPods",
        format!(
            "{} must not exceed shutdownGracePeriod ({})",
            c.shutdown_grace_period_critical_pods, c.shutdown_grace_period
        ),
    );
    check(
        c.shutdown_grace_period_by_pod_priority.is_empty()
            || c.shutdown_grace_period.as_std().is_zero(),
        "shutdownGracePeriodByPodPriority",
        "cannot be used together with shutdownGracePeriod".into(),
    );
    check(
        c.iptables_masquerade_bit >= 0 && c.iptables_masquerade_bit <= 31,
        "iptablesMasqueradeBit",
        "must be between 0 and 31".into(),
    );
    check(
        c.iptables_drop_bit >= 0 && c.iptables_drop_bit <= 31,
        "iptablesDropBit",
        "must be between 0 and 31".into(),
    );
    check(
        c.iptables_drop_bit != c.iptables_masquerade_bit,
        "iptablesDropBit",
        "must be different from iptablesMasqueradeBit".into(),
    );
    check(
        matches!(c.logging.format.as_str(), "text" | "json"),
        "logging.format",
        format!("{:?}: want \"text\" or \"json\"", c.logging.format),
    );
    check(
        matches!(
            c.config_map_and_secret_change_detection_strategy.as_str(),
            "Get" | "Cache" | "Watch"
        ),
        "configMapAndSecretChangeDetectionStrategy",
        format!(
            "{:?}: want Get, Cache or Watch",
            c.config_map_and_secret_change_detection_strategy
        ),
    );
    check(
        matches!(c.cpu_manager_policy.as_str(), "none" | "static"),
        "cpuManagerPolicy",
        format!("{:?}: want none or static", c.cpu_manager_policy),
    );
    check(
        matches!(c.topology_manager_scope.as_str(), "container" | "pod"),
        "topologyManagerScope",
        format!("{:?}: want container or pod", c.topology_manager_scope),
    );
    check(
        matches!(
            c.topology_manager_policy.as_str(),
            "none" | "best-effort" | "restricted" | "single-numa-node"
        ),
        "topologyManagerPolicy",
        format!(
            "{:?}: want none, best-effort, restricted or single-numa-node",
            c.topology_manager_policy
        ),
    );
    check(
        matches!(c.memory_manager_policy.as_str(), "None" | "Static"),
        "memoryManagerPolicy",
        format!("{:?}: want None or Static", c.memory_manager_policy),
    );
    let ena = &c.enforce_node_allocatable;
    for v in ena {
        match v.as_str() {
            "pods" | "none" => {}
            "system-reserved" => check(
                !c.system_reserved_cgroup.is_empty(),
                "enforceNodeAllocatable",
                "system-reserved requires systemReservedCgroup to be set".into(),
            ),
            "kube-reserved" => check(
                !c.kube_reserved_cgroup.is_empty(),
                "enforceNodeAllocatable",
                "kube-reserved requires kubeReservedCgroup to be set".into(),
            ),
            other => check(
                false,
                "enforceNodeAllocatable",
                format!("{other:?}: want pods, system-reserved, kube-reserved or none"),
            ),
        }
    }
    check(
        !(ena.len() > 1 && ena.iter().any(|v| v == "none")),
        "enforceNodeAllocatable",
        "\"none\" cannot be combined with other values".into(),
    );
    check(
        c.cgroups_per_qos || ena.iter().all(|v| v == "none"),
        "enforceNodeAllocatable",
        "is not supported unless cgroupsPerQOS is true".into(),
    );
    if let Some(v) = c.tls_min_version {
        check(
            v != TlsVersion::VersionTLS13 || c.tls_cipher_suites.is_empty(),
            "tlsCipherSuites",
            "cannot be set when tlsMinVersion is VersionTLS13 (TLS 1.3 suites are not configurable)"
                .into(),
        );
    }
    check(
        c.tls_cert_file.is_empty() == c.tls_private_key_file.is_empty(),
        "tlsPrivateKeyFile",
        "tlsCertFile and tlsPrivateKeyFile must be set together".into(),
    );
    if !c.cluster_domain.is_empty()
        && let Err(e) =
            super::labels::validate_dns_subdomain(c.cluster_domain.trim_end_matches('.'))
    {
        check(false, "clusterDomain", e);
    }
    for (i, t) in c.register_with_taints.iter().enumerate() {
        if let Err(e) = t.validate() {
            check(false, "registerWithTaints", format!("[{i}]: {e}"));
        }
    }
    errs
}

pub fn signal_name(s: Signal) -> String {
    serde_yaml::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_print_like_upstream() {
        let hard = default_eviction_hard();
        let printed: Vec<String> = hard.values().map(|t| t.0.to_string()).collect();
        assert_eq!(printed, ["100Mi", "10%", "5%", "15%"]);
        assert_eq!(
            Quantity::mebibytes(10),
            Quantity::parse("10Mi").unwrap_or_else(|e| panic!("{e}"))
        );
        assert!(validate(&KubeletConfiguration::default()).is_empty());
    }

    #[test]
    fn field_list_matches_serialized_names() {
        let v = match serde_yaml::to_value(KubeletConfiguration::default()) {
            Ok(Value::Mapping(m)) => m,
            other => panic!("{other:?}"),
        };
        for k in v.keys() {
            let k = k.as_str().unwrap_or_default();
            assert!(FIELDS.contains(&k), "{k} serialized but not in FIELDS");
        }
    }

    #[test]
    fn runtime_endpoint_forms() {
        assert_eq!(
            RuntimeEndpoint::parse("/run/containerd/containerd.sock").map(|e| e.path().to_string()),
            Ok("/run/containerd/containerd.sock".into())
        );
        assert!(RuntimeEndpoint::parse("tcp://1.2.3.4:1").is_err());
        assert!(RuntimeEndpoint::parse("unix://relative").is_err());
    }

    #[test]
    fn cidrs() {
        assert!(Cidr::parse("172.30.0.0/16").is_ok());
        assert!(Cidr::parse("fd00::/64").is_ok());
        assert!(Cidr::parse("172.30.0.0/33").is_err());
        assert!(Cidr::parse("172.30.0.0").is_err());
    }
}
