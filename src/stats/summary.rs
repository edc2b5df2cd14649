//! The kubelet's Summary API types (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`), as
//! `/stats/summary` serializes them: every figure optional and left out when unknown, times in
//! RFC 3339; and the CPU rate (`usageNanoCores`) from two samples, as cAdvisor computes it.

use std::collections::HashMap;

use serde::Serialize;

use super::cgroup::Memory;

#[derive(Debug, Serialize, Default)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    pub system_containers: Vec<ContainerStats>,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit: Option<RlimitStats>,
}

/// The runtime's filesystems (one image filesystem that also holds the containers' layers).
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_fs: Option<FsStats>,
}

/// A pod volume's figures: FsStats inline, with the volume's name.
#[derive(Debug, Serialize, Default, Clone, PartialEq)]
pub struct VolumeStats {
    #[serde(flatten)]
    pub fs: FsStats,
    pub name: String,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodRef,
    pub start_time: String,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    pub process_stats: Option<ProcessStats>,
}

/// The processes in a pod's cgroup and those below it (the sandbox's and its containers').
#[derive(Debug, Serialize, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub process_count: u64,
}

#[derive(Debug, Serialize, Default, Clone)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

#[derive(Debug, Serialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    pub usage_core_nano_seconds: u64,
}

#[derive(Debug, Serialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub rss_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
}

impl MemoryStats {
    pub fn of(m: &Memory, time: &str) -> MemoryStats {
        MemoryStats {
            time: time.to_string(),
            available_bytes: m.available(),
            usage_bytes: m.usage,
            working_set_bytes: m.working_set,
            rss_bytes: m.rss,
            page_faults: m.page_faults,
            major_page_faults: m.major_page_faults,
        }
    }
}

#[derive(Debug, Serialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: String,
    pub available_bytes: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub inodes_free: u64,
    pub inodes: u64,
    pub inodes_used: u64,
}

/// The containers' CPU added up (a pod without a cgroup of its own); None when none has any.
pub fn sum_cpu(containers: &[ContainerStats], time: &str) -> Option<CpuStats> {
    let cpus: Vec<&CpuStats> = containers.iter().filter_map(|c| c.cpu.as_ref()).collect();
    (!cpus.is_empty()).then(|| CpuStats {
        time: time.to_string(),
        usage_nano_cores: cpus
            .iter()
            .try_fold(0u64, |a, c| Some(a + c.usage_nano_cores?)),
        usage_core_nano_seconds: cpus.iter().map(|c| c.usage_core_nano_seconds).sum(),
    })
}

/// The containers' memory added up; no available figure (there is no pod limit to take it from).
pub fn sum_memory(containers: &[ContainerStats], time: &str) -> Option<MemoryStats> {
    let mems: Vec<&MemoryStats> = containers
        .iter()
        .filter_map(|c| c.memory.as_ref())
        .collect();
    (!mems.is_empty()).then(|| MemoryStats {
        time: time.to_string(),
        available_bytes: None,
        usage_bytes: mems.iter().map(|m| m.usage_bytes).sum(),
        working_set_bytes: mems.iter().map(|m| m.working_set_bytes).sum(),
        rss_bytes: mems.iter().map(|m| m.rss_bytes).sum(),
        page_faults: mems.iter().map(|m| m.page_faults).sum(),
        major_page_faults: mems.iter().map(|m| m.major_page_faults).sum(),
    })
}

/// A network namespace's interfaces, `eth0` (the kubelet's default interface) inline.
#[derive(Debug, Serialize, Default, Clone, PartialEq)]
pub struct NetworkStats {
    pub time: String,
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Serialize, Default, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

impl NetworkStats {
    pub fn of(ifs: &[super::network::Interface], time: &str) -> NetworkStats {
        let all: Vec<InterfaceStats> = ifs
            .iter()
            .map(|i| InterfaceStats {
                name: i.name.clone(),
                rx_bytes: Some(i.rx_bytes),
                rx_errors: Some(i.rx_errors),
                tx_bytes: Some(i.tx_bytes),
                tx_errors: Some(i.tx_errors),
            })
            .collect();
        NetworkStats {
            time: time.to_string(),
            default: all
                .iter()
                .find(|i| i.name == "eth0")
                .cloned()
                .unwrap_or_default(),
            interfaces: all,
        }
    }
}

impl FsStats {
    /// A filesystem's size (statfs) with what one user of it uses.
    pub fn of(f: &crate::node::host::FsStats, used: super::fs::Usage, time: &str) -> FsStats {
        FsStats {
            time: time.to_string(),
            available_bytes: f.available_bytes,
            capacity_bytes: f.capacity_bytes,
            used_bytes: used.bytes,
            inodes_free: f.inodes_free,
            inodes: f.inodes,
            inodes_used: used.inodes,
        }
    }
}

#[derive(Debug, Serialize, Default, Clone, PartialEq)]
pub struct RlimitStats {
    pub time: String,
    pub maxpid: u64,
    pub curproc: u64,
}

/// Samples shorter apart than this keep the rate of the last longer interval, so two scrapes a
/// few milliseconds apart do not make a rate of noise.
const MIN_INTERVAL_NS: u64 = 1_000_000_000;

/// The last sample per cgroup and the rate it gave: (time ns, usage ns, rate in nanocores);
/// and when the last whole pass (a summary of every cgroup) was taken.
#[derive(Debug, Default)]
pub struct Rates {
    last: HashMap<String, (u64, u64, Option<u64>)>,
    pass: Option<u64>,
}

impl Rates {
    /// Records a whole pass taken at `now_ns`.
    pub fn passed(&mut self, now_ns: u64) {
        self.pass = Some(now_ns);
    }

    /// Whether the last pass is less than `period_ns` before `now_ns` (a clock that went back
    /// counts as not recent).
    pub fn recent(&self, now_ns: u64, period_ns: u64) -> bool {
        self.pass
            .is_some_and(|t| now_ns >= t && now_ns - t < period_ns)
    }

    /// Records a sample of `key`'s cumulative CPU time taken at `now_ns` and gives its rate in
    /// nanocores: Δusage / Δt over the last interval of at least a second; None until there is
    /// one, or when the counter went back (a new cgroup of the same name).
    pub fn observe(&mut self, key: &str, now_ns: u64, usage_ns: u64) -> Option<u64> {
        match self.last.get(key).copied() {
            Some((t, u, rate)) if usage_ns >= u && now_ns >= t => {
                if now_ns - t < MIN_INTERVAL_NS {
                    return rate;
                }
                let r = ((usage_ns - u) as u128 * 1_000_000_000 / (now_ns - t) as u128) as u64;
                self.last
                    .insert(key.to_string(), (now_ns, usage_ns, Some(r)));
                Some(r)
            }
            _ => {
                self.last.insert(key.to_string(), (now_ns, usage_ns, None));
                None
            }
        }
    }

    /// Forgets every cgroup not in `keep` (pods and containers that are gone).
    pub fn retain(&mut self, keep: &std::collections::HashSet<String>) {
        self.last.retain(|k, _| keep.contains(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_rate_is_delta_usage_over_delta_time() {
        let mut r = Rates::default();
        assert_eq!(
            r.observe("c", 10 * S, 5 * S),
            None,
            "one sample has no rate"
        );
        // Half a core over two seconds.
        assert_eq!(r.observe("c", 12 * S, 6 * S), Some(500_000_000));
        // 10 ms later: the last rate, not noise.
        assert_eq!(
            r.observe("c", 12 * S + 10_000_000, 6 * S + 9_000_000),
            Some(500_000_000)
        );
        // Two cores for one second.
        assert_eq!(r.observe("c", 13 * S, 8 * S), Some(2_000_000_000));
        // The counter went back: a new cgroup, start over.
        assert_eq!(r.observe("c", 14 * S, S), None);
        r.retain(&std::collections::HashSet::new());
        assert_eq!(r.observe("c", 15 * S, 2 * S), None, "forgotten");
    }

    #[test]
    fn unknown_figures_are_left_out() {
        let c = ContainerStats {
            name: "app".into(),
            start_time: "2026-12-02T01:00:00Z".into(),
            cpu: Some(CpuStats {
                time: "2026-12-02T01:00:10Z".into(),
                usage_nano_cores: None,
                usage_core_nano_seconds: 7,
            }),
            ..ContainerStats::default()
        };
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({"name": "app", "startTime": "2026-12-02T01:00:00Z",
                "cpu": {"time": "2026-12-02T01:00:10Z", "usageCoreNanoSeconds": 7}})
        );
    }
}
