//! Node, pod and container stats read from cgroupfs and /proc (injected roots), served as the
//! kubelet's `/stats/summary` and `/metrics/resource`: CPU time and rate, memory, network (each
//! pod's sandbox netns), the node's filesystem and process limits.

pub mod accounting;
pub mod blkio;
pub mod cadvisor;
pub mod cgroup;
pub mod fs;
pub mod mounts;
pub mod network;
pub mod resource;
pub mod summary;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::Value;

use crate::node::host::{self, Roots};
use crate::pods::layout::{self, CgroupDriver};
use crate::pods::view::{PodView, State};
use cgroup::{CgroupFs, Hierarchy, Memory, StatsError};
use summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NodeStats, PodRef, PodStats, Rates,
    RlimitStats, Summary,
};

/// Where the stats come from; one per agent, shared by the 10250 handlers.
pub struct Collector {
    pub node_name: String,
    pub roots: Roots,
    cg: CgroupFs,
    /// The node filesystem (`--root-dir`).
    pub root_dir: PathBuf,
    pub driver: CgroupDriver,
    /// `cgroupRoot` ("/" when empty).
    pub cgroup_root: String,
    rates: Mutex<Rates>,
    /// `podLogsDir` (`/var/log/pods`).
    pub pod_logs_dir: PathBuf,
    /// Log and volume directory usage, walked at most every `volumeStatsAggPeriod`.
    du: fs::DuCache,
    /// The runtime's filesystem figures, asked for at most every `volumeStatsAggPeriod` (the
    /// runtime walks each container's writable layer to answer).
    runtime_fs: Mutex<Option<(std::time::Instant, std::sync::Arc<fs::RuntimeFs>)>>,
    fs_period: std::time::Duration,
    /// The root's filesystems for `/metrics/cadvisor`, listed at start as cAdvisor does.
    partitions: Vec<mounts::Partition>,
    /// Volume usage is measured (`volumeStatsAggPeriod` > 0; the kubelet's fsResourceAnalyzer
    /// is off at 0: no volume figures, none in the ephemeral storage).
    volume_stats: bool,
}

/// The sizes of the filesystems a pod's figures are on (the image filesystem, the logs', the
/// node's).
struct PodFilesystems {
    image: Option<host::FsStats>,
    logs: Option<host::FsStats>,
    node: Option<host::FsStats>,
}

/// The cgroup a container of a pod whose cgroup is `parent` runs in, as containerd's CRI names
/// it: with cgroupfs `<parent>/<id>`; with systemd (`<slice>:cri-containerd:<id>`) the scope
/// `<parent>/cri-containerd-<id>.scope`.
pub fn container_cgroup(driver: CgroupDriver, parent: &str, id: &str) -> String {
    let parent = parent.trim_end_matches('/');
    match driver {
        CgroupDriver::Cgroupfs => format!("{parent}/{id}"),
        CgroupDriver::Systemd => format!("{parent}/cri-containerd-{id}.scope"),
    }
}

/// What the stats need of a pod, taken from the 10250 snapshot under its lock (small, so a
/// scrape neither copies the pods' objects nor holds the lock while it reads cgroups).
#[derive(Debug, Clone, Default)]
pub struct PodSource {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub qos: String,
    pub start_time: String,
    /// Its running containers.
    pub containers: Vec<ContainerSource>,
    /// Its sandbox's runtime id (empty when none is known).
    pub sandbox: String,
    /// Its sandbox's image (the pause image; empty when the runtime does not say).
    pub sandbox_image: String,
    /// Its volumes that have figures (emptyDir, configMap, secret, downwardAPI, projected).
    pub volumes: Vec<VolumeSource>,
}

#[derive(Debug, Clone, Default)]
pub struct VolumeSource {
    pub name: String,
    /// The plugin's directory (`kubernetes.io~<plugin>`).
    pub plugin: &'static str,
    /// Counted in the pod's ephemeral storage (emptyDir on disk, configMap: the kubelet's
    /// IsLocalEphemeralVolume).
    pub ephemeral: bool,
}

impl VolumeSource {
    fn of(v: &Value) -> Option<VolumeSource> {
        let name = v["name"].as_str()?.to_string();
        let (plugin, ephemeral) = if v["emptyDir"].is_object() {
            let medium = v["emptyDir"]["medium"].as_str().unwrap_or("");
            ("empty-dir", medium.is_empty())
        } else if v["configMap"].is_object() {
            ("configmap", true)
        } else if v["secret"].is_object() {
            ("secret", false)
        } else if v["downwardAPI"].is_object() {
            ("downward-api", false)
        } else if v["projected"].is_object() {
            ("projected", false)
        } else {
            return None;
        };
        Some(VolumeSource {
            name,
            plugin,
            ephemeral,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ContainerSource {
    pub name: String,
    /// The runtime id.
    pub id: String,
    pub started_at: String,
    pub image: String,
}

impl PodSource {
    pub fn of(p: &PodView) -> PodSource {
        let o = &p.object;
        let statuses: Vec<&Value> = ["containerStatuses", "initContainerStatuses"]
            .iter()
            .flat_map(|k| o["status"][k].as_array().into_iter().flatten())
            .collect();
        let containers = p
            .containers
            .iter()
            .filter_map(|c| {
                let (State::Running, Some(id)) = (&c.state, &c.id) else {
                    return None;
                };
                let status = statuses.iter().find(|s| s["name"] == c.name.as_str());
                let field = |path: &[&str]| status.map_or("", |s| text_at(s, path)).to_string();
                Some(ContainerSource {
                    name: c.name.clone(),
                    id: id.clone(),
                    started_at: field(&["state", "running", "startedAt"]),
                    image: field(&["image"]),
                })
            })
            .collect();
        PodSource {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            qos: text_at(o, &["status", "qosClass"]).to_string(),
            start_time: text_at(o, &["status", "startTime"]).to_string(),
            containers,
            sandbox: p.sandbox.clone().unwrap_or_default(),
            sandbox_image: p.sandbox_image.clone(),
            volumes: o["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(VolumeSource::of)
                .collect(),
        }
    }
}

/// The stats sources of a snapshot's pods.
pub fn sources(pods: &crate::pods::Snapshot) -> Vec<PodSource> {
    let list = pods.read().unwrap_or_else(|p| p.into_inner());
    list.iter().map(PodSource::of).collect()
}

fn host_err(e: host::HostError) -> StatsError {
    match e {
        host::HostError::Read { path, err } => StatsError::Read { path, err },
        host::HostError::Parse { path, what } => StatsError::Parse { path, what },
    }
}

fn rfc3339(t: SystemTime) -> String {
    crate::timefmt::Civil::from_system(t).rfc3339()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The boot time, from `<proc>/stat`'s `btime` (what the kubelet reports as the node's start).
fn boot_time(proc_: &Path) -> Option<SystemTime> {
    let text = std::fs::read_to_string(proc_.join("stat")).ok()?;
    let secs: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn text_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

impl Collector {
    pub fn new(
        node_name: &str,
        roots: Roots,
        root_dir: &Path,
        driver: CgroupDriver,
        cgroup_root: &str,
    ) -> Collector {
        Collector {
            node_name: node_name.to_string(),
            cg: CgroupFs::at(&roots.cgroup),
            partitions: mounts::at_start(&roots.proc_),
            volume_stats: true,
            roots,
            root_dir: root_dir.to_path_buf(),
            driver,
            cgroup_root: if cgroup_root.is_empty() {
                "/".into()
            } else {
                cgroup_root.to_string()
            },
            rates: Mutex::new(Rates::default()),
            pod_logs_dir: PathBuf::from("/var/log/pods"),
            du: fs::DuCache::new(std::time::Duration::from_secs(60)),
            runtime_fs: Mutex::new(None),
            fs_period: std::time::Duration::from_secs(60),
        }
    }

    /// The runtime's filesystem figures: `fetch`ed again once older than the period.
    pub fn runtime_fs<E>(
        &self,
        fetch: impl FnOnce() -> Result<fs::RuntimeFs, E>,
    ) -> Result<std::sync::Arc<fs::RuntimeFs>, E> {
        let now = std::time::Instant::now();
        if let Some((at, r)) = &*self.runtime_fs.lock().unwrap_or_else(|p| p.into_inner())
            && now.duration_since(*at) < self.fs_period
        {
            return Ok(r.clone());
        }
        let r = std::sync::Arc::new(fetch()?);
        *self.runtime_fs.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, r.clone()));
        Ok(r)
    }

    /// Where the pods' logs are, and how long a directory's usage is kept.
    pub fn with_volume_stats(mut self, pod_logs_dir: &Path, period: std::time::Duration) -> Self {
        self.pod_logs_dir = pod_logs_dir.to_path_buf();
        self.du = fs::DuCache::new(period);
        self.fs_period = period;
        self.volume_stats = !period.is_zero();
        if !self.volume_stats {
            crate::info!("Volume stats collection disabled");
        }
        self
    }

    fn cpu(
        &self,
        rates: &mut Rates,
        cgroup: &str,
        now: SystemTime,
    ) -> Result<Option<CpuStats>, StatsError> {
        Ok(self.cg.cpu_ns(cgroup)?.map(|usage| CpuStats {
            time: rfc3339(now),
            usage_nano_cores: rates.observe(cgroup, nanos(now), usage),
            usage_core_nano_seconds: usage,
        }))
    }

    fn memory(&self, cgroup: &str, now: SystemTime) -> Result<Option<MemoryStats>, StatsError> {
        Ok(self
            .cg
            .memory(cgroup)?
            .map(|m| MemoryStats::of(&m, &rfc3339(now))))
    }

    /// The parent of every pod cgroup (`<cgroupRoot>/kubepods`, or `/kubepods.slice`).
    fn pods_cgroup(&self) -> String {
        let pod = layout::cgroup_parent(self.driver, &self.cgroup_root, "Guaranteed", "x");
        pod.rsplit_once('/')
            .map_or(pod.clone(), |(p, _)| p.to_string())
    }

    /// The node's memory: the root cgroup on v1 (its limit is the machine's memory); on v2,
    /// whose root has no memory files, MemTotal - MemFree and the working set from meminfo.
    fn node_memory(&self) -> Result<Memory, StatsError> {
        let mem = host::meminfo(&self.roots).map_err(host_err)?;
        let field = |k: &str| mem.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| *v);
        let total = field("MemTotal");
        let m = match self.cg.memory("/")? {
            Some(m) => Memory {
                limit: Some(total),
                ..m
            },
            None => {
                let vmstat =
                    std::fs::read_to_string(self.roots.proc_.join("vmstat")).unwrap_or_default();
                let vm = |k: &str| cgroup::flat_key(&vmstat, k).unwrap_or(0);
                Memory {
                    usage: total.saturating_sub(field("MemFree")),
                    working_set: host::working_set(&self.roots, &mem).map_err(host_err)?,
                    rss: field("AnonPages"),
                    cache: field("Cached"),
                    page_faults: vm("pgfault"),
                    major_page_faults: vm("pgmajfault"),
                    limit: Some(total),
                    hierarchy_page_faults: vm("pgfault"),
                    hierarchy_major_page_faults: vm("pgmajfault"),
                    mapped_file: field("Mapped"),
                    active_file: field("Active(file)"),
                    inactive_file: field("Inactive(file)"),
                    ..Memory::default()
                }
            }
        };
        Ok(m)
    }

    /// The agent's own cgroup (the `kubelet` system container), from `/proc/self/cgroup`.
    fn own_cgroup(&self, controller: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.roots.proc_.join("self/cgroup")).ok()?;
        cgroup::process_cgroup(&text, self.cg.hierarchy, controller)
    }

    fn system_container(
        &self,
        rates: &mut Rates,
        name: &str,
        cpu_cgroup: &str,
        mem_cgroup: &str,
        now: SystemTime,
    ) -> Result<ContainerStats, StatsError> {
        let created = std::fs::metadata(self.roots.cgroup.join(match self.cg.hierarchy {
            Hierarchy::V1 => format!("memory/{}", mem_cgroup.trim_start_matches('/')),
            Hierarchy::V2 => mem_cgroup.trim_start_matches('/').to_string(),
        }))
        .and_then(|m| m.modified())
        .map(rfc3339)
        .unwrap_or_default();
        Ok(ContainerStats {
            name: name.to_string(),
            start_time: created,
            cpu: self.cpu(rates, cpu_cgroup, now)?,
            memory: self.memory(mem_cgroup, now)?,
            rootfs: None,
            logs: None,
        })
    }

    /// One CPU sample of the node and of `pods` (what the rates are computed from), unless a
    /// summary (a scrape's, the eviction manager's) was taken less than `period` ago: the
    /// cgroups are not read twice for the same rates. A cgroup that cannot be read is left for
    /// the next scrape to report. Gives whether it sampled.
    pub fn sample(&self, pods: &[PodSource], now: SystemTime, period: std::time::Duration) -> bool {
        let period = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        if self
            .rates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recent(nanos(now), period)
        {
            return false;
        }
        let _ = self.summary(pods, true, &fs::RuntimeFs::default(), now);
        true
    }

    /// The summary of the node and of `pods` now; `only_cpu_and_memory` leaves out the node's
    /// filesystem and process limits, as `?only_cpu_and_memory=true`.
    pub fn summary(
        &self,
        pods: &[PodSource],
        only_cpu_and_memory: bool,
        runtime: &fs::RuntimeFs,
        now: SystemTime,
    ) -> Result<Summary, StatsError> {
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen = HashSet::new();
        let time = rfc3339(now);
        let mut system = Vec::new();
        let kubepods = self.pods_cgroup();
        if self.cg.exists(&kubepods) {
            system.push(self.system_container(&mut rates, "pods", &kubepods, &kubepods, now)?);
            seen.insert(kubepods);
        }
        let (own_cpu, own_mem) = match self.cg.hierarchy {
            Hierarchy::V1 => (self.own_cgroup("cpuacct"), self.own_cgroup("memory")),
            Hierarchy::V2 => (self.own_cgroup(""), self.own_cgroup("")),
        };
        if let (Some(c), Some(m)) = (own_cpu, own_mem) {
            system.push(self.system_container(&mut rates, "kubelet", &c, &m, now)?);
            seen.extend([c, m]);
        }
        let mut node = NodeStats {
            node_name: self.node_name.clone(),
            system_containers: system,
            start_time: boot_time(&self.roots.proc_)
                .map(rfc3339)
                .unwrap_or_default(),
            cpu: self.cpu(&mut rates, "/", now)?,
            memory: Some(MemoryStats::of(&self.node_memory()?, &time)),
            fs: None,
            network: None,
            runtime: None,
            rlimit: None,
        };
        seen.insert("/".into());
        // The filesystems every pod's figures are on, statfs'd once with the node's.
        let mut sizes = None;
        if !only_cpu_and_memory {
            let obs = host::Observations::read(&self.roots, &self.root_dir).map_err(host_err)?;
            let threads_max =
                std::fs::read_to_string(self.roots.proc_.join("sys/kernel/threads-max"))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(u64::MAX);
            let f = obs.nodefs;
            node.fs = Some(FsStats {
                time: time.clone(),
                available_bytes: f.available_bytes,
                capacity_bytes: f.capacity_bytes,
                used_bytes: f.capacity_bytes.saturating_sub(f.available_bytes),
                inodes_free: f.inodes_free,
                inodes: f.inodes,
                inodes_used: f.inodes.saturating_sub(f.inodes_free),
            });
            node.network = self.network(1, &time)?;
            let image = runtime
                .image_fs
                .as_ref()
                .and_then(|i| Some((i, host::fs_stats(&i.mountpoint).ok()?)));
            node.runtime = image.map(|(i, f)| {
                let f = FsStats::of(&f, i.used, &time);
                summary::RuntimeStats {
                    image_fs: Some(f.clone()),
                    container_fs: Some(f),
                }
            });
            node.rlimit = Some(RlimitStats {
                time: time.clone(),
                maxpid: obs.pid_max.min(threads_max),
                curproc: obs.processes,
            });
            sizes = Some(PodFilesystems {
                image: image.map(|(_, f)| f),
                logs: host::fs_stats(&self.pod_logs_dir).ok(),
                node: Some(obs.nodefs),
            });
        }
        let mut out = Vec::with_capacity(pods.len());
        let mut dirs = HashSet::new();
        for p in pods {
            let mut stats = self.pod(&mut rates, &mut seen, p, only_cpu_and_memory, now)?;
            if let Some(sizes) = &sizes {
                self.pod_fs(&mut stats, p, runtime, sizes, &mut dirs, &time);
            }
            out.push(stats);
        }
        rates.retain(&seen);
        rates.passed(nanos(now));
        if !only_cpu_and_memory {
            self.du.retain(&dirs);
        }
        Ok(Summary { node, pods: out })
    }

    fn pod(
        &self,
        rates: &mut Rates,
        seen: &mut HashSet<String>,
        p: &PodSource,
        only_cpu_and_memory: bool,
        now: SystemTime,
    ) -> Result<PodStats, StatsError> {
        let parent = self.pod_cgroup(p);
        let mut containers = Vec::with_capacity(p.containers.len());
        for c in &p.containers {
            let cg = container_cgroup(self.driver, &parent, &c.id);
            containers.push(ContainerStats {
                name: c.name.clone(),
                start_time: c.started_at.clone(),
                cpu: self.cpu(rates, &cg, now)?,
                memory: self.memory(&cg, now)?,
                rootfs: None,
                logs: None,
            });
            seen.insert(cg);
        }
        let pod = PodStats {
            pod_ref: PodRef {
                name: p.name.clone(),
                namespace: p.namespace.clone(),
                uid: p.uid.clone(),
            },
            start_time: p.start_time.clone(),
            // No pod cgroup (cgroupsPerQOS: false): the sum of its containers, as the kubelet.
            cpu: match self.cpu(rates, &parent, now)? {
                Some(c) => Some(c),
                None => summary::sum_cpu(&containers, &rfc3339(now)),
            },
            memory: match self.memory(&parent, now)? {
                Some(m) => Some(m),
                None => summary::sum_memory(&containers, &rfc3339(now)),
            },
            network: match only_cpu_and_memory {
                true => None,
                false => match self.sandbox_pid(p, &parent) {
                    Some(pid) => self.network(pid, &rfc3339(now))?,
                    None => None,
                },
            },
            process_stats: (!only_cpu_and_memory && self.cg.exists(&parent)).then(|| {
                summary::ProcessStats {
                    process_count: self.cg.procs_below(&parent),
                }
            }),
            containers,
            volume: Vec::new(),
            ephemeral_storage: None,
        };
        seen.insert(parent);
        Ok(pod)
    }

    /// The pod's filesystems: each container's writable layer (from the runtime) and logs, each
    /// volume, and their sum as ephemeral storage (the kubelet's calcEphemeralStorage: rootfs and
    /// logs, emptyDir on disk and configMap volumes, the pod's etc-hosts), walked directories
    /// noted in `dirs`.
    fn pod_fs(
        &self,
        stats: &mut PodStats,
        p: &PodSource,
        runtime: &fs::RuntimeFs,
        sizes: &PodFilesystems,
        dirs: &mut HashSet<PathBuf>,
        time: &str,
    ) {
        let mut walk = |d: PathBuf| {
            let u = self.du.usage(&d);
            dirs.insert(d);
            u
        };
        let (image, logs_fs, node_fs) = (&sizes.image, &sizes.logs, &sizes.node);
        let mut total = fs::Usage::default();
        let mut add = |u: fs::Usage| {
            total.bytes += u.bytes;
            total.inodes += u.inodes;
        };
        let log_dir = layout::log_dir(&self.pod_logs_dir, &p.namespace, &p.name, &p.uid);
        for (c, src) in stats.containers.iter_mut().zip(&p.containers) {
            if let (Some(f), Some(u)) = (image, runtime.writable.get(&src.id)) {
                c.rootfs = Some(FsStats::of(f, *u, time));
                add(*u);
            }
            if let (Some(f), Some(u)) = (logs_fs, walk(log_dir.join(&src.name))) {
                c.logs = Some(FsStats::of(f, u, time));
                add(u);
            }
        }
        let volumes = layout::pod_dir(&self.root_dir, &p.uid).join("volumes");
        for v in p.volumes.iter().filter(|_| self.volume_stats) {
            let dir = volumes
                .join(format!("kubernetes.io~{}", v.plugin))
                .join(&v.name);
            let Ok(f) = host::fs_stats(&dir) else {
                continue;
            };
            let Some(u) = walk(dir) else {
                continue;
            };
            stats.volume.push(summary::VolumeStats {
                fs: FsStats::of(&f, u, time),
                name: v.name.clone(),
            });
            if v.ephemeral {
                add(u);
            }
        }
        if let Some(u) = fs::du(&layout::pod_dir(&self.root_dir, &p.uid).join("etc-hosts")) {
            add(u);
        }
        stats.ephemeral_storage = node_fs.map(|f| FsStats::of(&f, total, time));
    }

    /// A process in the pod's network namespace: its sandbox's, or any of its containers'.
    fn sandbox_pid(&self, p: &PodSource, parent: &str) -> Option<u32> {
        let sandbox = (!p.sandbox.is_empty())
            .then(|| {
                self.cg
                    .first_pid(&container_cgroup(self.driver, parent, &p.sandbox))
            })
            .flatten();
        sandbox.or_else(|| self.cg.first_pid(parent))
    }

    /// The network figures of process `pid`'s namespace (None once it is gone).
    fn network(&self, pid: u32, time: &str) -> Result<Option<summary::NetworkStats>, StatsError> {
        Ok(network::of_pid(&self.roots.proc_, pid)?
            .map(|ifs| summary::NetworkStats::of(&ifs, time)))
    }

    /// The pod's cgroup, as the kubelet names it.
    fn pod_cgroup(&self, p: &PodSource) -> String {
        layout::cgroup_parent(self.driver, &self.cgroup_root, &p.qos, &p.uid)
    }
}

#[cfg(test)]
mod io_tests;
#[cfg(test)]
mod tests;
