//! What the runtime is asked to make for a pod, as the kubelet asks for it: the sandbox config
//! (labels, log directory, DNS, hostname, port mappings, namespaces, security context,
//! sysctls, cgroup parent) and a container's own files (the managed /etc/hosts, the
//! termination message file) and the labels and annotations it is known by. Pure given its
//! inputs, apart from making those two files.

use std::path::Path;

use super::config::Config;
use super::layout;
use super::spec::Pod;
use crate::cri::api::*;

/// The sandbox of `pod`, attempt `attempt`.
pub fn sandbox(cfg: &Config, pod: &Pod, attempt: u32) -> PodSandboxConfig {
    let m = &pod.metadata;
    let mut labels = m.labels.clone();
    labels.insert(layout::POD_NAME_LABEL.into(), m.name.clone());
    labels.insert(layout::POD_NAMESPACE_LABEL.into(), m.namespace.clone());
    labels.insert(layout::POD_UID_LABEL.into(), m.uid.clone());
    let resolv = &cfg.resolv_conf;
    let dns = super::dns::config(pod, &cfg.cluster_dns, &cfg.cluster_domain, &|| {
        std::fs::read_to_string(resolv).ok()
    });
    let (security_context, sysctls) = super::security::sandbox(pod);
    // hostPort mappings, as the kubelet's makePortMappings (CNI's portmap plugin acts).
    let port_mappings = pod
        .raw_containers()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| {
            let host_port = p["hostPort"].as_i64().filter(|h| *h > 0)?;
            Some(PortMapping {
                protocol: match p["protocol"].as_str() {
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    _ => Protocol::Tcp,
                } as i32,
                container_port: p["containerPort"].as_i64().unwrap_or(0) as i32,
                host_port: host_port as i32,
                host_ip: p["hostIP"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect();
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: m.name.clone(),
            uid: m.uid.clone(),
            namespace: m.namespace.clone(),
            attempt,
        }),
        hostname: if pod.spec.host_network {
            String::new()
        } else {
            super::dns::hostname(pod)
        },
        log_directory: cfg.log_dir(pod).display().to_string(),
        dns_config: dns,
        port_mappings,
        labels,
        annotations: m.annotations.clone(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cfg.cgroup_parent(pod),
            security_context: Some(security_context),
            sysctls,
            ..Default::default()
        }),
    }
}

/// The labels a container is known by.
pub fn container_labels(pod: &Pod, name: &str) -> StringMap {
    let m = &pod.metadata;
    [
        (layout::CONTAINER_NAME_LABEL.to_string(), name.to_string()),
        (layout::POD_NAME_LABEL.to_string(), m.name.clone()),
        (layout::POD_NAMESPACE_LABEL.to_string(), m.namespace.clone()),
        (layout::POD_UID_LABEL.to_string(), m.uid.clone()),
    ]
    .into()
}

/// A container's annotations: its restart count, its hash, and where and how its termination
/// message is read (the runtime keeps them for the agent).
pub fn container_annotations(pod: &Pod, name: &str, attempt: u32) -> StringMap {
    let raw = pod.raw_container(name);
    let mut a: StringMap = [(
        layout::RESTART_COUNT_ANNOTATION.to_string(),
        attempt.to_string(),
    )]
    .into();
    if let Some(c) = pod.container(name) {
        a.insert(
            layout::HASH_ANNOTATION.into(),
            layout::container_hash(name, &c.image),
        );
    }
    a.insert(
        layout::TERMINATION_PATH_ANNOTATION.into(),
        termination_path(&raw).to_string(),
    );
    a.insert(
        layout::TERMINATION_POLICY_ANNOTATION.into(),
        raw["terminationMessagePolicy"]
            .as_str()
            .unwrap_or("File")
            .to_string(),
    );
    a
}

fn termination_path(raw: &serde_json::Value) -> &str {
    raw["terminationMessagePath"]
        .as_str()
        .unwrap_or("/dev/termination-log")
}

/// The mount of an empty, writable termination message file at the container's
/// `terminationMessagePath` (default `/dev/termination-log`; none when set to "").
pub fn termination_mount(
    root_dir: &Path,
    pod: &Pod,
    name: &str,
    attempt: u32,
) -> Result<Option<Mount>, String> {
    let raw = pod.raw_container(name);
    let path = termination_path(&raw);
    if path.is_empty() {
        return Ok(None);
    }
    let file = layout::termination_file(root_dir, &pod.metadata.uid, name, attempt);
    let made = file
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&file, b""))
        .and_then(|()| {
            std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        });
    made.map_err(|e| format!("creating {}: {e}", file.display()))?;
    Ok(Some(Mount {
        container_path: path.to_string(),
        host_path: file.display().to_string(),
        ..Default::default()
    }))
}

/// The kubelet's managed /etc/hosts (the pod's IP under its hostname and subdomain,
/// hostAliases; with the host's network, the node's file), written in the pod's directory, as
/// the mount to add unless the container mounts its own.
pub fn hosts_mount(cfg: &Config, pod: &Pod, pod_ip: &str) -> Result<Mount, String> {
    let file = layout::etc_hosts(&cfg.root_dir, &pod.metadata.uid);
    let host_hosts = if pod.spec.host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        String::new()
    };
    let text = super::dns::hosts_file(
        pod,
        std::slice::from_ref(&pod_ip.to_string()),
        &cfg.cluster_domain,
        &host_hosts,
    );
    std::fs::create_dir_all(cfg.pod_dir(&pod.metadata.uid))
        .and_then(|()| std::fs::write(&file, text))
        .map_err(|e| format!("writing {}: {e}", file.display()))?;
    Ok(Mount {
        container_path: "/etc/hosts".into(),
        host_path: file.display().to_string(),
        ..Default::default()
    })
}
