//! Pod-level cgroups with the cgroupfs driver, on cgroup v1 and v2, under an injected mount
//! (`/sys/fs/cgroup`): made before the sandbox with `podPidsLimit` and the settings the kubelet
//! gives a pod's cgroup (cpu shares, CFS quota, memory limit: [`super::pod_resources`]),
//! removed after the sandbox, as the kubelet's pod container manager does.

use std::path::{Path, PathBuf};

use super::pod_resources::PodCgroup;

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

    /// Makes cgroup `parent`, a pod's (e.g. `/kubepods/burstable/pod<uid>`) or a QoS tier's
    /// (`/kubepods/burstable`; made again to update it), with its limits:
    /// `pids` (podPidsLimit; None or negative = unlimited) and `settings` (cpu shares, CFS
    /// quota, memory), written as runc's cgroup drivers write them: on v1 `cpu.shares`,
    /// `cpu.cfs_period_us`, `cpu.cfs_quota_us`, `memory.limit_in_bytes`; on v2 `cpu.weight`
    /// (shares converted), `cpu.max`, `memory.max`.
    pub fn create(
        &self,
        parent: &str,
        pids: Option<i64>,
        settings: &PodCgroup,
    ) -> Result<(), String> {
        let pids = pids.filter(|n| *n > 0);
        let memory = settings.memory.filter(|m| *m > 0);
        let period = super::pod_resources::CFS_PERIOD_US;
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
            write(
                &dir.join("cpu.weight"),
                &cpu_weight(settings.cpu_shares).to_string(),
            )?;
            if let Some(q) = settings.cpu_quota.filter(|q| *q != 0) {
                let q = if q > 0 { q.to_string() } else { "max".into() };
                write(&dir.join("cpu.max"), &format!("{q} {period}"))?;
            }
            if let Some(n) = pids {
                write(&dir.join("pids.max"), &n.to_string())?;
            }
            if let Some(m) = memory {
                write(&dir.join("memory.max"), &m.to_string())?;
            }
            return Ok(());
        }
        for (ctrl, dir) in self.dirs(parent) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            match ctrl.as_str() {
                "cpu" => {
                    write(&dir.join("cpu.shares"), &settings.cpu_shares.to_string())?;
                    if let Some(q) = settings.cpu_quota.filter(|q| *q != 0) {
                        write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                    }
                }
                "pids" => {
                    if let Some(n) = pids {
                        write(&dir.join("pids.max"), &n.to_string())?;
                    }
                }
                "memory" => {
                    if let Some(m) = memory {
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

/// CPU shares as a cgroup v2 weight (runc's ConvertCPUSharesToCgroupV2Value): [2, 262144] onto
/// [1, 10000].
pub fn cpu_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUARANTEED: PodCgroup = PodCgroup {
        cpu_shares: 512,
        cpu_quota: Some(50_000),
        memory: Some(64 << 20),
    };

    #[test]
    fn v1_fixture_tree() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for c in ["cpu", "memory", "pids", "cpuset"] {
            std::fs::create_dir_all(d.path().join(c)).unwrap_or_default();
        }
        let cg = Cgroups::new(d.path());
        assert!(!cg.v2());
        cg.create("/kubepods/podu1", Some(100), &GUARANTEED)
            .unwrap_or_else(|e| panic!("{e}"));
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap_or_default();
        assert_eq!(read("pids/kubepods/podu1/pids.max"), "100");
        assert_eq!(
            read("memory/kubepods/podu1/memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(read("cpu/kubepods/podu1/cpu.shares"), "512");
        assert_eq!(read("cpu/kubepods/podu1/cpu.cfs_period_us"), "100000");
        assert_eq!(read("cpu/kubepods/podu1/cpu.cfs_quota_us"), "50000");
        assert!(
            !d.path().join("cpuset/kubepods").exists(),
            "cpuset is left to the runtime"
        );
        // A Burstable pod without limits: its shares only.
        let burstable = PodCgroup {
            cpu_shares: 102,
            cpu_quota: None,
            memory: None,
        };
        cg.create("/kubepods/burstable/podu2", None, &burstable)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("cpu/kubepods/burstable/podu2/cpu.shares"), "102");
        for f in [
            "cpu/kubepods/burstable/podu2/cpu.cfs_quota_us",
            "memory/kubepods/burstable/podu2/memory.limit_in_bytes",
            "pids/kubepods/burstable/podu2/pids.max",
        ] {
            assert!(!d.path().join(f).exists(), "{f}");
        }
        // A fixture dir holds the files written; a real cgroup removes them itself.
        for f in [
            "pids.max",
            "memory.limit_in_bytes",
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
        ] {
            for c in ["pids", "memory", "cpu"] {
                let _ = std::fs::remove_file(d.path().join(c).join("kubepods/podu1").join(f));
            }
        }
        cg.remove_pod("/kubepods/podu1")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!d.path().join("pids/kubepods/podu1").exists());
        assert!(
            cg.remove_pod("/kubepods/podu1").is_ok(),
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
        cg.create("/kubepods/podu2", Some(50), &GUARANTEED)
            .unwrap_or_else(|e| panic!("{e}"));
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).unwrap_or_default();
        assert_eq!(read("kubepods/podu2/pids.max"), "50");
        assert_eq!(read("cgroup.subtree_control"), "+cpu +memory +pids");
        assert_eq!(
            read("kubepods/cgroup.subtree_control"),
            "+cpu +memory +pids"
        );
        assert_eq!(read("kubepods/podu2/memory.max"), "67108864");
        assert_eq!(read("kubepods/podu2/cpu.max"), "50000 100000");
        assert_eq!(read("kubepods/podu2/cpu.weight"), "20");
        // cpuCFSQuota off: unlimited; BestEffort: the least weight, no memory limit.
        let unlimited = PodCgroup {
            cpu_quota: Some(-1),
            ..GUARANTEED
        };
        cg.create("/kubepods/podu3", None, &unlimited)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("kubepods/podu3/cpu.max"), "max 100000");
        let best = PodCgroup {
            cpu_shares: 2,
            cpu_quota: None,
            memory: None,
        };
        cg.create("/kubepods/besteffort/podu4", None, &best)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("kubepods/besteffort/podu4/cpu.weight"), "1");
        assert!(
            !d.path()
                .join("kubepods/besteffort/podu4/memory.max")
                .exists()
        );
        assert!(!d.path().join("kubepods/besteffort/podu4/cpu.max").exists());
    }

    #[test]
    fn shares_as_cgroup_v2_weights() {
        assert_eq!([2, 1024, 102, 262_144].map(cpu_weight), [1, 39, 4, 10_000]);
    }
}
