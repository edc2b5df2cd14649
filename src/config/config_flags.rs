//! The kubelet's flags that set a `KubeletConfiguration` field (`--max-pods`, `--cgroup-driver`,
//! `--eviction-hard`, ... from cmd/kubelet/app/options `AddKubeletConfigFlags`, all deprecated
//! upstream in favour of the file, and the component-base logging flags), and the kubelet flags
//! that set nothing tinylet has. A config flag's value becomes a YAML value for its field and is
//! decoded over the file, as the kubelet applies flags over its config file.

use serde_yaml::{Mapping, Value};

/// How a flag's text becomes the field's YAML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Str,
    /// A comma-separated list.
    List,
    /// `k=v,k2=v2`.
    Map,
    /// `k=v` only, the value may hold commas (`cpuManagerPolicyOptions`).
    MapNoSplit,
    /// `memory.available<100Mi,nodefs.available<10%`.
    Langle,
    /// `Gate=true,Other=false`.
    Gates,
    /// `Header:value,Header:value2` (`staticPodURLHeader`).
    Multimap,
    /// `0:memory=1Gi,hugepages-2Mi=2Gi;1:memory=1Gi` (`reservedMemory`).
    ReservedMemory,
    /// `pattern=N,...` (`logging.vmodule`).
    Vmodule,
}

use Kind::*;

/// The deprecation warning the kubelet prints for each of its config flags.
pub const DEPRECATED: &str = "This parameter should be set via the config file specified by the Kubelet's --config flag. See https://kubernetes.io/docs/tasks/administer-cluster/kubelet-config-file/ for more information.";

/// (flag, field path, kind, deprecated).
pub const CONFIG_FLAGS: &[(&str, &str, Kind, bool)] = &[
    ("enable-server", "enableServer", Bool, true),
    ("fail-swap-on", "failSwapOn", Bool, true),
    ("pod-manifest-path", "staticPodPath", Str, true),
    ("sync-frequency", "syncFrequency", Str, true),
    ("file-check-frequency", "fileCheckFrequency", Str, true),
    ("http-check-frequency", "httpCheckFrequency", Str, true),
    ("manifest-url", "staticPodURL", Str, true),
    ("manifest-url-header", "staticPodURLHeader", Multimap, true),
    ("address", "address", Str, true),
    ("port", "port", Int, true),
    ("read-only-port", "readOnlyPort", Int, true),
    ("fail-cgroupv1", "failCgroupV1", Bool, true),
    ("image-service-endpoint", "imageServiceEndpoint", Str, true),
    (
        "anonymous-auth",
        "authentication.anonymous.enabled",
        Bool,
        true,
    ),
    (
        "authentication-token-webhook",
        "authentication.webhook.enabled",
        Bool,
        true,
    ),
    (
        "authentication-token-webhook-cache-ttl",
        "authentication.webhook.cacheTTL",
        Str,
        true,
    ),
    (
        "client-ca-file",
        "authentication.x509.clientCAFile",
        Str,
        true,
    ),
    ("authorization-mode", "authorization.mode", Str, true),
    (
        "authorization-webhook-cache-authorized-ttl",
        "authorization.webhook.cacheAuthorizedTTL",
        Str,
        true,
    ),
    (
        "authorization-webhook-cache-unauthorized-ttl",
        "authorization.webhook.cacheUnauthorizedTTL",
        Str,
        true,
    ),
    ("tls-cert-file", "tlsCertFile", Str, true),
    ("tls-private-key-file", "tlsPrivateKeyFile", Str, true),
    (
        "rotate-server-certificates",
        "serverTLSBootstrap",
        Bool,
        true,
    ),
    ("tls-cipher-suites", "tlsCipherSuites", List, true),
    ("tls-min-version", "tlsMinVersion", Str, true),
    ("rotate-certificates", "rotateCertificates", Bool, true),
    ("registry-qps", "registryPullQPS", Int, true),
    ("registry-burst", "registryBurst", Int, true),
    ("event-qps", "eventRecordQPS", Int, true),
    ("event-burst", "eventBurst", Int, true),
    (
        "enable-debugging-handlers",
        "enableDebuggingHandlers",
        Bool,
        true,
    ),
    (
        "contention-profiling",
        "enableContentionProfiling",
        Bool,
        true,
    ),
    ("healthz-port", "healthzPort", Int, true),
    ("healthz-bind-address", "healthzBindAddress", Str, true),
    ("oom-score-adj", "oomScoreAdj", Int, true),
    ("cluster-domain", "clusterDomain", Str, true),
    ("cluster-dns", "clusterDNS", List, true),
    (
        "streaming-connection-idle-timeout",
        "streamingConnectionIdleTimeout",
        Str,
        true,
    ),
    (
        "node-status-update-frequency",
        "nodeStatusUpdateFrequency",
        Str,
        true,
    ),
    ("minimum-image-ttl-duration", "imageMinimumGCAge", Str, true),
    (
        "image-gc-high-threshold",
        "imageGCHighThresholdPercent",
        Int,
        true,
    ),
    (
        "image-gc-low-threshold",
        "imageGCLowThresholdPercent",
        Int,
        true,
    ),
    ("volume-stats-agg-period", "volumeStatsAggPeriod", Str, true),
    ("feature-gates", "featureGates", Gates, true),
    ("kubelet-cgroups", "kubeletCgroups", Str, true),
    ("system-cgroups", "systemCgroups", Str, true),
    ("provider-id", "providerID", Str, true),
    ("cgroups-per-qos", "cgroupsPerQOS", Bool, true),
    ("cgroup-driver", "cgroupDriver", Str, true),
    ("cgroup-root", "cgroupRoot", Str, true),
    ("cpu-manager-policy", "cpuManagerPolicy", Str, true),
    (
        "cpu-manager-policy-options",
        "cpuManagerPolicyOptions",
        MapNoSplit,
        true,
    ),
    (
        "cpu-manager-reconcile-period",
        "cpuManagerReconcilePeriod",
        Str,
        true,
    ),
    ("qos-reserved", "qosReserved", Map, true),
    (
        "topology-manager-policy",
        "topologyManagerPolicy",
        Str,
        true,
    ),
    (
        "runtime-request-timeout",
        "runtimeRequestTimeout",
        Str,
        true,
    ),
    ("hairpin-mode", "hairpinMode", Str, true),
    ("max-pods", "maxPods", Int, true),
    ("pod-cidr", "podCIDR", Str, true),
    ("pod-max-pids", "podPidsLimit", Int, true),
    ("resolv-conf", "resolvConf", Str, true),
    ("runonce", "runOnce", Bool, true),
    ("cpu-cfs-quota", "cpuCFSQuota", Bool, true),
    ("cpu-cfs-quota-period", "cpuCFSQuotaPeriod", Str, true),
    (
        "enable-controller-attach-detach",
        "enableControllerAttachDetach",
        Bool,
        true,
    ),
    (
        "make-iptables-util-chains",
        "makeIPTablesUtilChains",
        Bool,
        true,
    ),
    ("container-log-max-size", "containerLogMaxSize", Str, true),
    ("container-log-max-files", "containerLogMaxFiles", Int, true),
    ("allowed-unsafe-sysctls", "allowedUnsafeSysctls", List, true),
    ("node-status-max-images", "nodeStatusMaxImages", Int, true),
    (
        "kernel-memcg-notification",
        "kernelMemcgNotification",
        Bool,
        true,
    ),
    (
        "local-storage-capacity-isolation",
        "localStorageCapacityIsolation",
        Bool,
        true,
    ),
    ("max-open-files", "maxOpenFiles", Int, true),
    ("kube-api-content-type", "contentType", Str, true),
    ("kube-api-qps", "kubeAPIQPS", Int, true),
    ("kube-api-burst", "kubeAPIBurst", Int, true),
    ("serialize-image-pulls", "serializeImagePulls", Bool, true),
    ("eviction-hard", "evictionHard", Langle, true),
    ("eviction-soft", "evictionSoft", Langle, true),
    (
        "eviction-soft-grace-period",
        "evictionSoftGracePeriod",
        Map,
        true,
    ),
    (
        "eviction-pressure-transition-period",
        "evictionPressureTransitionPeriod",
        Str,
        true,
    ),
    (
        "eviction-max-pod-grace-period",
        "evictionMaxPodGracePeriod",
        Int,
        true,
    ),
    (
        "eviction-minimum-reclaim",
        "evictionMinimumReclaim",
        Map,
        true,
    ),
    ("pods-per-core", "podsPerCore", Int, true),
    (
        "protect-kernel-defaults",
        "protectKernelDefaults",
        Bool,
        true,
    ),
    ("reserved-cpus", "reservedSystemCPUs", Str, true),
    ("topology-manager-scope", "topologyManagerScope", Str, true),
    (
        "topology-manager-policy-options",
        "topologyManagerPolicyOptions",
        Map,
        true,
    ),
    ("system-reserved", "systemReserved", Map, true),
    ("kube-reserved", "kubeReserved", Map, true),
    (
        "enforce-node-allocatable",
        "enforceNodeAllocatable",
        List,
        true,
    ),
    ("system-reserved-cgroup", "systemReservedCgroup", Str, true),
    ("kube-reserved-cgroup", "kubeReservedCgroup", Str, true),
    ("memory-manager-policy", "memoryManagerPolicy", Str, true),
    ("reserved-memory", "reservedMemory", ReservedMemory, true),
    ("register-node", "registerNode", Bool, true),
    ("seccomp-default", "seccompDefault", Bool, true),
    // component-base's logging flags (not deprecated).
    ("log-flush-frequency", "logging.flushFrequency", Str, false),
    ("logging-format", "logging.format", Str, false),
    ("vmodule", "logging.vmodule", Vmodule, false),
    (
        "log-json-info-buffer-size",
        "logging.options.json.infoBufferSize",
        Str,
        false,
    ),
    (
        "log-json-split-stream",
        "logging.options.json.splitStream",
        Bool,
        false,
    ),
    (
        "log-text-info-buffer-size",
        "logging.options.text.infoBufferSize",
        Str,
        false,
    ),
    (
        "log-text-split-stream",
        "logging.options.text.splitStream",
        Bool,
        false,
    ),
];

/// Kubelet flags that set nothing tinylet has (cAdvisor's, the lock file, the in-tree cloud
/// provider, the old container GC flags, credential provider plugins): accepted with a warning
/// saying so. (flag, takes a value, why).
pub const NO_EFFECT: &[(&str, bool, &str)] = &[
    (
        "cloud-provider",
        true,
        "there are no in-tree cloud providers; an external one sets providerID",
    ),
    (
        "image-credential-provider-bin-dir",
        true,
        "credential provider plugins are not supported; use imagePullSecrets",
    ),
    (
        "image-credential-provider-config",
        true,
        "credential provider plugins are not supported; use imagePullSecrets",
    ),
    ("lock-file", true, "tinylet takes no lock file"),
    (
        "exit-on-lock-contention",
        false,
        "tinylet takes no lock file",
    ),
    (
        "experimental-mounter-path",
        true,
        "tinylet mounts with the mount(2) system call",
    ),
    (
        "experimental-allocatable-ignore-eviction",
        false,
        "allocatable always takes evictionHard into account",
    ),
    (
        "maximum-dead-containers",
        true,
        "dead containers are removed as the pod's restart needs (the kubelet's default GC policy)",
    ),
    (
        "maximum-dead-containers-per-container",
        true,
        "dead containers are removed as the pod's restart needs (the kubelet's default GC policy)",
    ),
    (
        "minimum-container-ttl-duration",
        true,
        "dead containers are removed as the pod's restart needs (the kubelet's default GC policy)",
    ),
    (
        "runtime-cgroups",
        true,
        "the runtime's cgroups are its own (no runtime container stats)",
    ),
    (
        "boot-id-file",
        true,
        "a cAdvisor flag; the boot ID is read from /proc/sys/kernel/random/boot_id",
    ),
    (
        "machine-id-file",
        true,
        "a cAdvisor flag; the machine ID is read from /etc/machine-id",
    ),
    (
        "container-hints",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "containerd",
        true,
        "a cAdvisor flag; the runtime is --container-runtime-endpoint",
    ),
    (
        "containerd-namespace",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "enable-load-reader",
        false,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "event-storage-age-limit",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "event-storage-event-limit",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "global-housekeeping-interval",
        true,
        "a cAdvisor flag; stats are read when asked for",
    ),
    (
        "housekeeping-interval",
        true,
        "a cAdvisor flag; stats are read when asked for",
    ),
    (
        "application-metrics-count-limit",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "log-cadvisor-usage",
        false,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-buffer-duration",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-db",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-host",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-password",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-secure",
        false,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-table",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
    (
        "storage-driver-user",
        true,
        "a cAdvisor flag; tinylet has no cAdvisor",
    ),
];

/// The config flag named `name`: (field path, kind, deprecated).
pub fn find(name: &str) -> Option<(&'static str, Kind, bool)> {
    CONFIG_FLAGS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, f, k, d)| (*f, *k, *d))
}

fn pairs<'a>(s: &'a str, sep: char, flag_kind: &str) -> Result<Vec<(&'a str, &'a str)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once(sep)
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| format!("{p:?}: want {flag_kind}"))
        })
        .collect()
}

/// The YAML value a flag's text stands for.
pub fn value(kind: Kind, text: &str) -> Result<Value, String> {
    let s = |t: &str| Value::String(t.to_string());
    Ok(match kind {
        Bool => match text {
            "true" | "1" | "t" | "T" | "TRUE" | "True" => Value::Bool(true),
            "false" | "0" | "f" | "F" | "FALSE" | "False" => Value::Bool(false),
            other => return Err(format!("{other:?} is not a boolean")),
        },
        Int => Value::Number(
            text.trim()
                .parse::<i64>()
                .map_err(|_| format!("{text:?} is not an integer"))?
                .into(),
        ),
        Str => s(text),
        List => Value::Sequence(
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(s)
                .collect(),
        ),
        Map => Value::Mapping(
            pairs(text, '=', "key=value")?
                .into_iter()
                .map(|(k, v)| (s(k), s(v)))
                .collect(),
        ),
        MapNoSplit => {
            let (k, v) = text
                .split_once('=')
                .ok_or_else(|| format!("{text:?}: want key=value"))?;
            Value::Mapping(Mapping::from_iter([(s(k.trim()), s(v.trim()))]))
        }
        Langle => Value::Mapping(
            pairs(text, '<', "signal<quantity")?
                .into_iter()
                .map(|(k, v)| (s(k), s(v)))
                .collect(),
        ),
        Gates => {
            let mut m = Mapping::new();
            for (k, v) in pairs(text, '=', "Gate=true|false")? {
                m.insert(s(k), value(Bool, v)?);
            }
            Value::Mapping(m)
        }
        Multimap => {
            let mut m = Mapping::new();
            for (k, v) in pairs(text, ':', "Header:value")? {
                if let Some(Value::Sequence(l)) = m.get_mut(k) {
                    l.push(s(v));
                } else {
                    m.insert(s(k), Value::Sequence(vec![s(v)]));
                }
            }
            Value::Mapping(m)
        }
        ReservedMemory => {
            let mut out = Vec::new();
            for node in text.split(';').map(str::trim).filter(|n| !n.is_empty()) {
                let (numa, limits) = node
                    .split_once(':')
                    .ok_or_else(|| format!("{node:?}: want NUMA:resource=quantity,..."))?;
                let numa: i64 = numa
                    .trim()
                    .parse()
                    .map_err(|_| format!("{numa:?} is not a NUMA node number"))?;
                let limits: Mapping = pairs(limits, '=', "resource=quantity")?
                    .into_iter()
                    .map(|(k, v)| (s(k), s(v)))
                    .collect();
                let mut m = Mapping::new();
                m.insert(s("numaNode"), Value::Number(numa.into()));
                m.insert(s("limits"), Value::Mapping(limits));
                out.push(Value::Mapping(m));
            }
            Value::Sequence(out)
        }
        Vmodule => {
            let mut out = Vec::new();
            for (pat, v) in pairs(text, '=', "pattern=N")? {
                let n: i64 = v.parse().map_err(|_| format!("{v:?} is not a verbosity"))?;
                let mut m = Mapping::new();
                m.insert(s("filePattern"), s(pat));
                m.insert(s("verbosity"), Value::Number(n.into()));
                out.push(Value::Mapping(m));
            }
            Value::Sequence(out)
        }
    })
}

/// Sets `path` (dotted, through nested mappings made as needed) in `doc` to `v`.
pub fn set_path(doc: &mut Mapping, path: &str, v: Value) {
    let mut map = doc;
    let mut parts = path.split('.').peekable();
    while let Some(key) = parts.next() {
        let k = Value::String(key.to_string());
        if parts.peek().is_none() {
            map.insert(k, v);
            return;
        }
        if !matches!(map.get(&k), Some(Value::Mapping(_))) {
            map.insert(k.clone(), Value::Mapping(Mapping::new()));
        }
        match map.get_mut(&k) {
            Some(Value::Mapping(m)) => map = m,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(v: &Value) -> String {
        serde_yaml::to_string(v).unwrap_or_default()
    }

    #[test]
    fn flag_texts_become_field_values() {
        let ok = |k: Kind, t: &str| value(k, t).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(ok(Int, "220"), Value::Number(220.into()));
        assert_eq!(ok(Bool, "false"), Value::Bool(false));
        assert_eq!(
            y(&ok(List, "10.254.0.2, 10.254.0.3")),
            "- 10.254.0.2\n- 10.254.0.3\n"
        );
        assert_eq!(
            y(&ok(Langle, "memory.available<100Mi,nodefs.available<10%")),
            "memory.available: 100Mi\nnodefs.available: 10%\n"
        );
        assert_eq!(y(&ok(Gates, "A=true,B=false")), "A: true\nB: false\n");
        assert_eq!(
            y(&ok(Map, "cpu=100m,memory=1Gi")),
            "cpu: 100m\nmemory: 1Gi\n"
        );
        assert_eq!(y(&ok(MapNoSplit, "opt=a,b")), "opt: a,b\n");
        assert_eq!(y(&ok(Multimap, "A:x,A:y,B:z")), "A:\n- x\n- y\nB:\n- z\n");
        assert_eq!(
            y(&ok(ReservedMemory, "0:memory=1Gi;1:memory=2Gi")),
            "- numaNode: 0\n  limits:\n    memory: 1Gi\n- numaNode: 1\n  limits:\n    memory: 2Gi\n"
        );
        assert_eq!(
            y(&ok(Vmodule, "pods*=4")),
            "- filePattern: pods*\n  verbosity: 4\n"
        );
        assert!(value(Int, "many").is_err());
        assert!(value(Langle, "memory.available=1Gi").is_err());
        assert!(value(Bool, "yes please").is_err());
        let mut doc = Mapping::new();
        set_path(
            &mut doc,
            "authentication.webhook.enabled",
            Value::Bool(true),
        );
        set_path(&mut doc, "authentication.x509.clientCAFile", ok(Str, "/ca"));
        assert_eq!(
            y(&Value::Mapping(doc)),
            "authentication:\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: /ca\n"
        );
    }

    #[test]
    fn names_are_unique_and_not_the_agents_own() {
        let mut all: Vec<&str> = CONFIG_FLAGS.iter().map(|f| f.0).collect();
        all.extend(NO_EFFECT.iter().map(|f| f.0));
        all.extend(super::super::flags::SUPPORTED.iter().map(|f| f.0));
        all.extend(super::super::flags::REMOVED.iter().map(|f| f.0));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a flag is in two tables");
    }
}
