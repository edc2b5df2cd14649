//! A container's requests and limits as CRI Linux resources, as the kubelet converts them:
//! cpu request -> shares (1024 per core, at least 2), cpu limit -> CFS quota over a 100 ms period,
//! memory limit -> the memory limit, and the OOM score adjustment by QoS class.

use serde_json::Value;

use crate::config::quantity::Quantity;
use crate::cri::api::LinuxContainerResources;

const PERIOD: i64 = 100_000;

fn quantity(v: &Value) -> Result<Option<Quantity>, String> {
    v.as_str().map(Quantity::parse).transpose()
}

/// The resources of a container whose spec `resources` is `r`, in a pod of class `qos` on a
/// node with `node_memory` bytes.
pub fn linux(
    r: &Value,
    qos: &str,
    node_memory: u64,
    cfs_quota: bool,
) -> Result<LinuxContainerResources, String> {
    let req_cpu = quantity(&r["requests"]["cpu"]).map_err(|e| format!("requests.cpu: {e}"))?;
    let lim_cpu = quantity(&r["limits"]["cpu"]).map_err(|e| format!("limits.cpu: {e}"))?;
    let req_mem =
        quantity(&r["requests"]["memory"]).map_err(|e| format!("requests.memory: {e}"))?;
    let lim_mem = quantity(&r["limits"]["memory"]).map_err(|e| format!("limits.memory: {e}"))?;
    // A limit without a request requests the limit (the API server's defaulting).
    let req_cpu = req_cpu.or_else(|| lim_cpu.clone());
    let req_mem = req_mem.or_else(|| lim_mem.clone());
    let shares = match &req_cpu {
        Some(q) => (q.milli_value() * 1024 / 1000).max(2),
        None => 2,
    };
    let (period, quota) = match (&lim_cpu, cfs_quota) {
        (Some(q), true) => (PERIOD, (q.milli_value() * PERIOD / 1000).max(1000)),
        _ => (0, 0),
    };
    let oom = match qos {
        "Guaranteed" => -997,
        "BestEffort" => 1000,
        _ => {
            let req = req_mem.map_or(0, |q| q.value().max(0)) as i128;
            let adj = 1000 - (1000 * req) / i128::from(node_memory.max(1));
            adj.clamp(2, 999) as i64
        }
    };
    Ok(LinuxContainerResources {
        cpu_period: period,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: lim_mem.map_or(0, |q| q.value()),
        oom_score_adj: oom,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kubelets_conversion() {
        let gib = 1u64 << 30;
        let r = linux(&json!({"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "2Gi"}}), "Burstable", 4 * gib, true)
            .unwrap_or_default();
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota),
            (256, 100_000, 50_000)
        );
        assert_eq!(r.memory_limit_in_bytes, 2 << 30);
        assert_eq!(r.oom_score_adj, 750);
        let g = linux(
            &json!({"limits": {"cpu": "1", "memory": "64Mi"}}),
            "Guaranteed",
            4 * gib,
            true,
        )
        .unwrap_or_default();
        assert_eq!(
            (g.cpu_shares, g.cpu_quota, g.oom_score_adj),
            (1024, 100_000, -997)
        );
        let b = linux(&Value::Null, "BestEffort", 4 * gib, true).unwrap_or_default();
        assert_eq!(
            (
                b.cpu_shares,
                b.cpu_quota,
                b.memory_limit_in_bytes,
                b.oom_score_adj
            ),
            (2, 0, 0, 1000)
        );
        let tiny = linux(
            &json!({"limits": {"cpu": "1m"}}),
            "Burstable",
            4 * gib,
            true,
        )
        .unwrap_or_default();
        assert_eq!((tiny.cpu_shares, tiny.cpu_quota), (2, 1000), "floors");
        let no_cfs = linux(
            &json!({"limits": {"cpu": "2"}}),
            "Burstable",
            4 * gib,
            false,
        )
        .unwrap_or_default();
        assert_eq!(no_cfs.cpu_quota, 0);
        let e = linux(
            &json!({"limits": {"memory": "lots"}}),
            "Burstable",
            gib,
            true,
        )
        .map_or_else(|e| e, |_| String::new());
        assert!(
            e.starts_with("limits.memory: invalid quantity \"lots\""),
            "{e}"
        );
    }
}
