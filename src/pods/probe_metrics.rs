//! `prober_probe_total` for `/metrics/probes`: every probe run counted by type, result,
//! container and pod, as the kubelet's prober workers count them; a pod's series go with it.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::Mutex;

use super::probe::{Job, Outcome};

/// (probe_type, result, container, pod, namespace, pod_uid)
type Series = (&'static str, &'static str, String, String, String, String);

#[derive(Debug, Default)]
pub struct ProbeCounts {
    counts: Mutex<BTreeMap<Series, u64>>,
}

impl ProbeCounts {
    /// One run of `job` that ended with `outcome`.
    pub fn count(&self, job: &Job, outcome: &Outcome) {
        let result = match outcome {
            Outcome::Success => "successful",
            Outcome::Failure(_) => "failed",
        };
        let key = (
            job.kind.title(),
            result,
            job.container.clone(),
            job.pod.clone(),
            job.namespace.clone(),
            job.uid.clone(),
        );
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }

    /// Drops the series of pods not in `uids` (gone from the node), as the kubelet's workers
    /// delete theirs when they stop.
    pub fn retain(&self, uids: &HashSet<&str>) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| uids.contains(k.5.as_str()));
    }

    /// The Prometheus text of `/metrics/probes`.
    pub fn render(&self) -> String {
        let e = crate::prom::escape;
        let mut out = String::from(
            "# HELP prober_probe_total [BETA] Cumulative number of a liveness, readiness or startup probe for a container by result.\n# TYPE prober_probe_total counter\n",
        );
        for ((kind, result, container, pod, ns, uid), n) in
            self.counts.lock().unwrap_or_else(|p| p.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "prober_probe_total{{container=\"{}\",namespace=\"{}\",pod=\"{}\",pod_uid=\"{}\",probe_type=\"{kind}\",result=\"{result}\"}} {n}",
                e(container),
                e(ns),
                e(pod),
                e(uid)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::probe::Kind;
    use super::*;

    fn job(kind: Kind, uid: &str) -> Job {
        Job {
            uid: uid.into(),
            pod: "web".into(),
            namespace: "default".into(),
            container: "c".into(),
            kind,
            container_id: "id".into(),
            probe: serde_json::from_value(serde_json::json!({"exec": {"command": ["true"]}}))
                .unwrap_or_else(|e| panic!("{e}")),
            pod_ip: String::new(),
            ports: Vec::new(),
        }
    }

    #[test]
    fn runs_are_counted_by_type_and_result_and_go_with_their_pod() {
        let c = ProbeCounts::default();
        c.count(&job(Kind::Readiness, "u1"), &Outcome::Success);
        c.count(&job(Kind::Readiness, "u1"), &Outcome::Success);
        c.count(&job(Kind::Liveness, "u1"), &Outcome::Failure("x".into()));
        c.count(&job(Kind::Startup, "u2"), &Outcome::Success);
        let text = c.render();
        assert!(text.contains("prober_probe_total{container=\"c\",namespace=\"default\",pod=\"web\",pod_uid=\"u1\",probe_type=\"Readiness\",result=\"successful\"} 2\n"), "{text}");
        assert!(
            text.contains("probe_type=\"Liveness\",result=\"failed\"} 1\n"),
            "{text}"
        );
        c.retain(&HashSet::from(["u1"]));
        assert!(!c.render().contains("u2"));
        assert!(
            c.render()
                .starts_with("# HELP prober_probe_total [BETA] Cumulative number")
        );
    }
}
