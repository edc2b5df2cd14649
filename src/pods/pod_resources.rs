//! A pod's requests and limits added up as the kubelet does (component-helpers' PodRequests and
//! PodLimits), its QoS class (GetPodQOS) and its cgroup's settings (ResourceConfigForPod): pure
//! functions of the pod's API object.
//!
//! The sums: app containers added; a sidecar (an init container with `restartPolicy: Always`)
//! added too, and counted with every init container after it; the larger of that and each init
//! container's need. Pod-level resources (`spec.resources`, cpu, memory and hugepages; on by
//! default since v1.34) stand in for the sums; `spec.overhead` is added (to limits only where
//! there is one). A container's missing request is its limit (the API's defaulting, for static
//! pods that were not through the API server).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::quantity::Quantity;

/// Resource name -> amount in thousandths of its unit (millicores, millibytes), so that one
/// representation serves every resource and rounds as the API's `Value()` when asked.
pub type List = BTreeMap<String, i64>;

/// The kubelet's CPU shares bounds and CFS period (µs).
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;
pub const CFS_PERIOD_US: u64 = 100_000;
const MIN_QUOTA_US: i64 = 1000;

/// An amount in whole units, rounded up (the API's `Quantity.Value()`).
pub fn whole(milli: i64) -> i64 {
    milli.div_euclid(1000) + i64::from(milli.rem_euclid(1000) != 0)
}

/// A ResourceList object as a [`List`]; entries that do not parse are left out (the API server
/// has validated them).
fn list(v: &Value) -> List {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| {
            let q = Quantity::parse(q.as_str()?).ok()?;
            Some((k.clone(), q.milli_value()))
        })
        .collect()
}

fn add(into: &mut List, from: &List) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(0);
        *e = e.saturating_add(*v);
    }
}

fn max(into: &mut List, from: &List) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(*v);
        *e = (*e).max(*v);
    }
}

/// A resource pod-level resources may name.
fn pod_level_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory") || name.starts_with("hugepages-")
}

fn pod_level(pod: &Value, key: &str) -> List {
    let mut l = list(&pod["spec"]["resources"][key]);
    l.retain(|k, _| pod_level_resource(k));
    l
}

/// The pod-level request of `name` (`spec.resources.requests`) in whole units, when set.
pub fn pod_level_request(pod: &Value, name: &str) -> Option<i64> {
    pod_level(pod, "requests").get(name).copied().map(whole)
}

/// Whether the pod sets pod-level resources (IsPodLevelResourcesSet).
pub fn pod_level_set(pod: &Value) -> bool {
    !pod_level(pod, "requests").is_empty() || !pod_level(pod, "limits").is_empty()
}

/// A container's requests (`key` "requests", missing ones from its limits) or limits.
fn container(c: &Value, key: &str) -> List {
    let mut l = list(&c["resources"][key]);
    if key == "requests" {
        for (k, v) in list(&c["resources"]["limits"]) {
            l.entry(k).or_insert(v);
        }
    }
    l
}

/// The containers' `key` added up as the sidecar KEP says, and whether every container's (with
/// the sidecars before it, for an init container) has a cpu and a memory entry (the kubelet's
/// ContainerFn in ResourceConfigForPod: "limits declared").
fn aggregate(pod: &Value, key: &str) -> (List, bool, bool) {
    let (mut total, mut cpu, mut memory) = (List::new(), true, true);
    let mut declared = |l: &List| {
        cpu &= l.get("cpu").is_some_and(|v| *v != 0);
        memory &= l.get("memory").is_some_and(|v| *v != 0);
    };
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let l = container(c, key);
        declared(&l);
        add(&mut total, &l);
    }
    let (mut sidecars, mut init) = (List::new(), List::new());
    for c in pod["spec"]["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut l = container(c, key);
        if c["restartPolicy"] == "Always" {
            add(&mut total, &l);
            add(&mut sidecars, &l);
            l = sidecars.clone();
        } else {
            add(&mut l, &sidecars);
        }
        declared(&l);
        max(&mut init, &l);
    }
    max(&mut total, &init);
    (total, cpu, memory)
}

/// The pod's requests (PodRequests, overhead included): what admission and the scheduler count.
pub fn requests(pod: &Value) -> List {
    let (mut r, _, _) = aggregate(pod, "requests");
    r.extend(pod_level(pod, "requests"));
    add(&mut r, &list(&pod["spec"]["overhead"]));
    r
}

/// The pod's limits (PodLimits, overhead added where there is a limit) and whether cpu and
/// memory limits are declared for all of it (every container, or at pod level).
pub fn limits(pod: &Value) -> (List, bool, bool) {
    let (mut l, mut cpu, mut memory) = aggregate(pod, "limits");
    let pod_limits = pod_level(pod, "limits");
    if pod_level_set(pod) {
        cpu |= pod_limits.get("cpu").is_some_and(|v| *v != 0);
        memory |= pod_limits.get("memory").is_some_and(|v| *v != 0);
    }
    l.extend(pod_limits);
    for (k, v) in list(&pod["spec"]["overhead"]) {
        if let Some(e) = l.get_mut(&k).filter(|e| **e != 0) {
            *e = e.saturating_add(v);
        }
    }
    (l, cpu, memory)
}

/// The QoS classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

/// The pod's QoS class as the kubelet takes it (GetPodQOS): `status.qosClass` when the API
/// server has set it, else computed (ComputePodQOS): from pod-level resources when the pod has
/// `spec.resources`, else from its app and init containers; cpu and memory only, zero amounts
/// ignored. Guaranteed when every one has cpu and memory limits and the summed requests equal
/// the summed limits; BestEffort with neither; Burstable otherwise.
pub fn qos(pod: &Value) -> Qos {
    match pod["status"]["qosClass"].as_str() {
        Some("Guaranteed") => return Qos::Guaranteed,
        Some("Burstable") => return Qos::Burstable,
        Some("BestEffort") => return Qos::BestEffort,
        _ => {}
    }
    let qos_only = |mut l: List| {
        l.retain(|k, v| matches!(k.as_str(), "cpu" | "memory") && *v > 0);
        l
    };
    let (mut requests, mut limits, mut guaranteed) = (List::new(), List::new(), true);
    let resources = &pod["spec"]["resources"];
    if resources.is_object() {
        requests = qos_only(list(&resources["requests"]));
        if resources["limits"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
        {
            limits = qos_only(list(&resources["limits"]));
            guaranteed &= limits.len() == 2;
        }
    } else {
        for key in ["containers", "initContainers"] {
            for c in pod["spec"][key].as_array().into_iter().flatten() {
                add(&mut requests, &qos_only(container(c, "requests")));
                let l = qos_only(container(c, "limits"));
                guaranteed &= l.len() == 2;
                add(&mut limits, &l);
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return Qos::BestEffort;
    }
    guaranteed &= requests.iter().all(|(k, v)| limits.get(k) == Some(v));
    if guaranteed && requests.len() == limits.len() {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

/// The kubelet's MilliCPUToShares: 1024 a core, within [2, 262144]; 2 for none.
pub fn shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let s = u64::try_from(milli_cpu.saturating_mul(1024) / 1000).unwrap_or(MAX_SHARES);
    s.clamp(MIN_SHARES, MAX_SHARES)
}

/// The kubelet's MilliCPUToQuota over the 100 ms period: at least 1 ms; 0 for no limit.
pub fn quota(milli_cpu: i64) -> i64 {
    if milli_cpu <= 0 {
        return 0;
    }
    (milli_cpu.saturating_mul(CFS_PERIOD_US as i64) / 1000).max(MIN_QUOTA_US)
}

/// What the pod's cgroup is set to (ResourceConfigForPod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodCgroup {
    pub cpu_shares: u64,
    /// The CFS quota in µs over [`CFS_PERIOD_US`]; -1 unlimited (cpuCFSQuota off); None: left.
    pub cpu_quota: Option<i64>,
    /// The memory limit in bytes; None: unlimited.
    pub memory: Option<i64>,
}

/// The pod cgroup's settings: Guaranteed: shares of its cpu requests, the quota of its cpu
/// limits, its memory limit; Burstable: the shares, the quota and the memory limit each only
/// when declared for all of it; BestEffort: 2 shares. `cfs_quota` is `cpuCFSQuota` (off: -1).
pub fn pod_cgroup(pod: &Value, cfs_quota: bool) -> PodCgroup {
    let reqs = requests(pod);
    let (lims, cpu_declared, memory_declared) = limits(pod);
    let cpu_shares = shares(reqs.get("cpu").copied().unwrap_or(0));
    let q = if cfs_quota {
        quota(lims.get("cpu").copied().unwrap_or(0))
    } else {
        -1
    };
    let memory = whole(lims.get("memory").copied().unwrap_or(0));
    match qos(pod) {
        Qos::Guaranteed => PodCgroup {
            cpu_shares,
            cpu_quota: Some(q),
            memory: Some(memory),
        },
        Qos::Burstable => PodCgroup {
            cpu_shares,
            cpu_quota: cpu_declared.then_some(q),
            memory: memory_declared.then_some(memory),
        },
        Qos::BestEffort => PodCgroup {
            cpu_shares: MIN_SHARES,
            cpu_quota: None,
            memory: None,
        },
    }
}

/// The scheduling priority from which a pod is critical.
const SYSTEM_CRITICAL_PRIORITY: i64 = 2_000_000_000;

/// A static or mirror pod, or one of system-critical priority (the kubelet's IsCriticalPod).
pub fn critical(pod: &Value) -> bool {
    let annotations = &pod["metadata"]["annotations"];
    annotations["kubernetes.io/config.source"]
        .as_str()
        .is_some_and(|s| s != "api")
        || annotations["kubernetes.io/config.mirror"].is_string()
        || pod["spec"]["priority"].as_i64().unwrap_or(0) >= SYSTEM_CRITICAL_PRIORITY
}

/// A critical pod of the `system-node-critical` class (IsNodeCriticalPod).
fn node_critical(pod: &Value) -> bool {
    critical(pod) && pod["spec"]["priorityClassName"] == "system-node-critical"
}

/// The OOM score adjustment of container `name` on a node with `capacity` bytes of memory (the
/// kubelet's GetContainerOOMScoreAdjust): -997 for a node-critical or Guaranteed pod, 1000 for
/// BestEffort; Burstable: 1000 - 1000 x request / capacity, with pod-level resources the pod's
/// unassigned memory request shared out over its containers, a sidecar no higher than the
/// regular container with the least request, within [3, 999].
pub fn oom_score_adj(pod: &Value, name: &str, capacity: u64) -> i64 {
    if node_critical(pod) {
        return -997;
    }
    match qos(pod) {
        Qos::Guaranteed => return -997,
        Qos::BestEffort => return 1000,
        Qos::Burstable => {}
    }
    let capacity = i128::from(capacity.max(1));
    let memory = |c: &Value| {
        i128::from(whole(
            container(c, "requests").get("memory").copied().unwrap_or(0),
        ))
    };
    let list = |k: &str| pod["spec"][k].as_array().map_or(&[][..], Vec::as_slice);
    let (apps, inits) = (list("containers"), list("initContainers"));
    let mut share = 0;
    if let Some(pod_request) = pod_level(pod, "requests")
        .get("memory")
        .filter(|m| **m != 0)
    {
        let (all, _, _) = aggregate(pod, "requests");
        let unassigned = whole(*pod_request) - whole(all.get("memory").copied().unwrap_or(0));
        share = i128::from(unassigned) / (apps.len() + inits.len()).max(1) as i128;
    }
    let own = apps
        .iter()
        .chain(inits)
        .chain(
            pod["spec"]["ephemeralContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .find(|c| c["name"] == name);
    let score = |request: i128| 1000 - 1000 * (request + share) / capacity;
    let mut adj = score(own.map_or(0, memory));
    let sidecar =
        |c: &&Value| c["restartPolicy"] == "Always" && inits.iter().any(|i| i["name"] == name);
    if let Some(c) = own.filter(sidecar) {
        let least = apps.iter().map(memory).min().unwrap_or_else(|| memory(c));
        adj = adj.min(score(least));
    }
    match adj {
        a if a < 3 => 3,
        1000 => 999,
        a => a as i64,
    }
}

/// A container's `resources` for its own cgroup: with pod-level resources, a cpu or memory limit
/// it lacks (or has at zero) is the pod-level one (the kubelet's getCPULimit, getMemoryLimit).
pub fn container_resources(pod: &Value, resources: &Value) -> Value {
    let mut r = resources.clone();
    if !pod_level_set(pod) {
        return r;
    }
    for name in ["cpu", "memory"] {
        let Some(pod_limit) = pod["spec"]["resources"]["limits"].get(name) else {
            continue;
        };
        let own = list(&resources["limits"]).get(name).copied().unwrap_or(0);
        if own != 0 {
            continue;
        }
        if !r.is_object() {
            r = serde_json::json!({});
        }
        if !r["limits"].is_object() {
            r["limits"] = serde_json::json!({});
        }
        r["limits"][name] = pod_limit.clone();
    }
    r
}

#[cfg(test)]
#[path = "pod_resources_tests.rs"]
mod tests;
