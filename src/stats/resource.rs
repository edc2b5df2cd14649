//! `/metrics/resource` in the Prometheus text format, as the kubelet's resource metrics
//! collector writes it from the summary's CPU and memory: the STABLE names and HELP texts,
//! sorted labels, millisecond timestamps on the samples, and the scrape error gauges.

use std::fmt::Write;

use super::summary::{CpuStats, MemoryStats, Summary};

/// The text's content type, as the kubelet's (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

use crate::prom::escape;

/// RFC 3339 (seconds or finer, `Z`) as milliseconds since the epoch.
fn millis(t: &str) -> Option<i64> {
    crate::timefmt::parse_rfc3339_nanos(t).map(|n| n / 1_000_000)
}

struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(String, f64, Option<i64>)>,
}

impl Family<'_> {
    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, v, ts) in &self.samples {
            let _ = write!(out, "{}{labels} {v}", self.name);
            if let Some(ts) = ts {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
}

fn cpu(c: &Option<CpuStats>) -> Option<(f64, Option<i64>)> {
    c.as_ref()
        .map(|c| (c.usage_core_nano_seconds as f64 / 1e9, millis(&c.time)))
}

fn ws(m: &Option<MemoryStats>) -> Option<(f64, Option<i64>)> {
    m.as_ref()
        .map(|m| (m.working_set_bytes as f64, millis(&m.time)))
}

/// The metrics of `s`; None (the stats could not be read) writes only the error gauges, at 1.
pub fn render(s: Option<&Summary>) -> String {
    let stable = |name, kind, help| Family {
        name,
        kind,
        help,
        samples: Vec::new(),
    };
    let mut f = [
        stable(
            "container_cpu_usage_seconds_total",
            "counter",
            "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
        ),
        stable(
            "container_memory_working_set_bytes",
            "gauge",
            "[STABLE] Current working set of the container in bytes",
        ),
        stable(
            "container_start_time_seconds",
            "gauge",
            "[STABLE] Start time of the container since unix epoch in seconds",
        ),
        stable(
            "node_cpu_usage_seconds_total",
            "counter",
            "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
        ),
        stable(
            "node_memory_working_set_bytes",
            "gauge",
            "[STABLE] Current working set of the node in bytes",
        ),
        stable(
            "pod_cpu_usage_seconds_total",
            "counter",
            "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
        ),
        stable(
            "pod_memory_working_set_bytes",
            "gauge",
            "[STABLE] Current working set of the pod in bytes",
        ),
        stable(
            "resource_scrape_error",
            "gauge",
            "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
        ),
        stable(
            "scrape_error",
            "gauge",
            "[ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise",
        ),
    ];
    let error = if s.is_some() { 0.0 } else { 1.0 };
    f[7].samples.push((String::new(), error, None));
    f[8].samples.push((String::new(), error, None));
    if let Some(s) = s {
        let mut push = |i: usize, labels: &str, v: Option<(f64, Option<i64>)>| {
            if let Some((v, ts)) = v {
                f[i].samples.push((labels.to_string(), v, ts));
            }
        };
        push(3, "", cpu(&s.node.cpu));
        push(4, "", ws(&s.node.memory));
        for p in &s.pods {
            let (pod, ns) = (escape(&p.pod_ref.name), escape(&p.pod_ref.namespace));
            let pl = format!("{{namespace=\"{ns}\",pod=\"{pod}\"}}");
            push(5, &pl, cpu(&p.cpu));
            push(6, &pl, ws(&p.memory));
            for c in &p.containers {
                let cl = format!(
                    "{{container=\"{}\",namespace=\"{ns}\",pod=\"{pod}\"}}",
                    escape(&c.name)
                );
                push(0, &cl, cpu(&c.cpu));
                push(1, &cl, ws(&c.memory));
                let start = crate::timefmt::parse_rfc3339_nanos(&c.start_time)
                    .map(|n| (n as f64 / 1e9, None));
                push(2, &cl, start);
            }
        }
    }
    let mut out = String::new();
    for fam in &f {
        fam.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::summary::{ContainerStats, NodeStats, PodRef, PodStats};
    use super::*;

    #[test]
    fn the_kubelets_names_labels_and_timestamps() {
        let t = "2026-12-02T01:00:10Z";
        let cpu = |ns| {
            Some(CpuStats {
                time: t.into(),
                usage_nano_cores: None,
                usage_core_nano_seconds: ns,
            })
        };
        let mem = |b| {
            Some(MemoryStats {
                time: t.into(),
                working_set_bytes: b,
                ..MemoryStats::default()
            })
        };
        let s = Summary {
            node: NodeStats {
                cpu: cpu(6_197_005_020_909),
                memory: mem(1 << 30),
                ..NodeStats::default()
            },
            pods: vec![PodStats {
                pod_ref: PodRef {
                    name: "web".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                cpu: cpu(500_000_000),
                memory: mem(4096),
                containers: vec![ContainerStats {
                    name: "a\"b".into(),
                    start_time: "2026-12-02T01:00:00Z".into(),
                    cpu: cpu(250_000_000),
                    ..ContainerStats::default()
                }],
                ..PodStats::default()
            }],
        };
        let text = render(Some(&s));
        let ms = 1_796_173_210_000i64;
        for line in [
            "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds".to_string(),
            "# TYPE node_cpu_usage_seconds_total counter".into(),
            format!("node_cpu_usage_seconds_total 6197.005020909 {ms}"),
            format!("node_memory_working_set_bytes 1073741824 {ms}"),
            format!("pod_cpu_usage_seconds_total{{namespace=\"default\",pod=\"web\"}} 0.5 {ms}"),
            format!("container_cpu_usage_seconds_total{{container=\"a\\\"b\",namespace=\"default\",pod=\"web\"}} 0.25 {ms}"),
            "container_start_time_seconds{container=\"a\\\"b\",namespace=\"default\",pod=\"web\"} 1796173200".into(),
            "resource_scrape_error 0".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        assert!(
            !text.contains("container_memory_working_set_bytes"),
            "no data, no family"
        );
        let err = render(None);
        assert!(
            err.contains("\nresource_scrape_error 1\n") && !err.contains("node_cpu"),
            "{err}"
        );
    }
}
