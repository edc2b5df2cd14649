//! Pod admission, as the kubelet's: sysctls (`sysctls`), the pods capacity (`maxPods`), cpu
//! and memory requests against the node's allocatable, the node selector against the node's
//! labels, and the pod's OS. A rejected pod is Failed with the kubelet's reason and message and
//! never runs.

use std::collections::BTreeMap;

use serde_json::Value;

use super::spec::Pod;

/// What the node offers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeLimits {
    pub max_pods: i64,
    pub cpu_millis: i64,
    pub memory: i64,
    /// Allocatable ephemeral storage, bytes (the downward API's default limit).
    pub ephemeral: i64,
    pub labels: BTreeMap<String, String>,
    /// The sysctls pods may set.
    pub sysctls: super::sysctls::Allowlist,
}

/// (reason, message) of a rejection.
pub type Rejection = (String, String);

/// Requests of a pod (cpu millis, memory bytes), as [`request_of`].
pub fn requests(pod: &Pod) -> (i64, i64) {
    (request_of(&pod.raw, "cpu"), request_of(&pod.raw, "memory"))
}

/// A pod's (its API object's) request of resource `r` in base units (millicores for cpu), as
/// the kubelet's admission counts it ([`super::pod_resources::requests`]: sidecars, init
/// containers, pod-level resources, overhead).
pub fn request_of(pod: &Value, r: &str) -> i64 {
    let milli = super::pod_resources::requests(pod)
        .get(r)
        .copied()
        .unwrap_or(0);
    if r == "cpu" {
        milli
    } else {
        super::pod_resources::whole(milli)
    }
}

fn out_of(resource: &str, requested: i64, used: i64, capacity: i64) -> Rejection {
    (
        format!("OutOf{resource}"),
        format!(
            "Pod was rejected: Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    )
}

/// Admits `pod` next to the `running` pods already admitted, or says why not.
/// The kubelet's eviction admit handler: under memory pressure alone a BestEffort pod is
/// refused unless it tolerates the memory-pressure taint; under disk or PID pressure every pod
/// is; critical pods (static, mirror, priority of at least 2000000000) never are.
pub fn under_pressure(pod: &Pod, p: crate::node::status::Pressure) -> Result<(), Rejection> {
    let mut conditions = Vec::new();
    for (on, name) in [
        (p.memory, "MemoryPressure"),
        (p.disk, "DiskPressure"),
        (p.pid, "PIDPressure"),
    ] {
        if on {
            conditions.push(name);
        }
    }
    let critical = super::files::is_static(pod)
        || super::files::is_mirror(pod)
        || pod.raw["spec"]["priority"]
            .as_i64()
            .is_some_and(|p| p >= 2_000_000_000);
    if conditions.is_empty() || critical {
        return Ok(());
    }
    if conditions == ["MemoryPressure"]
        && (pod.qos_class() != "BestEffort" || tolerates(pod, "node.kubernetes.io/memory-pressure"))
    {
        return Ok(());
    }
    Err((
        "Evicted".into(),
        format!(
            "Pod was rejected: The node had condition: [{}]. ",
            conditions.join(" ")
        ),
    ))
}

/// Whether the pod tolerates the `NoSchedule` taint `key` (with no value).
fn tolerates(pod: &Pod, key: &str) -> bool {
    let list = pod.raw["spec"]["tolerations"].as_array();
    list.into_iter().flatten().any(|t| {
        let s = |f: &str| t[f].as_str().unwrap_or("");
        let effect = s("effect").is_empty() || s("effect") == "NoSchedule";
        let exists = s("operator") == "Exists";
        let key_ok = if s("key").is_empty() {
            exists
        } else {
            s("key") == key
        };
        effect && key_ok && (exists || s("value").is_empty())
    })
}

pub fn admit(pod: &Pod, running: &[&Pod], node: &NodeLimits) -> Result<(), Rejection> {
    node.sysctls.admit(pod)?;
    if let Some(os) = pod.raw["spec"]["os"]["name"].as_str()
        && os != "linux"
    {
        return Err((
            "PodOSNotSupported".into(),
            format!(
                "Pod was rejected: Failed to admit pod as the OS field doesn't match node OS: {os}"
            ),
        ));
    }
    if let Some(sel) = pod.raw["spec"]["nodeSelector"].as_object()
        && sel
            .iter()
            .any(|(k, v)| node.labels.get(k).map(String::as_str) != v.as_str())
    {
        return Err((
            "NodeAffinity".into(),
            "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector".into(),
        ));
    }
    let used = running.len() as i64;
    if used + 1 > node.max_pods {
        return Err(out_of("pods", 1, used, node.max_pods));
    }
    let (cpu, mem) = requests(pod);
    let (used_cpu, used_mem) = running
        .iter()
        .map(|p| requests(p))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    if cpu > 0 && used_cpu + cpu > node.cpu_millis {
        return Err(out_of("cpu", cpu, used_cpu, node.cpu_millis));
    }
    if mem > 0 && used_mem + mem > node.memory {
        return Err(out_of("memory", mem, used_mem, node.memory));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(extra: Value) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "x:1"}]});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn sized(cpu: &str, mem: &str) -> Pod {
        pod(
            json!({"containers": [{"name": "c", "image": "x:1", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
        )
    }

    #[test]
    fn admission_table() {
        let node = NodeLimits {
            max_pods: 2,
            cpu_millis: 1000,
            memory: 1 << 30,
            ephemeral: 1 << 34,
            labels: [("disk".to_string(), "ssd".to_string())].into(),
            sysctls: super::super::sysctls::Allowlist::new(&[], "6.1.0")
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let small = sized("400m", "256Mi");
        let reason = |r: Result<(), Rejection>| r.err().map(|(r, _)| r).unwrap_or_default();
        assert_eq!(admit(&small, &[], &node), Ok(()));
        assert_eq!(reason(admit(&small, &[&small, &small], &node)), "OutOfpods");
        let (r, m) = admit(&sized("700m", "1Mi"), &[&small], &node)
            .err()
            .unwrap_or_default();
        assert_eq!(r, "OutOfcpu");
        assert_eq!(
            m,
            "Pod was rejected: Node didn't have enough resource: cpu, requested: 700, used: 400, capacity: 1000"
        );
        assert_eq!(
            reason(admit(&sized("1m", "900Mi"), &[&small], &node)),
            "OutOfmemory"
        );
        assert_eq!(
            reason(admit(
                &pod(json!({"nodeSelector": {"disk": "hdd"}})),
                &[],
                &node
            )),
            "NodeAffinity"
        );
        assert_eq!(
            admit(&pod(json!({"nodeSelector": {"disk": "ssd"}})), &[], &node),
            Ok(())
        );
        assert_eq!(
            reason(admit(&pod(json!({"os": {"name": "windows"}})), &[], &node)),
            "PodOSNotSupported"
        );
        let with_init = pod(
            json!({"initContainers": [{"name": "i", "image": "x:1", "resources": {"requests": {"cpu": "2"}}}]}),
        );
        assert_eq!(requests(&with_init), (2000, 0));
        assert_eq!(reason(admit(&with_init, &[], &node)), "OutOfcpu");
        let unsafe_sysctl =
            pod(json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}));
        assert_eq!(
            reason(admit(&unsafe_sysctl, &[&small, &small], &node)),
            "SysctlForbidden",
            "sysctls first, as the kubelet's handlers run"
        );
    }

    /// The eviction admit handler's table: which pods each pressure refuses, and its text.
    #[test]
    fn pressure_refuses_as_the_kubelets_eviction_handler() {
        use crate::node::status::Pressure;
        let (mem, disk) = (
            Pressure {
                memory: true,
                ..Default::default()
            },
            Pressure {
                memory: true,
                disk: true,
                ..Default::default()
            },
        );
        let best_effort = pod(json!({}));
        let burstable = sized("10m", "1Mi");
        let tolerant = |t: Value| pod(json!({"tolerations": [t]}));
        let critical = pod(json!({"priority": 2_000_000_000}));
        let mut mirror = pod(json!({}));
        mirror
            .metadata
            .annotations
            .insert(super::super::files::MIRROR_ANNOTATION.into(), "h".into());
        let refused = |p: &Pod, pr: Pressure| under_pressure(p, pr).err().map(|(_, m)| m);
        let said = |c: &str| Some(format!("Pod was rejected: The node had condition: [{c}]. "));
        assert_eq!(refused(&best_effort, Pressure::default()), None);
        assert_eq!(refused(&best_effort, mem), said("MemoryPressure"));
        assert_eq!(
            under_pressure(&best_effort, mem).err().map(|(r, _)| r),
            Some("Evicted".to_string())
        );
        assert_eq!(refused(&burstable, mem), None);
        assert_eq!(
            refused(&burstable, disk),
            said("MemoryPressure DiskPressure")
        );
        for t in [
            json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
            json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Equal"}),
            json!({"operator": "Exists"}),
        ] {
            assert_eq!(refused(&tolerant(t.clone()), mem), None, "{t}");
            assert_eq!(
                refused(&tolerant(t.clone()), disk),
                said("MemoryPressure DiskPressure"),
                "{t}"
            );
        }
        for t in [
            json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoExecute"}),
            json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists"}),
            json!({"key": "node.kubernetes.io/memory-pressure", "value": "x"}),
        ] {
            assert_eq!(
                refused(&tolerant(t.clone()), mem),
                said("MemoryPressure"),
                "{t}"
            );
        }
        assert_eq!(refused(&critical, disk), None);
        assert_eq!(refused(&mirror, disk), None);
    }
}
