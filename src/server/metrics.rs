//! The agent's own Prometheus metrics for /metrics: requests by path and code, authn/authz cache
//! hits, certificate expiry and renewal counters, process figures from /proc/self, build info,
//! the node's name, running pods and containers, pod start durations and runtime operations.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::certs::manager::Stats;

#[derive(Default)]
pub struct Metrics {
    /// (path, code) -> (count, total seconds)
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
    /// Requests refused because they could not be parsed, by status.
    bad_requests: Mutex<BTreeMap<u16, u64>>,
    /// What the connection slot table did (evictions, refusals).
    pub connections: Arc<super::slots::Counters>,
    /// ("client" | "server", stats)
    pub certificates: Vec<(&'static str, Arc<Stats>)>,
}

/// The route a path belongs to, so label values stay bounded.
fn route_label(path: &str) -> String {
    super::routes::find(path)
        .map(|r| r.path.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "other".into())
}

fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

impl Metrics {
    pub fn new(certificates: Vec<(&'static str, Arc<Stats>)>) -> Metrics {
        Metrics {
            certificates,
            ..Metrics::default()
        }
    }

    pub fn observe(&self, path: &str, code: u16, took: Duration) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let e = m.entry((route_label(path), code)).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += took.as_secs_f64();
    }

    pub fn bad_request(&self, code: u16) {
        *self
            .bad_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_insert(0) += 1;
    }

    pub fn render(&self, state: &super::State) -> String {
        let mut o = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(o, "{name}{labels} {value}");
            }
        };
        let label = |pairs: &[(&str, &str)]| {
            let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{{{}}}", inner.join(","))
        };
        family(
            "kubernetes_build_info",
            "gauge",
            "A metric with a constant '1' value labeled by the Kubernetes version the agent speaks and its own version.",
            &[(
                label(&[
                    ("git_version", crate::KUBERNETES_VERSION),
                    ("tinylet_version", env!("CARGO_PKG_VERSION")),
                ]),
                "1".into(),
            )],
        );
        family(
            "kubelet_node_name",
            "gauge",
            "[ALPHA] The node's name. The count is always 1.",
            &[(
                label(&[("node", &crate::prom::escape(state.auth.node()))]),
                "1".into(),
            )],
        );
        let reqs = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let count: Vec<(String, String)> = reqs
            .iter()
            .map(|((p, c), (n, _))| {
                (
                    label(&[("path", p), ("code", &c.to_string())]),
                    n.to_string(),
                )
            })
            .collect();
        let secs: Vec<(String, String)> = reqs
            .iter()
            .map(|((p, c), (_, t))| {
                (
                    label(&[("path", p), ("code", &c.to_string())]),
                    t.to_string(),
                )
            })
            .collect();
        family(
            "kubelet_http_requests_total",
            "counter",
            "Number of the http requests received since the server started.",
            &count,
        );
        family(
            "tinylet_http_requests_seconds_total",
            "counter",
            "Time spent serving http requests.",
            &secs,
        );
        let c = &state.auth.counters;
        family(
            "tinylet_authentication_cache_hits_total",
            "counter",
            "Bearer tokens answered from the TokenReview cache.",
            &[(
                String::new(),
                c.authn_cache_hits.load(Ordering::Relaxed).to_string(),
            )],
        );
        family(
            "tinylet_authorization_cache_hits_total",
            "counter",
            "Decisions answered from the SubjectAccessReview cache.",
            &[(
                String::new(),
                c.authz_cache_hits.load(Ordering::Relaxed).to_string(),
            )],
        );
        let conns = &self.connections;
        family(
            "tinylet_rejected_connections_total",
            "counter",
            "Connections closed at accept because every connection slot was serving a request.",
            &[(
                String::new(),
                conns.refused.load(Ordering::Relaxed).to_string(),
            )],
        );
        let evicted: Vec<(String, String)> = [
            ("handshake", &conns.evicted_handshake),
            ("reading", &conns.evicted_reading),
            ("idle", &conns.evicted_idle),
        ]
        .iter()
        .map(|(phase, n)| {
            (
                label(&[("phase", phase)]),
                n.load(Ordering::Relaxed).to_string(),
            )
        })
        .collect();
        family(
            "tinylet_evicted_connections_total",
            "counter",
            "Connections closed to make room for a new one, by the phase they had waited in longest (TLS handshake, reading a request, idle keep-alive).",
            &evicted,
        );
        let bad: Vec<(String, String)> = self
            .bad_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(code, n)| (label(&[("code", &code.to_string())]), n.to_string()))
            .collect();
        family(
            "tinylet_http_bad_requests_total",
            "counter",
            "Requests refused before routing because they could not be parsed, by status code.",
            &bad,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let (mut ttl, mut errors, mut rotations) = (Vec::new(), Vec::new(), Vec::new());
        for (which, s) in &self.certificates {
            let exp = s.expiry_unix.load(Ordering::Relaxed);
            let l = label(&[("certificate", which)]);
            ttl.push((l.clone(), (if exp > 0 { exp - now } else { 0 }).to_string()));
            errors.push((l.clone(), s.errors.load(Ordering::Relaxed).to_string()));
            rotations.push((l, s.rotations.load(Ordering::Relaxed).to_string()));
        }
        family(
            "tinylet_certificate_ttl_seconds",
            "gauge",
            "Seconds until the managed certificate expires.",
            &ttl,
        );
        family(
            "tinylet_certificate_renew_errors_total",
            "counter",
            "Failed certificate renewals.",
            &errors,
        );
        family(
            "tinylet_certificate_rotations_total",
            "counter",
            "Certificate renewals done.",
            &rotations,
        );
        if let Some(rss) = proc_status_kib("VmRSS:") {
            family(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                &[(String::new(), (rss * 1024).to_string())],
            );
        }
        if let Some(t) = proc_status_kib("Threads:") {
            family(
                "tinylet_threads",
                "gauge",
                "Threads of the agent.",
                &[(String::new(), t.to_string())],
            );
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            family(
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                &[(String::new(), fds.count().to_string())],
            );
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime (fields 14 and 15 of stat) in clock ticks of 100 Hz.
            if let (Some(u), Some(s)) = (
                f.get(11).and_then(|v| v.parse::<f64>().ok()),
                f.get(12).and_then(|v| v.parse::<f64>().ok()),
            ) {
                family(
                    "process_cpu_seconds_total",
                    "counter",
                    "Total user and system CPU time spent in seconds.",
                    &[(String::new(), ((u + s) / 100.0).to_string())],
                );
            }
        }
        // The pod machinery's and the runtime client's series, as the kubelet's.
        if let Some(h) = &state.probes {
            h.pods.render(&mut o);
        }
        if let Some(rt) = &state.runtime {
            rt.operations().render(&mut o);
        }
        o
    }
}
