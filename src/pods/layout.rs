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
/// The hash of the fields of a container that may change while it runs (its name and image),
/// with which it was created: a running container whose hash no longer matches its spec is
/// restarted (`container_hash`).
pub const HASH_ANNOTATION: &str = "io.kubernetes.container.hash";

/// The kubelet's `HashContainer`, to the value: FNV-1a (32 bit) over the spew dump of Go's
/// JSON of `{"image":..,"name":..}` (`([]uint8)[123 34 ...]`, the bytes in decimal), in
/// lower-case hex. The same value the kubelet writes, so that neither restarts the
/// containers the other made.
pub fn container_hash(name: &str, image: &str) -> String {
    let json = serde_json::json!({ "image": image, "name": name }).to_string();
    // Go's encoder escapes these in strings; serde_json leaves them.
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    let bytes: Vec<String> = json.bytes().map(|b| b.to_string()).collect();
    let dump = format!("([]uint8)[{}]", bytes.join(" "));
    let mut h: u32 = 0x811c_9dc5;
    for b in dump.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:x}")
}

/// The pod's cgroup parent, as the kubelet's cgroup manager names it for `driver`: with
/// cgroupfs `<cgroupRoot>/kubepods[/<qos>]/pod<uid>`; with systemd the same names as nested
/// slices (`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice`, `-` in
/// a name escaped as `_`), the path runc and containerd's systemd cgroup mode take.
pub fn cgroup_parent(driver: CgroupDriver, cgroup_root: &str, qos: &str, uid: &str) -> String {
    let mut names = match driver {
        CgroupDriver::Cgroupfs => Vec::new(),
        CgroupDriver::Systemd => root_slice_names(cgroup_root),
    };
    names.push("kubepods".to_string());
    match qos {
        "Guaranteed" => {}
        "Burstable" => names.push("burstable".into()),
        _ => names.push("besteffort".into()),
    }
    names.push(format!("pod{uid}"));
    match driver {
        CgroupDriver::Cgroupfs => {
            format!("{}/{}", cgroup_root.trim_end_matches('/'), names.join("/"))
        }
        CgroupDriver::Systemd => {
            // systemd's slice expansion: a-b-c.slice lives in a.slice/a-b.slice/a-b-c.slice.
            let escaped: Vec<String> = names.iter().map(|n| n.replace('-', "_")).collect();
            let mut path = String::new();
            for i in 1..=escaped.len() {
                path.push('/');
                path.push_str(&escaped[..i].join("-"));
                path.push_str(".slice");
            }
            path
        }
    }
}

/// The names a systemd-driver `cgroupRoot` stands for: none for `/`; a slice
/// (`edge-pods.slice`) its dash-separated parts; anything else its path components.
fn root_slice_names(cgroup_root: &str) -> Vec<String> {
    let r = cgroup_root.trim_matches('/');
    if r.is_empty() {
        return Vec::new();
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    match last.strip_suffix(".slice") {
        Some(slice) => slice
            .split('-')
            .filter(|p| !p.is_empty())
            .map(|p| p.replace('_', "-"))
            .collect(),
        None => r
            .split('/')
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect(),
    }
}

/// The cgroup drivers (`cgroupDriver`).
pub use crate::config::kubelet::CgroupDriver;

#[cfg(test)]
mod tests {
    use super::*;

    /// The kubelet's names (cm/cgroup_manager_linux.go ToCgroupfs and ToSystemd): a pod uid's
    /// dashes become underscores in a slice name; slices nest by their dash-separated prefix.
    #[test]
    fn cgroup_parents_for_both_drivers() {
        let uid = "3f1c2b7e-aaaa-bbbb-cccc-0123456789ab";
        let fs = |root, qos| cgroup_parent(CgroupDriver::Cgroupfs, root, qos, uid);
        let sd = |root, qos| cgroup_parent(CgroupDriver::Systemd, root, qos, uid);
        assert_eq!(
            fs("/", "Burstable"),
            format!("/kubepods/burstable/pod{uid}")
        );
        assert_eq!(
            fs("/edge/", "Guaranteed"),
            format!("/edge/kubepods/pod{uid}")
        );
        assert_eq!(
            fs("/", "BestEffort"),
            format!("/kubepods/besteffort/pod{uid}")
        );
        let u = uid.replace('-', "_");
        assert_eq!(
            sd("/", "Burstable"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice")
        );
        assert_eq!(
            sd("/", "Guaranteed"),
            format!("/kubepods.slice/kubepods-pod{u}.slice")
        );
        assert_eq!(
            sd("/", "BestEffort"),
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice")
        );
        // A root slice nests the rest: edge.slice/edge-kubepods.slice/...
        assert_eq!(
            sd("/edge.slice", "Guaranteed"),
            format!("/edge.slice/edge-kubepods.slice/edge-kubepods-pod{u}.slice")
        );
        // A cgroupfs-style root (a test's private parent) becomes its slice names.
        assert_eq!(
            sd("/tinylet-test", "Guaranteed"),
            format!(
                "/tinylet_test.slice/tinylet_test-kubepods.slice/tinylet_test-kubepods-pod{u}.slice"
            )
        );
    }
}
