//! `/metrics/cadvisor`: the cAdvisor series the kubelet serves for the root cgroup, each pod's
//! cgroup, each sandbox's and each running container's (CPU, memory, start and last-seen times,
//! the root's and each sandbox's network by interface, block I/O by device where the kernel
//! accounted any, CFS throttling where a quota is set, the CPU and memory settings) with the
//! kubelet's labels (`id` the cgroup, `name` the runtime id, `image`, `container`, `pod`,
//! `namespace`), and the machine's cores and memory, in cAdvisor's names and HELP texts.

mod families;
mod io;
mod machine;

use std::fmt::Write;
use std::time::SystemTime;

use super::accounting::{self, Accounting};
use super::cgroup::{Memory, Spec, StatsError};
use super::{Collector, PodSource, container_cgroup, nanos};
use crate::pods::layout;

/// One cgroup the endpoint reports, with its labels.
struct Series {
    id: String,
    name: String,
    image: String,
    container: String,
    pod: String,
    namespace: String,
    /// Start time in seconds since the epoch (containers only).
    start: Option<f64>,
    /// Its network namespace's figures are reported (the root's and each sandbox's).
    network: bool,
}

impl Series {
    fn labels(&self, cpu: bool) -> String {
        self.labels_with(if cpu { &[("cpu", "total")] } else { &[] })
    }

    /// The labels and `extra` ones, sorted by name as Prometheus' client writes them.
    fn labels_with(&self, extra: &[(&str, &str)]) -> String {
        let mut all = [
            ("container", self.container.as_str()),
            ("id", &self.id),
            ("image", &self.image),
            ("name", &self.name),
            ("namespace", &self.namespace),
            ("pod", &self.pod),
        ]
        .to_vec();
        all.extend_from_slice(extra);
        all.sort_by_key(|(k, _)| *k);
        let mut out = String::from("{");
        for (i, (k, v)) in all.iter().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(out, "{comma}{k}=\"{}\"", crate::prom::escape(v));
        }
        out.push('}');
        out
    }
}

fn root_series() -> Series {
    Series {
        id: "/".into(),
        name: String::new(),
        image: String::new(),
        container: String::new(),
        pod: String::new(),
        namespace: String::new(),
        start: None,
        network: true,
    }
}

/// What one cgroup read gave.
struct Read<'a> {
    s: &'a Series,
    cpu: Option<u64>,
    mem: Option<Memory>,
    net: Option<Vec<super::network::Interface>>,
    spec: Option<Spec>,
    io: Vec<super::blkio::DeviceIo>,
    acct: Accounting,
    /// Processes directly in the cgroup, their open files and sockets, and the soft open-files
    /// limit of its first process (the root's PID 1; none for a pod's cgroup).
    procs: usize,
    fds: (u64, u64),
    max_open_files: Option<i64>,
}

/// cAdvisor's CFS families: (name, HELP, the figure).
type CfsFigure = fn(&Spec) -> f64;
const CFS: &[(&str, &str, CfsFigure)] = &[
    (
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        |s| s.cfs_periods as f64,
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        |s| s.cfs_throttled_periods as f64,
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        |s| s.cfs_throttled_ns as f64 / 1e9,
    ),
];

/// cAdvisor's spec families (no timestamps): (name, HELP, the figure when reported).
type SpecFigure = fn(&Spec) -> Option<u64>;
const SPEC: &[(&str, &str, SpecFigure)] = &[
    (
        "container_spec_cpu_period",
        "CPU period of the container.",
        |s| Some(s.cpu_period),
    ),
    (
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        |s| (s.cpu_quota != 0).then_some(s.cpu_quota),
    ),
    (
        "container_spec_cpu_shares",
        "CPU share of the container.",
        |s| Some(s.cpu_shares),
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        |s| Some(s.memory_limit),
    ),
    (
        "container_spec_memory_reservation_limit_bytes",
        "Memory reservation limit for the container.",
        |s| Some(s.memory_reservation),
    ),
    (
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        |s| Some(s.memory_swap_limit),
    ),
];

/// cAdvisor's network families: (name, HELP, the figure of an interface).
type NetFigure = fn(&super::network::Interface) -> u64;
const NETWORK: &[(&str, &str, NetFigure)] = &[
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        |i| i.rx_bytes,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        |i| i.rx_errors,
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        |i| i.rx_dropped,
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        |i| i.rx_packets,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        |i| i.tx_bytes,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        |i| i.tx_errors,
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        |i| i.tx_dropped,
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        |i| i.tx_packets,
    ),
];

impl Collector {
    fn series(&self, pods: &[PodSource]) -> Vec<Series> {
        let mut out = vec![root_series()];
        // The pods' parent and its QoS cgroups, which cAdvisor reports with empty labels too.
        let qos = |class: &str| {
            let pod = layout::cgroup_parent(self.driver, &self.cgroup_root, class, "x");
            pod.rsplit_once('/').map(|(q, _)| q.to_string())
        };
        let mut parents = vec![self.pods_cgroup()];
        parents.extend(["Burstable", "BestEffort"].into_iter().filter_map(qos));
        for id in parents {
            out.push(Series {
                id,
                network: false,
                ..root_series()
            });
        }
        for p in pods {
            let parent = self.pod_cgroup(p);
            let of_pod = |id: String, name: String| Series {
                id,
                name,
                image: String::new(),
                container: String::new(),
                pod: p.name.clone(),
                namespace: p.namespace.clone(),
                start: None,
                network: false,
            };
            for c in &p.containers {
                out.push(Series {
                    image: c.image.clone(),
                    container: c.name.clone(),
                    start: crate::timefmt::parse_rfc3339_nanos(&c.started_at)
                        .map(|n| n as f64 / 1e9),
                    ..of_pod(container_cgroup(self.driver, &parent, &c.id), c.id.clone())
                });
            }
            if !p.sandbox.is_empty() {
                out.push(Series {
                    network: true,
                    image: p.sandbox_image.clone(),
                    ..of_pod(
                        container_cgroup(self.driver, &parent, &p.sandbox),
                        p.sandbox.clone(),
                    )
                });
            }
            out.push(of_pod(parent, String::new()));
        }
        out
    }

    /// The text of `/metrics/cadvisor` for `pods`, now.
    pub fn cadvisor(&self, pods: &[PodSource], now: SystemTime) -> Result<String, StatsError> {
        let ms = nanos(now) / 1_000_000;
        let series = self.series(pods);
        let mut read = Vec::with_capacity(series.len());
        for s in &series {
            let mem = if s.id == "/" {
                Some(self.node_memory()?)
            } else {
                self.cg.memory(&s.id)?
            };
            let cpu = self.cg.cpu_ns(&s.id)?;
            // A cgroup that is gone (a container that just exited) is not reported.
            if cpu.is_some() || mem.is_some() {
                let procs = self.cg.procs(&s.id);
                // Its first process: PID 1 for the root; a pod's cgroup has none of its own.
                let first = match s.id.as_str() {
                    "/" => Some(1),
                    _ if s.pod.is_empty() || !s.name.is_empty() => procs.first().copied(),
                    _ => None,
                };
                let pid = match s.network {
                    true => first.or_else(|| self.cg.first_pid(&s.id)),
                    false => None,
                };
                let net = match pid {
                    Some(pid) => super::network::of_pid(&self.roots.proc_, pid)?,
                    None => None,
                };
                let spec = self.cg.spec(&s.id)?;
                let io = self.cg.io(&s.id)?;
                let acct = self.cg.accounting(&s.id);
                let fds = accounting::fds(&self.roots.proc_, &procs);
                let max_open_files = first.and_then(|pid| {
                    let limits = self.roots.proc_.join(pid.to_string()).join("limits");
                    accounting::max_open_files(&std::fs::read_to_string(limits).ok()?)
                });
                read.push(Read {
                    s,
                    cpu,
                    mem,
                    net,
                    spec,
                    io,
                    acct,
                    procs: procs.len(),
                    fds,
                    max_open_files,
                });
            }
        }
        let mut out = String::with_capacity(read.len() * 2048 + 4096);
        let diskstats =
            std::fs::read_to_string(self.roots.proc_.join("diskstats")).unwrap_or_default();
        let fs = super::mounts::figures(&self.partitions, &diskstats);
        // Device names are read only when some cgroup had I/O to name.
        let names = match read.iter().any(|r| !r.io.is_empty()) {
            true => super::blkio::device_names(&self.roots.sys),
            false => Vec::new(),
        };
        io::write(&mut out, &read, &fs, &names, ms);
        for (name, kind, help, figure, cpu_label) in families::FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for r in &read {
                if let Some(v) = figure(r) {
                    let _ = writeln!(out, "{name}{} {v} {ms}", r.s.labels(*cpu_label));
                }
            }
        }
        families::labelled(&mut out, &read, ms);
        // CFS throttling, where a quota is set (cAdvisor's condition).
        for (name, help, figure) in CFS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for r in &read {
                if let Some(sp) = r.spec.filter(|sp| sp.cpu_quota != 0) {
                    let _ = writeln!(out, "{name}{} {} {ms}", r.s.labels(false), figure(&sp));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP container_last_seen Last time a container was seen by the exporter\n# TYPE container_last_seen gauge"
        );
        for r in &read {
            let _ = writeln!(
                out,
                "container_last_seen{} {} {ms}",
                r.s.labels(false),
                ms / 1000
            );
        }
        for (name, help, figure) in NETWORK {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for Read { s, net, .. } in &read {
                for i in net.iter().flatten() {
                    let labels = s.labels_with(&[("interface", &i.name)]);
                    let _ = writeln!(out, "{name}{labels} {} {ms}", figure(i));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP container_start_time_seconds Start time of the container since unix epoch in seconds.\n# TYPE container_start_time_seconds gauge"
        );
        for r in &read {
            if let Some(t) = r.s.start {
                let _ = writeln!(out, "container_start_time_seconds{} {t}", r.s.labels(false));
            }
        }
        for (name, help, figure) in SPEC {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for r in &read {
                if let Some(v) = r.spec.as_ref().and_then(figure) {
                    let _ = writeln!(out, "{name}{} {v}", r.s.labels(false));
                }
            }
        }
        machine::write(&mut out, &self.roots)?;
        Ok(sorted(&out))
    }
}

/// The exposition with its families in name order and without empty ones, as Prometheus'
/// registry writes them.
fn sorted(text: &str) -> String {
    let mut blocks: Vec<&str> = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices("# HELP ") {
        if i > start && text.as_bytes()[i - 1] == b'\n' {
            blocks.push(&text[start..i]);
            start = i;
        }
    }
    blocks.push(&text[start..]);
    fn name(b: &str) -> &str {
        b.strip_prefix("# HELP ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or("")
    }
    blocks.sort_by(|a, b| name(a).cmp(name(b)));
    // A family without samples (its HELP and TYPE lines only) is left out, as the registry.
    blocks.retain(|b| b.lines().count() > 2);
    blocks.concat()
}
