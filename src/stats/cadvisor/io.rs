//! The block I/O families of `/metrics/cadvisor`: each cgroup's counters per device (and per
//! operation) and the root's filesystems' figures, in cAdvisor's names, HELP texts and order.

use std::fmt::Write;

use super::Read;
use crate::stats::blkio::{DeviceIo, Op, name_of};
use crate::stats::mounts::Figures;

/// A block I/O family of cAdvisor: its series come from a cgroup's per-device counters (bytes
/// or I/Os of an operation) and, for the root, from each filesystem's figures.
struct IoFamily {
    name: &'static str,
    help: &'static str,
    gauge: bool,
    cgroup: Option<(bool, Op)>,
    fs: Option<fn(&Figures) -> f64>,
}

const fn io(
    name: &'static str,
    help: &'static str,
    cgroup: Option<(bool, Op)>,
    fs: Option<fn(&Figures) -> f64>,
) -> IoFamily {
    IoFamily {
        name,
        help,
        gauge: false,
        cgroup,
        fs,
    }
}

const fn gauge(f: IoFamily) -> IoFamily {
    IoFamily { gauge: true, ..f }
}

/// cAdvisor's times from `/proc/diskstats` are milliseconds divided by 1e9, as it does.
const IO: &[IoFamily] = &[
    gauge(io(
        "container_fs_inodes_free",
        "Number of available Inodes",
        None,
        Some(|f| f.inodes_free as f64),
    )),
    gauge(io(
        "container_fs_inodes_total",
        "Number of Inodes",
        None,
        Some(|f| f.inodes as f64),
    )),
    gauge(io(
        "container_fs_io_current",
        "Number of I/Os currently in progress",
        None,
        Some(|f| f.disk[8] as f64),
    )),
    io(
        "container_fs_io_time_seconds_total",
        "Cumulative count of seconds spent doing I/Os",
        None,
        Some(|f| f.disk[9] as f64 / 1e9),
    ),
    io(
        "container_fs_io_time_weighted_seconds_total",
        "Cumulative weighted I/O time in seconds",
        None,
        Some(|f| f.disk[10] as f64 / 1e9),
    ),
    gauge(io(
        "container_fs_limit_bytes",
        "Number of bytes that can be consumed by the container on this filesystem.",
        None,
        Some(|f| f.limit as f64),
    )),
    io(
        "container_fs_read_seconds_total",
        "Cumulative count of seconds spent reading",
        None,
        Some(|f| f.disk[3] as f64 / 1e9),
    ),
    io(
        "container_fs_reads_bytes_total",
        "Cumulative count of bytes read",
        Some((true, Op::Read)),
        None,
    ),
    io(
        "container_fs_reads_merged_total",
        "Cumulative count of reads merged",
        None,
        Some(|f| f.disk[1] as f64),
    ),
    io(
        "container_fs_reads_total",
        "Cumulative count of reads completed",
        Some((false, Op::Read)),
        Some(|f| f.disk[0] as f64),
    ),
    io(
        "container_fs_sector_reads_total",
        "Cumulative count of sector reads completed",
        None,
        Some(|f| f.disk[2] as f64),
    ),
    io(
        "container_fs_sector_writes_total",
        "Cumulative count of sector writes completed",
        None,
        Some(|f| f.disk[6] as f64),
    ),
    gauge(io(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        None,
        Some(|f| f.usage as f64),
    )),
    io(
        "container_fs_write_seconds_total",
        "Cumulative count of seconds spent writing",
        None,
        Some(|f| f.disk[7] as f64 / 1e9),
    ),
    io(
        "container_fs_writes_bytes_total",
        "Cumulative count of bytes written",
        Some((true, Op::Write)),
        None,
    ),
    io(
        "container_fs_writes_merged_total",
        "Cumulative count of writes merged",
        None,
        Some(|f| f.disk[5] as f64),
    ),
    io(
        "container_fs_writes_total",
        "Cumulative count of writes completed",
        Some((false, Op::Write)),
        Some(|f| f.disk[4] as f64),
    ),
];

/// The block I/O families: each cgroup's per device (and per operation), the root's
/// filesystems'. A family without series is left out, as Prometheus' registry does.
pub(super) fn write(
    out: &mut String,
    read: &[Read],
    fs: &[Figures],
    names: &[((u32, u32), String)],
    ms: u64,
) {
    let name = "container_blkio_device_usage_total";
    if read.iter().any(|r| !r.io.is_empty()) {
        let _ = writeln!(
            out,
            "# HELP {name} Blkio Device bytes usage\n# TYPE {name} counter"
        );
    }
    for r in read {
        for d in &r.io {
            let (major, minor) = (d.major.to_string(), d.minor.to_string());
            for op in Op::ALL {
                if let Some(v) = d.bytes[op as usize] {
                    let labels = r.s.labels_with(&[
                        ("device", name_of(names, d.major, d.minor)),
                        ("major", &major),
                        ("minor", &minor),
                        ("operation", op.name()),
                    ]);
                    let _ = writeln!(out, "{name}{labels} {v} {ms}");
                }
            }
        }
    }
    for f in IO {
        let mut series = String::new();
        for r in read {
            let mut seen: Vec<&str> = Vec::new();
            if let Some((bytes, op)) = f.cgroup {
                for d in &r.io {
                    let device = name_of(names, d.major, d.minor);
                    let counts = if bytes { &d.bytes } else { &d.ios };
                    let labels = r.s.labels_with(&[("device", device)]);
                    let _ = writeln!(
                        series,
                        "{}{labels} {} {ms}",
                        f.name,
                        DeviceIo::get(counts, op)
                    );
                    seen.push(device);
                }
            }
            // A device already reported from the cgroup is a duplicate to the registry, which
            // keeps the first.
            let figure = f.fs.filter(|_| r.s.id == "/");
            for (fig, get) in figure.iter().flat_map(|g| fs.iter().map(move |x| (x, g))) {
                if !seen.contains(&fig.device.as_str()) {
                    let labels = r.s.labels_with(&[("device", &fig.device)]);
                    let _ = writeln!(series, "{}{labels} {} {ms}", f.name, get(fig));
                }
            }
        }
        if !series.is_empty() {
            let kind = if f.gauge { "gauge" } else { "counter" };
            let _ = writeln!(
                out,
                "# HELP {} {}\n# TYPE {} {kind}",
                f.name, f.help, f.name
            );
            out.push_str(&series);
        }
    }
}
