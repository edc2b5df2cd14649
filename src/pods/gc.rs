//! Cleaning up after pods that are gone, on a thread of its own: sandboxes (and their
//! containers) of pods the agent no longer has, their log directories, and the pod directories
//! (volumes, checkpoints) left behind, never through a mount that is not the agent's own.

use std::collections::HashSet;
use std::path::Path;

use super::config::Config;
use super::layout;
use super::seams::Cri;
use crate::cri::api::*;
use crate::{info, vinfo, warn};

/// Removes a directory tree of a gone pod (logs, volumes); already gone is fine.
pub fn remove_tree(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => vinfo!(2, "removed {}", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("removing {}: {e}", dir.display()),
    }
}

/// Removes a gone pod's directory. The agent's own mounts under it (emptyDir `medium: Memory`,
/// subPath binds) are unmounted first; when anything else is mounted there (a volume of
/// another's), the directory stays: removing through a mount would delete what it holds.
pub fn remove_pod_dir(cfg: &Config, uid: &str) {
    let dir = cfg.pod_dir(uid);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", dir.display());
    let ours = [
        format!("{prefix}volumes/kubernetes.io~empty-dir/"),
        format!("{prefix}volume-subpaths/"),
    ];
    for m in mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
    {
        let unmounted = ours.iter().any(|o| m.starts_with(o.as_str()))
            && nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH).is_ok();
        if !unmounted {
            warn!("not removing {}: {m} is mounted under it", dir.display());
            return;
        }
    }
    remove_tree(&dir);
}

/// The uids of the pods the owner has, kept by the owner and read here at each decision (a pod
/// added meanwhile is never taken for an orphan).
pub type Known = std::sync::RwLock<HashSet<String>>;

fn is_known(known: &Known, uid: &str) -> bool {
    known
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .contains(uid)
}

/// Sandboxes of pods not in `known`: their containers and they are removed (each stop within
/// 30 s), with their log directories; then the pod directories of pods not in `known`.
pub fn remove_orphans(cri: &dyn Cri, cfg: &Config, known: &Known) {
    let Ok(list) = cri.list_pod_sandbox(&ListPodSandboxRequest::default()) else {
        return;
    };
    for s in list.items {
        let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        let uid = label(layout::POD_UID_LABEL);
        if uid.is_empty() || is_known(known, &uid) {
            continue;
        }
        info!(
            "removing sandbox {} of pod uid {uid}, which no longer exists",
            s.id
        );
        let containers = cri
            .list_containers(&ListContainersRequest {
                filter: Some(ContainerFilter {
                    pod_sandbox_id: s.id.clone(),
                    ..Default::default()
                }),
            })
            .map(|l| l.containers)
            .unwrap_or_default();
        // At once, as a pod's containers are stopped.
        std::thread::scope(|sc| {
            for c in &containers {
                sc.spawn(move || {
                    let _ = cri.stop_container(&StopContainerRequest {
                        container_id: c.id.clone(),
                        timeout: 30,
                    });
                    let _ = cri.remove_container(&RemoveContainerRequest {
                        container_id: c.id.clone(),
                    });
                });
            }
        });
        let _ = cri.stop_pod_sandbox(&StopPodSandboxRequest {
            pod_sandbox_id: s.id.clone(),
        });
        let _ = cri.remove_pod_sandbox(&RemovePodSandboxRequest {
            pod_sandbox_id: s.id.clone(),
        });
        let (ns, name) = (
            label(layout::POD_NAMESPACE_LABEL),
            label(layout::POD_NAME_LABEL),
        );
        if !ns.is_empty() && !name.is_empty() {
            remove_tree(&layout::log_dir(&cfg.pod_logs_dir, &ns, &name, &uid));
        }
    }
    for d in std::fs::read_dir(cfg.root_dir.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let uid = d.file_name().to_string_lossy().into_owned();
        if !is_known(known, &uid) {
            remove_pod_dir(cfg, &uid);
        }
    }
}
