//! Pod-level cgroups with the cgroupfs driver, on cgroup v1 and v2, under an injected mount
//! (`/sys/fs/cgroup`): made before the sandbox with `podPidsLimit` and the pod's memory limit
//! (when every container has one), removed after the sandbox, as the kubelet's pod container
//! manager does.

use std::path::{Path, PathBuf};

/// The v1 controllers a pod cgroup is made in (the others are left to the runtime).
const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids"];

pub struct Cgroups {
    mount: PathBuf,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("writing {value:?} to {}: {e}", path.display()))
}

impl Cgroups {
    pub fn new(mount: impl Into<PathBuf>) -> Cgroups {
        Cgroups {
            mount: mount.into(),
        }
    }

    /// Whether the mount is the unified (v2) hierarchy.
    pub fn v2(&self) -> bool {
        self.mount.join("cgroup.controllers").exists()
    }

    fn dirs(&self, parent: &str) -> Vec<(String, PathBuf)> {
        let rel = parent.trim_start_matches('/');
        if self.v2() {
            vec![(String::new(), self.mount.join(rel))]
        } else {
            V1_CONTROLLERS
                .iter()
                .filter(|c| self.mount.join(c).is_dir())
                .map(|c| (c.to_string(), self.mount.join(c).join(rel)))
                .collect()
        }
    }

    /// Makes the pod's cgroup `parent` (e.g. `/kubepods/burstable/pod<uid>`) with its limits:
    /// `pids` (podPidsLimit; None or negative = unlimited) and `memory` in bytes.
    pub fn create_pod(
        &self,
        parent: &str,
        pids: Option<i64>,
        memory: Option<i64>,
    ) -> Result<(), String> {
        if self.v2() {
            // Enable the controllers down the path, so the pod's limits can be set.
            let mut dir = self.mount.clone();
            for part in parent
                .trim_start_matches('/')
                .split('/')
                .filter(|p| !p.is_empty())
            {
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+cpu +memory +pids");
                dir = dir.join(part);
                if !dir.is_dir() {
                    std::fs::create_dir(&dir)
                        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
                }
            }
            if let Some(n) = pids.filter(|n| *n > 0) {
                write(&dir.join("pids.max"), &n.to_string())?;
            }
            if let Some(m) = memory.filter(|m| *m > 0) {
                write(&dir.join("memory.max"), &m.to_string())?;
            }
            return Ok(());
        }
        for (ctrl, dir) in self.dirs(parent) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            match ctrl.as_str() {
                "pids" => {
                    if let Some(n) = pids.filter(|n| *n > 0) {
                        write(&dir.join("pids.max"), &n.to_string())?;
                    }
                }
                "memory" => {
                    if let Some(m) = memory.filter(|m| *m > 0) {
                        write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the pod's cgroup (it is empty once the sandbox is gone); a missing one is fine.
    pub fn remove_pod(&self, parent: &str) -> Result<(), String> {
        for (_, dir) in self.dirs(parent) {
            match std::fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("removing {}: {e}", dir.display())),
            }
        }
        Ok(())
    }
}

/// The pod-level memory limit: the sum of its containers' limits when every one has one.
pub fn pod_memory_limit(limits: &[Option<i64>]) -> Option<i64> {
    if limits.is_empty() {
        return None;
    }
    limits
        .iter()
        .try_fold(0i64, |acc, l| l.map(|l| acc.saturating_add(l)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_fixture_tree() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for c in ["cpu", "memory", "pids", "cpuset"] {
            std::fs::create_dir_all(d.path().join(c)).unwrap_or_default();
        }
        let cg = Cgroups::new(d.path());
        assert!(!cg.v2());
        cg.create_pod("/kubepods/burstable/podu1", Some(100), Some(64 << 20))
            .unwrap_or_else(|e| panic!("{e}"));
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap_or_default();
        assert_eq!(read("pids/kubepods/burstable/podu1/pids.max"), "100");
        assert_eq!(
            read("memory/kubepods/burstable/podu1/memory.limit_in_bytes"),
            "67108864"
        );
        assert!(d.path().join("cpu/kubepods/burstable/podu1").is_dir());
        assert!(
            !d.path().join("cpuset/kubepods").exists(),
            "cpuset is left to the runtime"
        );
        // A fixture dir holds the files written; a real cgroup removes them itself.
        for f in [
            "pids/kubepods/burstable/podu1/pids.max",
            "memory/kubepods/burstable/podu1/memory.limit_in_bytes",
        ] {
            std::fs::remove_file(d.path().join(f)).unwrap_or_default();
        }
        cg.remove_pod("/kubepods/burstable/podu1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.path().join("pids/kubepods/burstable/podu1").exists());
        assert!(
            cg.remove_pod("/kubepods/burstable/podu1").is_ok(),
            "already gone is fine"
        );
    }

    #[test]
    fn v2_fixture_tree() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("cgroup.controllers"), "cpu memory pids\n")
            .unwrap_or_default();
        let cg = Cgroups::new(d.path());
        assert!(cg.v2());
        cg.create_pod("/kubepods/podu2", Some(50), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap_or_default();
        assert_eq!(read("kubepods/podu2/pids.max"), "50");
        assert_eq!(read("cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(
            read("kubepods/cgroup.subtree_control"),
            "+cpu +memory +pids"
        );
        assert!(!d.path().join("kubepods/podu2/memory.max").exists());
    }

    #[test]
    fn memory_limit_only_when_every_container_has_one() {
        assert_eq!(pod_memory_limit(&[Some(1), Some(2)]), Some(3));
        assert_eq!(pod_memory_limit(&[Some(1), None]), None);
        assert_eq!(pod_memory_limit(&[]), None);
    }
}
