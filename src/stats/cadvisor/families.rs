//! The families of `/metrics/cadvisor` with one series per cgroup (CPU, memory, processes,
//! OOM kills, pressure) and those whose series carry a label of their own, in cAdvisor's
//! names, types and HELP texts.

use std::fmt::Write;

use super::Read;

/// cAdvisor's families of one series per cgroup: (name, type, HELP, the value, whether it
/// carries `cpu="total"`). cAdvisor's load and task figures are zeros in the kubelet (its load
/// reader is off); pressure is v2's PSI (zeros on v1).
pub(super) type Figure = fn(&Read) -> Option<f64>;
pub(super) const FAMILIES: &[(&str, &str, &str, Figure, bool)] = &[
    (
        "container_cpu_load_average_10s",
        "gauge",
        "Value of container cpu load average over the last 10 seconds.",
        |_| Some(0.0),
        false,
    ),
    (
        "container_cpu_load_d_average_10s",
        "gauge",
        "Value of container cpu load.d average over the last 10 seconds.",
        |_| Some(0.0),
        false,
    ),
    (
        "container_cpu_system_seconds_total",
        "counter",
        "Cumulative system cpu time consumed in seconds.",
        |r| Some(r.acct.system_ns as f64 / 1e9),
        false,
    ),
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
        |r| r.cpu.map(|n| n as f64 / 1e9),
        true,
    ),
    (
        "container_cpu_user_seconds_total",
        "counter",
        "Cumulative user cpu time consumed in seconds.",
        |r| Some(r.acct.user_ns as f64 / 1e9),
        false,
    ),
    (
        "container_file_descriptors",
        "gauge",
        "Number of open file descriptors for the container.",
        |r| Some(r.fds.0 as f64),
        false,
    ),
    (
        "container_memory_cache",
        "gauge",
        "Number of bytes of page cache memory.",
        |r| r.mem.map(|m| m.cache as f64),
        false,
    ),
    (
        "container_memory_failcnt",
        "counter",
        "Number of memory usage hits limits",
        |r| r.mem.map(|m| m.failcnt as f64),
        false,
    ),
    (
        "container_memory_kernel_usage",
        "gauge",
        "Size of kernel memory allocated in bytes.",
        |r| r.mem.map(|m| m.kernel as f64),
        false,
    ),
    (
        "container_memory_mapped_file",
        "gauge",
        "Size of memory mapped files in bytes.",
        |r| r.mem.map(|m| m.mapped_file as f64),
        false,
    ),
    (
        "container_memory_max_usage_bytes",
        "gauge",
        "Maximum memory usage recorded in bytes",
        |r| r.mem.map(|m| m.max_usage as f64),
        false,
    ),
    (
        "container_memory_rss",
        "gauge",
        "Size of RSS in bytes.",
        |r| r.mem.map(|m| m.rss as f64),
        false,
    ),
    (
        "container_memory_swap",
        "gauge",
        "Container swap usage in bytes.",
        |r| r.mem.map(|m| m.swap as f64),
        false,
    ),
    (
        "container_memory_total_active_file_bytes",
        "gauge",
        "Current total active file in bytes.",
        |r| r.mem.map(|m| m.active_file as f64),
        false,
    ),
    (
        "container_memory_total_inactive_file_bytes",
        "gauge",
        "Current total inactive file in bytes.",
        |r| r.mem.map(|m| m.inactive_file as f64),
        false,
    ),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        |r| r.mem.map(|m| m.usage as f64),
        false,
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
        |r| r.mem.map(|m| m.working_set as f64),
        false,
    ),
    (
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
        |r| Some(r.acct.oom_kills as f64),
        false,
    ),
    (
        "container_pressure_cpu_stalled_seconds_total",
        "counter",
        "Total time duration no tasks in the container could make progress due to CPU congestion.",
        |r| Some(r.acct.pressure[0].1 as f64 / 1e6),
        false,
    ),
    (
        "container_pressure_cpu_waiting_seconds_total",
        "counter",
        "Total time duration tasks in the container have waited due to CPU congestion.",
        |r| Some(r.acct.pressure[0].0 as f64 / 1e6),
        false,
    ),
    (
        "container_pressure_io_stalled_seconds_total",
        "counter",
        "Total time duration no tasks in the container could make progress due to IO congestion.",
        |r| Some(r.acct.pressure[2].1 as f64 / 1e6),
        false,
    ),
    (
        "container_pressure_io_waiting_seconds_total",
        "counter",
        "Total time duration tasks in the container have waited due to IO congestion.",
        |r| Some(r.acct.pressure[2].0 as f64 / 1e6),
        false,
    ),
    (
        "container_pressure_memory_stalled_seconds_total",
        "counter",
        "Total time duration no tasks in the container could make progress due to memory congestion.",
        |r| Some(r.acct.pressure[1].1 as f64 / 1e6),
        false,
    ),
    (
        "container_pressure_memory_waiting_seconds_total",
        "counter",
        "Total time duration tasks in the container have waited due to memory congestion.",
        |r| Some(r.acct.pressure[1].0 as f64 / 1e6),
        false,
    ),
    (
        "container_processes",
        "gauge",
        "Number of processes running inside the container.",
        |r| Some(r.procs as f64),
        false,
    ),
    (
        "container_sockets",
        "gauge",
        "Number of open sockets for the container.",
        |r| Some(r.fds.1 as f64),
        false,
    ),
    (
        "container_threads",
        "gauge",
        "Number of threads running inside the container",
        |r| Some(r.acct.threads as f64),
        false,
    ),
    (
        "container_threads_max",
        "gauge",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        |r| Some(r.acct.threads_max as f64),
        false,
    ),
];

/// The families whose series carry a label of their own: memory failures by type and scope,
/// task states (zeros, as the kubelet's cAdvisor), the open-files ulimit.
pub(super) fn labelled(out: &mut String, read: &[Read], ms: u64) {
    let name = "container_memory_failures_total";
    let _ = writeln!(
        out,
        "# HELP {name} Cumulative count of memory allocation failures.\n# TYPE {name} counter"
    );
    for r in read {
        let Some(m) = r.mem else { continue };
        for (kind, scope, v) in [
            ("pgfault", "container", m.page_faults),
            ("pgmajfault", "container", m.major_page_faults),
            ("pgfault", "hierarchy", m.hierarchy_page_faults),
            ("pgmajfault", "hierarchy", m.hierarchy_major_page_faults),
        ] {
            let labels = r.s.labels_with(&[("failure_type", kind), ("scope", scope)]);
            let _ = writeln!(out, "{name}{labels} {v} {ms}");
        }
    }
    let name = "container_tasks_state";
    let _ = writeln!(
        out,
        "# HELP {name} Number of tasks in given state\n# TYPE {name} gauge"
    );
    for r in read {
        for state in [
            "sleeping",
            "running",
            "stopped",
            "uninterruptible",
            "iowaiting",
        ] {
            let _ = writeln!(out, "{name}{} 0 {ms}", r.s.labels_with(&[("state", state)]));
        }
    }
    let name = "container_ulimits_soft";
    if read.iter().any(|r| r.max_open_files.is_some()) {
        let _ = writeln!(
            out,
            "# HELP {name} Soft ulimit values for the container root process. Unlimited if -1, except priority and nice\n# TYPE {name} gauge"
        );
    }
    for r in read {
        if let Some(v) = r.max_open_files {
            let labels = r.s.labels_with(&[("ulimit", "max_open_files")]);
            let _ = writeln!(out, "{name}{labels} {v} {ms}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP container_scrape_error 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE container_scrape_error gauge\ncontainer_scrape_error 0"
    );
}
