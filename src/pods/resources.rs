//! A container's requests and limits as CRI Linux resources, as the kubelet converts them:
//! cpu request -> shares (1024 per core, at least 2), cpu limit -> CFS quota over a 100 ms period,
//! memory limit -> the memory limit; the OOM score adjustment comes from the caller.

use serde_json::Value;

use crate::config::quantity::Quantity;
use crate::cri::api::LinuxContainerResources;

const PERIOD: i64 = 100_000;

fn quantity(v: &Value) -> Result<Option<Quantity>, String> {
    v.as_str().map(Quantity::parse).transpose()
}

/// The resources of a container whose spec `resources` is `r`, with its OOM score adjustment
/// `oom_score_adj` ([`super::pod_resources::oom_score_adj`]).
pub fn linux(
    r: &Value,
    oom_score_adj: i64,
    cfs_quota: bool,
) -> Result<LinuxContainerResources, String> {
    let req_cpu = quantity(&r["requests"]["cpu"]).map_err(|e| format!("requests.cpu: {e}"))?;
    let lim_cpu = quantity(&r["limits"]["cpu"]).map_err(|e| format!("limits.cpu: {e}"))?;
    quantity(&r["requests"]["memory"]).map_err(|e| format!("requests.memory: {e}"))?;
    let lim_mem = quantity(&r["limits"]["memory"]).map_err(|e| format!("limits.memory: {e}"))?;
    // A limit without a request requests the limit (the API server's defaulting).
    let req_cpu = req_cpu.or_else(|| lim_cpu.clone());
    let shares = match &req_cpu {
        Some(q) => (q.milli_value() * 1024 / 1000).max(2),
        None => 2,
    };
    let (period, quota) = match (&lim_cpu, cfs_quota) {
        (Some(q), true) => (PERIOD, (q.milli_value() * PERIOD / 1000).max(1000)),
        _ => (0, 0),
    };
    Ok(LinuxContainerResources {
        cpu_period: period,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: lim_mem.map_or(0, |q| q.value()),
        oom_score_adj,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_kubelets_conversion() {
        let r = linux(&json!({"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "2Gi"}}), 750, true)
            .unwrap_or_default();
        assert_eq!(
            (r.cpu_shares, r.cpu_period, r.cpu_quota),
            (256, 100_000, 50_000)
        );
        assert_eq!(r.memory_limit_in_bytes, 2 << 30);
        assert_eq!(r.oom_score_adj, 750, "the caller's");
        let g = linux(
            &json!({"limits": {"cpu": "1", "memory": "64Mi"}}),
            -997,
            true,
        )
        .unwrap_or_default();
        assert_eq!((g.cpu_shares, g.cpu_quota), (1024, 100_000));
        let b = linux(&Value::Null, 1000, true).unwrap_or_default();
        assert_eq!(
            (b.cpu_shares, b.cpu_quota, b.memory_limit_in_bytes),
            (2, 0, 0)
        );
        let tiny = linux(&json!({"limits": {"cpu": "1m"}}), 999, true).unwrap_or_default();
        assert_eq!((tiny.cpu_shares, tiny.cpu_quota), (2, 1000), "floors");
        let no_cfs = linux(&json!({"limits": {"cpu": "2"}}), 999, false).unwrap_or_default();
        assert_eq!(no_cfs.cpu_quota, 0);
        for (r, what) in [
            (
                json!({"limits": {"memory": "lots"}}),
                "limits.memory: invalid quantity \"lots\"",
            ),
            (
                json!({"requests": {"memory": "x"}}),
                "requests.memory: invalid quantity \"x\"",
            ),
        ] {
            let e = linux(&r, 999, true).map_or_else(|e| e, |_| String::new());
            assert!(e.starts_with(what), "{e}");
        }
    }
}
