//! What the pod machinery needs to know of the node and its configuration, built from the
//! agent's settings.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::admit::NodeLimits;
use crate::config::Settings;

#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub host_ip: String,
    pub pod_logs_dir: PathBuf,
    /// `cgroupRoot` ("/" when empty): pods live under `<root>/kubepods`.
    pub cgroup_root: String,
    /// `cgroupDriver`: how pod cgroups are named.
    pub cgroup_driver: super::layout::CgroupDriver,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// How often the runtime is relisted and each pod stepped.
    pub sync_every: Duration,
    /// `--root-dir`: pod volumes live in `<root>/pods/<uid>/volumes`.
    pub root_dir: PathBuf,
    /// The node's memory (for the OOM score of burstable pods).
    pub node_memory: u64,
    /// `cpuCFSQuota`: cpu limits become CFS quotas.
    pub cpu_cfs_quota: bool,
    /// What admission checks pods against.
    pub limits: NodeLimits,
    /// The cgroup mount (`/sys/fs/cgroup`) for pod cgroups.
    pub cgroup_mount: PathBuf,
    /// `podPidsLimit` (-1: none).
    pub pod_pids_limit: i64,
    /// The pods' cgroup (`kubepods`): the node allocatable's cpu shares and memory limit (None
    /// when the machine could not be read: left as it is).
    pub kubepods: Option<super::pod_resources::PodCgroup>,
    /// Pods come from the API server (a kubeconfig was given).
    pub api_source: bool,
    /// Pods come from `staticPodPath`.
    pub static_source: bool,
    /// `resolvConf`: the host's resolver configuration (dnsPolicy Default, search domains).
    pub resolv_conf: PathBuf,
    /// `seccompDefault`: RuntimeDefault for containers that name no seccomp profile.
    pub seccomp_default: bool,
    /// `registryPullQPS`/`registryBurst` (qps 0: no limit).
    pub registry_pull_qps: i32,
    pub registry_burst: i32,
    /// Image pulls at once: 1 with `serializeImagePulls` (the default), else
    /// `maxParallelImagePulls` (None: no limit).
    pub parallel_pulls: Option<usize>,
    /// Pods whose containers are being started at once, at most.
    pub parallel_starts: usize,
    /// `syncFrequency`: how often volume contents (configMap, secret, downwardAPI, projected
    /// tokens) are brought up to date in running pods; also the sync loop's health threshold.
    pub volume_resync: Duration,
    /// `containerLogMaxSize`, `containerLogMaxFiles`, `containerLogMonitorInterval`.
    pub log_rotation: super::log_rotation::Policy,
    /// `imageGCHighThresholdPercent`, `imageGCLowThresholdPercent`, `imageMinimumGCAge`,
    /// `imageMaximumGCAge`.
    pub image_gc: super::image_gc::Policy,
    /// The node's pressure conditions, as the node status last reported them.
    pub pressure: std::sync::Arc<crate::node::status::SharedPressure>,
}

/// Pods started at once, at most (stops and kills are never held back).
pub const PARALLEL_STARTS: usize = 10;

impl Config {
    /// The pods' configuration: the node's name and IP, the host's memory and allocatable (read
    /// once), the sources configured.
    pub fn from_settings(s: &Settings, node: &crate::node::agent::Config) -> Config {
        let k = &s.kubelet;
        let host_ip =
            crate::node::node_ips(&s.flags.node_ip, k.address, std::path::Path::new("/proc"))
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
        let machine = crate::node::host::Machine::read(&node.roots).ok();
        let allocatable = machine
            .as_ref()
            .and_then(|m| crate::node::status::allocatable_on(&node.spec, m, &node.root_dir));
        Config {
            node: s.node_name.clone(),
            host_ip,
            pod_logs_dir: k.pod_logs_dir.clone().into(),
            cgroup_root: if k.cgroup_root.is_empty() {
                "/".into()
            } else {
                k.cgroup_root.clone()
            },
            cgroup_driver: k.cgroup_driver,
            cluster_dns: k.cluster_dns.clone(),
            cluster_domain: k.cluster_domain.clone(),
            sync_every: Duration::from_secs(1),
            root_dir: s.flags.root_dir.clone(),
            node_memory: machine.as_ref().map_or(0, |m| m.memory_bytes),
            cpu_cfs_quota: k.cpu_cfs_quota,
            cgroup_mount: "/sys/fs/cgroup".into(),
            pod_pids_limit: k.pod_pids_limit,
            kubepods: {
                let enforce = k.enforce_node_allocatable.iter().any(|e| e == "pods");
                machine.as_ref().map(|m| {
                    let (cpu, memory) =
                        crate::node::status::pods_cgroup_limits(&node.spec, m, enforce);
                    super::qos_cgroups::node_cgroup(cpu, memory)
                })
            },
            limits: NodeLimits {
                max_pods: node.spec.max_pods,
                cpu_millis: allocatable.as_ref().map_or(i64::MAX, |a| a.cpu_millis),
                memory: allocatable.as_ref().map_or(i64::MAX, |a| a.memory),
                ephemeral: allocatable.as_ref().map_or(i64::MAX, |a| a.ephemeral),
                labels: node.spec.labels.clone(),
                // Checked when the configuration was loaded; only the kernel is read here.
                sysctls: super::sysctls::Allowlist::new(
                    &k.allowed_unsafe_sysctls,
                    machine.as_ref().map_or("", |m| m.kernel_version.as_str()),
                )
                .unwrap_or_default(),
            },
            api_source: s.flags.kubeconfig.is_some(),
            static_source: !k.static_pod_path.is_empty(),
            resolv_conf: k.resolv_conf.clone().into(),
            seccomp_default: k.seccomp_default,
            registry_pull_qps: k.registry_pull_qps,
            registry_burst: k.registry_burst,
            parallel_pulls: if k.serialize_image_pulls {
                Some(1)
            } else {
                k.max_parallel_image_pulls
                    .and_then(|n| usize::try_from(n).ok())
            },
            parallel_starts: PARALLEL_STARTS,
            volume_resync: k.sync_frequency.as_std(),
            log_rotation: super::log_rotation::Policy {
                max_size: u64::try_from(k.container_log_max_size.0.value()).unwrap_or(0),
                max_files: usize::try_from(k.container_log_max_files).unwrap_or(2),
                every: k.container_log_monitor_interval.as_std(),
            },
            // Checked when the configuration was loaded (0..=100, low below high).
            image_gc: super::image_gc::Policy {
                high_percent: u32::try_from(k.image_gc_high_threshold_percent).unwrap_or(100),
                low_percent: u32::try_from(k.image_gc_low_threshold_percent).unwrap_or(0),
                min_age: k.image_minimum_gc_age.as_std(),
                max_age: k.image_maximum_gc_age.as_std(),
            },
            pressure: node.pressure.clone(),
        }
    }

    /// The pod's cgroup parent.
    pub fn cgroup_parent(&self, pod: &super::spec::Pod) -> String {
        super::layout::cgroup_parent(
            self.cgroup_driver,
            &self.cgroup_root,
            pod.qos_class(),
            &pod.metadata.uid,
        )
    }

    /// The pod's log directory.
    pub fn log_dir(&self, pod: &super::spec::Pod) -> PathBuf {
        let m = &pod.metadata;
        super::layout::log_dir(&self.pod_logs_dir, &m.namespace, &m.name, &m.uid)
    }

    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        super::layout::pod_dir(&self.root_dir, uid)
    }
}
