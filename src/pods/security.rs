//! Pod and container security contexts as CRI takes them, as the kubelet builds them: the
//! container's settings over the pod's (runAsUser/Group, supplemental groups and fsGroup,
//! privileged, capabilities, readOnlyRootFilesystem, allowPrivilegeEscalation, procMount's
//! masked paths, seccomp), host namespaces, sysctls, and the runAsNonRoot check.

use std::path::Path;

use serde_json::Value;

use super::spec::Pod;
use crate::cri::api::*;

/// The paths the kubelet masks in every container unless `procMount: Unmasked`.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The paths the kubelet makes read-only in every container unless `procMount: Unmasked`.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A field of the container's securityContext, else of the pod's.
fn effective<'a>(pod_sc: &'a Value, c_sc: &'a Value, key: &str) -> &'a Value {
    if c_sc[key].is_null() {
        &pod_sc[key]
    } else {
        &c_sc[key]
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

/// The pod's host namespaces (`shareProcessNamespace` puts the containers in one PID namespace).
pub fn namespaces(pod: &Pod) -> NamespaceOption {
    let mode = |host: bool, otherwise: NamespaceMode| {
        (if host { NamespaceMode::Node } else { otherwise }) as i32
    };
    let shared_pid = pod.raw["spec"]["shareProcessNamespace"] == true;
    NamespaceOption {
        network: mode(pod.spec.host_network, NamespaceMode::Pod),
        pid: mode(
            pod.spec.host_pid,
            if shared_pid {
                NamespaceMode::Pod
            } else {
                NamespaceMode::Container
            },
        ),
        ipc: mode(pod.spec.host_ipc, NamespaceMode::Pod),
        ..Default::default()
    }
}

/// A seccompProfile as CRI's; None when not set.
fn seccomp(v: &Value, root_dir: &Path) -> Option<SecurityProfile> {
    let (profile_type, localhost_ref) = match v["type"].as_str()? {
        "RuntimeDefault" => (ProfileType::RuntimeDefault, String::new()),
        "Unconfined" => (ProfileType::Unconfined, String::new()),
        "Localhost" => (
            ProfileType::Localhost,
            root_dir
                .join("seccomp")
                .join(v["localhostProfile"].as_str().unwrap_or(""))
                .display()
                .to_string(),
        ),
        _ => return None,
    };
    Some(SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref,
    })
}

fn supplemental_groups(pod_sc: &Value) -> Vec<i64> {
    let mut g: Vec<i64> = pod_sc["fsGroup"].as_i64().into_iter().collect();
    g.extend(
        pod_sc["supplementalGroups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64),
    );
    g
}

fn any_privileged(pod: &Pod) -> bool {
    ["containers", "initContainers"].iter().any(|list| {
        pod.raw["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["securityContext"]["privileged"] == true)
    })
}

/// The sandbox's security context and sysctls.
pub fn sandbox(pod: &Pod) -> (LinuxSandboxSecurityContext, StringMap) {
    let sc = &pod.raw["spec"]["securityContext"];
    let id = |v: &Value| v.as_i64().map(|value| Int64Value { value });
    let sysctls = sc["sysctls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.into(), s["value"].as_str()?.into())))
        .collect();
    (
        LinuxSandboxSecurityContext {
            namespace_options: Some(namespaces(pod)),
            run_as_user: id(&sc["runAsUser"]),
            run_as_group: id(&sc["runAsGroup"]),
            supplemental_groups: supplemental_groups(sc),
            privileged: any_privileged(pod),
            // As the kubelet: the sandbox (pause) always runs under the runtime's profile.
            seccomp: Some(SecurityProfile {
                profile_type: ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        },
        sysctls,
    )
}

/// Container `name`'s security context. `seccomp_default`: the kubelet's `seccompDefault`
/// (RuntimeDefault when neither the container nor the pod names a profile).
pub fn container(
    pod: &Pod,
    name: &str,
    root_dir: &Path,
    seccomp_default: bool,
) -> LinuxContainerSecurityContext {
    let pod_sc = &pod.raw["spec"]["securityContext"];
    let raw = pod.raw_container(name);
    let c_sc = &raw["securityContext"];
    let id = |key: &str| {
        effective(pod_sc, c_sc, key)
            .as_i64()
            .map(|value| Int64Value { value })
    };
    let caps = &c_sc["capabilities"];
    let unmasked = c_sc["procMount"] == "Unmasked";
    let paths = |p: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            p.iter().map(|s| s.to_string()).collect()
        }
    };
    let seccomp = seccomp(effective(pod_sc, c_sc, "seccompProfile"), root_dir).or_else(|| {
        seccomp_default.then(|| SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        })
    });
    LinuxContainerSecurityContext {
        capabilities: (caps.is_object()).then(|| Capability {
            add_capabilities: strings(&caps["add"]),
            drop_capabilities: strings(&caps["drop"]),
            ..Default::default()
        }),
        privileged: c_sc["privileged"] == true,
        namespace_options: Some(namespaces(pod)),
        run_as_user: id("runAsUser"),
        run_as_group: id("runAsGroup"),
        readonly_rootfs: c_sc["readOnlyRootFilesystem"] == true,
        supplemental_groups: supplemental_groups(pod_sc),
        no_new_privs: c_sc["allowPrivilegeEscalation"] == false,
        masked_paths: paths(MASKED_PATHS),
        readonly_paths: paths(READONLY_PATHS),
        seccomp,
        ..Default::default()
    }
}

/// The kubelet's runAsNonRoot check before a container is created: against its runAsUser, else
/// the image's user (`image_uid`, or `image_user` when the image names a user).
pub fn verify_non_root(
    pod: &Pod,
    name: &str,
    image: &dyn Fn() -> (Option<i64>, String),
) -> Result<(), String> {
    let pod_sc = &pod.raw["spec"]["securityContext"];
    let raw = pod.raw_container(name);
    let c_sc = &raw["securityContext"];
    if effective(pod_sc, c_sc, "runAsNonRoot") != true {
        return Ok(());
    }
    let who = format!("pod: {:?}, container: {name}", pod.key());
    match effective(pod_sc, c_sc, "runAsUser").as_i64() {
        Some(0) => {
            return Err(format!(
                "container's runAsUser breaks non-root policy ({who})"
            ));
        }
        Some(_) => return Ok(()),
        None => {}
    }
    let (image_uid, image_user) = image();
    match image_uid {
        Some(0) => Err(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
        Some(_) => Ok(()),
        None if !image_user.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify user is non-root ({who})"
        )),
        None => Err(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec_sc: Value, c_sc: Value) -> Pod {
        Pod::from_value(json!({
            "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"securityContext": spec_sc, "containers": [
                {"name": "c", "image": "busybox", "securityContext": c_sc},
                {"name": "plain", "image": "busybox"}
            ]}
        }))
        .unwrap()
    }

    #[test]
    fn container_over_pod() {
        let p = pod(
            json!({"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000],
                   "seccompProfile": {"type": "RuntimeDefault"}, "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}),
            json!({"runAsUser": 1001, "privileged": true, "readOnlyRootFilesystem": true,
                   "allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                   "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"}}),
        );
        let sc = container(&p, "c", Path::new("/var/lib/kubelet"), false);
        assert_eq!(sc.run_as_user, Some(Int64Value { value: 1001 }));
        assert_eq!(sc.run_as_group, Some(Int64Value { value: 3000 }));
        assert_eq!(sc.supplemental_groups, [2000, 4000]);
        assert!(sc.privileged && sc.readonly_rootfs && sc.no_new_privs);
        let caps = sc.capabilities.unwrap();
        assert_eq!(
            (caps.add_capabilities, caps.drop_capabilities),
            (vec!["NET_ADMIN".to_string()], vec!["ALL".to_string()])
        );
        let s = sc.seccomp.unwrap();
        assert_eq!(s.profile_type, ProfileType::Localhost as i32);
        assert_eq!(
            s.localhost_ref,
            "/var/lib/kubelet/seccomp/profiles/audit.json"
        );
        assert_eq!(sc.masked_paths.len(), MASKED_PATHS.len());
        let plain = container(&p, "plain", Path::new("/r"), false);
        assert_eq!(plain.run_as_user, Some(Int64Value { value: 1000 }));
        assert!(!plain.privileged && !plain.no_new_privs && plain.capabilities.is_none());
        assert_eq!(
            plain.seccomp.unwrap().profile_type,
            ProfileType::RuntimeDefault as i32
        );
        let (sb, sysctls) = sandbox(&p);
        assert!(
            sb.privileged,
            "a privileged container makes the sandbox privileged"
        );
        assert_eq!(sb.run_as_user, Some(Int64Value { value: 1000 }));
        assert_eq!(sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
    }

    #[test]
    fn defaults_and_unmasked() {
        let p = pod(json!({}), json!({"procMount": "Unmasked"}));
        let sc = container(&p, "c", Path::new("/r"), false);
        assert!(sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
        assert!(sc.seccomp.is_none() && sc.run_as_user.is_none());
        let d = container(&p, "plain", Path::new("/r"), true);
        assert_eq!(
            d.seccomp.unwrap().profile_type,
            ProfileType::RuntimeDefault as i32
        );
        assert_eq!(d.readonly_paths.len(), READONLY_PATHS.len());
        assert_eq!(namespaces(&p).pid, NamespaceMode::Container as i32);
    }

    #[test]
    fn run_as_non_root() {
        let p = pod(json!({"runAsNonRoot": true}), json!({}));
        assert!(verify_non_root(&p, "c", &|| (Some(1000), "".into())).is_ok());
        let e = verify_non_root(&p, "c", &|| (Some(0), "".into())).unwrap_err();
        assert_eq!(
            e,
            "container has runAsNonRoot and image will run as root (pod: \"default/p\", container: c)"
        );
        let e = verify_non_root(&p, "c", &|| (None, "nginx".into())).unwrap_err();
        assert!(e.contains("non-numeric user (nginx)"), "{e}");
        let p = pod(json!({"runAsNonRoot": true}), json!({"runAsUser": 0}));
        assert!(
            verify_non_root(&p, "c", &|| (Some(1000), "".into()))
                .unwrap_err()
                .contains("runAsUser breaks non-root policy")
        );
        let p = pod(json!({"runAsNonRoot": true, "runAsUser": 7}), json!({}));
        assert!(verify_non_root(&p, "c", &|| (Some(0), "".into())).is_ok());
        let p = pod(json!({}), json!({}));
        assert!(verify_non_root(&p, "c", &|| (Some(0), "".into())).is_ok());
    }
}
