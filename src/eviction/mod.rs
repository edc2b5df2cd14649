//! Node-pressure eviction, as the kubelet's eviction manager: every 10 s the node's signals are
//! taken from the stats summary and held to the hard and soft thresholds (a soft one only once
//! it has been met for its grace period; one met before stays met until its minimum reclaim is
//! reclaimed too); for the starved resource (memory first), the node reclaims what it can
//! (unused images, for disk) and else one pod is evicted, ranked as the kubelet ranks them, never
//! a critical one (static, mirror, priority >= 2000000000). This module is the pure core
//! (table-tested in `tests.rs`); `run` is the thin loop around it.

pub mod run;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::config::kubelet::{KubeletConfiguration, Signal};
use crate::config::quantity::ThresholdValue;
use crate::node::status::{binary_si, threshold_amount};
use crate::stats::summary::{PodStats, Summary};

/// How often the signals are looked at (the kubelet's `evictionMonitoringPeriod`).
pub const PERIOD: Duration = Duration::from_secs(10);
/// The grace period of a pod evicted for a hard threshold.
pub const HARD_GRACE_SECONDS: i64 = 1;

/// One threshold: below `value`, the signal is met; `grace` zero for a hard threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: ThresholdValue,
    pub grace: Duration,
    pub min_reclaim: Option<ThresholdValue>,
}

/// The resource a signal measures, as the eviction messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    EphemeralStorage,
    Inodes,
    Pids,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::EphemeralStorage => "ephemeral-storage",
            Resource::Inodes => "inodes",
            Resource::Pids => "pids",
        }
    }
}

/// The resource `s` measures; None for the containerfs signals (the same filesystem as nodefs
/// or imagefs here, so their thresholds are those).
pub fn resource(s: Signal) -> Option<Resource> {
    match s {
        Signal::MemoryAvailable | Signal::AllocatableMemoryAvailable => Some(Resource::Memory),
        Signal::NodefsAvailable | Signal::ImagefsAvailable => Some(Resource::EphemeralStorage),
        Signal::NodefsInodesFree | Signal::ImagefsInodesFree => Some(Resource::Inodes),
        Signal::PidAvailable => Some(Resource::Pids),
        Signal::ContainerfsAvailable | Signal::ContainerfsInodesFree => None,
    }
}

/// The signal's quantities print in binary units (bytes), else as plain counts.
fn text(s: Signal, v: i64) -> String {
    match resource(s) {
        Some(Resource::Memory | Resource::EphemeralStorage) => binary_si(v.max(0) as u64),
        _ => decimal_si(v),
    }
}

/// Kubernetes' canonical text of a count (DecimalSI): the largest power of 1000 that divides it
/// exactly (`5M`, `1500k`), else plain digits.
pub fn decimal_si(v: i64) -> String {
    if v == 0 {
        return "0".into();
    }
    let (mut n, mut i) = (v, 0);
    while n % 1000 == 0 && i < 6 {
        n /= 1000;
        i += 1;
    }
    format!("{n}{}", ["", "k", "M", "G", "T", "P", "E"][i])
}

/// What the eviction manager acts on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub thresholds: Vec<Threshold>,
    /// `evictionMaxPodGracePeriod`: the grace period of a pod evicted for a soft threshold.
    pub max_pod_grace: i64,
    /// `localStorageCapacityIsolation`: pods over their local storage limits are evicted.
    pub local_storage: bool,
}

impl Config {
    /// The thresholds of the configuration, as the kubelet's ParseThresholdConfig: the hard
    /// ones, the soft ones with their grace periods (validated to be there), each with its
    /// minimum reclaim; with `enforceNodeAllocatable: [pods]` the hard memory.available one
    /// holds for allocatableMemory.available too. `0%`/`100%` ones are off.
    pub fn from_kubelet(k: &KubeletConfiguration) -> Config {
        let min = |s: &Signal| k.eviction_minimum_reclaim.get(s).map(|t| t.0.clone());
        let mut thresholds = Vec::new();
        for (s, t) in &k.eviction_hard {
            thresholds.push(Threshold {
                signal: *s,
                value: t.0.clone(),
                grace: Duration::ZERO,
                min_reclaim: min(s),
            });
        }
        for (s, t) in &k.eviction_soft {
            let grace = k.eviction_soft_grace_period.get(s).map(|d| d.as_std());
            thresholds.push(Threshold {
                signal: *s,
                value: t.0.clone(),
                grace: grace.unwrap_or(Duration::ZERO),
                min_reclaim: min(s),
            });
        }
        if k.enforce_node_allocatable.iter().any(|e| e == "pods") {
            let copies: Vec<Threshold> = thresholds
                .iter()
                .filter(|t| t.signal == Signal::MemoryAvailable && t.grace.is_zero())
                .map(|t| Threshold {
                    signal: Signal::AllocatableMemoryAvailable,
                    ..t.clone()
                })
                .collect();
            thresholds.extend(copies);
        }
        thresholds.retain(|t| {
            !matches!(t.value, ThresholdValue::Disabled(_)) && resource(t.signal).is_some()
        });
        Config {
            thresholds,
            max_pod_grace: i64::from(k.eviction_max_pod_grace_period),
            local_storage: k.local_storage_capacity_isolation,
        }
    }
}

/// A signal's observation: what is available of what capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub available: i64,
    pub capacity: i64,
}

pub type Observations = BTreeMap<Signal, Observed>;

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The signals a summary shows, as the kubelet's makeSignalObservations: memory.available and
/// allocatableMemory.available (the `pods` system container) are available over available +
/// working set; the filesystems' bytes and inodes; pid.available is maxpid - curproc.
pub fn observe(s: &Summary) -> Observations {
    let mut o = Observations::new();
    let memory = |m: &crate::stats::summary::MemoryStats| {
        m.available_bytes.map(|a| Observed {
            available: int(a),
            capacity: int(a.saturating_add(m.working_set_bytes)),
        })
    };
    if let Some(m) = s.node.memory.as_ref().and_then(memory) {
        o.insert(Signal::MemoryAvailable, m);
    }
    let pods = s.node.system_containers.iter().find(|c| c.name == "pods");
    if let Some(m) = pods.and_then(|c| c.memory.as_ref()).and_then(memory) {
        o.insert(Signal::AllocatableMemoryAvailable, m);
    }
    let mut fs = |bytes: Signal, inodes: Signal, f: &crate::stats::summary::FsStats| {
        o.insert(
            bytes,
            Observed {
                available: int(f.available_bytes),
                capacity: int(f.capacity_bytes),
            },
        );
        o.insert(
            inodes,
            Observed {
                available: int(f.inodes_free),
                capacity: int(f.inodes),
            },
        );
    };
    if let Some(f) = &s.node.fs {
        fs(Signal::NodefsAvailable, Signal::NodefsInodesFree, f);
    }
    if let Some(f) = s.node.runtime.as_ref().and_then(|r| r.image_fs.as_ref()) {
        fs(Signal::ImagefsAvailable, Signal::ImagefsInodesFree, f);
    }
    if let Some(r) = &s.node.rlimit {
        o.insert(
            Signal::PidAvailable,
            Observed {
                available: int(r.maxpid) - int(r.curproc),
                capacity: int(r.maxpid),
            },
        );
    }
    o
}

/// The threshold's quantity for an observation of `capacity`, plus its minimum reclaim when
/// that is enforced.
fn quantity(t: &Threshold, capacity: i64, with_min_reclaim: bool) -> Option<i64> {
    let q = threshold_amount(&t.value, capacity)?;
    let extra = match (&t.min_reclaim, with_min_reclaim) {
        (Some(m), true) => threshold_amount(m, capacity).unwrap_or(0),
        _ => 0,
    };
    Some(q.saturating_add(extra))
}

/// Whether `t` is met by the observations (less available than its quantity).
pub fn met(t: &Threshold, o: &Observations, with_min_reclaim: bool) -> bool {
    o.get(&t.signal).is_some_and(|obs| {
        quantity(t, obs.capacity, with_min_reclaim).is_some_and(|q| q > obs.available)
    })
}

/// What the manager remembers between rounds: when each threshold met now was first met, and
/// the thresholds acted on last round (met until their minimum reclaim is reclaimed too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manager {
    first_met: BTreeMap<usize, u64>,
    acting: Vec<usize>,
}

impl Manager {
    /// One round over the observations at `now_ms`: the threshold to reclaim for (an index
    /// into `cfg.thresholds`), memory before the rest; None when none is met past its grace.
    pub fn round(&mut self, cfg: &Config, o: &Observations, now_ms: u64) -> Option<usize> {
        let now_met: Vec<usize> = (0..cfg.thresholds.len())
            .filter(|&i| {
                met(&cfg.thresholds[i], o, false)
                    || (self.acting.contains(&i) && met(&cfg.thresholds[i], o, true))
            })
            .collect();
        self.first_met.retain(|i, _| now_met.contains(i));
        for &i in &now_met {
            self.first_met.entry(i).or_insert(now_ms);
        }
        self.acting = now_met
            .into_iter()
            .filter(|i| {
                let since = self.first_met.get(i).map(|t| now_ms.saturating_sub(*t));
                since.is_some_and(|ms| Duration::from_millis(ms) >= cfg.thresholds[*i].grace)
            })
            .collect();
        let memory = |i: &usize| resource(cfg.thresholds[*i].signal) == Some(Resource::Memory);
        let first = self.acting.iter().find(|i| memory(i)).copied();
        first.or_else(|| self.acting.first().copied())
    }
}

/// A pod that could be evicted, with what it uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidate {
    pub uid: String,
    /// `namespace/name`, for the logs.
    pub key: String,
    pub priority: i64,
    /// Static, mirror, or of system-critical priority: never evicted.
    pub critical: bool,
    /// `terminationGracePeriodSeconds` (30 when unset).
    pub grace: i64,
    pub memory_request: i64,
    pub storage_request: i64,
    /// The pod-level memory request (`spec.resources.requests.memory`), named in the message.
    pub pod_memory_request: Option<i64>,
    /// None: no stats were found for the pod (ranked first, as the kubelet does).
    pub usage: Option<Usage>,
}

/// What a pod uses, for each resource an eviction may reclaim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// The pod's working set; None when its stats have no memory.
    pub memory: Option<i64>,
    /// The bytes and inodes the nodefs and imagefs signals measure (see `measure`).
    pub nodefs: (i64, i64),
    pub imagefs: (i64, i64),
    pub processes: i64,
    /// Each container (app and init): name, working set, rootfs + logs bytes, requests of
    /// memory and ephemeral-storage.
    pub containers: Vec<ContainerUsage>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    pub memory: Option<i64>,
    pub storage: Option<i64>,
    pub memory_request: i64,
    pub storage_request: i64,
}

/// A container's `resources.requests[r]` in base units; 0 when unset or unreadable.
fn request(c: &Value, r: &str) -> i64 {
    c["resources"]["requests"][r]
        .as_str()
        .and_then(|q| crate::config::quantity::Quantity::parse(q).ok())
        .map_or(0, |q| q.value())
}

/// A critical pod is never evicted.
pub use crate::pods::pod_resources::critical;

/// The pod (its API object, as the owner publishes it) as a candidate, with its stats. With a
/// dedicated image filesystem, nodefs measures the logs and local volumes and imagefs the
/// containers' writable layers; without, both measure all three (as the kubelet's rank funcs).
pub fn candidate(pod: &Value, stats: Option<&PodStats>, dedicated_imagefs: bool) -> Candidate {
    let m = &pod["metadata"];
    let priority = pod["spec"]["priority"].as_i64().unwrap_or(0);
    let critical = critical(pod);
    let memory_request = crate::pods::admit::request_of(pod, "memory");
    let storage_request = crate::pods::admit::request_of(pod, "ephemeral-storage");
    let specs: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod["spec"][k].as_array())
        .flatten()
        .collect();
    let usage = stats.map(|s| {
        let (mut rootfs, mut logs, mut volumes) = ((0, 0), (0, 0), (0, 0));
        let add = |a: &mut (i64, i64), f: &crate::stats::summary::FsStats| {
            a.0 += int(f.used_bytes);
            a.1 += int(f.inodes_used);
        };
        let mut containers = Vec::new();
        for c in &s.containers {
            if let Some(f) = &c.rootfs {
                add(&mut rootfs, f);
            }
            if let Some(f) = &c.logs {
                add(&mut logs, f);
            }
            let Some(spec) = specs.iter().find(|v| v["name"] == c.name.as_str()) else {
                continue;
            };
            let storage = match (&c.rootfs, &c.logs) {
                (Some(r), Some(l)) => Some(int(r.used_bytes) + int(l.used_bytes)),
                _ => None,
            };
            containers.push(ContainerUsage {
                name: c.name.clone(),
                memory: c.memory.as_ref().map(|m| int(m.working_set_bytes)),
                storage,
                memory_request: request(spec, "memory"),
                storage_request: request(spec, "ephemeral-storage"),
            });
        }
        for v in &s.volume {
            add(&mut volumes, &v.fs);
        }
        let sum = |a: (i64, i64), b: (i64, i64)| (a.0 + b.0, a.1 + b.1);
        let all = sum(sum(rootfs, logs), volumes);
        let (nodefs, imagefs) = if dedicated_imagefs {
            (sum(logs, volumes), rootfs)
        } else {
            (all, all)
        };
        Usage {
            memory: s.memory.as_ref().map(|m| int(m.working_set_bytes)),
            nodefs,
            imagefs,
            processes: s.process_stats.as_ref().map_or(0, |p| int(p.process_count)),
            containers,
        }
    });
    Candidate {
        uid: m["uid"].as_str().unwrap_or("").to_string(),
        key: format!(
            "{}/{}",
            m["namespace"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or("")
        ),
        priority,
        critical,
        grace: pod["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(30),
        memory_request,
        storage_request,
        pod_memory_request: crate::pods::pod_resources::pod_level_request(pod, "memory"),
        usage,
    }
}

/// The candidates in the order they go for `signal`, as the kubelet's rank funcs: pods
/// without stats first; memory: over their request first, then lower priority, then more
/// above the request; pids: lower priority, then more processes; disk: over the request
/// first, then lower priority, then more above the request (inodes have no request).
pub fn rank(pods: &mut [Candidate], signal: Signal) {
    let Some(res) = resource(signal) else {
        return;
    };
    pods.sort_by_key(|c| {
        let Some(u) = &c.usage else {
            return (false, false, c.priority, 0);
        };
        let (used, request) = match (res, signal) {
            (Resource::Memory, _) => (u.memory.unwrap_or(0), c.memory_request),
            (Resource::Pids, _) => return (true, false, c.priority, -u.processes),
            (Resource::EphemeralStorage, Signal::ImagefsAvailable) => {
                (u.imagefs.0, c.storage_request)
            }
            (Resource::EphemeralStorage, _) => (u.nodefs.0, c.storage_request),
            (Resource::Inodes, Signal::ImagefsInodesFree) => (u.imagefs.1, 0),
            (Resource::Inodes, _) => (u.nodefs.1, 0),
        };
        (true, used <= request, c.priority, request - used)
    });
}

/// The eviction's message and its event's annotations, as the kubelet's evictionMessage: the
/// starved resource, the threshold's quantity and what was available, and each container using
/// more than it requested of that resource (first, for memory, the pod itself when it has a
/// pod-level request); with the pod's stats, the annotations `offending_containers` and
/// `offending_containers_usage` (those containers and their usage, comma-separated, empty when
/// none), `starved_resource`, and `offending_pod`, `offending_pod_usage` for the pod-level line.
pub fn message(
    t: &Threshold,
    o: &Observations,
    c: &Candidate,
) -> (String, BTreeMap<String, String>) {
    let res = resource(t.signal).map_or("", Resource::as_str);
    let mut m = format!("The node was low on resource: {res}. ");
    if let Some(obs) = o.get(&t.signal)
        && let Some(q) = quantity(t, obs.capacity, false)
    {
        let q = match &t.value {
            ThresholdValue::Quantity(q) => q.to_string(),
            _ => text(t.signal, q),
        };
        m += &format!(
            "Threshold quantity: {q}, available: {}. ",
            text(t.signal, obs.available)
        );
    }
    let Some(usage) = &c.usage else {
        return (m, BTreeMap::new());
    };
    let mut annotations = BTreeMap::new();
    // Pod-level resources: the pod's own use and request, whether over it or not.
    if let (Some(Resource::Memory), Some(request), Some(used)) =
        (resource(t.signal), c.pod_memory_request, usage.memory)
    {
        let name = c.key.rsplit_once('/').map_or(c.key.as_str(), |(_, n)| n);
        let used = binary_si(used.max(0) as u64);
        m += &format!(
            "Pod {name} was using {used}, request is {}, has larger consumption of {res}. ",
            binary_si(request.max(0) as u64)
        );
        annotations.insert("offending_pod".to_string(), name.to_string());
        annotations.insert("offending_pod_usage".to_string(), used);
    }
    let (mut names, mut used_texts) = (Vec::new(), Vec::new());
    for u in &usage.containers {
        let (used, request) = match resource(t.signal) {
            Some(Resource::Memory) => (u.memory, u.memory_request),
            Some(Resource::EphemeralStorage) => (u.storage, u.storage_request),
            _ => (None, 0),
        };
        if let Some(used) = used.filter(|&used| used > request) {
            let used = binary_si(used.max(0) as u64);
            m += &format!(
                "Container {} was using {used}, request is {}, has larger consumption of {res}. ",
                u.name,
                binary_si(request.max(0) as u64)
            );
            names.push(u.name.as_str());
            used_texts.push(used);
        }
    }
    annotations.extend([
        ("offending_containers".to_string(), names.join(",")),
        (
            "offending_containers_usage".to_string(),
            used_texts.join(","),
        ),
        ("starved_resource".to_string(), res.to_string()),
    ]);
    (m, annotations)
}

/// The grace period of a pod evicted for `t`: 1 s for a hard threshold; for a soft one
/// `evictionMaxPodGracePeriod`, or the pod's own when that is 0 (as the pod worker's
/// effective grace period), at least 1 s.
pub fn grace(t: &Threshold, cfg: &Config, c: &Candidate) -> i64 {
    if t.grace.is_zero() {
        return HARD_GRACE_SECONDS;
    }
    let g = if cfg.max_pod_grace > 0 {
        cfg.max_pod_grace
    } else {
        c.grace
    };
    g.max(1)
}

/// The pod to evict for `t`: the first candidate in rank order that is not critical, with its
/// message, its event's annotations and its grace period.
pub fn choose(
    t: &Threshold,
    cfg: &Config,
    o: &Observations,
    mut pods: Vec<Candidate>,
) -> Option<(Candidate, String, BTreeMap<String, String>, i64)> {
    rank(&mut pods, t.signal);
    let c = pods.into_iter().find(|c| !c.critical)?;
    let (msg, annotations) = message(t, o, &c);
    let g = grace(t, cfg, &c);
    Some((c, msg, annotations, g))
}

/// A quantity field of the pod's spec: its text and its value.
fn limit_of(v: &Value) -> Option<(String, i64)> {
    let text = v.as_str()?;
    let q = crate::config::quantity::Quantity::parse(text).ok()?;
    (q.value() > 0).then(|| (q.to_string(), q.value()))
}

/// A pod using more local storage than its spec allows, as the kubelet's localStorageEviction
/// (checked in this order, each evicting at once): an emptyDir over its `sizeLimit`, the pod's
/// ephemeral storage over its containers' limits added up, a container's logs (and writable
/// layer, without a dedicated image filesystem) over its own limit. The message and the signal
/// `kubelet_evictions` counts it under.
pub fn over_local_limits(
    pod: &Value,
    s: &PodStats,
    dedicated_imagefs: bool,
) -> Option<(String, &'static str)> {
    let spec = &pod["spec"];
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let (Some(name), Some((limit, bytes))) = (
            v["name"].as_str(),
            limit_of(&v["emptyDir"]["sizeLimit"]).filter(|_| v["emptyDir"].is_object()),
        ) else {
            continue;
        };
        let used = s
            .volume
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.fs.used_bytes);
        if used.is_some_and(|u| int(u) > bytes) {
            return Some((
                format!("Usage of EmptyDir volume {name:?} exceeds the limit {limit:?}. "),
                "emptydirfs.limit",
            ));
        }
    }
    let limit = |c: &Value| limit_of(&c["resources"]["limits"]["ephemeral-storage"]);
    let list = |k: &str| spec[k].as_array().into_iter().flatten();
    let apps: Vec<i64> = list("containers")
        .filter_map(|c| limit(c).map(|l| l.1))
        .collect();
    let inits = list("initContainers").filter_map(|c| limit(c).map(|l| l.1));
    let any = !apps.is_empty() || list("initContainers").any(|c| limit(c).is_some());
    let total = inits.fold(apps.iter().sum(), i64::max);
    let used = s
        .ephemeral_storage
        .as_ref()
        .map_or(0, |e| int(e.used_bytes));
    if any && used > total {
        return Some((
            format!(
                "Pod ephemeral local storage usage exceeds the total limit of containers {}. ",
                binary_si(total.max(0) as u64)
            ),
            "ephemeralpodfs.limit",
        ));
    }
    for c in &s.containers {
        let Some((text, bytes)) = list("containers")
            .find(|v| v["name"] == c.name.as_str())
            .and_then(limit)
        else {
            continue;
        };
        let bytes_of = |f: &Option<crate::stats::summary::FsStats>| {
            f.as_ref().map_or(0, |f| int(f.used_bytes))
        };
        let mut used = bytes_of(&c.logs);
        if !dedicated_imagefs {
            used += bytes_of(&c.rootfs);
        }
        if used > bytes {
            return Some((
                format!(
                    "Container {} exceeded its local ephemeral storage limit {text:?}. ",
                    c.name
                ),
                "ephemeralcontainerfs.limit",
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests;
