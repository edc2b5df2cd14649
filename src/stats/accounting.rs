//! The rest of a cgroup's accounting that cAdvisor reports: CPU time by mode, OOM kills,
//! pressure stall times, threads (the pids controller) and its processes' open files and
//! sockets, and a process's open-files limit; read as cAdvisor's libcontainer handler does.
//! Parsing is pure, on the files' text.

use std::path::Path;

use super::cgroup::{CgroupFs, Hierarchy, flat_key, read};

/// v1 `cpuacct.stat` counts in USER_HZ ticks, 100 a second on Linux (runc's clock ticks).
const NS_PER_TICK: u64 = 10_000_000;

/// What the rest of a cgroup's files say; 0 where a file is absent, as cAdvisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accounting {
    /// CPU time in user and system mode, ns.
    pub user_ns: u64,
    pub system_ns: u64,
    /// OOM kills in the cgroup (v1 `memory.oom_control`, v2 `memory.events`: `oom_kill`).
    pub oom_kills: u64,
    /// Pressure stall totals in µs: (cpu, memory, io) x (some: waiting, full: stalled).
    pub pressure: [(u64, u64); 3],
    /// `pids.current` and `pids.max` (0: no limit).
    pub threads: u64,
    pub threads_max: u64,
}

/// A PSI file's `some` and `full` totals (`some avg10=0.00 ... total=123`).
pub fn pressure_totals(text: &str) -> (u64, u64) {
    let total = |kind: &str| {
        text.lines()
            .find(|l| l.starts_with(kind))
            .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (total("some "), total("full "))
}

impl CgroupFs {
    /// The rest of the cgroup's accounting (never an error: every file is optional).
    pub fn accounting(&self, cgroup: &str) -> Accounting {
        // All optional: a file this kernel lacks or refuses to read counts 0, as in cAdvisor.
        let text = |controller: &str, f: &str| -> Option<String> {
            read(&self.dir(controller, cgroup).join(f)).ok().flatten()
        };
        let mut a = Accounting::default();
        let limit = |t: Option<String>| t.and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        a.threads = limit(text("pids", "pids.current"));
        a.threads_max = limit(text("pids", "pids.max"));
        match self.hierarchy {
            Hierarchy::V1 => {
                let stat = text("cpuacct", "cpuacct.stat").unwrap_or_default();
                let ticks = |k: &str| flat_key(&stat, k).unwrap_or(0).saturating_mul(NS_PER_TICK);
                (a.user_ns, a.system_ns) = (ticks("user"), ticks("system"));
                let oom = text("memory", "memory.oom_control").unwrap_or_default();
                a.oom_kills = flat_key(&oom, "oom_kill").unwrap_or(0);
            }
            Hierarchy::V2 => {
                let stat = text("cpu", "cpu.stat").unwrap_or_default();
                let us = |k: &str| flat_key(&stat, k).unwrap_or(0).saturating_mul(1000);
                (a.user_ns, a.system_ns) = (us("user_usec"), us("system_usec"));
                let events = text("memory", "memory.events").unwrap_or_default();
                a.oom_kills = flat_key(&events, "oom_kill").unwrap_or(0);
                for (i, f) in ["cpu.pressure", "memory.pressure", "io.pressure"]
                    .iter()
                    .enumerate()
                {
                    a.pressure[i] = pressure_totals(&text("", f).unwrap_or_default());
                }
            }
        }
        a
    }

    /// How many processes are in the cgroup and the cgroups below it (v1: the cpu
    /// controller's tree).
    pub fn procs_below(&self, cgroup: &str) -> u64 {
        let mut n = 0;
        let mut dirs = vec![self.dir("cpu", cgroup)];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
            n += std::fs::read_to_string(d.join("cgroup.procs")).map_or(0, |t| {
                t.lines().filter(|l| !l.trim().is_empty()).count() as u64
            });
        }
        n
    }

    /// The processes directly in the cgroup (its `cgroup.procs`; v1: the cpu controller's).
    pub fn procs(&self, cgroup: &str) -> Vec<u32> {
        std::fs::read_to_string(self.dir("cpu", cgroup).join("cgroup.procs"))
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }
}

/// The open file descriptors of `pids` and how many are sockets, from `<proc>/<pid>/fd` (a
/// process gone meanwhile counts nothing).
pub fn fds(proc_: &Path, pids: &[u32]) -> (u64, u64) {
    let (mut fds, mut sockets) = (0, 0);
    for pid in pids {
        let dir = proc_.join(pid.to_string()).join("fd");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            fds += 1;
            if std::fs::read_link(e.path())
                .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(b"socket"))
            {
                sockets += 1;
            }
        }
    }
    (fds, sockets)
}

/// The soft limit of open files in a `<proc>/<pid>/limits` text (-1 when unlimited).
pub fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(-1),
        n => n.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::tests::tree;
    use super::*;

    #[test]
    fn v1_and_v2_accounting() {
        let d = tree(&[
            ("cpuacct/k/c/cpuacct.stat", "user 250\nsystem 31\n"),
            (
                "memory/k/c/memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
            ),
            ("pids/k/c/pids.current", "7\n"),
            ("pids/k/c/pids.max", "max\n"),
            ("cpu/k/c/cgroup.procs", "41\n42\n"),
            ("cpu/k/cgroup.procs", "40\n"),
            ("cpu/k/c/d/cgroup.procs", "43\n"),
        ]);
        let fs = CgroupFs::at(d.path());
        let a = fs.accounting("/k/c");
        assert_eq!((a.user_ns, a.system_ns), (2_500_000_000, 310_000_000));
        assert_eq!((a.oom_kills, a.threads, a.threads_max), (2, 7, 0));
        assert_eq!(a.pressure, [(0, 0); 3], "no PSI on v1");
        assert_eq!(fs.procs("/k/c"), [41, 42]);
        // A pod's processes: its own and those of every cgroup below.
        assert_eq!(fs.procs_below("/k"), 4);
        assert_eq!(fs.procs_below("/gone"), 0);
        assert_eq!(
            fs.accounting("/gone"),
            Accounting::default(),
            "absent files are zeros"
        );

        let d = tree(&[
            ("cgroup.controllers", "cpu memory io pids\n"),
            ("k/c/cpu.stat", "usage_usec 9\nuser_usec 7\nsystem_usec 2\n"),
            (
                "k/c/memory.events",
                "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
            ),
            ("k/c/pids.current", "3\n"),
            ("k/c/pids.max", "1024\n"),
            (
                "k/c/cpu.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=700\n",
            ),
            (
                "k/c/io.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=9\n",
            ),
        ]);
        let a = CgroupFs::at(d.path()).accounting("/k/c");
        assert_eq!((a.user_ns, a.system_ns, a.oom_kills), (7000, 2000, 1));
        assert_eq!((a.threads, a.threads_max), (3, 1024));
        assert_eq!(a.pressure, [(1500, 700), (0, 0), (9, 0)]);
    }

    #[test]
    fn open_files_of_this_process() {
        let pid = std::process::id();
        let (fds, sockets) = fds(Path::new("/proc"), &[pid, u32::MAX]);
        assert!(fds >= 3 && sockets <= fds, "{fds} {sockets}");
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        assert!(
            max_open_files(&limits).is_some_and(|n| n == -1 || n > 0),
            "{limits}"
        );
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(text), Some(1024));
        assert_eq!(
            max_open_files("Max open files unlimited unlimited files\n"),
            Some(-1)
        );
        assert_eq!(max_open_files(""), None);
    }
}
