//! `prober_probe_total` and `prober_probe_duration_seconds` for `/metrics/probes`: every probe
//! run counted by type, result, container and pod, and timed when it succeeded, as the
//! kubelet's prober workers record them; a pod's series go with it.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::probe::{Job, Outcome};
use crate::prom::Histogram;

/// client_golang's `DefBuckets`.
const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// (probe_type, container, pod, namespace) -> (pod_uid, durations)
type Timed = BTreeMap<(&'static str, String, String, String), (String, Histogram)>;

/// (probe_type, result, container, pod, namespace, pod_uid)
type Series = (&'static str, &'static str, String, String, String, String);

#[derive(Debug, Default)]
pub struct ProbeCounts {
    counts: Mutex<BTreeMap<Series, u64>>,
    durations: Mutex<Timed>,
}

impl ProbeCounts {
    /// One run of `job` that ended with `outcome` after `took`.
    pub fn count(&self, job: &Job, outcome: &Outcome, took: Duration) {
        if matches!(outcome, Outcome::Success) {
            let key = (
                job.kind.title(),
                job.container.clone(),
                job.pod.clone(),
                job.namespace.clone(),
            );
            let mut d = self.durations.lock().unwrap_or_else(|p| p.into_inner());
            let e = d
                .entry(key)
                .or_insert_with(|| (job.uid.clone(), Histogram::new(DEFAULT_BUCKETS.to_vec())));
            // A pod of the same name with a new uid starts its figures afresh.
            if e.0 != job.uid {
                *e = (job.uid.clone(), Histogram::new(DEFAULT_BUCKETS.to_vec()));
            }
            e.1.observe(took.as_secs_f64());
        }
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
        self.durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (uid, _)| uids.contains(uid.as_str()));
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
        crate::prom::header(
            &mut out,
            "prober_probe_duration_seconds",
            "histogram",
            "[ALPHA] Duration in seconds for a probe response.",
        );
        for ((kind, container, pod, ns), (_, h)) in self
            .durations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let labels = format!(
                "container=\"{}\",namespace=\"{}\",pod=\"{}\",probe_type=\"{kind}\"",
                e(container),
                e(ns),
                e(pod)
            );
            h.write(&mut out, "prober_probe_duration_seconds", &labels);
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
        let ms = Duration::from_millis;
        c.count(&job(Kind::Readiness, "u1"), &Outcome::Success, ms(3));
        c.count(&job(Kind::Readiness, "u1"), &Outcome::Success, ms(30));
        c.count(
            &job(Kind::Liveness, "u1"),
            &Outcome::Failure("x".into()),
            ms(1),
        );
        c.count(&job(Kind::Startup, "u2"), &Outcome::Success, ms(2));
        let text = c.render();
        assert!(text.contains("prober_probe_total{container=\"c\",namespace=\"default\",pod=\"web\",pod_uid=\"u1\",probe_type=\"Readiness\",result=\"successful\"} 2\n"), "{text}");
        assert!(
            text.contains("probe_type=\"Liveness\",result=\"failed\"} 1\n"),
            "{text}"
        );
        // Durations of successful runs only, without the uid label.
        let r = "container=\"c\",namespace=\"default\",pod=\"web\",probe_type=\"Readiness\"";
        for want in [
            format!("prober_probe_duration_seconds_bucket{{{r},le=\"0.005\"}} 1\n"),
            format!("prober_probe_duration_seconds_bucket{{{r},le=\"0.05\"}} 2\n"),
            format!("prober_probe_duration_seconds_count{{{r}}} 2\n"),
        ] {
            assert!(text.contains(&want), "{want} not in {text}");
        }
        assert!(!text.contains("probe_type=\"Liveness\"}"), "{text}");
        c.retain(&HashSet::from(["u1"]));
        assert!(!c.render().contains("u2"));
        assert!(
            c.render()
                .starts_with("# HELP prober_probe_total [BETA] Cumulative number")
        );
    }
}
