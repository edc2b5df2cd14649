//! What the host is and how full it is, read from injected roots (`/proc`, `/sys`, `/etc`, the
//! cgroup mount, the root dir) so tests run on fixture trees: machine facts for nodeInfo and
//! capacity, and the eviction signals' observations for the pressure conditions.

use std::path::{Path, PathBuf};

/// Where the host's files are; [`Roots::host`] on a real machine.
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc_: PathBuf,
    pub sys: PathBuf,
    pub etc: PathBuf,
    /// The cgroup mount (`/sys/fs/cgroup`), v1 (per-controller dirs) or v2 (unified).
    pub cgroup: PathBuf,
}

impl Roots {
    pub fn host() -> Roots {
        Roots {
            proc_: "/proc".into(),
            sys: "/sys".into(),
            etc: "/etc".into(),
            cgroup: "/sys/fs/cgroup".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {what}")]
    Parse { path: PathBuf, what: String },
}

fn read(path: &Path) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|err| HostError::Read {
        path: path.to_path_buf(),
        err,
    })
}

fn parse_err(path: &Path, what: impl Into<String>) -> HostError {
    HostError::Parse {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// The facts that change only with hardware or a reboot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub cpus: u32,
    pub memory_bytes: u64,
    /// (page size in bytes, pages reserved), one per size the kernel offers.
    pub hugepages: Vec<(u64, u64)>,
    pub machine_id: String,
    /// DMI product_uuid; empty where the firmware does not offer one (most ARM boards) or it
    /// is not readable, as the kubelet leaves it.
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

/// Online CPUs: `<sys>/devices/system/cpu/online` ranges (`0-3,6`), else the `processor` lines
/// of `<proc>/cpuinfo` (x86 and arm64 both write `processor\t: N`).
pub fn cpus(r: &Roots) -> Result<u32, HostError> {
    let online = r.sys.join("devices/system/cpu/online");
    if let Ok(text) = std::fs::read_to_string(&online) {
        let mut n = 0u32;
        for part in text.trim().split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (u32, u32) = match (a.trim().parse(), b.trim().parse()) {
                (Ok(a), Ok(b)) if a <= b => (a, b),
                _ => return Err(parse_err(&online, format!("bad CPU range {part:?}"))),
            };
            n += b - a + 1;
        }
        if n > 0 {
            return Ok(n);
        }
    }
    let path = r.proc_.join("cpuinfo");
    let n = read(&path)?
        .lines()
        .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
        .count();
    if n == 0 {
        return Err(parse_err(&path, "no processor lines"));
    }
    Ok(n as u32)
}

/// `<proc>/meminfo` as (field, bytes); values in kB are converted.
pub fn meminfo(r: &Roots) -> Result<Vec<(String, u64)>, HostError> {
    let path = r.proc_.join("meminfo");
    let text = read(&path)?;
    let mut out = Vec::new();
    for l in text.lines() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let mut it = v.split_whitespace();
        let Some(n) = it.next().and_then(|n| n.parse::<u64>().ok()) else {
            return Err(parse_err(&path, format!("bad value in line {l:?}")));
        };
        let mult = if it.next() == Some("kB") { 1024 } else { 1 };
        out.push((k.trim().to_string(), n.saturating_mul(mult)));
    }
    Ok(out)
}

fn field(info: &[(String, u64)], name: &str, path: &Path) -> Result<u64, HostError> {
    info.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| parse_err(path, format!("no {name} line")))
}

/// `<sys>/kernel/mm/hugepages/hugepages-<N>kB/nr_hugepages`, sorted by page size.
pub fn hugepages(r: &Roots) -> Vec<(u64, u64)> {
    let dir = r.sys.join("kernel/mm/hugepages");
    let mut out: Vec<(u64, u64)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let pages = std::fs::read_to_string(e.path().join("nr_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((kb * 1024, pages))
        })
        .collect();
    out.sort_unstable();
    out
}

fn first_line(path: &Path) -> Result<String, HostError> {
    Ok(read(path)?.lines().next().unwrap_or("").trim().to_string())
}

/// `PRETTY_NAME` of `<etc>/os-release` (unquoted), else "Linux" as cadvisor.
pub fn os_image(r: &Roots) -> String {
    let text = std::fs::read_to_string(r.etc.join("os-release"))
        .or_else(|_| std::fs::read_to_string(r.etc.join("../usr/lib/os-release")))
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".into())
}

impl Machine {
    pub fn read(r: &Roots) -> Result<Machine, HostError> {
        let mem = meminfo(r)?;
        Ok(Machine {
            cpus: cpus(r)?,
            memory_bytes: field(&mem, "MemTotal", &r.proc_.join("meminfo"))?,
            hugepages: hugepages(r),
            machine_id: first_line(&r.etc.join("machine-id")).unwrap_or_default(),
            system_uuid: first_line(&r.sys.join("class/dmi/id/product_uuid")).unwrap_or_default(),
            boot_id: first_line(&r.proc_.join("sys/kernel/random/boot_id"))?,
            kernel_version: first_line(&r.proc_.join("sys/kernel/osrelease"))?,
            os_image: os_image(r),
        })
    }

    /// Bytes held by reserved huge pages (taken out of allocatable memory, as the kubelet).
    pub fn hugepage_bytes(&self) -> u64 {
        self.hugepages
            .iter()
            .map(|(s, n)| s.saturating_mul(*n))
            .sum()
    }
}

/// Whether swap is on, from `<proc>/swaps`; the active lines when it is.
pub fn swaps(r: &Roots) -> Result<Vec<String>, HostError> {
    Ok(read(&r.proc_.join("swaps"))?
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

/// A filesystem's size and what is left, from statvfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// Free to root too (`f_bfree`; available is `f_bavail`).
    pub free_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

pub fn fs_stats(path: &Path) -> Result<FsStats, HostError> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| HostError::Read {
        path: path.to_path_buf(),
        err: e.into(),
    })?;
    let frag = s.fragment_size() as u64;
    Ok(FsStats {
        capacity_bytes: (s.blocks() as u64).saturating_mul(frag),
        available_bytes: (s.blocks_available() as u64).saturating_mul(frag),
        free_bytes: (s.blocks_free() as u64).saturating_mul(frag),
        inodes: s.files() as u64,
        inodes_free: s.files_available() as u64,
    })
}

/// The observations the eviction signals compare with their thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observations {
    pub memory_capacity: u64,
    /// capacity - working set (usage - inactive file pages), as the kubelet's memory.available.
    pub memory_available: u64,
    pub nodefs: FsStats,
    pub pid_max: u64,
    pub processes: u64,
}

/// The root's memory working set. cgroup v1: the memory controller's root usage minus
/// `total_inactive_file`; cgroup v2 (the root has no memory.current) and hosts without a memory
/// controller: MemTotal - MemFree minus inactive file pages (root `memory.stat`'s
/// `inactive_file` when present, else meminfo's `Inactive(file)`), as cadvisor computes it.
pub fn working_set(r: &Roots, mem: &[(String, u64)]) -> Result<u64, HostError> {
    let stat_field = |path: &Path, name: &str| -> Option<u64> {
        std::fs::read_to_string(path).ok()?.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok())?
        })
    };
    let v1 = r.cgroup.join("memory/memory.usage_in_bytes");
    if v1.exists() {
        let usage: u64 = first_line(&v1)?
            .parse()
            .map_err(|_| parse_err(&v1, "not a number"))?;
        let inactive =
            stat_field(&r.cgroup.join("memory/memory.stat"), "total_inactive_file").unwrap_or(0);
        return Ok(usage.saturating_sub(inactive));
    }
    let meminfo = r.proc_.join("meminfo");
    let usage = field(mem, "MemTotal", &meminfo)?.saturating_sub(field(mem, "MemFree", &meminfo)?);
    let inactive = stat_field(&r.cgroup.join("memory.stat"), "inactive_file")
        .or_else(|| {
            mem.iter()
                .find(|(k, _)| k == "Inactive(file)")
                .map(|(_, v)| *v)
        })
        .unwrap_or(0);
    Ok(usage.saturating_sub(inactive))
}

impl Observations {
    /// Reads every signal; `nodefs` is the filesystem holding the root dir.
    pub fn read(r: &Roots, root_dir: &Path) -> Result<Observations, HostError> {
        let mem = meminfo(r)?;
        let capacity = field(&mem, "MemTotal", &r.proc_.join("meminfo"))?;
        let ws = working_set(r, &mem)?;
        let pid_max_path = r.proc_.join("sys/kernel/pid_max");
        let pid_max = first_line(&pid_max_path)?
            .parse()
            .map_err(|_| parse_err(&pid_max_path, "not a number"))?;
        // loadavg's fourth field is running/total scheduling entities (threads included), the
        // count the kubelet's pid.available uses.
        let loadavg = r.proc_.join("loadavg");
        let processes = first_line(&loadavg)?
            .split_whitespace()
            .nth(3)
            .and_then(|f| f.split_once('/'))
            .and_then(|(_, total)| total.parse().ok())
            .ok_or_else(|| parse_err(&loadavg, "no running/total field"))?;
        Ok(Observations {
            memory_capacity: capacity,
            memory_available: capacity.saturating_sub(ws),
            nodefs: fs_stats(root_dir)?,
            pid_max,
            processes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture host: files given as (path under the tree, content).
    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Roots) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (p, c) in files {
            let path = dir.path().join(p);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(&path, c).unwrap_or_else(|e| panic!("{e}"));
        }
        let r = Roots {
            proc_: dir.path().join("proc"),
            sys: dir.path().join("sys"),
            etc: dir.path().join("etc"),
            cgroup: dir.path().join("sys/fs/cgroup"),
        };
        (dir, r)
    }

    const MEMINFO: &str = "MemTotal:        2048000 kB\nMemFree:          512000 kB\nMemAvailable:    1024000 kB\nInactive(file):   256000 kB\nHugePages_Total:       0\n";
    const ARM64_CPUINFO: &str = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n\nprocessor\t: 1\nBogoMIPS\t: 108.00\n\nprocessor\t: 2\nBogoMIPS\t: 108.00\n\nprocessor\t: 3\nBogoMIPS\t: 108.00\n";
    const X86_CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n";

    fn base<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("proc/meminfo", MEMINFO),
            (
                "proc/sys/kernel/random/boot_id",
                "b00710d0-0000-4000-8000-000000000001\n",
            ),
            ("proc/sys/kernel/osrelease", "6.1.0-test-arm64\n"),
            ("proc/sys/kernel/pid_max", "32768\n"),
            ("proc/loadavg", "0.10 0.20 0.30 2/345 6789\n"),
            (
                "proc/swaps",
                "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
            ),
            ("etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
            (
                "etc/os-release",
                "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
            ),
            (
                "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
                "4\n",
            ),
            (
                "sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages",
                "0\n",
            ),
        ];
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn machine_on_an_arm64_board_without_dmi_or_online_file() {
        let (_d, r) = tree(&base(&[("proc/cpuinfo", ARM64_CPUINFO)]));
        let m = Machine::read(&r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.cpus, 4);
        assert_eq!(m.memory_bytes, 2048000 * 1024);
        assert_eq!(m.hugepages, [(2 << 20, 4), (1 << 30, 0)]);
        assert_eq!(m.hugepage_bytes(), 8 << 20);
        assert_eq!(m.machine_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(m.system_uuid, "", "no DMI on this board");
        assert_eq!(m.boot_id, "b00710d0-0000-4000-8000-000000000001");
        assert_eq!(m.kernel_version, "6.1.0-test-arm64");
        assert_eq!(m.os_image, "Debian GNU/Linux 12 (bookworm)");
    }

    #[test]
    fn cpus_from_online_ranges_win_over_cpuinfo() {
        let (_d, r) = tree(&base(&[
            ("proc/cpuinfo", X86_CPUINFO),
            ("sys/devices/system/cpu/online", "0-3,6,8-9\n"),
            (
                "sys/class/dmi/id/product_uuid",
                "4C4C4544-0000-1000-8000-000000000000\n",
            ),
        ]));
        assert_eq!(cpus(&r).unwrap_or(0), 7);
        let m = Machine::read(&r).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.system_uuid, "4C4C4544-0000-1000-8000-000000000000");
        let (_d, r) = tree(&base(&[("proc/cpuinfo", X86_CPUINFO)]));
        assert_eq!(cpus(&r).unwrap_or(0), 2);
        let (_d, r) = tree(&base(&[("sys/devices/system/cpu/online", "3-1\n")]));
        let e = cpus(&r).map_or_else(|e| e.to_string(), |n| n.to_string());
        assert!(e.contains("online: bad CPU range \"3-1\""), "{e}");
    }

    #[test]
    fn missing_and_broken_files_name_the_file() {
        let (_d, r) = tree(&base(&[("proc/cpuinfo", ARM64_CPUINFO)]));
        std::fs::write(r.proc_.join("meminfo"), "MemTotal: lots kB\n").unwrap_or_default();
        let e = Machine::read(&r).map_or_else(|e| e.to_string(), |_| String::new());
        assert!(
            e.contains("proc/meminfo: bad value in line \"MemTotal: lots kB\""),
            "{e}"
        );
        std::fs::remove_file(r.proc_.join("sys/kernel/osrelease")).unwrap_or_default();
        std::fs::write(r.proc_.join("meminfo"), MEMINFO).unwrap_or_default();
        let e = Machine::read(&r).map_or_else(|e| e.to_string(), |_| String::new());
        assert!(e.starts_with("reading ") && e.contains("osrelease"), "{e}");
    }

    #[test]
    fn working_set_on_cgroup_v1_uses_the_memory_controller() {
        let (d, r) = tree(&base(&[
            ("sys/fs/cgroup/memory/memory.usage_in_bytes", "1048576000\n"),
            (
                "sys/fs/cgroup/memory/memory.stat",
                "cache 5\ntotal_cache 9\ntotal_inactive_file 48576000\n",
            ),
        ]));
        let o = Observations::read(&r, d.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.memory_capacity, 2048000 * 1024);
        assert_eq!(o.memory_available, 2048000 * 1024 - 1_000_000_000);
        assert_eq!((o.pid_max, o.processes), (32768, 345));
        assert!(o.nodefs.capacity_bytes > 0);
    }

    #[test]
    fn fixture_readings_flip_the_memory_and_pid_pressure() {
        use crate::node::status::{Spec, pressure};
        let (d, r) = tree(&base(&[
            ("sys/fs/cgroup/memory/memory.usage_in_bytes", "2000000000\n"),
            (
                "sys/fs/cgroup/memory/memory.stat",
                "total_inactive_file 0\n",
            ),
        ]));
        let spec = Spec {
            name: "n".into(),
            labels: Default::default(),
            annotations: Default::default(),
            taints: vec![],
            provider_id: String::new(),
            max_pods: 110,
            pods_per_core: 0,
            system_reserved: Default::default(),
            kube_reserved: Default::default(),
            eviction_hard: crate::config::kubelet::default_eviction_hard(),
            eviction_soft: serde_json::from_str(r#"{"pid.available": "10%"}"#)
                .unwrap_or_else(|e| panic!("{e}")),
            port: 10250,
            kubelet_version: "v1.32.0".into(),
            max_images: 50,
        };
        // 2048000 KiB total, 2000000000 B working set: ~97 MiB left, under 100Mi.
        let o = Observations::read(&r, d.path()).unwrap_or_else(|e| panic!("{e}"));
        let p = pressure(&spec, &o, None);
        assert!(p.memory && !p.pid, "{o:?}");
        std::fs::write(
            r.cgroup.join("memory/memory.usage_in_bytes"),
            "1000000000\n",
        )
        .unwrap_or_default();
        std::fs::write(r.proc_.join("loadavg"), "9.0 9.0 9.0 40/30000 1\n").unwrap_or_default();
        let o = Observations::read(&r, d.path()).unwrap_or_else(|e| panic!("{e}"));
        let p = pressure(&spec, &o, None);
        assert!(!p.memory && p.pid, "{o:?}");
    }

    #[test]
    fn working_set_on_cgroup_v2_uses_meminfo_and_root_memory_stat() {
        let (d, r) = tree(&base(&[
            ("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n"),
            (
                "sys/fs/cgroup/memory.stat",
                "anon 1\ninactive_file 102400000\nactive_file 3\n",
            ),
        ]));
        let o = Observations::read(&r, d.path()).unwrap_or_else(|e| panic!("{e}"));
        // usage = total - free = 1536000 kB; minus 100000 kB inactive file.
        assert_eq!(
            o.memory_available,
            2048000 * 1024 - (1536000 - 100000) * 1024
        );
        // Without the controller's stat file, meminfo's Inactive(file) stands in.
        std::fs::remove_file(r.cgroup.join("memory.stat")).unwrap_or_default();
        let o = Observations::read(&r, d.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            o.memory_available,
            2048000 * 1024 - (1536000 - 256000) * 1024
        );
    }

    #[test]
    fn swap_lines() {
        let (_d, r) = tree(&base(&[]));
        assert!(swaps(&r).unwrap_or_default().is_empty());
        std::fs::write(
            r.proc_.join("swaps"),
            "Filename\tType\tSize\tUsed\tPriority\n/swapfile  file  1048572  0  -2\n",
        )
        .unwrap_or_default();
        assert_eq!(swaps(&r).unwrap_or_default().len(), 1);
    }
}
