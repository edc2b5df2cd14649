//! The machine families of `/metrics/cadvisor` (cores, sockets, memory, swap, NVM, scrape
//! error) and `cadvisor_version_info`, in cAdvisor's names, HELP texts and labels; no
//! timestamps, as the kubelet's machine collector writes them.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

use crate::node::host::{self, Roots};
use crate::stats::cgroup::StatsError;

/// Physical cores and sockets: the distinct (package, core) and package ids of
/// `<sys>/devices/system/cpu/cpu*/topology`; (0, 0) where there is no topology.
pub fn topology(sys: &Path) -> (usize, usize) {
    let (mut cores, mut sockets) = (BTreeSet::new(), BTreeSet::new());
    let dir = sys.join("devices/system/cpu");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_cpu = name
            .strip_prefix("cpu")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let id = |f: &str| {
            std::fs::read_to_string(e.path().join("topology").join(f))
                .ok()
                .map(|t| t.trim().to_string())
        };
        if let (Some(package), Some(core)) = (id("physical_package_id"), id("core_id")) {
            sockets.insert(package.clone());
            cores.insert((package, core));
        }
    }
    (cores.len(), sockets.len())
}

/// Writes the machine families.
pub fn write(out: &mut String, roots: &Roots) -> Result<(), StatsError> {
    let m = host::Machine::read(roots).map_err(super::super::host_err)?;
    let swap = host::meminfo(roots)
        .map_err(super::super::host_err)?
        .iter()
        .find(|(k, _)| k == "SwapTotal")
        .map_or(0, |(_, v)| *v);
    let (cores, sockets) = topology(&roots.sys);
    let e = crate::prom::escape;
    let ids = format!(
        "boot_id=\"{}\",machine_id=\"{}\",system_uuid=\"{}\"",
        e(&m.boot_id),
        e(&m.machine_id),
        e(&m.system_uuid)
    );
    let _ = writeln!(
        out,
        "# HELP cadvisor_version_info A metric with a constant '1' value labeled by kernel version, OS version, docker version, cadvisor version & cadvisor revision.\n\
         # TYPE cadvisor_version_info gauge\n\
         cadvisor_version_info{{cadvisorRevision=\"\",cadvisorVersion=\"\",dockerVersion=\"\",kernelVersion=\"{}\",osVersion=\"{}\"}} 1",
        e(&m.kernel_version),
        e(&m.os_image)
    );
    for (name, help, v) in [
        (
            "machine_cpu_cores",
            "Number of logical CPU cores.",
            m.cpus as u64,
        ),
        (
            "machine_cpu_physical_cores",
            "Number of physical CPU cores.",
            cores as u64,
        ),
        (
            "machine_cpu_sockets",
            "Number of CPU sockets.",
            sockets as u64,
        ),
        (
            "machine_memory_bytes",
            "Amount of memory installed on the machine.",
            m.memory_bytes,
        ),
        ("machine_nvm_avg_power_budget_watts", "NVM power budget.", 0),
        (
            "machine_swap_bytes",
            "Amount of swap memory available on the machine.",
            swap,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{ids}}} {v}"
        );
    }
    let name = "machine_nvm_capacity";
    let _ = writeln!(
        out,
        "# HELP {name} NVM capacity value labeled by NVM mode (memory mode or app direct mode).\n# TYPE {name} gauge"
    );
    for mode in ["app_direct_mode", "memory_mode"] {
        let (b, rest) = ids.split_at(ids.find(",system_uuid").unwrap_or(ids.len()));
        let _ = writeln!(out, "{name}{{{b},mode=\"{mode}\"{rest}}} 0");
    }
    let _ = writeln!(
        out,
        "# HELP machine_scrape_error 1 if there was an error while getting machine metrics, 0 otherwise.\n# TYPE machine_scrape_error gauge\nmachine_scrape_error 0"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_and_sockets_from_the_topology() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Two sockets of two cores, each core two threads; cpufreq is not a CPU.
        for (cpu, package, core) in [
            (0, 0, 0),
            (1, 0, 0),
            (2, 0, 1),
            (3, 0, 1),
            (4, 1, 0),
            (5, 1, 0),
            (6, 1, 1),
            (7, 1, 1),
        ] {
            let t = d
                .path()
                .join(format!("devices/system/cpu/cpu{cpu}/topology"));
            std::fs::create_dir_all(&t).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(t.join("physical_package_id"), format!("{package}\n"))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(t.join("core_id"), format!("{core}\n"))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::create_dir_all(d.path().join("devices/system/cpu/cpufreq"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(topology(d.path()), (4, 2));
        assert_eq!(topology(Path::new("/nonexistent")), (0, 0));
        let (cores, sockets) = topology(Path::new("/sys"));
        assert!(
            cores >= 1 && sockets >= 1,
            "this machine: {cores} {sockets}"
        );
    }
}
