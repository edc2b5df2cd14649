//! Beyond the kubelet: every API pod is checkpointed in `<root-dir>/pods/<uid>/pod.json`, so
//! that after a reboot with the API server away the agent still knows what to run; written
//! atomically, and only when the pod changed in what a restore needs (the node's storage may
//! be flash).

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use serde_json::{Value, json};

use super::layout;
use super::spec::Pod;

/// What a pod's checkpoint must follow: the object without its resourceVersion and managed
/// fields, and of its status the phase and start time (admission and deadlines after a restore).
pub fn key(p: &Pod) -> Value {
    let mut v = p.raw.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v["status"] = json!({"phase": p.status["phase"], "startTime": p.status["startTime"]});
    v
}

/// Writes the pod's object to its checkpoint (atomically).
pub fn write(root_dir: &Path, pod: &Pod) {
    let dir = layout::pod_dir(root_dir, &pod.metadata.uid);
    let mut v = pod.raw.clone();
    v["status"] = pod.status.clone();
    let write = || -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&dir)?;
        let tmp = dir.join(".pod.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())?;
        std::fs::rename(&tmp, layout::checkpoint(root_dir, &pod.metadata.uid))
    };
    if let Err(e) = write() {
        crate::warn!("checkpointing pod {} in {}: {e}", pod.key(), dir.display());
    }
}

/// Checkpoints a pod that failed here (evicted, past its deadline) as Failed at once: should the
/// node restart before the API server has the status, a restore does not run it again.
pub fn write_failed(root_dir: &Path, pod: &Pod, reason: &str, message: &str) {
    let mut p = pod.clone();
    p.status["phase"] = json!("Failed");
    p.status["reason"] = json!(reason);
    p.status["message"] = json!(message);
    write(root_dir, &p);
}

/// The pods checkpointed by an earlier run (a checkpoint that does not name its directory's
/// uid, or cannot be read, is skipped with a warning).
pub fn restore(root_dir: &Path) -> Vec<Pod> {
    let Ok(dirs) = std::fs::read_dir(root_dir.join("pods")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in dirs.flatten() {
        let uid = d.file_name().to_string_lossy().into_owned();
        let path = layout::checkpoint(root_dir, &uid);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let pod = serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| e.to_string())
            .and_then(Pod::from_value);
        match pod {
            Ok(p) if p.metadata.uid == uid => out.push(p),
            Ok(p) => crate::warn!(
                "ignoring checkpoint {}: it holds pod uid {}",
                path.display(),
                p.metadata.uid
            ),
            Err(e) => crate::warn!("ignoring checkpoint {}: {e}", path.display()),
        }
    }
    out
}
