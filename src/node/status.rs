//! The Node object's content, computed without I/O: capacity and allocatable from the host's
//! facts and the config's reservations, the pressure and Ready conditions with their
//! transitions and events, and the minimal strategic-merge patch between two statuses.

use std::collections::BTreeMap;

use super::host::{FsStats, Machine, Observations};
use crate::config::kubelet::{ReservedMap, Signal, Taint, ThresholdMap};
use crate::config::quantity::ThresholdValue;
use crate::kube::types::{
    ContainerImage, DaemonEndpoint, DaemonEndpoints, NodeAddress, NodeCondition, NodeStatus,
    NodeSystemInfo, ResourceList,
};

/// What the configuration says about this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub provider_id: String,
    pub max_pods: i64,
    pub pods_per_core: i64,
    pub system_reserved: ReservedMap,
    pub kube_reserved: ReservedMap,
    pub eviction_hard: ThresholdMap,
    pub eviction_soft: ThresholdMap,
    pub port: i32,
    pub kubelet_version: String,
    /// nodeStatusMaxImages; -1 for no limit.
    pub max_images: i32,
}

/// What was observed this round.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub machine: Machine,
    /// The filesystem of the root dir (ephemeral-storage).
    pub rootfs: FsStats,
    pub addresses: Vec<NodeAddress>,
    /// `<runtime name>://<version>`, or `<endpoint scheme>://Unknown` before the runtime answered.
    pub runtime_version: String,
    /// Why the node is not ready (runtime, network); empty when it is.
    pub not_ready: Vec<String>,
    pub pressure: Pressure,
    /// Largest first, as the runtime reported them.
    pub images: Vec<ContainerImage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pressure {
    pub memory: bool,
    pub disk: bool,
    pub pid: bool,
}

/// The node's pressure conditions as last reported, shared with pod admission (which refuses
/// pods under pressure, as the kubelet's eviction admit handler).
#[derive(Debug, Default)]
pub struct SharedPressure(std::sync::atomic::AtomicU8);

impl SharedPressure {
    pub fn set(&self, p: Pressure) {
        let bits = u8::from(p.memory) | u8::from(p.disk) << 1 | u8::from(p.pid) << 2;
        self.0.store(bits, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> Pressure {
        let bits = self.0.load(std::sync::atomic::Ordering::Relaxed);
        Pressure {
            memory: bits & 1 != 0,
            disk: bits & 2 != 0,
            pid: bits & 4 != 0,
        }
    }
}

/// An event about the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// The Event's annotations (the eviction manager's, on Evicted).
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl NodeEvent {
    pub fn normal(reason: &str, message: String) -> NodeEvent {
        NodeEvent {
            warning: false,
            reason: reason.into(),
            message,
            annotations: Default::default(),
        }
    }

    pub fn warning(reason: &str, message: String) -> NodeEvent {
        NodeEvent {
            warning: true,
            ..NodeEvent::normal(reason, message)
        }
    }
}

/// Kubernetes' canonical text of a byte count (BinarySI): the largest binary suffix that
/// divides it exactly (`2Gi`, `2048076Ki`), else plain digits.
pub fn binary_si(bytes: u64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    let mut v = bytes;
    let mut i = 0;
    while v.is_multiple_of(1024) && i < 6 {
        v /= 1024;
        i += 1;
    }
    format!("{v}{}", ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i])
}

/// CPU in millicores as the API writes it (`2`, `1500m`).
pub fn cpu_text(millis: i64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// The resources the agent reports, in base units (millicores for cpu).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory: i64,
    pub pods: i64,
    pub ephemeral: i64,
    /// (`hugepages-2Mi`, bytes)
    pub hugepages: Vec<(String, i64)>,
}

impl Resources {
    pub fn to_list(&self) -> ResourceList {
        let mut l = ResourceList::new();
        l.insert("cpu".into(), cpu_text(self.cpu_millis));
        l.insert("memory".into(), binary_si(self.memory.max(0) as u64));
        l.insert("pods".into(), self.pods.to_string());
        l.insert(
            "ephemeral-storage".into(),
            binary_si(self.ephemeral.max(0) as u64),
        );
        for (k, v) in &self.hugepages {
            l.insert(k.clone(), binary_si((*v).max(0) as u64));
        }
        l
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn capacity(spec: &Spec, m: &Machine, rootfs: &FsStats) -> Resources {
    let pods = if spec.pods_per_core > 0 {
        (i64::from(m.cpus) * spec.pods_per_core).min(spec.max_pods)
    } else {
        spec.max_pods
    };
    Resources {
        cpu_millis: i64::from(m.cpus) * 1000,
        memory: clamp(m.memory_bytes),
        pods,
        ephemeral: clamp(rootfs.capacity_bytes),
        hugepages: m
            .hugepages
            .iter()
            .map(|(size, n)| {
                (
                    format!("hugepages-{}", binary_si(*size)),
                    clamp(size.saturating_mul(*n)),
                )
            })
            .collect(),
    }
}

/// systemReserved + kubeReserved of resource `name` (in millis with `milli`).
fn reserved(spec: &Spec, name: &str, milli: bool) -> i64 {
    [&spec.system_reserved, &spec.kube_reserved]
        .iter()
        .filter_map(|m| m.iter().find(|(k, _)| k.as_str() == name).map(|(_, q)| q))
        .map(|q| {
            if milli {
                q.0.milli_value()
            } else {
                q.0.value()
            }
        })
        .sum()
}

/// The limits of the pods' cgroup (`kubepods`) as the kubelet sets them: the capacity's cpu
/// millis and memory bytes, less systemReserved and kubeReserved when `enforce`
/// (`enforceNodeAllocatable` has `pods`), floored at 0; no eviction threshold comes off.
pub fn pods_cgroup_limits(spec: &Spec, m: &Machine, enforce: bool) -> (i64, i64) {
    let (cpu, memory) = (i64::from(m.cpus) * 1000, clamp(m.memory_bytes));
    if !enforce {
        return (cpu, memory);
    }
    (
        (cpu - reserved(spec, "cpu", true)).max(0),
        (memory - reserved(spec, "memory", false)).max(0),
    )
}

/// Allocatable on machine `m` with the root dir's filesystem (None when it cannot be read).
pub fn allocatable_on(spec: &Spec, m: &Machine, root_dir: &std::path::Path) -> Option<Resources> {
    let fs = super::host::fs_stats(root_dir).ok()?;
    Some(allocatable(spec, &capacity(spec, m, &fs)))
}

/// A threshold's amount against `capacity`: the quantity, or the percentage of it (truncated,
/// as the kubelet's int64 cast); None when it is off.
pub fn threshold_amount(t: &ThresholdValue, capacity: i64) -> Option<i64> {
    match t {
        ThresholdValue::Quantity(q) => Some(q.value()),
        ThresholdValue::Percentage(p) => Some((capacity as f64 * (p / 100.0)) as i64),
        ThresholdValue::Disabled(_) => None,
    }
}

/// capacity - systemReserved - kubeReserved - hard eviction thresholds (memory.available from
/// memory, nodefs.available from ephemeral-storage) - huge pages (from memory), floored at 0.
pub fn allocatable(spec: &Spec, cap: &Resources) -> Resources {
    let reserved = |name: &str, milli: bool| reserved(spec, name, milli);
    let eviction = |s: Signal, capacity: i64| {
        spec.eviction_hard
            .get(&s)
            .and_then(|t| threshold_amount(&t.0, capacity))
            .unwrap_or(0)
    };
    let huge: i64 = cap.hugepages.iter().map(|(_, v)| v).sum();
    Resources {
        cpu_millis: (cap.cpu_millis - reserved("cpu", true)).max(0),
        memory: (cap.memory
            - reserved("memory", false)
            - eviction(Signal::MemoryAvailable, cap.memory)
            - huge)
            .max(0),
        pods: cap.pods,
        ephemeral: (cap.ephemeral
            - reserved("ephemeral-storage", false)
            - eviction(Signal::NodefsAvailable, cap.ephemeral))
        .max(0),
        hugepages: cap
            .hugepages
            .iter()
            .map(|(k, v)| (k.clone(), (v - reserved(k, false)).max(0)))
            .collect(),
    }
}

/// Which pressures the observations show now, against the hard and soft thresholds (a soft
/// threshold counts from the moment it is crossed, as for the kubelet's conditions).
/// `imagefs` is the runtime's image filesystem when it is known.
pub fn pressure(spec: &Spec, o: &Observations, imagefs: Option<&FsStats>) -> Pressure {
    let below = |s: Signal, observed: u64, capacity: u64| {
        [&spec.eviction_hard, &spec.eviction_soft]
            .iter()
            .filter_map(|m| m.get(&s))
            .filter_map(|t| threshold_amount(&t.0, clamp(capacity)))
            .any(|limit| clamp(observed) < limit)
    };
    let mut disk = below(
        Signal::NodefsAvailable,
        o.nodefs.available_bytes,
        o.nodefs.capacity_bytes,
    ) || below(
        Signal::NodefsInodesFree,
        o.nodefs.inodes_free,
        o.nodefs.inodes,
    );
    if let Some(i) = imagefs {
        disk =
            disk || below(
                Signal::ImagefsAvailable,
                i.available_bytes,
                i.capacity_bytes,
            ) || below(Signal::ImagefsInodesFree, i.inodes_free, i.inodes);
    }
    Pressure {
        memory: below(
            Signal::MemoryAvailable,
            o.memory_available,
            o.memory_capacity,
        ),
        disk,
        pid: below(
            Signal::PidAvailable,
            o.pid_max.saturating_sub(o.processes),
            o.pid_max,
        ),
    }
}

/// Keeps a pressure on for `period` after it was last observed
/// (`evictionPressureTransitionPeriod`), so a condition does not flap around its threshold.
#[derive(Debug, Clone, Default)]
pub struct Held {
    seen: [Option<std::time::Instant>; 3],
}

impl Held {
    pub fn update(
        &mut self,
        now: std::time::Instant,
        observed: Pressure,
        period: std::time::Duration,
    ) -> Pressure {
        let flags = [observed.memory, observed.disk, observed.pid];
        let mut out = [false; 3];
        for i in 0..3 {
            if flags[i] {
                self.seen[i] = Some(now);
            }
            out[i] =
                self.seen[i].is_some_and(|t| now.saturating_duration_since(t) < period) || flags[i];
        }
        Pressure {
            memory: out[0],
            disk: out[1],
            pid: out[2],
        }
    }
}

/// The texts of one pressure condition: (type, [reason, message, event] when false, when true).
type PressureTexts = (&'static str, [&'static str; 3], [&'static str; 3]);

const MEMORY: PressureTexts = (
    "MemoryPressure",
    [
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
        "NodeHasSufficientMemory",
    ],
    [
        "KubeletHasInsufficientMemory",
        "kubelet has insufficient memory available",
        "NodeHasInsufficientMemory",
    ],
);
const DISK: PressureTexts = (
    "DiskPressure",
    [
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
        "NodeHasNoDiskPressure",
    ],
    [
        "KubeletHasDiskPressure",
        "kubelet has disk pressure",
        "NodeHasDiskPressure",
    ],
);
const PID: PressureTexts = (
    "PIDPressure",
    [
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
        "NodeHasSufficientPID",
    ],
    [
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
        "NodeHasInsufficientPID",
    ],
);

fn status_text(b: bool) -> String {
    if b { "True" } else { "False" }.into()
}

/// The status for this round, built on `prev` (the node as the API has it; conditions and
/// capacity others added are kept), and the events its transitions cause.
pub fn build(spec: &Spec, f: &Facts, prev: &NodeStatus, now: &str) -> (NodeStatus, Vec<NodeEvent>) {
    let mut events = Vec::new();
    let node_event = |reason: &str| {
        NodeEvent::normal(
            reason,
            format!("Node {} status is now: {reason}", spec.name),
        )
    };

    let cap = capacity(spec, &f.machine, &f.rootfs);
    let alloc = allocatable(spec, &cap);
    let mut capacity = prev.capacity.clone();
    capacity.extend(cap.to_list());
    let mut allocatable = prev.allocatable.clone();
    allocatable.retain(|k, _| capacity.contains_key(k));
    allocatable.extend(alloc.to_list());
    for (k, v) in &capacity {
        allocatable.entry(k.clone()).or_insert_with(|| v.clone());
    }

    let mut conditions = prev.conditions.clone();
    for ((type_, off, on), value) in [
        (MEMORY, f.pressure.memory),
        (DISK, f.pressure.disk),
        (PID, f.pressure.pid),
    ] {
        let texts = if value { on } else { off };
        let i = match conditions.iter().position(|c| c.type_ == type_) {
            Some(i) => i,
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    ..NodeCondition::default()
                });
                conditions.len() - 1
            }
        };
        let c = &mut conditions[i];
        c.last_heartbeat_time = Some(now.into());
        if c.status != status_text(value) {
            c.status = status_text(value);
            c.reason = texts[0].into();
            c.message = texts[1].into();
            c.last_transition_time = Some(now.into());
            events.push(node_event(texts[2]));
        }
    }

    let (ready, reason, message) = match f.not_ready.as_slice() {
        [] => (
            true,
            "KubeletReady",
            "kubelet is posting ready status".to_string(),
        ),
        [one] => (false, "KubeletNotReady", one.clone()),
        many => (false, "KubeletNotReady", format!("[{}]", many.join(", "))),
    };
    let old_ready = conditions.iter().position(|c| c.type_ == "Ready");
    let transition = match old_ready.map(|i| conditions.remove(i)) {
        Some(old) if old.status == status_text(ready) => old.last_transition_time,
        Some(_) => {
            events.push(node_event(if ready { "NodeReady" } else { "NodeNotReady" }));
            Some(now.into())
        }
        None => Some(now.into()),
    };
    conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: status_text(ready),
        reason: reason.into(),
        message,
        last_heartbeat_time: Some(now.into()),
        last_transition_time: transition,
    });

    if !prev.node_info.boot_id.is_empty() && prev.node_info.boot_id != f.machine.boot_id {
        events.push(NodeEvent::warning(
            "Rebooted",
            format!(
                "Node {} has been rebooted, boot id: {}",
                spec.name, f.machine.boot_id
            ),
        ));
    }

    let mut images = f.images.clone();
    if spec.max_images >= 0 {
        images.truncate(spec.max_images as usize);
    }
    let status = NodeStatus {
        capacity,
        allocatable,
        conditions,
        addresses: f.addresses.clone(),
        daemon_endpoints: DaemonEndpoints {
            kubelet_endpoint: DaemonEndpoint { port: spec.port },
        },
        node_info: NodeSystemInfo {
            machine_id: f.machine.machine_id.clone(),
            system_uuid: f.machine.system_uuid.clone(),
            boot_id: f.machine.boot_id.clone(),
            kernel_version: f.machine.kernel_version.clone(),
            os_image: f.machine.os_image.clone(),
            container_runtime_version: f.runtime_version.clone(),
            kubelet_version: spec.kubelet_version.clone(),
            kube_proxy_version: prev.node_info.kube_proxy_version.clone(),
            operating_system: "linux".into(),
            architecture: go_arch().into(),
        },
        images,
    };
    (status, events)
}

/// GOARCH of the machine tinylet was built for.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// The node images from a runtime's list: names = digests then tags (at most 5), largest first.
pub fn images(list: &[crate::cri::api::Image]) -> Vec<ContainerImage> {
    let mut v: Vec<ContainerImage> = list
        .iter()
        .map(|i| ContainerImage {
            names: i
                .repo_digests
                .iter()
                .chain(&i.repo_tags)
                .take(5)
                .cloned()
                .collect(),
            size_bytes: clamp(i.size),
        })
        .filter(|i| !i.names.is_empty())
        .collect();
    v.sort_by_key(|i| std::cmp::Reverse(i.size_bytes));
    v
}

/// Whether two statuses differ in more than heartbeat times.
pub fn changed(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(a) != strip(b)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
