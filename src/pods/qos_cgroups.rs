//! The QoS tiers' cgroups as the kubelet's QoS container manager keeps them: `kubepods` with
//! the cpu shares and memory limit of the node's allocatable (capacity less systemReserved and
//! kubeReserved when `enforceNodeAllocatable` has `pods`, else the capacity), `besteffort`
//! always at 2 shares, `burstable` at the shares of every active Burstable pod's cpu requests.
//! The pure part says what they should be; [`run`] writes them at start and again whenever the
//! burstable figure changes, looking every 2 s (the kubelet's housekeeping period) at the pods.

use std::time::Duration;

use serde_json::Value;

use super::cgroups::Cgroups;
use super::pod_resources::{self, PodCgroup, Qos};
use crate::config::kubelet::CgroupDriver;
use crate::warn;

/// How often the pods are looked at.
const PERIOD: Duration = Duration::from_secs(2);

/// The cpu shares of the burstable tier: those of the summed cpu requests of the pods that
/// have not finished and are Burstable (setCPUCgroupConfig).
pub fn burstable_shares<'a>(pods: impl IntoIterator<Item = &'a Value>) -> u64 {
    let milli: i64 = pods
        .into_iter()
        .filter(|p| !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")))
        .filter(|p| pod_resources::qos(p) == Qos::Burstable)
        .map(|p| pod_resources::requests(p).get("cpu").copied().unwrap_or(0))
        .fold(0, i64::saturating_add);
    pod_resources::shares(milli)
}

/// `kubepods`' settings: shares of `cpu_millis`, a memory limit of `memory` bytes.
pub fn node_cgroup(cpu_millis: i64, memory: i64) -> PodCgroup {
    PodCgroup {
        cpu_shares: pod_resources::shares(cpu_millis),
        cpu_quota: None,
        memory: (memory > 0).then_some(memory),
    }
}

/// The three tiers' cgroup paths (`kubepods`, `kubepods/burstable`, `kubepods/besteffort`,
/// or their slices) for `driver` under `cgroup_root`.
pub fn tier_paths(driver: CgroupDriver, cgroup_root: &str) -> [String; 3] {
    let parent = |qos: &str| {
        let pod = super::layout::cgroup_parent(driver, cgroup_root, qos, "x");
        pod.rsplit_once('/')
            .map_or(pod.clone(), |(p, _)| p.to_string())
    };
    [
        parent("Guaranteed"),
        parent("Burstable"),
        parent("BestEffort"),
    ]
}

/// What [`run`] needs.
pub struct Deps {
    pub cgroups: Cgroups,
    pub driver: CgroupDriver,
    pub cgroup_root: String,
    /// `kubepods`' settings; None: left as they are.
    pub node: Option<PodCgroup>,
    pub pods: super::Snapshot,
    pub stop: std::sync::Arc<crate::stop::Stop>,
}

/// Writes the tiers at start, then the burstable tier's shares whenever they change.
pub fn run(d: &Deps) {
    let [kubepods, burstable, besteffort] = tier_paths(d.driver, &d.cgroup_root);
    let min = PodCgroup {
        cpu_shares: 2,
        cpu_quota: None,
        memory: None,
    };
    let tiers = [(&kubepods, d.node.as_ref()), (&besteffort, Some(&min))];
    for (path, settings) in tiers {
        if let Some(Err(e)) = settings.map(|s| d.cgroups.create(path, None, s)) {
            warn!("QoS cgroup {path}: {e}");
        }
    }
    let mut written = None;
    loop {
        let shares = {
            let pods = d.pods.read().unwrap_or_else(|p| p.into_inner());
            burstable_shares(pods.iter().map(|v| &v.object))
        };
        if written != Some(shares) {
            let settings = PodCgroup {
                cpu_shares: shares,
                ..min
            };
            match d.cgroups.create(&burstable, None, &settings) {
                Ok(()) => written = Some(shares),
                Err(e) => warn!("QoS cgroup {burstable}: {e}"),
            }
        }
        if d.stop.sleep(PERIOD) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(requests: Value, limits: Value, phase: &str) -> Value {
        json!({"spec": {"containers": [{"name": "c", "resources": {"requests": requests, "limits": limits}}]},
               "status": {"phase": phase}})
    }

    #[test]
    fn the_burstable_tier_has_the_shares_of_its_active_pods() {
        let pods = [
            pod(json!({"cpu": "250m"}), json!({}), "Running"),
            pod(json!({"cpu": "750m"}), json!({}), "Pending"),
            // Finished, Guaranteed, BestEffort: not counted.
            pod(json!({"cpu": "4"}), json!({}), "Succeeded"),
            pod(json!({}), json!({"cpu": "1", "memory": "1Gi"}), "Running"),
            pod(json!({}), json!({}), "Running"),
        ];
        assert_eq!(burstable_shares(&pods), 1024);
        assert_eq!(burstable_shares(&[]), 2, "none: the least");
    }

    #[test]
    fn tiers_for_both_drivers() {
        assert_eq!(
            tier_paths(CgroupDriver::Cgroupfs, "/"),
            ["/kubepods", "/kubepods/burstable", "/kubepods/besteffort"]
        );
        assert_eq!(
            tier_paths(CgroupDriver::Systemd, "/"),
            [
                "/kubepods.slice",
                "/kubepods.slice/kubepods-burstable.slice",
                "/kubepods.slice/kubepods-besteffort.slice"
            ]
        );
        assert_eq!(
            node_cgroup(2000, 8 << 30),
            PodCgroup {
                cpu_shares: 2048,
                cpu_quota: None,
                memory: Some(8 << 30)
            }
        );
    }

    #[test]
    fn run_writes_the_tiers_and_follows_the_pods() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for c in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(d.path().join(c)).unwrap_or_default();
        }
        let snapshot = super::super::Snapshot::default();
        let stop = std::sync::Arc::new(crate::stop::Stop::default());
        let deps = Deps {
            cgroups: Cgroups::new(d.path()),
            driver: CgroupDriver::Cgroupfs,
            cgroup_root: "/r".into(),
            node: Some(node_cgroup(2000, 1 << 30)),
            pods: snapshot.clone(),
            stop: stop.clone(),
        };
        let t = std::thread::spawn(move || run(&deps));
        let read = |p: &str| {
            std::fs::read_to_string(d.path().join(p))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let until = |p: &str, want: &str| {
            let end = std::time::Instant::now() + Duration::from_secs(10);
            while read(p) != want && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert_eq!(read(p), want, "{p}");
        };
        until("cpu/r/kubepods/burstable/cpu.shares", "2");
        assert_eq!(read("cpu/r/kubepods/cpu.shares"), "2048");
        assert_eq!(
            read("memory/r/kubepods/memory.limit_in_bytes"),
            "1073741824"
        );
        assert_eq!(read("cpu/r/kubepods/besteffort/cpu.shares"), "2");
        snapshot
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(super::super::view::PodView {
                object: pod(json!({"cpu": "500m"}), json!({}), "Running"),
                ..Default::default()
            });
        until("cpu/r/kubepods/burstable/cpu.shares", "512");
        stop.stop();
        let _ = t.join();
    }
}
