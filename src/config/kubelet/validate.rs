//! The kubelet's cross-field validation (`ValidateKubeletConfiguration`), each failure naming its field.

use super::*;

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
        c.container_log_monitor_interval.as_std() >= std::time::Duration::from_secs(3),
        "containerLogMonitorInterval",
        "must be a positive time duration greater than or equal to 3s".into(),
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
                signal.as_str()
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
            crate::config::labels::validate_dns_subdomain(c.cluster_domain.trim_end_matches('.'))
    {
        check(false, "clusterDomain", e);
    }
    // The kubelet's texts (the first names enableSystemLogHandler where it means the query).
    check(
        !c.enable_system_log_query || c.feature_gates.get("NodeLogQuery") == Some(&true),
        "enableSystemLogQuery",
        "NodeLogQuery feature gate is required for enableSystemLogHandler".into(),
    );
    check(
        !c.enable_system_log_query || c.enable_system_log_handler,
        "enableSystemLogQuery",
        "enableSystemLogHandler is required for enableSystemLogQuery".into(),
    );
    for (i, t) in c.register_with_taints.iter().enumerate() {
        if let Err(e) = t.validate() {
            check(false, "registerWithTaints", format!("[{i}]: {e}"));
        }
    }
    errs
}
