//! cgroupfs readers for the stats: one cgroup's CPU time and memory on cgroup v1 (the `cpuacct`
//! and `memory` controllers) or v2 (the unified hierarchy), under an injected mount, read as
//! cAdvisor's libcontainer handler reads them. Parsing is pure, on the files' text.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{path}: {what}")]
    Parse { path: PathBuf, what: String },
}

impl StatsError {
    /// The error and its cause on one line (`reading /proc/meminfo: No such file ...`).
    pub fn line(&self) -> String {
        match self {
            StatsError::Read { err, .. } => format!("{self}: {err}"),
            StatsError::Parse { .. } => self.to_string(),
        }
    }
}

/// One cgroup's memory, as the Summary API's MemoryStats wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    pub usage: u64,
    /// usage - inactive file pages (floor 0).
    pub working_set: u64,
    pub rss: u64,
    /// Page cache (v1 `total_cache`, v2 `file`).
    pub cache: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// The limit; None when unlimited (v2 `max`, v1 a value above 1<<62).
    pub limit: Option<u64>,
    /// The rest of cAdvisor's figures: hierarchical page faults (v1 `total_pgfault`; v2 the
    /// cgroup's own), `failcnt`, the peak (v1 `max_usage_in_bytes`, v2 `memory.peak`), kernel
    /// memory (v1 `kmem.usage_in_bytes`), mapped files, swap, active and inactive file pages.
    pub hierarchy_page_faults: u64,
    pub hierarchy_major_page_faults: u64,
    pub failcnt: u64,
    pub max_usage: u64,
    pub kernel: u64,
    pub mapped_file: u64,
    pub swap: u64,
    pub active_file: u64,
    pub inactive_file: u64,
}

impl Memory {
    /// limit - working set, when there is a limit.
    pub fn available(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.working_set))
    }
}

/// Which hierarchy the mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// Per-controller directories (`cpuacct/`, `memory/`); a hybrid host's v1 side.
    V1,
    /// The unified hierarchy (`cgroup.controllers` at its top).
    V2,
}

/// The cgroup mount the stats read.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    mount: PathBuf,
    pub hierarchy: Hierarchy,
}

/// Values above this are "no limit" in v1 (the kernel's PAGE_COUNTER_MAX rounded), as cAdvisor.
const UNLIMITED: u64 = 1 << 62;

/// A file's text; None when it does not exist.
pub(super) fn read(path: &Path) -> Result<Option<String>, StatsError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(StatsError::Read {
            path: path.to_path_buf(),
            err,
        }),
    }
}

fn number(path: &Path, text: &str) -> Result<u64, StatsError> {
    text.trim().parse().map_err(|_| StatsError::Parse {
        path: path.to_path_buf(),
        what: format!("not a number: {:?}", text.trim()),
    })
}

/// A flat-keyed file (`memory.stat`, `cpu.stat`): the value of `key`, if present.
pub fn flat_key(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

impl CgroupFs {
    /// The mount at `mount` (`/sys/fs/cgroup`; a hybrid host's `/sys/fs/cgroup/unified` is a v2
    /// mount of its own).
    pub fn at(mount: impl Into<PathBuf>) -> CgroupFs {
        let mount = mount.into();
        let hierarchy = if mount.join("cgroup.controllers").exists() {
            Hierarchy::V2
        } else {
            Hierarchy::V1
        };
        CgroupFs { mount, hierarchy }
    }

    pub(super) fn dir(&self, controller: &str, cgroup: &str) -> PathBuf {
        let rel = cgroup.trim_start_matches('/');
        match self.hierarchy {
            Hierarchy::V1 => self.mount.join(controller).join(rel),
            Hierarchy::V2 => self.mount.join(rel),
        }
    }

    /// Whether `cgroup` exists (in the memory controller's tree on v1).
    pub fn exists(&self, cgroup: &str) -> bool {
        self.dir("memory", cgroup).is_dir()
    }

    /// The cgroup's cumulative CPU time in nanoseconds; None when it does not exist.
    pub fn cpu_ns(&self, cgroup: &str) -> Result<Option<u64>, StatsError> {
        match self.hierarchy {
            Hierarchy::V1 => {
                let path = self.dir("cpuacct", cgroup).join("cpuacct.usage");
                read(&path)?.map(|t| number(&path, &t)).transpose()
            }
            Hierarchy::V2 => {
                let path = self.dir("", cgroup).join("cpu.stat");
                let Some(text) = read(&path)? else {
                    return Ok(None);
                };
                let usec = flat_key(&text, "usage_usec").ok_or_else(|| StatsError::Parse {
                    path: path.clone(),
                    what: "no usage_usec line".into(),
                })?;
                Ok(Some(usec.saturating_mul(1000)))
            }
        }
    }

    /// The cgroup's memory; None when it does not exist or has no memory accounting (the v2
    /// root).
    pub fn memory(&self, cgroup: &str) -> Result<Option<Memory>, StatsError> {
        let dir = self.dir("memory", cgroup);
        let v1 = self.hierarchy == Hierarchy::V1;
        let (usage_file, limit_file) = match v1 {
            true => ("memory.usage_in_bytes", "memory.limit_in_bytes"),
            false => ("memory.current", "memory.max"),
        };
        let usage_path = dir.join(usage_file);
        let Some(usage) = read(&usage_path)? else {
            return Ok(None);
        };
        let usage = number(&usage_path, &usage)?;
        let stat = read(&dir.join("memory.stat"))?.unwrap_or_default();
        let limit_path = dir.join(limit_file);
        let limit = match read(&limit_path)? {
            Some(t) if t.trim() == "max" => None,
            Some(t) => Some(number(&limit_path, &t)?).filter(|l| *l < UNLIMITED),
            None => None,
        };
        let get = |k: &str| flat_key(&stat, k).unwrap_or(0);
        // The hierarchical figure: v1's `total_<key>`, v2's (the cgroup's own) key.
        let total = |v1_key: &str, v2_key: &str| get(if v1 { v1_key } else { v2_key });
        // The rest of cAdvisor's figures are optional: a file this kernel lacks or refuses to
        // read (kmem on recent kernels) is 0, not a failed scrape.
        let file = |f: &str| -> u64 {
            read(&dir.join(f))
                .ok()
                .flatten()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0)
        };
        let inactive_file = total("total_inactive_file", "inactive_file");
        Ok(Some(Memory {
            usage,
            working_set: usage.saturating_sub(inactive_file),
            rss: total("total_rss", "anon"),
            cache: total("total_cache", "file"),
            page_faults: get("pgfault"),
            major_page_faults: get("pgmajfault"),
            limit,
            hierarchy_page_faults: total("total_pgfault", "pgfault"),
            hierarchy_major_page_faults: total("total_pgmajfault", "pgmajfault"),
            failcnt: if v1 { file("memory.failcnt") } else { 0 },
            max_usage: file(if v1 {
                "memory.max_usage_in_bytes"
            } else {
                "memory.peak"
            }),
            kernel: if v1 {
                file("memory.kmem.usage_in_bytes")
            } else {
                0
            },
            mapped_file: total("total_mapped_file", "file_mapped"),
            swap: match v1 {
                true => get("total_swap"),
                false => file("memory.swap.current"),
            },
            active_file: total("total_active_file", "active_file"),
            inactive_file,
        }))
    }
}

/// A cgroup's CPU and memory settings and CFS throttling, as cAdvisor's spec and CFS figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spec {
    /// CFS period in microseconds.
    pub cpu_period: u64,
    /// CFS quota in microseconds; 0 when unlimited.
    pub cpu_quota: u64,
    /// v1 `cpu.shares`; v2 `cpu.weight` converted to shares.
    pub cpu_shares: u64,
    pub cfs_periods: u64,
    pub cfs_throttled_periods: u64,
    pub cfs_throttled_ns: u64,
    /// Memory limits in bytes; 0 when unlimited (cAdvisor's specMemoryValue).
    pub memory_limit: u64,
    pub memory_swap_limit: u64,
    pub memory_reservation: u64,
}

/// A limit file's value; "max", absent, or above 1<<62 is 0 (unlimited).
fn limit_value(text: Option<String>) -> u64 {
    text.and_then(|t| t.trim().parse::<u64>().ok())
        .filter(|v| *v <= UNLIMITED)
        .unwrap_or(0)
}

impl CgroupFs {
    /// The cgroup's settings and throttling; None when its CPU controller directory is gone.
    pub fn spec(&self, cgroup: &str) -> Result<Option<Spec>, StatsError> {
        let cpu = self.dir("cpu", cgroup);
        if !cpu.is_dir() {
            return Ok(None);
        }
        let mem = self.dir("memory", cgroup);
        let text = |d: &Path, f: &str| read(&d.join(f));
        let stat = text(&cpu, "cpu.stat")?.unwrap_or_default();
        let get = |k: &str| flat_key(&stat, k).unwrap_or(0);
        let mut s = Spec {
            cfs_periods: get("nr_periods"),
            cfs_throttled_periods: get("nr_throttled"),
            ..Spec::default()
        };
        match self.hierarchy {
            Hierarchy::V1 => {
                s.cfs_throttled_ns = get("throttled_time");
                s.cpu_shares = limit_value(text(&cpu, "cpu.shares")?);
                s.cpu_period = limit_value(text(&cpu, "cpu.cfs_period_us")?);
                s.cpu_quota = text(&cpu, "cpu.cfs_quota_us")?
                    .and_then(|q| q.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                s.memory_limit = limit_value(text(&mem, "memory.limit_in_bytes")?);
                s.memory_swap_limit = limit_value(text(&mem, "memory.memsw.limit_in_bytes")?);
                s.memory_reservation = limit_value(text(&mem, "memory.soft_limit_in_bytes")?);
            }
            Hierarchy::V2 => {
                s.cfs_throttled_ns = get("throttled_usec").saturating_mul(1000);
                // cAdvisor's convertCPUWeightToCPULimit: [1, 10000] to [2, 262144].
                s.cpu_shares = text(&cpu, "cpu.weight")?
                    .and_then(|w| w.trim().parse::<u64>().ok())
                    .filter(|w| (1..=10000).contains(w))
                    .map_or(0, |w| 2 + (w - 1) * 262142 / 9999);
                if let Some(max) = text(&cpu, "cpu.max")? {
                    let mut f = max.split_whitespace();
                    s.cpu_quota = f.next().and_then(|q| q.parse().ok()).unwrap_or(0);
                    s.cpu_period = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
                }
                s.memory_limit = limit_value(text(&mem, "memory.max")?);
                s.memory_swap_limit = limit_value(text(&mem, "memory.swap.max")?);
                s.memory_reservation = limit_value(text(&mem, "memory.low")?);
            }
        }
        Ok(Some(s))
    }

    /// A process in `cgroup` or, when it has none of its own (a pod's cgroup), in the first of
    /// its child cgroups that has one: for the network namespace it runs in.
    pub fn first_pid(&self, cgroup: &str) -> Option<u32> {
        let dir = self.dir("memory", cgroup);
        let first = |d: &Path| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .ok()?
                .lines()
                .find_map(|l| l.trim().parse::<u32>().ok())
        };
        first(&dir).or_else(|| {
            let mut kids: Vec<PathBuf> = std::fs::read_dir(&dir)
                .ok()?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            kids.sort();
            kids.iter().find_map(|k| first(k))
        })
    }
}

/// The cgroup a process is in for `controller` (v1), or its unified cgroup (v2: the `0::`
/// line), from `<proc>/<pid>/cgroup` text.
pub fn process_cgroup(text: &str, hierarchy: Hierarchy, controller: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        let hit = match hierarchy {
            Hierarchy::V2 => id == "0" && ctrls.is_empty(),
            Hierarchy::V1 => ctrls.split(',').any(|c| c == controller),
        };
        hit.then(|| path.to_string())
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A tree of `(path, text)` files in a new temporary directory.
    pub(in crate::stats) fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for (p, c) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap_or(d.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, c).unwrap_or_else(|e| panic!("{e}"));
        }
        d
    }

    /// The lines of a v1 `memory.stat` the readers use (a real file has some 35); the real tree
    /// of this machine is read in tests/stats_runtime.rs.
    const V1_STAT: &str = "cache 135168\nrss 405504\npgfault 1221\npgmajfault 3\ninactive_file 94208\n\
        total_cache 135168\ntotal_rss 405504\ntotal_pgfault 1221\ntotal_pgmajfault 3\n\
        total_inactive_file 94208\ntotal_active_file 40960\n";

    #[test]
    fn v1_reads_cpuacct_and_memory() {
        let d = tree(&[
            (
                "cpuacct/kubepods/besteffort/podu/c1/cpuacct.usage",
                "48723150\n",
            ),
            (
                "memory/kubepods/besteffort/podu/c1/memory.usage_in_bytes",
                "1003520\n",
            ),
            (
                "memory/kubepods/besteffort/podu/c1/memory.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("memory/kubepods/besteffort/podu/c1/memory.stat", V1_STAT),
            (
                "memory/kubepods/burstable/podv/memory.usage_in_bytes",
                "4096\n",
            ),
            (
                "memory/kubepods/burstable/podv/memory.limit_in_bytes",
                "67108864\n",
            ),
        ]);
        let fs = CgroupFs::at(d.path());
        assert_eq!(fs.hierarchy, Hierarchy::V1);
        let c = "/kubepods/besteffort/podu/c1";
        assert_eq!(fs.cpu_ns(c).ok().flatten(), Some(48_723_150));
        let m = fs.memory(c).ok().flatten().unwrap_or_default();
        assert_eq!(
            m,
            Memory {
                usage: 1_003_520,
                working_set: 1_003_520 - 94_208,
                rss: 405_504,
                cache: 135_168,
                page_faults: 1221,
                major_page_faults: 3,
                limit: None,
                hierarchy_page_faults: 1221,
                hierarchy_major_page_faults: 3,
                active_file: 40960,
                inactive_file: 94208,
                ..Memory::default()
            }
        );
        let limited = fs.memory("/kubepods/burstable/podv").ok().flatten();
        assert_eq!(limited.and_then(|m| m.available()), Some(67_108_864 - 4096));
        assert_eq!(
            fs.cpu_ns("/gone").ok().flatten(),
            None,
            "a missing cgroup is None"
        );
        assert!(fs.memory("/gone").is_ok_and(|m| m.is_none()));
    }

    #[test]
    fn v2_reads_cpu_stat_and_memory_current() {
        let d = tree(&[
            ("cgroup.controllers", "cpuset cpu io memory pids\n"),
            (
                "cpu.stat",
                "usage_usec 912345678\nuser_usec 1\nsystem_usec 2\n",
            ),
            (
                "kubepods/podu/c1/cpu.stat",
                "usage_usec 48723\nuser_usec 40000\nsystem_usec 8723\n",
            ),
            ("kubepods/podu/c1/memory.current", "2097152\n"),
            ("kubepods/podu/c1/memory.max", "max\n"),
            (
                "kubepods/podu/c1/memory.stat",
                "anon 1048576\nfile 1048576\ninactive_file 524288\npgfault 10\npgmajfault 1\n",
            ),
            ("kubepods/podw/memory.current", "100\n"),
            ("kubepods/podw/memory.max", "1000\n"),
        ]);
        let fs = CgroupFs::at(d.path());
        assert_eq!(fs.hierarchy, Hierarchy::V2);
        assert_eq!(
            fs.cpu_ns("/kubepods/podu/c1").ok().flatten(),
            Some(48_723_000)
        );
        assert_eq!(fs.cpu_ns("/").ok().flatten(), Some(912_345_678_000));
        let m = fs
            .memory("/kubepods/podu/c1")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!(
            (m.usage, m.working_set, m.rss),
            (2_097_152, 1_572_864, 1_048_576)
        );
        assert_eq!((m.page_faults, m.major_page_faults, m.limit), (10, 1, None));
        let w = fs
            .memory("/kubepods/podw")
            .ok()
            .flatten()
            .unwrap_or_default();
        assert_eq!((w.limit, w.available()), (Some(1000), Some(900)));
        assert!(
            fs.memory("/").is_ok_and(|m| m.is_none()),
            "the v2 root has no memory.current"
        );
    }

    #[test]
    fn an_unreadable_optional_file_is_zero_not_an_error() {
        let d = tree(&[
            ("memory/c/memory.usage_in_bytes", "4096\n"),
            ("memory/c/memory.failcnt", "5\n"),
            // Unreadable as a file (EISDIR), as kmem is refused by some kernels.
            ("memory/c/memory.kmem.usage_in_bytes/x", ""),
        ]);
        let m = CgroupFs::at(d.path()).memory("/c");
        let m = m.unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
        assert_eq!((m.usage, m.failcnt, m.kernel), (4096, 5, 0));
    }

    #[test]
    fn bad_files_name_the_path() {
        let d = tree(&[
            ("cgroup.controllers", "cpu\n"),
            ("x/cpu.stat", "user_usec 4\n"),
            ("y/memory.current", "lots\n"),
        ]);
        let fs = CgroupFs::at(d.path());
        let e = fs
            .cpu_ns("/x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.ends_with("x/cpu.stat: no usage_usec line"), "{e}");
        let e = fs
            .memory("/y")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.ends_with("y/memory.current: not a number: \"lots\""),
            "{e}"
        );
    }

    #[test]
    fn a_process_cgroup_per_hierarchy() {
        let v1 = "12:pids:/user.slice\n4:cpu,cpuacct:/kubepods/x\n3:memory:/kubepods/y\n0::/init.scope\n";
        assert_eq!(
            process_cgroup(v1, Hierarchy::V1, "cpuacct").as_deref(),
            Some("/kubepods/x")
        );
        assert_eq!(
            process_cgroup(v1, Hierarchy::V1, "memory").as_deref(),
            Some("/kubepods/y")
        );
        assert_eq!(
            process_cgroup(v1, Hierarchy::V2, "").as_deref(),
            Some("/init.scope")
        );
        assert_eq!(process_cgroup("", Hierarchy::V2, ""), None);
    }
}
