//! The one owner of pod state: a thread that takes the pod source's messages, and every sync
//! period observes each pod in the runtime, runs the lifecycle step, executes its actions through
//! CRI, and patches the pod's status when it changed. Other threads only send it messages.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::files;
use super::plan::{self, Action, Backoff, CState, ContainerObs, Observed, SandboxObs};
use super::spec::{Pod, PullPolicy};
use super::status::{self, Waiting};
use crate::cri::Runtime;
use crate::cri::api::*;
use crate::kube::{Lazy, PatchKind};
use crate::stop::Stop;
use crate::timefmt::Civil;
use crate::{error, info, vinfo, warn};

/// What the pod source tells the owner.
#[derive(Debug)]
pub enum Msg {
    /// The whole set bound to this node (after a list): anything else is gone.
    Listed(Vec<Pod>),
    Upsert(Box<Pod>),
    Removed {
        uid: String,
    },
    /// The whole set of static pods (after each read of `staticPodPath` that changed it).
    Static(Vec<Pod>),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node: String,
    pub host_ip: String,
    pub pod_logs_dir: PathBuf,
    /// `cgroupRoot` ("/" when empty): pods live under `<root>/kubepods`.
    pub cgroup_root: String,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    pub sync_every: Duration,
    /// `--root-dir`: pod volumes live in `<root>/pods/<uid>/volumes`.
    pub root_dir: PathBuf,
    /// The node's memory (for the OOM score of burstable pods).
    pub node_memory: u64,
    /// `cpuCFSQuota`: cpu limits become CFS quotas.
    pub cpu_cfs_quota: bool,
    /// What admission checks pods against.
    pub limits: super::admit::NodeLimits,
    /// The cgroup mount (`/sys/fs/cgroup`) for pod cgroups.
    pub cgroup_mount: PathBuf,
    /// `podPidsLimit` (-1: none).
    pub pod_pids_limit: i64,
    /// Pods come from the API server (a kubeconfig was given).
    pub api_source: bool,
    /// Pods come from `staticPodPath`.
    pub static_source: bool,
    /// `resolvConf`: the host's resolver configuration (dnsPolicy Default, search domains).
    pub resolv_conf: PathBuf,
    /// `seccompDefault`: RuntimeDefault for containers that name no seccomp profile.
    pub seccomp_default: bool,
    /// `registryPullQPS`/`registryBurst` (qps 0: no limit).
    pub registry_pull_qps: i32,
    pub registry_burst: i32,
    /// `syncFrequency`: how often volume contents (configMap, secret, downwardAPI, projected
    /// tokens) are brought up to date in running pods.
    pub volume_resync: Duration,
}

struct Entry {
    pod: Pod,
    start_time: String,
    /// Crash-loop back-off per container: (attempt it was computed for, back-off).
    backoff: HashMap<String, (u32, Backoff)>,
    /// Image pull back-off per container, with the error to show.
    pull: HashMap<String, (Backoff, Waiting)>,
    /// Probe results per (container, "readiness" | "liveness").
    probes: HashMap<(String, &'static str), super::probe::Tracker>,
    /// Host paths of the pod's volumes, once set up.
    volumes: Option<BTreeMap<String, PathBuf>>,
    /// When the volumes' contents were last written (seconds since the epoch).
    volumes_at: u64,
    /// Refused at admission: (reason, message); it never runs.
    rejected: Option<super::admit::Rejection>,
    /// The resourceVersion of the agent's last status write.
    status_rv: String,
    /// A static pod's mirror is not created again before this (seconds since the epoch).
    mirror_retry: u64,
    /// The last failure to write the status, logged once until it changes.
    status_error: String,
    /// Failed here for good (activeDeadlineSeconds): (reason, message) for the status.
    failed: Option<(String, String)>,
    /// Volume setup failed: not tried again before (ms since the epoch), and the delay.
    mount_hold: Option<(u64, u64)>,
}

/// The API says the pod finished (Succeeded or Failed).
fn terminal(p: &Pod) -> bool {
    matches!(p.status["phase"].as_str(), Some("Succeeded" | "Failed"))
}

fn now_secs() -> u64 {
    crate::timefmt::now_secs()
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

const UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Threads that run probes (each probe bounded by its timeout).
const PROBE_WORKERS: usize = 4;

/// What a pod's checkpoint must follow: the object without its resourceVersion and managed
/// fields, and of its status the phase and start time (admission and deadlines after a restore).
fn checkpoint_key(p: &Pod) -> Value {
    let mut v = p.raw.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    v["status"] = json!({"phase": p.status["phase"], "startTime": p.status["startTime"]});
    v
}

/// Removes a directory tree of a gone pod (logs, volumes); already gone is fine.
fn remove_tree(dir: &std::path::Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => vinfo!(2, "removed {}", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("removing {}: {e}", dir.display()),
    }
}
/// The API pod's checkpoint in its pod directory.
const CHECKPOINT: &str = "pod.json";

pub struct Owner {
    cfg: Config,
    client: std::sync::Arc<Lazy>,
    runtime: std::sync::Arc<Runtime>,
    pods: BTreeMap<String, Entry>,
    snapshot: super::Snapshot,
    events: Option<crate::events::Recorder>,
    /// Mirror pods of static pods, by `namespace/name`, as the API has them.
    mirrors: BTreeMap<String, Pod>,
    /// The Node object's uid (the mirror pods' owner), once read.
    node_uid: Option<String>,
    /// The API source has listed once / the static source has read once: until each configured
    /// source has, a sandbox the agent does not know may still be one of its pods.
    listed: bool,
    static_read: bool,
    /// This round's relist: every sandbox and container.
    relisted: Option<(Vec<PodSandbox>, Vec<Container>)>,
    /// Sandbox IPs and container statuses by id, with the state they were read in.
    status_cache: std::cell::RefCell<HashMap<String, (i32, Cached)>>,
    /// registryPullQPS as the kubelet's: a pull past it fails with "pull QPS exceeded".
    pull_limit: Option<crate::kube::Bucket>,
    /// The probe workers: jobs out, outcomes back.
    probe_jobs: std::sync::mpsc::Sender<super::probe::Job>,
    probe_done: Receiver<super::probe::Done>,
}

/// What the relist cache holds for one runtime object.
#[derive(Debug, Clone)]
enum Cached {
    Ip(String),
    Status(Box<ContainerStatus>),
}

impl Owner {
    pub fn new(
        cfg: Config,
        client: std::sync::Arc<Lazy>,
        runtime: std::sync::Arc<Runtime>,
        snapshot: super::Snapshot,
        events: Option<crate::events::Recorder>,
    ) -> Owner {
        let pull_limit = (cfg.registry_pull_qps > 0).then(|| {
            crate::kube::Bucket::new(
                f64::from(cfg.registry_pull_qps),
                f64::from(cfg.registry_burst.max(1)),
            )
        });
        let (probe_jobs, probe_done) = super::probe::workers(PROBE_WORKERS, runtime.clone());
        Owner {
            cfg,
            pull_limit,
            probe_jobs,
            probe_done,
            client,
            runtime,
            pods: BTreeMap::new(),
            snapshot,
            events,
            mirrors: BTreeMap::new(),
            node_uid: None,
            listed: false,
            static_read: false,
            relisted: None,
            status_cache: std::cell::RefCell::new(HashMap::new()),
        }
    }

    /// Every configured source has said once what it holds.
    fn sources_known(&self) -> bool {
        (self.listed || !self.cfg.api_source) && (self.static_read || !self.cfg.static_source)
    }

    /// An event about `pod` (or one of its containers), as the kubelet records them.
    fn event(
        &self,
        pod: &Pod,
        container: Option<&str>,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let Some(r) = &self.events else {
            return;
        };
        let field_path = container
            .map(|c| {
                let init = pod.spec.init_containers.iter().any(|i| i.name == c);
                format!(
                    "spec.{}{{{c}}}",
                    if init { "initContainers" } else { "containers" }
                )
            })
            .unwrap_or_default();
        r.record_about(
            crate::kube::types::ObjectReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                field_path,
            },
            crate::node::status::NodeEvent {
                warning,
                reason: reason.into(),
                message,
            },
        );
    }

    /// Runs a lifecycle hook of container `c` (bounded by `timeout`); the failure, if any.
    fn run_hook(
        &self,
        pod: &Pod,
        h: &super::spec::LifecycleHandler,
        container_id: &str,
        ports: &[super::spec::ContainerPort],
        pod_ip: &str,
        timeout: Duration,
    ) -> Option<String> {
        if let Some(sl) = &h.sleep {
            std::thread::sleep(Duration::from_secs(sl.seconds).min(timeout));
            return None;
        }
        match super::probe::run(
            &h.handler,
            timeout,
            &self.runtime,
            container_id,
            pod_ip,
            ports,
        ) {
            super::probe::Outcome::Success => None,
            super::probe::Outcome::Failure(why) => {
                warn!("pod {}: hook failed: {why}", pod.key());
                Some(why)
            }
        }
    }

    fn pod_ip(&self, obs: &Observed) -> String {
        obs.sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| self.cfg.host_ip.clone())
    }

    /// Publishes the pods with their latest status for the 10250 API.
    /// A static pod whose manifest changed is, for a while, two pods of one name: the old one
    /// stopping and its successor; the API (logs, exec) sees the successor.
    fn publish(&self) {
        let superseded = |e: &Entry| {
            e.pod.deleting()
                && self
                    .pods
                    .values()
                    .any(|o| o.pod.key() == e.pod.key() && !o.pod.deleting())
        };
        let list: Vec<Value> = self
            .pods
            .values()
            .filter(|e| !superseded(e))
            .map(|e| {
                let mut v = e.pod.raw.clone();
                v["status"] = e.pod.status.clone();
                v
            })
            .collect();
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = list;
    }

    /// `<root-dir>/pods/<uid>`: the pod's volumes and its checkpoint.
    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.root_dir.join("pods").join(uid)
    }

    /// Writes the API pod's object to `<pod dir>/pod.json` (atomically), so that after a reboot
    /// with the API server away the agent still knows what to run.
    fn checkpoint(&self, pod: &Pod) {
        if files::is_static(pod) {
            return;
        }
        let dir = self.pod_dir(&pod.metadata.uid);
        let mut v = pod.raw.clone();
        v["status"] = pod.status.clone();
        let write = || -> std::io::Result<()> {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&dir)?;
            let tmp = dir.join(".pod.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())?;
            std::fs::rename(&tmp, dir.join(CHECKPOINT))
        };
        if let Err(e) = write() {
            warn!("checkpointing pod {} in {}: {e}", pod.key(), dir.display());
        }
    }

    /// The pods checkpointed by an earlier run: the agent runs them until the API server says
    /// otherwise (its first list replaces them).
    fn restore(&mut self) {
        let Ok(dirs) = std::fs::read_dir(self.cfg.root_dir.join("pods")) else {
            return;
        };
        let mut n = 0;
        for d in dirs.flatten() {
            let path = d.path().join(CHECKPOINT);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let pod = serde_json::from_slice::<Value>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(Pod::from_value);
            match pod {
                Ok(p) if p.metadata.uid == d.file_name().to_string_lossy() => {
                    self.upsert(p);
                    n += 1;
                }
                Ok(p) => warn!(
                    "ignoring checkpoint {}: it holds pod uid {}",
                    path.display(),
                    p.metadata.uid
                ),
                Err(e) => warn!("ignoring checkpoint {}: {e}", path.display()),
            }
        }
        if n > 0 {
            info!("restored {n} pod(s) from checkpoints; the API server's list will replace them");
        }
    }

    /// Runs until stopped or the source goes away.
    pub fn run(mut self, rx: &Receiver<Msg>, stop: &Stop) {
        if self.cfg.api_source {
            self.restore();
        }
        while !stop.is_stopped() {
            match rx.recv_timeout(self.cfg.sync_every) {
                Ok(m) => {
                    self.take(m);
                    while let Ok(m) = rx.try_recv() {
                        self.take(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let uids: Vec<String> = self.pods.keys().cloned().collect();
            if !uids.is_empty() {
                self.relist();
            }
            self.probe_results();
            for uid in uids {
                if stop.is_stopped() {
                    return;
                }
                self.sync(&uid);
            }
            self.publish();
        }
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Listed(pods) => {
                let (mirrors, pods): (Vec<Pod>, Vec<Pod>) =
                    pods.into_iter().partition(files::is_mirror);
                self.mirrors = mirrors.into_iter().map(|m| (m.key(), m)).collect();
                let keep: Vec<String> = pods.iter().map(|p| p.metadata.uid.clone()).collect();
                self.pods
                    .retain(|uid, e| files::is_static(&e.pod) || keep.contains(uid));
                for p in pods {
                    self.upsert(p);
                }
                self.listed = true;
                self.remove_orphans();
            }
            Msg::Upsert(p) if files::is_mirror(&p) => {
                let rv = |p: &Pod| p.metadata.resource_version.parse::<u64>().ok();
                let stale = self
                    .mirrors
                    .get(&p.key())
                    .is_some_and(|m| m.metadata.uid == p.metadata.uid && rv(m) > rv(&p));
                if !stale {
                    self.mirrors.insert(p.key(), *p);
                }
            }
            Msg::Upsert(p) => self.upsert(*p),
            Msg::Removed { uid } => {
                let mirrors = self.mirrors.len();
                self.mirrors.retain(|_, m| m.metadata.uid != uid);
                // Deleted from the API without us (grace 0 by someone else): clean up now.
                if mirrors == self.mirrors.len() && self.pods.remove(&uid).is_some() {
                    self.remove_orphans();
                }
            }
            Msg::Static(pods) => {
                let keep: Vec<String> = pods.iter().map(|p| p.metadata.uid.clone()).collect();
                for (uid, e) in &mut self.pods {
                    if files::is_static(&e.pod) && !keep.contains(uid) && !e.pod.deleting() {
                        info!(
                            "static pod {} (uid {uid}) is gone from its manifest",
                            e.pod.key()
                        );
                        let grace = e.pod.grace_seconds();
                        e.pod.metadata.deletion_timestamp = Some(Civil::now().rfc3339());
                        e.pod.metadata.deletion_grace_period_seconds = Some(grace);
                    }
                }
                for p in pods {
                    if !self.pods.contains_key(&p.metadata.uid) {
                        self.upsert(p);
                    }
                }
                self.static_read = true;
                self.remove_orphans();
            }
        }
    }

    fn upsert(&mut self, pod: Pod) {
        let uid = pod.metadata.uid.clone();
        // Written when the pod changed in what a restore needs, not on every status echo (each
        // status write comes back through the watch; the node's storage may be flash).
        if self
            .pods
            .get(&uid)
            .is_none_or(|e| checkpoint_key(&e.pod) != checkpoint_key(&pod))
        {
            self.checkpoint(&pod);
        }
        match self.pods.get_mut(&uid) {
            Some(e) => {
                // A watch event older than the status the agent last wrote keeps that status.
                let rv = |s: &str| s.parse::<u64>().ok();
                let stale = matches!(
                    (rv(&pod.metadata.resource_version), rv(&e.status_rv)),
                    (Some(a), Some(b)) if a < b
                );
                let status = e.pod.status.clone();
                e.pod = pod;
                if stale {
                    e.pod.status = status;
                }
            }
            None => {
                info!("SyncLoop ADD: pod {:?} (uid {uid})", pod.key());
                let fresh = matches!(pod.status["phase"].as_str(), None | Some("Pending"));
                let rejected = if fresh && !pod.deleting() {
                    let running: Vec<&Pod> = self
                        .pods
                        .values()
                        .filter(|e| e.rejected.is_none() && !terminal(&e.pod))
                        .map(|e| &e.pod)
                        .collect();
                    super::admit::admit(&pod, &running, &self.cfg.limits).err()
                } else {
                    None
                };
                if let Some((reason, message)) = &rejected {
                    warn!("pod {} rejected: {reason}: {message}", pod.key());
                    // The kubelet's rejectPod: the event has the handler's message alone.
                    let bare = message
                        .strip_prefix("Pod was rejected: ")
                        .unwrap_or(message);
                    self.event(&pod, None, true, reason, bare.to_string());
                }
                let start_time = pod.status["startTime"]
                    .as_str()
                    .map(String::from)
                    .unwrap_or_else(|| Civil::now().rfc3339());
                self.pods.insert(
                    uid,
                    Entry {
                        pod,
                        start_time,
                        backoff: HashMap::new(),
                        pull: HashMap::new(),
                        probes: HashMap::new(),
                        volumes: None,
                        volumes_at: 0,
                        rejected,
                        status_rv: String::new(),
                        mirror_retry: 0,
                        status_error: String::new(),
                        failed: None,
                        mount_hold: None,
                    },
                );
            }
        }
    }

    /// Sandboxes of pods the API no longer has: their containers and they are removed.
    fn remove_orphans(&self) {
        if !self.sources_known() {
            return;
        }
        let Ok(list) = self
            .runtime
            .list_pod_sandbox(&ListPodSandboxRequest::default())
        else {
            return;
        };
        for s in list.items {
            let uid = s.labels.get(UID_LABEL).cloned().unwrap_or_default();
            if uid.is_empty() || self.pods.contains_key(&uid) {
                continue;
            }
            info!(
                "removing sandbox {} of pod uid {uid}, which no longer exists",
                s.id
            );
            let containers = self
                .runtime
                .list_containers(&ListContainersRequest {
                    filter: Some(ContainerFilter {
                        pod_sandbox_id: s.id.clone(),
                        ..Default::default()
                    }),
                })
                .map(|l| l.containers)
                .unwrap_or_default();
            for c in containers {
                let _ = self.runtime.stop_container(&StopContainerRequest {
                    container_id: c.id.clone(),
                    timeout: 30,
                });
                let _ = self
                    .runtime
                    .remove_container(&RemoveContainerRequest { container_id: c.id });
            }
            let _ = self.runtime.stop_pod_sandbox(&StopPodSandboxRequest {
                pod_sandbox_id: s.id.clone(),
            });
            let _ = self.runtime.remove_pod_sandbox(&RemovePodSandboxRequest {
                pod_sandbox_id: s.id,
            });
            let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            let (ns, name) = (
                label("io.kubernetes.pod.namespace"),
                label("io.kubernetes.pod.name"),
            );
            if !ns.is_empty() && !name.is_empty() {
                remove_tree(&self.cfg.pod_logs_dir.join(format!("{ns}_{name}_{uid}")));
            }
        }
        // Pod directories (volumes, checkpoints) of pods that are gone.
        for d in std::fs::read_dir(self.cfg.root_dir.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let uid = d.file_name().to_string_lossy().into_owned();
            if !self.pods.contains_key(&uid) {
                self.remove_pod_dir(&uid);
            }
        }
    }

    /// Removes a gone pod's directory, unless something is mounted under it (a volume of an
    /// earlier agent's): removing through a mount would delete what it holds.
    fn remove_pod_dir(&self, uid: &str) {
        let dir = self.pod_dir(uid);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let prefix = format!("{}/", dir.display());
        let ours = [
            format!("{prefix}volumes/kubernetes.io~empty-dir/"),
            format!("{prefix}volume-subpaths/"),
        ];
        for m in mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
        {
            // The agent's own mounts (emptyDir medium: Memory, subPath binds) are unmounted;
            // anything else stays, and so does the directory.
            let unmounted = ours.iter().any(|o| m.starts_with(o.as_str()))
                && nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH).is_ok();
            if !unmounted {
                warn!("not removing {}: {m} is mounted under it", dir.display());
                return;
            }
        }
        remove_tree(&dir);
    }

    /// Every sandbox and container in the runtime, once per sync round (two CRI calls for all
    /// pods, as the kubelet's relist); the statuses of those whose state did not change since
    /// they were last asked for are reused.
    fn relist(&mut self) {
        let sandboxes = self
            .runtime
            .list_pod_sandbox(&ListPodSandboxRequest::default());
        let containers = self
            .runtime
            .list_containers(&ListContainersRequest::default());
        self.relisted = match (sandboxes, containers) {
            (Ok(s), Ok(c)) => {
                let live: std::collections::HashSet<&str> = s
                    .items
                    .iter()
                    .map(|x| x.id.as_str())
                    .chain(c.containers.iter().map(|x| x.id.as_str()))
                    .collect();
                let mut cache = self.status_cache.borrow_mut();
                cache.retain(|id, _| live.contains(id.as_str()));
                Some((s.items, c.containers))
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!("listing the runtime's pods: {e}");
                None
            }
        };
    }

    /// A sandbox's IP or a container's status, from the cache while its state is the same.
    fn cached<T: Clone>(
        &self,
        id: &str,
        state: i32,
        get: impl FnOnce() -> Result<T, String>,
        wrap: fn(T) -> Cached,
        unwrap: fn(&Cached) -> Option<T>,
    ) -> Result<T, String> {
        if let Some((st, v)) = self.status_cache.borrow().get(id)
            && *st == state
            && let Some(t) = unwrap(v)
        {
            return Ok(t);
        }
        let t = get()?;
        self.status_cache
            .borrow_mut()
            .insert(id.to_string(), (state, wrap(t.clone())));
        Ok(t)
    }

    /// What the runtime holds for pod `uid`: from this round's relist, or (`fresh`, after the
    /// agent acted on it) asked for again.
    fn observe(&self, uid: &str, fresh: bool) -> Result<Observed, String> {
        let label: StringMap = [(UID_LABEL.to_string(), uid.to_string())].into();
        let (sandboxes, containers) = match (&self.relisted, fresh) {
            (Some((s, c)), false) => {
                let mine = |l: &StringMap| l.get(UID_LABEL).map(String::as_str) == Some(uid);
                (
                    s.iter().filter(|x| mine(&x.labels)).cloned().collect(),
                    c.iter().filter(|x| mine(&x.labels)).cloned().collect(),
                )
            }
            _ => {
                let s = self
                    .runtime
                    .list_pod_sandbox(&ListPodSandboxRequest {
                        filter: Some(PodSandboxFilter {
                            label_selector: label.clone(),
                            ..Default::default()
                        }),
                    })
                    .map_err(|e| e.to_string())?
                    .items;
                let c = self
                    .runtime
                    .list_containers(&ListContainersRequest {
                        filter: Some(ContainerFilter {
                            label_selector: label,
                            ..Default::default()
                        }),
                    })
                    .map_err(|e| e.to_string())?
                    .containers;
                (s, c)
            }
        };
        let sandboxes: Vec<PodSandbox> = sandboxes;
        let containers: Vec<Container> = containers;
        let mut obs = Observed::default();
        let newest = sandboxes
            .iter()
            .max_by_key(|s| s.created_at)
            .map(|s| s.id.clone());
        for s in &sandboxes {
            if Some(&s.id) != newest.as_ref() {
                obs.stale_sandboxes.push(s.id.clone());
                continue;
            }
            let ip = self
                .cached(
                    &s.id,
                    s.state,
                    || {
                        self.runtime
                            .pod_sandbox_status(&PodSandboxStatusRequest {
                                pod_sandbox_id: s.id.clone(),
                                verbose: false,
                            })
                            .map_err(|e| e.to_string())
                            .map(|r| r.status.and_then(|st| st.network).map(|n| n.ip))
                            .map(Option::unwrap_or_default)
                    },
                    Cached::Ip,
                    |c| match c {
                        Cached::Ip(ip) => Some(ip.clone()),
                        Cached::Status(_) => None,
                    },
                )
                .unwrap_or_default();
            obs.sandbox = Some(SandboxObs {
                id: s.id.clone(),
                ready: s.state == PodSandboxState::SandboxReady as i32,
                ip,
                attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
            });
        }
        let mut by_name: BTreeMap<String, Vec<ContainerObs>> = BTreeMap::new();
        for c in containers {
            // Containers of an old sandbox belong to the past: removed with it.
            if obs
                .sandbox
                .as_ref()
                .is_some_and(|s| s.id != c.pod_sandbox_id)
            {
                obs.old_containers.push(c.id);
                continue;
            }
            let st = self.cached(
                &c.id,
                c.state,
                || {
                    let mut st = self
                        .runtime
                        .container_status(&ContainerStatusRequest {
                            container_id: c.id.clone(),
                            verbose: false,
                        })
                        .map_err(|e| e.to_string())?
                        .status
                        .unwrap_or_default();
                    // Read once, when the container is seen exited (cached with the status).
                    let meta = st.metadata.clone().unwrap_or_default();
                    if let Some(m) = self.termination_message(
                        uid,
                        &meta.name,
                        meta.attempt,
                        st.state,
                        st.exit_code,
                    ) {
                        st.message = m;
                    }
                    Ok(st)
                },
                |s| Cached::Status(Box::new(s)),
                |c| match c {
                    Cached::Status(s) => Some((**s).clone()),
                    Cached::Ip(_) => None,
                },
            )?;
            let meta = st.metadata.clone().unwrap_or_default();
            by_name
                .entry(meta.name.clone())
                .or_default()
                .push(ContainerObs {
                    id: c.id.clone(),
                    name: meta.name.clone(),
                    attempt: meta.attempt,
                    state: match st.state {
                        0 => CState::Created,
                        1 => CState::Running,
                        2 => CState::Exited,
                        _ => CState::Unknown,
                    },
                    exit_code: st.exit_code,
                    reason: st.reason,
                    message: st.message,
                    created_at: st.created_at,
                    started_at: st.started_at,
                    finished_at: st.finished_at,
                    image_ref: st.image_ref,
                });
        }
        let mut latest = Vec::new();
        for (_, mut attempts) in by_name {
            attempts.sort_by_key(|c| std::cmp::Reverse(c.attempt));
            let mut it = attempts.into_iter();
            if let Some(l) = it.next() {
                latest.push(l);
            }
            if let Some(p) = it.next() {
                obs.previous.push(p);
            }
            obs.old_containers.extend(it.map(|c| c.id));
        }
        obs.containers = latest;
        Ok(obs)
    }

    fn log_dir(&self, pod: &Pod) -> PathBuf {
        self.cfg.pod_logs_dir.join(format!(
            "{}_{}_{}",
            pod.metadata.namespace, pod.metadata.name, pod.metadata.uid
        ))
    }

    /// `<cgroupRoot>/kubepods[/<qos>]/pod<uid>`.
    fn cgroup_parent(&self, pod: &Pod) -> String {
        let root = self.cfg.cgroup_root.trim_end_matches('/');
        let uid = &pod.metadata.uid;
        match pod.qos_class() {
            "Guaranteed" => format!("{root}/kubepods/pod{uid}"),
            "Burstable" => format!("{root}/kubepods/burstable/pod{uid}"),
            _ => format!("{root}/kubepods/besteffort/pod{uid}"),
        }
    }

    fn remove_pod_cgroup(&self, pod: &Pod) {
        let parent = self.cgroup_parent(pod);
        if let Err(e) = super::cgroups::Cgroups::new(&self.cfg.cgroup_mount).remove_pod(&parent) {
            warn!("pod {}: {e}", pod.key());
        }
    }

    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> PodSandboxConfig {
        let m = &pod.metadata;
        let mut labels = m.labels.clone();
        labels.insert("io.kubernetes.pod.name".into(), m.name.clone());
        labels.insert("io.kubernetes.pod.namespace".into(), m.namespace.clone());
        labels.insert(UID_LABEL.into(), m.uid.clone());
        let cgroup_parent = self.cgroup_parent(pod);
        let resolv = &self.cfg.resolv_conf;
        let dns = super::dns::config(
            pod,
            &self.cfg.cluster_dns,
            &self.cfg.cluster_domain,
            &|| std::fs::read_to_string(resolv).ok(),
        );
        let (security_context, sysctls) = super::security::sandbox(pod);
        // hostPort mappings, as the kubelet's makePortMappings (CNI's portmap plugin acts).
        let port_mappings = pod
            .raw_containers()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                let host_port = p["hostPort"].as_i64().filter(|h| *h > 0)?;
                Some(PortMapping {
                    protocol: match p["protocol"].as_str() {
                        Some("UDP") => Protocol::Udp,
                        Some("SCTP") => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    } as i32,
                    container_port: p["containerPort"].as_i64().unwrap_or(0) as i32,
                    host_port: host_port as i32,
                    host_ip: p["hostIP"].as_str().unwrap_or("").to_string(),
                })
            })
            .collect();
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: m.name.clone(),
                uid: m.uid.clone(),
                namespace: m.namespace.clone(),
                attempt,
            }),
            hostname: if pod.spec.host_network {
                String::new()
            } else if pod.spec.hostname.is_empty() {
                m.name.clone()
            } else {
                pod.spec.hostname.clone()
            },
            log_directory: self.log_dir(pod).display().to_string(),
            dns_config: dns,
            port_mappings,
            labels,
            annotations: m.annotations.clone(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent,
                security_context: Some(security_context),
                sysctls,
                ..Default::default()
            }),
        }
    }

    fn sync(&mut self, uid: &str) {
        let obs = match self.observe(uid, false) {
            Ok(o) => o,
            Err(e) => {
                warn!("observing pod uid {uid} in the runtime: {e}");
                return;
            }
        };
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        if !entry.pod.deleting() {
            if let Some((reason, message)) = entry.rejected.clone() {
                if entry.pod.status["reason"].as_str() != Some(reason.as_str()) {
                    let status = json!({"phase": "Failed", "reason": reason, "message": message,
                        "startTime": entry.start_time, "hostIP": self.cfg.host_ip});
                    self.patch_status(uid, &status);
                }
                return;
            }
            if terminal(&entry.pod) && obs.sandbox.is_none() && obs.containers.is_empty() {
                // Finished before (and cleaned up): nothing to run or to report again.
                return;
            }
        }
        // Crash-loop back-off: computed once per exited attempt that is to run again.
        let now = now_secs();
        // activeDeadlineSeconds, counted from the pod's start on this node: past it the pod
        // fails (DeadlineExceeded) and its containers stop.
        let deadline = entry.pod.raw["spec"]["activeDeadlineSeconds"].as_u64();
        let started = crate::timefmt::parse_rfc3339(&entry.start_time);
        if let (Some(d), Some(t0), None, false) =
            (deadline, started, &entry.failed, entry.pod.deleting())
            && !terminal(&entry.pod)
            && now >= t0 + d
        {
            let msg = "Pod was active on the node longer than the specified deadline";
            entry.failed = Some(("DeadlineExceeded".into(), msg.into()));
            let pod = entry.pod.clone();
            info!("pod {}: {msg}", pod.key());
            self.event(&pod, None, true, "DeadlineExceeded", msg.into());
        }
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let mut backoff_events = Vec::new();
        let finished = !entry.pod.deleting() && (entry.failed.is_some() || terminal(&entry.pod));
        for c in &obs.containers {
            if !finished
                && c.state == CState::Exited
                && plan::restartable(&entry.pod, &c.name, c.exit_code)
            {
                let prev = entry.backoff.get(&c.name).copied();
                if prev.is_none_or(|(attempt, _)| attempt != c.attempt) {
                    let finished = (c.finished_at.max(0) / 1_000_000_000) as u64;
                    let ran =
                        Duration::from_nanos((c.finished_at - c.started_at).max(0).unsigned_abs());
                    let b = Backoff::next(prev.map(|(_, b)| b), finished.max(1), ran);
                    entry.backoff.insert(c.name.clone(), (c.attempt, b));
                    backoff_events.push(c.name.clone());
                }
            }
        }
        let backoff = entry.backoff.clone();
        let may_restart = |name: &str| backoff.get(name).is_none_or(|(_, b)| now >= b.until);
        let pod = entry.pod.clone();
        for name in backoff_events {
            let m = &pod.metadata;
            self.event(
                &pod,
                Some(&name),
                true,
                "BackOff",
                format!(
                    "Back-off restarting failed container {name} in pod {}_{}({})",
                    m.name, m.namespace, m.uid
                ),
            );
        }
        // A new sandbox is followed at once by what runs in it (as the kubelet's SyncPod does
        // both in one pass): the step is taken again on a fresh observation, a few times at most.
        let mut obs = obs;
        for _ in 0..3 {
            let actions = if finished {
                plan::stop_all(&pod, &obs)
            } else {
                plan::step(&pod, &obs, &may_restart)
            };
            let again = actions
                .iter()
                .any(|a| matches!(a, Action::RunSandbox { .. }));
            let mut acted = false;
            let mut failed = false;
            for a in actions {
                vinfo!(3, "pod {}: {a:?}", pod.key());
                match self.execute(&pod, &obs, &a) {
                    Ok(true) => acted = true,
                    Ok(false) => {}
                    Err(e) => {
                        error!("pod {}: {a:?}: {e}", pod.key());
                        failed = true;
                        break;
                    }
                }
                if a == Action::DeletePod {
                    self.pods.remove(uid);
                    self.remove_pod_dir(uid);
                    // Its log directory too, as the kubelet's container GC removes it.
                    remove_tree(&self.log_dir(&pod));
                    return;
                }
            }
            if acted && let Ok(o) = self.observe(uid, true) {
                obs = o;
            }
            if !acted || failed || !again {
                break;
            }
        }
        self.probe(uid, &obs);
        self.resync_volumes(uid);
        if files::is_static(&pod) {
            self.ensure_mirror(uid);
        }
        self.report(uid, &obs);
    }

    /// Every `syncFrequency`, a running pod's volume contents are written again from their
    /// sources (changed configMaps and secrets, labels for downwardAPI, a token past 80% of its
    /// lifetime), atomically; unchanged contents are left as they are.
    fn resync_volumes(&mut self, uid: &str) {
        let now = now_secs();
        let Some(e) = self.pods.get(uid) else {
            return;
        };
        if e.volumes.is_none()
            || e.pod.deleting()
            || e.failed.is_some()
            || terminal(&e.pod)
            || now < e.volumes_at + self.cfg.volume_resync.as_secs()
        {
            return;
        }
        let c = self.client.get().ok();
        match super::volumes::prepare(&e.pod, &self.cfg.root_dir, c.as_deref()) {
            Ok(v) => {
                if let Some(e) = self.pods.get_mut(uid) {
                    e.volumes = Some(v);
                }
            }
            Err(why) => warn!("updating volumes of pod {}: {why}", e.pod.key()),
        }
        if let Some(e) = self.pods.get_mut(uid) {
            e.volumes_at = now;
        }
    }

    /// `<pod dir>/containers/<name>/<attempt>`: the file mounted at the container's
    /// terminationMessagePath.
    fn termination_message_file(&self, uid: &str, name: &str, attempt: u32) -> PathBuf {
        self.pod_dir(uid)
            .join("containers")
            .join(name)
            .join(attempt.to_string())
    }

    /// The mount of an empty, writable termination message file at the container's
    /// `terminationMessagePath` (default `/dev/termination-log`; none when set to "").
    fn termination_message_mount(
        &self,
        pod: &Pod,
        name: &str,
        attempt: u32,
    ) -> Result<Option<Mount>, String> {
        let raw = pod.raw_container(name);
        let path = raw["terminationMessagePath"]
            .as_str()
            .unwrap_or("/dev/termination-log");
        if path.is_empty() {
            return Ok(None);
        }
        let file = self.termination_message_file(&pod.metadata.uid, name, attempt);
        let made = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&file, b""))
            .and_then(|()| {
                std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            });
        made.map_err(|e| format!("creating {}: {e}", file.display()))?;
        Ok(Some(Mount {
            container_path: path.to_string(),
            host_path: file.display().to_string(),
            ..Default::default()
        }))
    }

    /// An exited container's termination message, as the kubelet reads it: the file (at most
    /// 4096 bytes), else with `FallbackToLogsOnError` and a failure the log's last 80 lines (at
    /// most 2048 bytes). None when there is none.
    fn termination_message(
        &self,
        uid: &str,
        name: &str,
        attempt: u32,
        state: i32,
        exit_code: i32,
    ) -> Option<String> {
        if state != ContainerState::ContainerExited as i32 {
            return None;
        }
        let file = self.termination_message_file(uid, name, attempt);
        let mut text = std::fs::read(&file).unwrap_or_default();
        text.truncate(4096);
        let pod = &self.pods.get(uid)?.pod;
        let policy = pod.raw_container(name)["terminationMessagePolicy"].clone();
        if text.is_empty() && exit_code != 0 && policy == "FallbackToLogsOnError" {
            let log = self.log_dir(pod).join(name).join(format!("{attempt}.log"));
            // Read from the end: a log may be hundreds of MB.
            let o = crate::logs::Options {
                tail_lines: Some(80),
                limit_bytes: Some(2048),
                ..Default::default()
            };
            text = std::fs::File::open(&log)
                .and_then(|f| crate::logs::LogReader::new(f, &o)?.read_all())
                .unwrap_or_default();
        }
        (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned())
    }

    /// Deletes the mirror pod `key` (grace 0, its uid as the precondition).
    fn delete_mirror(&mut self, key: &str) {
        let Some(m) = self.mirrors.remove(key) else {
            return;
        };
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}",
            m.metadata.namespace, m.metadata.name
        );
        let result = self.client.get().and_then(|c| {
            c.delete(
                &path,
                &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": m.metadata.uid}}),
            )
            .map_err(|e| match e.code() {
                Some(404 | 409) => String::new(),
                _ => e.to_string(),
            })
        });
        match result {
            Ok(_) => info!("Deleted mirror pod {key} (uid {})", m.metadata.uid),
            Err(e) if e.is_empty() => {}
            Err(e) => warn!("deleting mirror pod {key}: {e}"),
        }
    }

    /// Makes the API hold a live mirror pod of static pod `uid`, as the kubelet does: a mirror
    /// that is being deleted or is of another version of the manifest is replaced.
    fn ensure_mirror(&mut self, uid: &str) {
        let Some(e) = self.pods.get(uid) else {
            return;
        };
        if !self.cfg.api_source || e.pod.deleting() || now_secs() < e.mirror_retry {
            return;
        }
        let pod = e.pod.clone();
        let key = pod.key();
        match self.mirrors.get(&key) {
            Some(m) if files::mirrors(m, &pod) => return,
            Some(_) => self.delete_mirror(&key),
            None => {}
        }
        let created = self.client.get().and_then(|c| {
            let node_uid = match &self.node_uid {
                Some(u) => u.clone(),
                None => {
                    let n: Value = c
                        .get(&format!("/api/v1/nodes/{}", self.cfg.node))
                        .map_err(|e| format!("reading node {}: {e}", self.cfg.node))?;
                    let u = n["metadata"]["uid"].as_str().unwrap_or("").to_string();
                    self.node_uid = Some(u.clone());
                    u
                }
            };
            let body = files::mirror_of(&pod, &self.cfg.node, &node_uid);
            let path = format!("/api/v1/namespaces/{}/pods", pod.metadata.namespace);
            c.create::<_, Value>(&path, &body)
                .map_err(|e| e.to_string())
        });
        match created.and_then(Pod::from_value) {
            Ok(m) => {
                info!("Created mirror pod {key} (uid {})", m.metadata.uid);
                self.mirrors.insert(key, m);
            }
            Err(why) => {
                warn!("creating mirror pod for static pod {key}: {why}; retrying in 10s");
                if let Some(e) = self.pods.get_mut(uid) {
                    e.mirror_retry = now_secs() + 10;
                }
            }
        }
    }

    /// Hands the probes that are due for the pod's running containers to the probe workers
    /// (a slow probe holds a worker, never the pods); their outcomes come back through
    /// [`Owner::probe_results`].
    fn probe(&mut self, uid: &str, obs: &Observed) {
        let ip = self.pod_ip(obs);
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let sidecars = entry
            .pod
            .spec
            .init_containers
            .iter()
            .filter(|c| c.is_sidecar());
        for spec in entry.pod.spec.containers.iter().chain(sidecars) {
            let Some(c) = obs
                .container(&spec.name)
                .filter(|c| c.state == CState::Running)
            else {
                continue;
            };
            let started_ms = (c.started_at.max(0) / 1_000_000) as u64;
            // Until a startup probe succeeds, the other probes wait.
            let started = entry
                .probes
                .get(&(spec.name.clone(), "startup"))
                .is_some_and(|t| t.container_id == c.id && t.result == Some(true));
            let probes: &[(&'static str, &Option<super::spec::Probe>)] =
                if spec.startup_probe.is_some() && !started {
                    &[("startup", &spec.startup_probe)]
                } else {
                    &[
                        ("readiness", &spec.readiness_probe),
                        ("liveness", &spec.liveness_probe),
                    ]
                };
            for &(kind, probe) in probes {
                let Some(probe) = probe else { continue };
                let t = entry
                    .probes
                    .entry((spec.name.clone(), kind))
                    .or_insert_with(|| super::probe::Tracker::new(&c.id));
                if t.container_id != c.id {
                    *t = super::probe::Tracker::new(&c.id);
                }
                if !t.due(probe, now_ms, started_ms) {
                    continue;
                }
                t.start(now_ms);
                let job = super::probe::Job {
                    uid: uid.to_string(),
                    container: spec.name.clone(),
                    kind,
                    container_id: c.id.clone(),
                    probe: probe.clone(),
                    pod_ip: ip.clone(),
                    ports: spec.ports.clone(),
                };
                if self.probe_jobs.send(job).is_err() {
                    warn!("the probe workers are gone");
                }
            }
        }
    }

    /// Takes the probe workers' outcomes: thresholds, Unhealthy events, and a liveness or
    /// startup failure past its threshold stops the container (the restart policy then
    /// decides), as the kubelet does.
    fn probe_results(&mut self) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        while let Ok(done) = self.probe_done.try_recv() {
            let super::probe::Done { job, outcome } = done;
            let Some(entry) = self.pods.get_mut(&job.uid) else {
                continue;
            };
            let Some(t) = entry
                .probes
                .get_mut(&(job.container.clone(), job.kind))
                .filter(|t| t.container_id == job.container_id)
            else {
                continue;
            };
            let key = entry.pod.key();
            let (name, kind) = (job.container.as_str(), job.kind);
            let changed = t.record(&job.probe, now_ms, &outcome);
            let failed_for_good = changed && t.result == Some(false);
            let succeeded = t.result == Some(true);
            let pod = entry.pod.clone();
            if let super::probe::Outcome::Failure(why) = &outcome {
                vinfo!(2, "Probe failed: {kind} probe of {key}/{name}: {why}");
                let title = match kind {
                    "liveness" => "Liveness",
                    "startup" => "Startup",
                    _ => "Readiness",
                };
                self.event(
                    &pod,
                    Some(name),
                    true,
                    "Unhealthy",
                    format!("{title} probe failed: {why}"),
                );
            }
            if changed {
                let result = if succeeded { "success" } else { "failure" };
                info!("{kind} probe of {key}/{name}: {result}");
            }
            if kind != "readiness" && failed_for_good {
                info!("Container {name} failed {kind} probe, will be restarted");
                self.event(
                    &pod,
                    Some(name),
                    false,
                    "Killing",
                    format!("Container {name} failed {kind} probe, will be restarted"),
                );
                if let Err(e) = self.runtime.stop_container(&StopContainerRequest {
                    container_id: job.container_id.clone(),
                    timeout: pod.grace_seconds(),
                }) {
                    error!("pod {key}: stopping a container that failed its {kind} probe: {e}");
                }
            }
        }
    }

    /// Carries out one action; Ok(false) when held back (image pull back-off).
    fn execute(&mut self, pod: &Pod, obs: &Observed, a: &Action) -> Result<bool, String> {
        let rt = self.runtime.clone();
        let e = |x: crate::cri::CriError| x.to_string();
        match a {
            Action::RunSandbox { attempt } => {
                let limits: Vec<Option<i64>> = pod
                    .spec
                    .containers
                    .iter()
                    .map(|c| {
                        c.resources["limits"]["memory"]
                            .as_str()
                            .and_then(|q| crate::config::quantity::Quantity::parse(q).ok())
                            .map(|q| q.value())
                    })
                    .collect();
                super::cgroups::Cgroups::new(&self.cfg.cgroup_mount).create_pod(
                    &self.cgroup_parent(pod),
                    Some(self.cfg.pod_pids_limit),
                    super::cgroups::pod_memory_limit(&limits),
                )?;
                let dir = self.log_dir(pod);
                std::fs::create_dir_all(&dir)
                    .map_err(|x| format!("creating {}: {x}", dir.display()))?;
                let config = self.sandbox_config(pod, *attempt);
                rt.run_pod_sandbox(&RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                })
                .map_err(e)?;
            }
            Action::StartContainer { name, attempt } => {
                return self.start_container(pod, obs, name, *attempt);
            }
            Action::StartCreated { id } => {
                rt.start_container(&StartContainerRequest {
                    container_id: id.clone(),
                })
                .map_err(e)?;
            }
            Action::StopContainer { id, grace } => {
                let mut grace = *grace;
                if let Some(c) = obs.containers.iter().find(|c| &c.id == id) {
                    self.event(
                        pod,
                        Some(&c.name),
                        false,
                        "Killing",
                        format!("Stopping container {}", c.name),
                    );
                    let hook = pod
                        .container(&c.name)
                        .and_then(|s| s.lifecycle.as_ref())
                        .and_then(|l| l.pre_stop.clone());
                    if let (Some(h), true) = (hook, pod.deleting() && c.state == CState::Running) {
                        let t0 = std::time::Instant::now();
                        let ports = pod
                            .container(&c.name)
                            .map(|s| s.ports.clone())
                            .unwrap_or_default();
                        if let Some(why) =
                            self.run_hook(pod, &h, id, &ports, &self.pod_ip(obs), grace)
                        {
                            self.event(
                                pod,
                                Some(&c.name),
                                true,
                                "FailedPreStopHook",
                                format!("PreStopHook failed: {why}"),
                            );
                        }
                        // The hook's time comes out of the grace period, as in the kubelet.
                        grace = grace
                            .saturating_sub(t0.elapsed())
                            .max(Duration::from_secs(2));
                    }
                }
                rt.stop_container(&StopContainerRequest {
                    container_id: id.clone(),
                    timeout: grace.as_secs() as i64,
                })
                .map_err(e)?;
            }
            Action::RemoveContainer { id } => {
                rt.remove_container(&RemoveContainerRequest {
                    container_id: id.clone(),
                })
                .map_err(e)?;
            }
            Action::StopSandbox { id } => {
                rt.stop_pod_sandbox(&StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .map_err(e)?;
            }
            Action::RemoveSandbox { id } => {
                rt.remove_pod_sandbox(&RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .map_err(e)?;
                if pod.deleting() {
                    self.remove_pod_cgroup(pod);
                }
            }
            Action::DeletePod if files::is_static(pod) => {
                self.delete_mirror(&pod.key());
                info!("static pod {} stopped and removed", pod.key());
            }
            Action::DeletePod => {
                let m = &pod.metadata;
                let path = format!("/api/v1/namespaces/{}/pods/{}", m.namespace, m.name);
                let c = self.client.get()?;
                match c.delete(
                    &path,
                    &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": m.uid}}),
                ) {
                    Ok(_) => info!("pod {} deleted after its containers stopped", pod.key()),
                    Err(x) if x.code() == Some(404) || x.code() == Some(409) => {}
                    Err(x) => return Err(x.to_string()),
                }
            }
        }
        Ok(true)
    }

    fn start_container(
        &mut self,
        pod: &Pod,
        obs: &Observed,
        name: &str,
        attempt: u32,
    ) -> Result<bool, String> {
        let Some(spec) = pod.container(name) else {
            return Ok(false);
        };
        let Some(sandbox) = obs.sandbox.as_ref() else {
            return Ok(false);
        };
        let now = now_secs();
        let entry_key = pod.metadata.uid.clone();
        if let Some((b, _)) = self.pods.get(&entry_key).and_then(|e| e.pull.get(name))
            && now < b.until
        {
            return Ok(false);
        }
        let rt = self.runtime.clone();
        let image = ImageSpec {
            image: spec.image.clone(),
            ..Default::default()
        };
        let present = || {
            rt.image_status(&ImageStatusRequest {
                image: Some(image.clone()),
                verbose: false,
            })
            .map(|r| r.image.is_some())
        };
        let need_pull = match spec.pull_policy() {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present().map_err(|x| x.to_string())?,
            PullPolicy::Never => {
                if !present().map_err(|x| x.to_string())? {
                    let w = Waiting {
                        reason: "ErrImageNeverPull".into(),
                        message: format!(
                            "Container image {:?} is not present with pull policy of Never",
                            spec.image
                        ),
                    };
                    self.hold_pull(&entry_key, name, w.clone());
                    self.event(
                        pod,
                        Some(name),
                        true,
                        "ErrImageNeverPull",
                        w.message.clone(),
                    );
                    return Err(w.message);
                }
                false
            }
        };
        if !need_pull {
            self.event(
                pod,
                Some(name),
                false,
                "Pulled",
                format!(
                    "Container image {:?} already present on machine",
                    spec.image
                ),
            );
        }
        let config = self.sandbox_config(pod, sandbox.attempt);
        if need_pull {
            info!("Pulling image {:?} for pod {}", spec.image, pod.key());
            self.event(
                pod,
                Some(name),
                false,
                "Pulling",
                format!("Pulling image {:?}", spec.image),
            );
            let t0 = std::time::Instant::now();
            if let Some(b) = &mut self.pull_limit
                && !b.try_take(t0)
            {
                return Err(self.pull_failed(pod, name, &spec.image, "pull QPS exceeded".into()));
            }
            let creds = self.pull_credentials(pod, name, &spec.image);
            let pull = |auth: Option<AuthConfig>| {
                rt.pull_image(&PullImageRequest {
                    image: Some(image.clone()),
                    auth,
                    sandbox_config: Some(config.clone()),
                })
            };
            // Each matching credential in turn, as the kubelet's keyring; none: anonymous.
            let mut result = pull(creds.first().cloned());
            for c in creds.into_iter().skip(1) {
                if result.is_ok() {
                    break;
                }
                result = pull(Some(c));
            }
            if let Err(x) = result {
                return Err(self.pull_failed(pod, name, &spec.image, x.to_string()));
            }
            self.event(
                pod,
                Some(name),
                false,
                "Pulled",
                format!(
                    "Successfully pulled image {:?} in {:.3}s",
                    spec.image,
                    t0.elapsed().as_secs_f64()
                ),
            );
        }
        if let Some(e) = self.pods.get_mut(&entry_key) {
            e.pull.remove(name);
        }
        let volumes = match self.pods.get(&entry_key).and_then(|e| e.volumes.clone()) {
            Some(v) => v,
            None => {
                // A failed mount is retried with the volume manager's back-off (0.5 s
                // doubling to 2m2s), not every sync.
                let now_ms = now_millis();
                let held = self.pods.get(&entry_key).and_then(|e| e.mount_hold);
                if held.is_some_and(|(until, _)| now_ms < until) {
                    return Ok(false);
                }
                let c = self.client.get().ok();
                let v = match super::volumes::prepare(pod, &self.cfg.root_dir, c.as_deref()) {
                    Ok(v) => v,
                    Err(e) => {
                        let delay = held.map_or(500, |(_, d)| (d * 2).min(122_000));
                        if let Some(entry) = self.pods.get_mut(&entry_key) {
                            entry.mount_hold = Some((now_ms + delay, delay));
                        }
                        self.event(pod, None, true, "FailedMount", e.clone());
                        return Err(e);
                    }
                };
                if let Some(e) = self.pods.get_mut(&entry_key) {
                    e.volumes = Some(v.clone());
                    e.volumes_at = now_secs();
                    e.mount_hold = None;
                }
                v
            }
        };
        // What the container is made of; a failure here is the kubelet's
        // CreateContainerConfigError (retried, the pod stays Pending).
        let client = self.client.clone();
        let ns = pod.metadata.namespace.clone();
        let pod_ip = self.pod_ip(obs);
        let made = (|| -> Result<_, String> {
            let lookup =
                |kind: &str, obj: &str| -> Result<Option<BTreeMap<String, String>>, String> {
                    let c = client.get()?;
                    Ok(super::volumes::object_data(&c, &ns, kind, obj)?.map(|d| {
                        d.into_iter()
                            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                            .collect()
                    }))
                };
            let envs = super::env::build(pod, name, &pod_ip, &self.cfg.host_ip, &lookup)?;
            let pod_dir = self.pod_dir(&pod.metadata.uid);
            let mut mounts = super::volumes::mounts(pod, name, &volumes, &pod_dir, &envs)?;
            // The kubelet's managed /etc/hosts, unless the container mounts its own.
            if !mounts.iter().any(|m| m.container_path == "/etc/hosts") {
                let file = self.pod_dir(&pod.metadata.uid).join("etc-hosts");
                let host_hosts = if pod.spec.host_network {
                    std::fs::read_to_string("/etc/hosts").unwrap_or_default()
                } else {
                    String::new()
                };
                let text = super::dns::hosts_file(
                    pod,
                    std::slice::from_ref(&pod_ip),
                    &self.cfg.cluster_domain,
                    &host_hosts,
                );
                std::fs::create_dir_all(self.pod_dir(&pod.metadata.uid))
                    .and_then(|()| std::fs::write(&file, text))
                    .map_err(|e| format!("writing {}: {e}", file.display()))?;
                mounts.push(Mount {
                    container_path: "/etc/hosts".into(),
                    host_path: file.display().to_string(),
                    ..Default::default()
                });
            }
            if let Some(m) = self.termination_message_mount(pod, name, attempt)? {
                mounts.push(m);
            }
            let resources = super::resources::linux(
                &spec.resources,
                pod.qos_class(),
                self.cfg.node_memory,
                self.cfg.cpu_cfs_quota,
            )
            .map_err(|e| format!("container {name:?} resources: {e}"))?;
            super::security::verify_non_root(pod, name, &|| {
                rt.image_status(&ImageStatusRequest {
                    image: Some(image.clone()),
                    verbose: false,
                })
                .ok()
                .and_then(|r| r.image)
                .map(|i| (i.uid.map(|u| u.value), i.username))
                .unwrap_or_default()
            })?;
            Ok((mounts, envs, resources))
        })();
        let (mounts, envs, resources) = match made {
            Ok(m) => m,
            Err(why) => {
                let w = Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: why.clone(),
                };
                self.hold_pull(&entry_key, name, w);
                self.event(pod, Some(name), true, "Failed", format!("Error: {why}"));
                return Err(why);
            }
        };
        let expand = |v: &[String]| -> Vec<String> {
            v.iter().map(|s| super::env::expand(s, &envs)).collect()
        };
        let (command, args) = (expand(&spec.command), expand(&spec.args));
        let security =
            super::security::container(pod, name, &self.cfg.root_dir, self.cfg.seccomp_default);
        let dir = self.log_dir(pod).join(name);
        std::fs::create_dir_all(&dir).map_err(|x| format!("creating {}: {x}", dir.display()))?;
        let m = &pod.metadata;
        let labels: StringMap = [
            ("io.kubernetes.container.name".to_string(), name.to_string()),
            ("io.kubernetes.pod.name".to_string(), m.name.clone()),
            (
                "io.kubernetes.pod.namespace".to_string(),
                m.namespace.clone(),
            ),
            (UID_LABEL.to_string(), m.uid.clone()),
        ]
        .into();
        let created = rt
            .create_container(&CreateContainerRequest {
                pod_sandbox_id: sandbox.id.clone(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: name.into(),
                        attempt,
                    }),
                    image: Some(image),
                    command,
                    args,
                    working_dir: spec.working_dir.clone(),
                    envs: envs
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value })
                        .collect(),
                    labels,
                    mounts,
                    annotations: [(
                        "io.kubernetes.container.restartCount".to_string(),
                        attempt.to_string(),
                    )]
                    .into(),
                    log_path: format!("{name}/{attempt}.log"),
                    stdin: pod.raw_container(name)["stdin"] == true,
                    stdin_once: pod.raw_container(name)["stdinOnce"] == true,
                    tty: pod.raw_container(name)["tty"] == true,
                    linux: Some(LinuxContainerConfig {
                        resources: Some(resources),
                        security_context: Some(security),
                    }),
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .map_err(|x| x.to_string())?;
        self.event(
            pod,
            Some(name),
            false,
            "Created",
            format!("Created container {name}"),
        );
        rt.start_container(&StartContainerRequest {
            container_id: created.container_id.clone(),
        })
        .map_err(|x| x.to_string())?;
        self.event(
            pod,
            Some(name),
            false,
            "Started",
            format!("Started container {name}"),
        );
        if let Some(h) = spec.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
            && let Some(why) = self.run_hook(
                pod,
                h,
                &created.container_id,
                &spec.ports,
                &pod_ip,
                Duration::from_secs(30),
            )
        {
            self.event(
                pod,
                Some(name),
                true,
                "FailedPostStartHook",
                format!("PostStartHook failed: {why}"),
            );
            // A failed postStart hook kills the container; the restart policy decides.
            let _ = rt.stop_container(&StopContainerRequest {
                container_id: created.container_id.clone(),
                timeout: pod.grace_seconds(),
            });
        }
        info!("Started container {name} of pod {}", pod.key());
        Ok(true)
    }

    /// The credentials of the pod's `imagePullSecrets` for `image`. Secrets that cannot be read
    /// are reported (an event, as the kubelet's) and the pull goes on without them.
    fn pull_credentials(&self, pod: &Pod, container: &str, image: &str) -> Vec<AuthConfig> {
        let names: Vec<&str> = pod.raw["spec"]["imagePullSecrets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        let mut secrets = Vec::new();
        let mut missing = Vec::new();
        for n in names {
            let data = self.client.get().and_then(|c| {
                super::volumes::object_data(&c, &pod.metadata.namespace, "secret", n)
            });
            match data {
                Ok(Some(d)) => secrets.push((n.to_string(), d)),
                Ok(None) => missing.push(format!("{}/{n}", pod.metadata.namespace)),
                Err(e) => missing.push(format!("{}/{n}: {e}", pod.metadata.namespace)),
            }
        }
        let (creds, problems) = super::pull::credentials(&secrets, image);
        missing.extend(problems);
        if !missing.is_empty() {
            self.event(
                pod,
                Some(container),
                true,
                "FailedToRetrieveImagePullSecret",
                format!(
                    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                    missing.join(", ")
                ),
            );
        }
        creds
    }

    /// A failed pull: ErrImagePull held with its back-off, the kubelet's Failed event; the
    /// message to return.
    fn pull_failed(&mut self, pod: &Pod, name: &str, image: &str, message: String) -> String {
        let w = Waiting {
            reason: "ErrImagePull".into(),
            message: message.clone(),
        };
        self.hold_pull(&pod.metadata.uid, name, w);
        self.event(
            pod,
            Some(name),
            true,
            "Failed",
            format!("Failed to pull image {image:?}: {message}"),
        );
        message
    }

    fn hold_pull(&mut self, uid: &str, name: &str, w: Waiting) {
        if let Some(e) = self.pods.get_mut(uid) {
            let prev = e.pull.get(name).map(|(b, _)| *b);
            let b = Backoff::next(prev, now_secs(), Duration::ZERO);
            e.pull.insert(name.to_string(), (b, w));
        }
    }

    /// Patches the pod's status when it differs from what the API has.
    fn report(&mut self, uid: &str, obs: &Observed) {
        let Some(entry) = self.pods.get(uid) else {
            return;
        };
        let now = now_secs();
        let waiting = |name: &str| -> Option<Waiting> {
            if let Some((b, w)) = entry.pull.get(name) {
                let reason = if now < b.until && w.reason == "ErrImagePull" {
                    "ImagePullBackOff"
                } else {
                    w.reason.as_str()
                };
                return Some(Waiting {
                    reason: reason.into(),
                    message: w.message.clone(),
                });
            }
            if entry.failed.is_some() || terminal(&entry.pod) {
                return None;
            }
            let (_, b) = entry.backoff.get(name)?;
            let c = obs.container(name)?;
            (c.state == CState::Exited && now < b.until).then(|| Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {}s restarting failed container={name} pod={}_{}({uid})",
                    b.delay.as_secs(),
                    entry.pod.metadata.name,
                    entry.pod.metadata.namespace
                ),
            })
        };
        let ready = |name: &str| {
            let spec = entry.pod.container(name);
            let passed = |kind: &'static str| {
                entry
                    .probes
                    .get(&(name.to_string(), kind))
                    .is_some_and(|t| t.result == Some(true))
            };
            let started = spec.is_none_or(|s| s.startup_probe.is_none()) || passed("startup");
            let ready = spec.is_none_or(|s| s.readiness_probe.is_none()) || passed("readiness");
            started && ready
        };
        let started = |name: &str| {
            let spec = entry.pod.container(name);
            spec.is_none_or(|s| s.startup_probe.is_none())
                || entry
                    .probes
                    .get(&(name.to_string(), "startup"))
                    .is_some_and(|t| t.result == Some(true))
        };
        // Failed here: the status is built as for a pod the API knows has failed.
        let failed_pod = entry.failed.as_ref().map(|_| {
            let mut p = entry.pod.clone();
            p.status["phase"] = json!("Failed");
            p
        });
        let mut next = status::build(
            failed_pod.as_ref().unwrap_or(&entry.pod),
            obs,
            &self.cfg.host_ip,
            &entry.start_time,
            &Civil::now().rfc3339(),
            &waiting,
            &|name: &str| (started(name), ready(name)),
        );
        // A pod failed here keeps its reason; a finished pod never leaves its phase.
        if let Some((reason, message)) = &entry.failed {
            next["phase"] = json!("Failed");
            next["reason"] = json!(reason);
            next["message"] = json!(message);
        } else if terminal(&entry.pod) {
            for k in ["phase", "reason", "message"] {
                if !entry.pod.status[k].is_null() {
                    next[k] = entry.pod.status[k].clone();
                }
            }
        }
        self.patch_status(uid, &next);
    }

    /// Patches the pod's status from what the API has to `next`, when they differ, with the
    /// pod's uid as the precondition. A static pod's status goes to its mirror pod; without
    /// one it is only kept here (and served on 10250).
    fn patch_status(&mut self, uid: &str, next: &Value) {
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let key = entry.pod.key();
        let (base, target_uid) = if files::is_static(&entry.pod) {
            match self
                .mirrors
                .get(&key)
                .filter(|m| files::mirrors(m, &entry.pod))
            {
                Some(m) => (&m.status, m.metadata.uid.clone()),
                None => {
                    if entry.pod.status != *next {
                        entry.pod.status = next.clone();
                        self.publish();
                    }
                    return;
                }
            }
        } else {
            (&entry.pod.status, entry.pod.metadata.uid.clone())
        };
        let Some(patch) = crate::kube::patch::diff(base, next) else {
            return;
        };
        let m = &entry.pod.metadata;
        let path = format!("/api/v1/namespaces/{}/pods/{}/status", m.namespace, m.name);
        let body = json!({"metadata": {"uid": target_uid}, "status": patch});
        let result = self.client.get().and_then(|c| {
            c.patch::<Value>(&path, PatchKind::Strategic, &body)
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(v) => {
                vinfo!(2, "Patch status for pod {key:?}: phase {}", next["phase"]);
                vinfo!(4, "Patch status for pod {key:?}: {body}");
                entry.pod.status = v["status"].clone();
                entry.status_error.clear();
                if let Some(m) = self
                    .mirrors
                    .get_mut(&key)
                    .filter(|m| m.metadata.uid == target_uid)
                {
                    m.status = v["status"].clone();
                    m.metadata.resource_version = v["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                } else {
                    entry.status_rv = v["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                }
                // The 10250 API sees the new status at once (exec needs a running container).
                self.publish();
            }
            Err(e) => {
                // Once per distinct failure: with the API server away this repeats every sync.
                if entry.status_error != e {
                    warn!("Failed to update status for pod {key:?}: {e}");
                    entry.status_error = e;
                }
            }
        }
    }
}
