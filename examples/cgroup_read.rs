//! The floor for `scripts/bench-stats`: the files a stats scrape reads (CPU time, memory usage,
//! limits and stat, CFS and shares, block I/O, CPU by mode, OOM kills, pressure and pids of each
//! cgroup named on stdin, one relative path per line, plus the root's and `/proc/diskstats`;
//! each cgroup's processes, their open files and the first one's limits; for a line ending in
//! ` net` also its first process and that process's `/proc/<pid>/net/dev`), read raw with
//! `std::fs`, `passes` times.
//! Prints the median pass in milliseconds.
//!   cargo run --release --example cgroup_read -- /sys/fs/cgroup <passes> < cgroups.txt

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mount, passes] = args.as_slice() else {
        eprintln!("usage: cgroup_read <mount> <passes> < cgroups.txt");
        std::process::exit(2)
    };
    let passes: usize = passes.parse().unwrap_or(20).max(1);
    let mount = PathBuf::from(mount);
    let v2 = mount.join("cgroup.controllers").exists();
    let mut cgroups: Vec<String> = vec!["/ net".into()];
    cgroups.extend(std::io::stdin().lock().lines().map_while(Result::ok));
    let mut procs = Vec::new();
    let mut tasks = Vec::new();
    let files: Vec<PathBuf> = cgroups
        .iter()
        .flat_map(|line| {
            let (c, net) = match line.strip_suffix(" net") {
                Some(c) => (c, true),
                None => (line.as_str(), false),
            };
            let rel = c.trim_start_matches('/');
            let f: Vec<PathBuf> = if v2 {
                [
                    "cpu.stat",
                    "memory.current",
                    "memory.max",
                    "memory.stat",
                    "cpu.max",
                    "cpu.weight",
                    "memory.swap.max",
                    "memory.low",
                    "io.stat",
                    "memory.peak",
                    "memory.swap.current",
                    "memory.events",
                    "cpu.pressure",
                    "memory.pressure",
                    "io.pressure",
                    "pids.current",
                    "pids.max",
                ]
                .iter()
                .map(|f| mount.join(rel).join(f))
                .collect()
            } else {
                let (cpu, mem) = (mount.join("cpu").join(rel), mount.join("memory").join(rel));
                let blkio = mount.join("blkio").join(rel);
                vec![
                    // The blkio files runc tries in turn (all, where none has entries).
                    blkio.join("blkio.bfq.io_serviced_recursive"),
                    blkio.join("blkio.io_serviced_recursive"),
                    blkio.join("blkio.throttle.io_serviced_recursive"),
                    blkio.join("blkio.throttle.io_serviced"),
                    mount.join("cpuacct").join(rel).join("cpuacct.usage"),
                    mem.join("memory.usage_in_bytes"),
                    mem.join("memory.limit_in_bytes"),
                    mem.join("memory.stat"),
                    cpu.join("cpu.stat"),
                    cpu.join("cpu.shares"),
                    cpu.join("cpu.cfs_period_us"),
                    cpu.join("cpu.cfs_quota_us"),
                    mem.join("memory.memsw.limit_in_bytes"),
                    mem.join("memory.soft_limit_in_bytes"),
                    mount.join("cpuacct").join(rel).join("cpuacct.stat"),
                    mem.join("memory.failcnt"),
                    mem.join("memory.max_usage_in_bytes"),
                    mem.join("memory.kmem.usage_in_bytes"),
                    mem.join("memory.oom_control"),
                    mount.join("pids").join(rel).join("pids.current"),
                    mount.join("pids").join(rel).join("pids.max"),
                ]
            };
            tasks.push(if v2 {
                mount.join(rel).join("cgroup.procs")
            } else {
                mount.join("cpu").join(rel).join("cgroup.procs")
            });
            if net {
                let procs_file = if v2 {
                    mount.join(rel).join("cgroup.procs")
                } else {
                    mount.join("memory").join(rel).join("cgroup.procs")
                };
                procs.push(procs_file);
            }
            f
        })
        .chain(std::iter::once(PathBuf::from("/proc/diskstats")))
        .collect();
    let mut times = Vec::with_capacity(passes);
    let mut bytes = 0;
    for _ in 0..passes {
        let t0 = Instant::now();
        for f in &files {
            bytes += std::fs::read_to_string(f).map_or(0, |s| s.len());
        }
        for p in &procs {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            // The root's first process is PID 1's namespace, as the agent reads it.
            let pid = if p.parent() == Some(mount.join("memory").as_path())
                || p.parent() == Some(mount.as_path())
            {
                "1"
            } else {
                text.lines().next().unwrap_or("1")
            };
            bytes += text.len();
            bytes += std::fs::read_to_string(format!("/proc/{pid}/net/dev")).map_or(0, |s| s.len());
        }
        // Each cgroup's processes, their open files (sockets told by the link) and the first
        // one's limits, as the cAdvisor route counts them.
        for t in &tasks {
            let text = std::fs::read_to_string(t).unwrap_or_default();
            for (i, pid) in text.lines().enumerate() {
                let fd = PathBuf::from(format!("/proc/{pid}/fd"));
                for e in std::fs::read_dir(&fd).into_iter().flatten().flatten() {
                    bytes += std::fs::read_link(e.path()).map_or(0, |l| l.as_os_str().len());
                }
                if i == 0 {
                    bytes += std::fs::read_to_string(format!("/proc/{pid}/limits"))
                        .map_or(0, |s| s.len());
                }
            }
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} cgroups, {} files, {bytes} bytes: median pass {:.2} ms",
        cgroups.len(),
        files.len() + 2 * procs.len(),
        times[times.len() / 2]
    );
}
