//! One place for where a pod's things live on the node (log files, the pod directory) and for
//! the `io.kubernetes.*` names the runtime knows pods and containers by, as the kubelet's.

use std::path::{Path, PathBuf};

pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";

/// `<podLogsDir>/<ns>_<name>_<uid>`: a pod's log directory (the sandbox's log_directory).
pub fn log_dir(pod_logs_dir: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    pod_logs_dir.join(format!("{ns}_{name}_{uid}"))
}

/// `<container>/<attempt>.log`: a container's log path within its pod's log directory.
pub fn container_log(container: &str, attempt: u32) -> String {
    format!("{container}/{attempt}.log")
}

/// `<root-dir>/pods/<uid>`: a pod's volumes, checkpoint and agent files.
pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

/// `<pod dir>/pod.json`: the API pod's checkpoint.
pub fn checkpoint(root_dir: &Path, uid: &str) -> PathBuf {
    pod_dir(root_dir, uid).join("pod.json")
}

/// `<pod dir>/containers/<name>/<attempt>`: the file mounted at a container's
/// terminationMessagePath.
pub fn termination_file(root_dir: &Path, uid: &str, name: &str, attempt: u32) -> PathBuf {
    pod_dir(root_dir, uid)
        .join("containers")
        .join(name)
        .join(attempt.to_string())
}

/// `<pod dir>/etc-hosts`: the kubelet's managed /etc/hosts of the pod.
pub fn etc_hosts(root_dir: &Path, uid: &str) -> PathBuf {
    pod_dir(root_dir, uid).join("etc-hosts")
}

/// Container annotations the runtime keeps for the agent (as the kubelet's): where the
/// termination message is and how to read it.
pub const TERMINATION_PATH_ANNOTATION: &str = "io.kubernetes.container.terminationMessagePath";
pub const TERMINATION_POLICY_ANNOTATION: &str = "io.kubernetes.container.terminationMessagePolicy";

/// `<cgroupRoot>/kubepods[/<qos>]/pod<uid>`: the pod's cgroup parent (cgroupfs driver).
pub fn cgroup_parent(cgroup_root: &str, qos: &str, uid: &str) -> String {
    let root = cgroup_root.trim_end_matches('/');
    match qos {
        "Guaranteed" => format!("{root}/kubepods/pod{uid}"),
        "Burstable" => format!("{root}/kubepods/burstable/pod{uid}"),
        _ => format!("{root}/kubepods/besteffort/pod{uid}"),
    }
}
