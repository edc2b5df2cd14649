//! A container's CRI config, as the kubelet's generateContainerConfig makes it: the environment
//! first, then the mounts (volumes with safe subpaths, the managed /etc/hosts, the termination
//! message file), resources, the runAsNonRoot check, the security context, command and args
//! expanded, and the labels and annotations it is known by. A failure is the kubelet's
//! CreateContainerConfigError, with its text.

use std::collections::BTreeMap;

use super::execute::{Executor, Volumes};
use super::spec::Pod;
use crate::cri::api::*;

/// The config of container `name`, attempt `attempt`, of `pod`.
pub fn made(
    x: &Executor,
    pod: &Pod,
    name: &str,
    attempt: u32,
    image: &ImageSpec,
    volumes: &Volumes,
    pod_ip: &str,
) -> Result<ContainerConfig, String> {
    let cfg = &x.cfg;
    let Some(spec) = pod.container(name) else {
        return Err(format!("no container {name:?} in the pod's spec"));
    };
    let ns = &pod.metadata.namespace;
    let lookup = |kind: &str, obj: &str| -> Result<Option<BTreeMap<String, String>>, String> {
        Ok(
            super::volumes::object_data(&*x.api, ns, kind, obj)?.map(|d| {
                d.into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect()
            }),
        )
    };
    let links = pod.raw["spec"]["enableServiceLinks"]
        .as_bool()
        .unwrap_or(true);
    let service_env = match &*x.services.read().unwrap_or_else(|p| p.into_inner()) {
        Some(index) => index.env(ns, links),
        // As the kubelet: with an API server, not before the services were read once (this
        // run or, checkpointed, an earlier one).
        None if cfg.api_source => {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        None => Vec::new(),
    };
    let envs = super::env::build(
        pod,
        name,
        pod_ip,
        &cfg.host_ip,
        &cfg.limits,
        &lookup,
        &service_env,
    )?;
    let pod_dir = cfg.pod_dir(&pod.metadata.uid);
    let mut mounts = super::volumes::mounts(pod, name, volumes, &pod_dir, &envs)?;
    // The kubelet's managed /etc/hosts, unless the container mounts its own.
    if !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
        mounts.push(super::runtime_config::hosts_mount(cfg, pod, pod_ip)?);
    }
    if let Some(m) = super::runtime_config::termination_mount(&cfg.root_dir, pod, name, attempt)? {
        mounts.push(m);
    }
    let resources = super::resources::linux(
        &super::pod_resources::container_resources(&pod.raw, &spec.resources),
        super::pod_resources::oom_score_adj(&pod.raw, name, cfg.node_memory),
        cfg.cpu_cfs_quota,
    )
    .map_err(|e| format!("container {name:?} resources: {e}"))?;
    super::security::verify_non_root(pod, name, &|| {
        x.cri
            .image_status(&ImageStatusRequest {
                image: Some(image.clone()),
                verbose: false,
            })
            .ok()
            .and_then(|r| r.image)
            .map(|i| (i.uid.map(|u| u.value), i.username))
            .unwrap_or_default()
    })?;
    let expand =
        |v: &[String]| -> Vec<String> { v.iter().map(|s| super::env::expand(s, &envs)).collect() };
    let (command, args) = (expand(&spec.command), expand(&spec.args));
    let security = super::security::container(pod, name, &cfg.root_dir, cfg.seccomp_default);
    let raw = pod.raw_container(name);
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt,
        }),
        image: Some(image.clone()),
        command,
        args,
        working_dir: spec.working_dir.clone(),
        envs: envs
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
        labels: super::runtime_config::container_labels(pod, name),
        mounts,
        annotations: super::runtime_config::container_annotations(pod, name, attempt),
        log_path: super::layout::container_log(name, attempt),
        stdin: raw["stdin"] == true,
        stdin_once: raw["stdinOnce"] == true,
        tty: raw["tty"] == true,
        linux: Some(LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(security),
        }),
        ..Default::default()
    })
}
