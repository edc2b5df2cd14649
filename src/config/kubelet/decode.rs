//! Decoding the top-level mapping onto the defaults, every problem located by field.

use super::*;

/// Fields whose zero value means "not set" (the kubelet's value-typed fields, which its
/// defaulting fills when zero: `SetDefaults_KubeletConfiguration`), by the kind of zero.
const ZERO_DURATION_IS_UNSET: &[&str] = &[
    "syncFrequency",
    "fileCheckFrequency",
    "httpCheckFrequency",
    "authentication.webhook.cacheTTL",
    "authorization.webhook.cacheAuthorizedTTL",
    "authorization.webhook.cacheUnauthorizedTTL",
    "streamingConnectionIdleTimeout",
    "nodeStatusReportFrequency",
    "nodeStatusUpdateFrequency",
    "imageMinimumGCAge",
    "volumeStatsAggPeriod",
    "cpuManagerReconcilePeriod",
    "runtimeRequestTimeout",
    "evictionPressureTransitionPeriod",
    // component-base's SetRecommendedLoggingConfiguration: 0 is 5s.
    "logging.flushFrequency",
];
const ZERO_NUMBER_IS_UNSET: &[&str] = &[
    "port",
    "registryBurst",
    "eventBurst",
    "nodeLeaseDurationSeconds",
    "maxPods",
    "maxOpenFiles",
    "kubeAPIBurst",
];
const EMPTY_STRING_IS_UNSET: &[&str] = &[
    "address",
    "authorization.mode",
    "healthzBindAddress",
    "cgroupDriver",
    "cpuManagerPolicy",
    "memoryManagerPolicy",
    "topologyManagerPolicy",
    "topologyManagerScope",
    "hairpinMode",
    "contentType",
    "containerLogMaxSize",
    "configMapAndSecretChangeDetectionStrategy",
    "volumePluginDir",
    "containerRuntimeEndpoint",
    "podLogsDir",
];

fn zero_number(v: &Value) -> bool {
    v.as_f64() == Some(0.0)
}

fn zero_duration(v: &Value) -> bool {
    zero_number(v)
        || v.as_str()
            .is_some_and(|s| KubeDuration::parse(s).is_ok_and(|d| d.as_std().is_zero()))
}

/// Drops the zero values the kubelet treats as unset, so the defaults stand for them.
fn drop_unset(m: &mut Obj) {
    for f in ZERO_DURATION_IS_UNSET {
        m.drop_where(f, zero_duration);
    }
    for f in ZERO_NUMBER_IS_UNSET {
        m.drop_where(f, zero_number);
    }
    for f in EMPTY_STRING_IS_UNSET {
        m.drop_where(f, |v| v.as_str() == Some(""));
    }
}

/// `logging.flushFrequency`: component-base's `TimeOrMetaDuration`, a duration string or an
/// integer number of nanoseconds (what kubeadm writes).
fn flush_frequency(ctx: &mut Ctx, l: &mut Obj, slot: &mut KubeDuration) {
    match ctx.raw(l, "flushFrequency") {
        Some((_, Value::Number(n))) if n.as_u64().is_some() => {
            *slot = KubeDuration(std::time::Duration::from_nanos(n.as_u64().unwrap_or(0)));
        }
        Some((path, v)) => {
            if let Some(d) = ctx.decode(&path, v) {
                *slot = d;
            }
        }
        None => {}
    }
}

/// Decodes the top-level mapping of a config file onto the defaults.
pub fn decode(ctx: &mut Ctx, m: Obj) -> KubeletConfiguration {
    decode_onto(ctx, m, KubeletConfiguration::default(), true)
}

/// Decodes a mapping over `base` (a file over the defaults, a drop-in over the file, the
/// flags over both). With `defaulting`, zero values mean "not set" as the kubelet's
/// defaulting of a file makes them; flags are applied after it, so theirs stand.
pub fn decode_onto(
    ctx: &mut Ctx,
    mut m: Obj,
    base: KubeletConfiguration,
    defaulting: bool,
) -> KubeletConfiguration {
    let mut c = base;
    if defaulting {
        drop_unset(&mut m);
    }
    // For backward compatibility the kubelet reports status as often as it updates it when
    // only the update frequency is set.
    let report_follows_update =
        defaulting && !m.has("nodeStatusReportFrequency") && m.has("nodeStatusUpdateFrequency");
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
        flush_frequency(ctx, &mut l, &mut c.logging.flush_frequency);
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
    if report_follows_update {
        c.node_status_report_frequency = c.node_status_update_frequency;
    }
    c
}
