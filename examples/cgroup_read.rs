//! The floor for `scripts/bench-stats`: the cgroup files a stats scrape reads (CPU time, memory
//! usage, limit and stat of each cgroup named on stdin, one relative path per line, plus the
//! root's), read raw with `std::fs`, `passes` times. Prints the median pass in milliseconds.
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
    let mut cgroups: Vec<String> = vec!["/".into()];
    cgroups.extend(std::io::stdin().lock().lines().map_while(Result::ok));
    let files: Vec<PathBuf> = cgroups
        .iter()
        .flat_map(|c| {
            let rel = c.trim_start_matches('/');
            if v2 {
                ["cpu.stat", "memory.current", "memory.max", "memory.stat"]
                    .iter()
                    .map(|f| mount.join(rel).join(f))
                    .collect::<Vec<_>>()
            } else {
                vec![
                    mount.join("cpuacct").join(rel).join("cpuacct.usage"),
                    mount.join("memory").join(rel).join("memory.usage_in_bytes"),
                    mount.join("memory").join(rel).join("memory.limit_in_bytes"),
                    mount.join("memory").join(rel).join("memory.stat"),
                ]
            }
        })
        .collect();
    let mut times = Vec::with_capacity(passes);
    let mut bytes = 0;
    for _ in 0..passes {
        let t0 = Instant::now();
        for f in &files {
            bytes += std::fs::read_to_string(f).map_or(0, |s| s.len());
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{} cgroups, {} files, {bytes} bytes: median pass {:.2} ms",
        cgroups.len(),
        files.len(),
        times[times.len() / 2]
    );
}
