//! What the runtime holds, per pod: one relist for all pods (two CRI calls, as the kubelet's
//! PLEG), the sandbox IP and container statuses asked for only when a state changed (a cache
//! keyed by the runtime's state), grouped into each pod's [`Observed`] (the newest sandbox,
//! the latest and previous attempt of each container, what is left to remove). A container's
//! termination message is read once, when it is first seen exited.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::layout;
use super::plan::{CState, ContainerObs, Observed, SandboxObs};
use super::seams::Cri;
use crate::cri::api::*;

/// The part of containerd's verbose sandbox info read here (the rest, a runtime spec among it,
/// is skipped, not built).
#[derive(serde::Deserialize)]
struct SandboxInfo {
    #[serde(default)]
    image: String,
}

/// What the cache holds for one runtime object.
#[derive(Debug, Clone)]
enum Cached {
    /// A sandbox's IP and image.
    Sandbox(String, String),
    Status(Box<ContainerStatus>),
}

/// Every pod the runtime holds, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// When the listing began (ms since the epoch): what a worker saw later wins.
    pub at_ms: u64,
    pub pods: BTreeMap<String, Observed>,
    /// Running pods and containers by state, for `/metrics`.
    pub counts: super::pod_metrics::RuntimeCounts,
}

/// The relist and its status cache.
pub struct Observer {
    root_dir: PathBuf,
    cache: HashMap<String, (i32, Cached)>,
}

fn mine(labels: &StringMap, uid: &str) -> bool {
    labels.get(layout::POD_UID_LABEL).map(String::as_str) == Some(uid)
}

impl Observer {
    pub fn new(root_dir: &Path) -> Observer {
        Observer {
            root_dir: root_dir.to_path_buf(),
            cache: HashMap::new(),
        }
    }

    /// Every pod's observation, from one relist (`now_ms` stamps it).
    pub fn relist(&mut self, cri: &dyn Cri, now_ms: u64) -> Result<Observations, String> {
        let s = cri
            .list_pod_sandbox(&ListPodSandboxRequest::default())
            .map_err(|e| e.to_string())?
            .items;
        let c = cri
            .list_containers(&ListContainersRequest::default())
            .map_err(|e| e.to_string())?
            .containers;
        let live: HashSet<&str> = s
            .iter()
            .map(|x| x.id.as_str())
            .chain(c.iter().map(|x| x.id.as_str()))
            .collect();
        self.cache.retain(|id, _| live.contains(id.as_str()));
        let uids: std::collections::BTreeSet<String> = s
            .iter()
            .map(|x| &x.labels)
            .chain(c.iter().map(|x| &x.labels))
            .filter_map(|l| l.get(layout::POD_UID_LABEL).cloned())
            .collect();
        let mut pods = BTreeMap::new();
        for uid in uids {
            let sb: Vec<PodSandbox> = s
                .iter()
                .filter(|x| mine(&x.labels, &uid))
                .cloned()
                .collect();
            let cs: Vec<Container> = c
                .iter()
                .filter(|x| mine(&x.labels, &uid))
                .cloned()
                .collect();
            match self.group(cri, &uid, sb, cs) {
                Ok(o) => {
                    pods.insert(uid, o);
                }
                Err(e) => crate::warn!("observing pod uid {uid} in the runtime: {e}"),
            }
        }
        Ok(Observations {
            at_ms: now_ms,
            pods,
            counts: super::pod_metrics::RuntimeCounts::of(&s, &c),
        })
    }

    /// One pod's observation, asked for afresh (after acting on it).
    pub fn pod(&mut self, cri: &dyn Cri, uid: &str) -> Result<Observed, String> {
        let label: StringMap = [(layout::POD_UID_LABEL.to_string(), uid.to_string())].into();
        let s = cri
            .list_pod_sandbox(&ListPodSandboxRequest {
                filter: Some(PodSandboxFilter {
                    label_selector: label.clone(),
                    ..Default::default()
                }),
            })
            .map_err(|e| e.to_string())?
            .items;
        let c = cri
            .list_containers(&ListContainersRequest {
                filter: Some(ContainerFilter {
                    label_selector: label,
                    ..Default::default()
                }),
            })
            .map_err(|e| e.to_string())?
            .containers;
        self.group(cri, uid, s, c)
    }

    /// A sandbox's IP or a container's status, from the cache while its state is the same.
    fn cached<T: Clone>(
        &mut self,
        id: &str,
        state: i32,
        get: impl FnOnce() -> Result<T, String>,
        wrap: fn(T) -> Cached,
        unwrap: fn(&Cached) -> Option<T>,
    ) -> Result<T, String> {
        if let Some((st, v)) = self.cache.get(id)
            && *st == state
            && let Some(t) = unwrap(v)
        {
            return Ok(t);
        }
        let t = get()?;
        self.cache.insert(id.to_string(), (state, wrap(t.clone())));
        Ok(t)
    }

    fn group(
        &mut self,
        cri: &dyn Cri,
        uid: &str,
        sandboxes: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<Observed, String> {
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
            let (ip, image) = self
                .cached(
                    &s.id,
                    s.state,
                    || {
                        // Verbose, for the image (containerd's `info` JSON has it).
                        cri.pod_sandbox_status(&PodSandboxStatusRequest {
                            pod_sandbox_id: s.id.clone(),
                            verbose: true,
                        })
                        .map_err(|e| e.to_string())
                        .map(|r| {
                            let image = r
                                .info
                                .get("info")
                                .and_then(|i| serde_json::from_str::<SandboxInfo>(i).ok())
                                .map(|i| i.image)
                                .unwrap_or_default();
                            let ip = r.status.and_then(|st| st.network).map(|n| n.ip);
                            (ip.unwrap_or_default(), image)
                        })
                    },
                    |(ip, image)| Cached::Sandbox(ip, image),
                    |c| match c {
                        Cached::Sandbox(ip, image) => Some((ip.clone(), image.clone())),
                        Cached::Status(_) => None,
                    },
                )
                .unwrap_or_default();
            obs.sandbox = Some(SandboxObs {
                id: s.id.clone(),
                ready: s.state == PodSandboxState::SandboxReady as i32,
                ip,
                attempt: s.metadata.as_ref().map_or(0, |m| m.attempt),
                image,
            });
        }
        let mut by_name: BTreeMap<String, Vec<ContainerObs>> = BTreeMap::new();
        let root = self.root_dir.clone();
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
                    let mut st = cri
                        .container_status(&ContainerStatusRequest {
                            container_id: c.id.clone(),
                            verbose: false,
                        })
                        .map_err(|e| e.to_string())?
                        .status
                        .unwrap_or_default();
                    // Read once, when the container is seen exited (cached with the status).
                    if let Some(m) = termination_message(&root, uid, &st) {
                        st.message = m;
                    }
                    Ok(st)
                },
                |s| Cached::Status(Box::new(s)),
                |c| match c {
                    Cached::Status(s) => Some((**s).clone()),
                    Cached::Sandbox(..) => None,
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
                    hash: st
                        .annotations
                        .get(layout::HASH_ANNOTATION)
                        .cloned()
                        .unwrap_or_default(),
                });
        }
        for (_, mut attempts) in by_name {
            attempts.sort_by_key(|c| std::cmp::Reverse(c.attempt));
            let mut it = attempts.into_iter();
            if let Some(l) = it.next() {
                obs.containers.push(l);
            }
            if let Some(p) = it.next() {
                obs.previous.push(p);
            }
            obs.old_containers.extend(it.map(|c| c.id));
        }
        Ok(obs)
    }
}

/// An exited container's termination message, as the kubelet reads it: the file mounted at its
/// terminationMessagePath (at most 4096 bytes), else with `FallbackToLogsOnError` and a
/// failure the log's last 80 lines (at most 2048 bytes, read from the end). None when there is
/// none.
fn termination_message(root_dir: &Path, uid: &str, st: &ContainerStatus) -> Option<String> {
    if st.state != ContainerState::ContainerExited as i32 {
        return None;
    }
    let meta = st.metadata.clone().unwrap_or_default();
    let file = layout::termination_file(root_dir, uid, &meta.name, meta.attempt);
    let mut text = std::fs::read(&file).unwrap_or_default();
    text.truncate(4096);
    let policy = st
        .annotations
        .get(layout::TERMINATION_POLICY_ANNOTATION)
        .map(String::as_str);
    if text.is_empty() && st.exit_code != 0 && policy == Some("FallbackToLogsOnError") {
        let o = crate::logs::Options {
            tail_lines: Some(80),
            limit_bytes: Some(2048),
            ..Default::default()
        };
        text = std::fs::File::open(&st.log_path)
            .and_then(|f| crate::logs::LogReader::new(f, &o)?.read_all())
            .unwrap_or_default();
    }
    (!text.is_empty()).then(|| String::from_utf8_lossy(&text).into_owned())
}
