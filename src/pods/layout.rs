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
