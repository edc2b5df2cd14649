//! The one owner of pod state, a state machine that never blocks: it takes what the sources,
//! the observer, the workers and the probes tell it ([`Input`]), steps each pod
//! (`state::step`), and hands what is to be done to workers ([`Work`]): a pod's actions (one
//! sync in flight per pod; a termination cancels a sync in flight and runs beside it), a
//! container stopped for a failed probe, a probe, a status or mirror write, a clean-up. It
//! makes no CRI or API call; the only files it writes are the checkpoints. The `runner` carries
//! its work out on threads and brings the outcomes back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::config::Config;
use super::error::Reason;
use super::execute::{Job, Lane, Outcome, Volumes, record};
use super::files;
use super::msg::Msg;
use super::observe::Observations;
use super::plan::{CState, Observed};
use super::probe::{self, Kind, Tracker};
use super::report::{ApiDone, ApiJob};
use super::spec::Pod;
use super::state::{self, PodEvent, PodState};
use crate::events::Recorder;
use crate::timefmt::Civil;
use crate::{info, vinfo, warn};

/// What the owner is told.
#[derive(Debug)]
pub enum Input {
    Source(Msg),
    Observed(Observations),
    Done(Outcome),
    Probed(probe::Done),
    Api(ApiDone),
    /// Evict a pod for node pressure (the eviction manager's choice).
    Evict {
        uid: String,
        message: String,
        /// The Evicted event's annotations (offending containers, starved resource).
        annotations: std::collections::BTreeMap<String, String>,
        grace: i64,
    },
}

/// What the owner wants done.
pub enum Work {
    Pod(Box<Job>),
    /// Stop a container that failed its liveness or startup probe (its preStop hook first),
    /// within `grace` seconds; the restart policy then decides. `why` is the Killing event's.
    Stop {
        pod: Box<Pod>,
        obs: Box<Observed>,
        id: String,
        grace: i64,
        why: String,
    },
    Probe(Box<probe::Job>),
    Api(ApiJob),
    /// Remove the sandboxes and directories of pods the owner no longer has.
    Gc,
}

struct Entry {
    pod: Pod,
    state: PodState,
    obs: Observed,
    /// When `obs` was taken (ms since the epoch): an older look never replaces it.
    obs_at: u64,
    probes: HashMap<(String, Kind), Tracker>,
    volumes: Option<Volumes>,
    /// When the volumes' contents were last written (seconds since the epoch).
    volumes_at: u64,
    /// A sync in flight, with its cancel flag.
    sync: Option<Arc<AtomicBool>>,
    /// A termination in flight.
    killing: bool,
    /// The resourceVersion of the agent's last status write.
    status_rv: String,
    status_in_flight: bool,
    /// The last failure to write the status, logged once until it changes.
    status_error: String,
    /// A static pod's mirror is not created again before this (ms since the epoch).
    mirror_retry: u64,
    mirror_in_flight: bool,
    /// When the agent first saw the pod, still Pending (ms since the epoch); taken when its
    /// status first says Running (`kubelet_pod_start_duration_seconds`) or it ends.
    first_seen_ms: Option<u64>,
}

pub struct Owner {
    cfg: Arc<Config>,
    pods: BTreeMap<String, Entry>,
    /// Mirror pods of static pods, by `namespace/name`, as the API has them.
    mirrors: BTreeMap<String, Pod>,
    /// The API source has listed once / the static source has read once: until each configured
    /// source has, a sandbox the agent does not know may still be one of its pods.
    listed: bool,
    static_read: bool,
    events: Option<Recorder>,
    /// The uids of the pods held, shared with the clean-up.
    known: Arc<super::gc::Known>,
    /// The published pods changed.
    changed: bool,
    /// Where pod start durations are recorded.
    health: Arc<super::runner::Health>,
    /// The uids of the pods this agent deleted from the API, until the API says they are gone
    /// (their `DELETED` event, or a list without them): a watch event that was already on its
    /// way is not taken for a new pod, nor checkpointed again (a restore would run it).
    finished: HashSet<String>,
}

impl Owner {
    pub fn new(cfg: Arc<Config>, events: Option<Recorder>, known: Arc<super::gc::Known>) -> Owner {
        Owner {
            cfg,
            pods: BTreeMap::new(),
            mirrors: BTreeMap::new(),
            listed: false,
            static_read: false,
            events,
            known,
            changed: true,
            health: Arc::default(),
            finished: HashSet::new(),
        }
    }

    /// Records pod start durations in `health`.
    pub fn with_health(mut self, health: Arc<super::runner::Health>) -> Owner {
        self.health = health;
        self
    }

    fn sources_known(&self) -> bool {
        (self.listed || !self.cfg.api_source) && (self.static_read || !self.cfg.static_source)
    }

    fn gc(&self) -> Vec<Work> {
        if self.sources_known() {
            vec![Work::Gc]
        } else {
            Vec::new()
        }
    }

    fn set_known(&self) {
        *self.known.write().unwrap_or_else(|p| p.into_inner()) =
            self.pods.keys().cloned().collect();
    }

    fn event(
        &self,
        pod: &Pod,
        container: Option<&str>,
        warning: bool,
        reason: Reason,
        message: String,
    ) {
        let e = PodEvent::new(container, warning, reason, message);
        record(self.events.as_ref(), pod, &e);
    }

    /// The pods checkpointed by an earlier run: the agent runs them until the API server says
    /// otherwise (its first list replaces them).
    pub fn restore(&mut self) {
        let pods = super::checkpoint::restore(&self.cfg.root_dir);
        let n = pods.len();
        let now = super::execute::now_ms();
        for p in pods {
            self.upsert(p, now);
        }
        if n > 0 {
            info!("restored {n} pod(s) from checkpoints; the API server's list will replace them");
        }
    }

    /// Takes one input; the work it causes at once.
    pub fn take(&mut self, input: Input, now_ms: u64) -> Vec<Work> {
        match input {
            Input::Source(m) => self.take_msg(m, now_ms),
            Input::Observed(o) => {
                for (uid, e) in &mut self.pods {
                    if o.at_ms >= e.obs_at {
                        let obs = o.pods.get(uid).cloned().unwrap_or_default();
                        let id = |o: &Observed| o.sandbox.as_ref().map(|s| s.id.clone());
                        // The published view carries the sandbox (for its network stats).
                        self.changed |= id(&obs) != id(&e.obs);
                        e.obs = obs;
                        e.obs_at = o.at_ms;
                    }
                }
                Vec::new()
            }
            Input::Done(out) => self.take_outcome(out, now_ms),
            Input::Probed(d) => self.take_probe(d, now_ms),
            Input::Api(d) => {
                self.take_api(d, now_ms);
                Vec::new()
            }
            Input::Evict {
                uid,
                message,
                annotations,
                grace,
            } => self.evict(&uid, message, annotations, grace, now_ms),
        }
    }

    /// Fails pod `uid` as evicted and stops it within `grace` seconds (a sync in flight is
    /// cancelled), unless it has finished, is being deleted, or is static (critical).
    fn evict(
        &mut self,
        uid: &str,
        message: String,
        annotations: std::collections::BTreeMap<String, String>,
        grace: i64,
        now_ms: u64,
    ) -> Vec<Work> {
        let Some(e) = self.pods.get_mut(uid) else {
            return Vec::new();
        };
        if e.state.finished(&e.pod) || e.pod.deleting() || files::is_static(&e.pod) {
            return Vec::new();
        }
        info!("evicting pod {} (uid {uid}): {message}", e.pod.key());
        let mut e2 = PodEvent::new(None, true, Reason::Evicted, message.clone());
        e2.annotations = annotations;
        record(self.events.as_ref(), &e.pod, &e2);
        super::checkpoint::write_failed(&self.cfg.root_dir, &e.pod, "Evicted", &message);
        e.state.failed = Some((Reason::Evicted, message));
        e.state.eviction = Some(state::Eviction {
            at: Civil::now().rfc3339(),
            grace,
        });
        if let Some(cancel) = &e.sync {
            cancel.store(true, Ordering::SeqCst);
        }
        self.changed = true;
        self.step_pod(uid, now_ms)
    }

    fn take_msg(&mut self, m: Msg, now_ms: u64) -> Vec<Work> {
        match m {
            Msg::Listed(pods) => {
                let (mirrors, pods): (Vec<Pod>, Vec<Pod>) =
                    pods.into_iter().partition(files::is_mirror);
                self.mirrors = mirrors.into_iter().map(|m| (m.key(), m)).collect();
                let keep: Vec<String> = pods.iter().map(|p| p.metadata.uid.clone()).collect();
                self.pods
                    .retain(|uid, e| files::is_static(&e.pod) || keep.contains(uid));
                self.finished.retain(|uid| keep.contains(uid));
                for p in pods {
                    self.upsert(p, now_ms);
                }
                self.listed = true;
                self.set_known();
                self.changed = true;
                self.gc()
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
                Vec::new()
            }
            Msg::Upsert(p) => {
                self.upsert(*p, now_ms);
                Vec::new()
            }
            Msg::Removed { uid } => {
                self.finished.remove(&uid);
                let mirrors = self.mirrors.len();
                self.mirrors.retain(|_, m| m.metadata.uid != uid);
                // Deleted from the API without us (grace 0 by someone else): clean up now.
                if mirrors == self.mirrors.len() && self.pods.remove(&uid).is_some() {
                    self.set_known();
                    self.changed = true;
                    return self.gc();
                }
                Vec::new()
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
                        self.upsert(p, now_ms);
                    }
                }
                self.static_read = true;
                self.changed = true;
                self.gc()
            }
        }
    }

    fn upsert(&mut self, pod: Pod, now_ms: u64) {
        let uid = pod.metadata.uid.clone();
        if self.finished.contains(&uid) {
            vinfo!(4, "pod {:?} (uid {uid}): deleted already", pod.key());
            return;
        }
        // Written when the pod changed in what a restore needs, not on every status echo (each
        // status write comes back through the watch; the node's storage may be flash).
        if !files::is_static(&pod)
            && self
                .pods
                .get(&uid)
                .is_none_or(|e| super::checkpoint::key(&e.pod) != super::checkpoint::key(&pod))
        {
            super::checkpoint::write(&self.cfg.root_dir, &pod);
        }
        self.changed = true;
        if let Some(e) = self.pods.get_mut(&uid) {
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
            if e.pod.deleting()
                && let Some(cancel) = &e.sync
            {
                cancel.store(true, Ordering::SeqCst);
            }
            return;
        }
        info!("SyncLoop ADD: pod {:?} (uid {uid})", pod.key());
        let fresh = matches!(pod.status["phase"].as_str(), None | Some("Pending"));
        let rejected = if fresh && !pod.deleting() {
            let running: Vec<&Pod> = self
                .pods
                .values()
                .filter(|e| e.state.rejected.is_none() && !state::terminal(&e.pod))
                .map(|e| &e.pod)
                .collect();
            super::admit::under_pressure(&pod, self.cfg.pressure.get())
                .and_then(|()| super::admit::admit(&pod, &running, &self.cfg.limits))
                .err()
        } else {
            None
        };
        if let Some((reason, message)) = &rejected {
            warn!("pod {} rejected: {reason}: {message}", pod.key());
            // The kubelet's rejectPod: the event has the handler's message alone.
            let bare = message
                .strip_prefix("Pod was rejected: ")
                .unwrap_or(message);
            if let Some(r) = &self.events {
                r.record_about(
                    super::execute::object_ref(&pod, None),
                    crate::node::status::NodeEvent::warning(reason, bare.to_string()),
                );
            }
        }
        let first_seen_ms = (fresh && rejected.is_none()).then_some(now_ms);
        let state = PodState::new(&pod, &Civil::now().rfc3339(), rejected);
        self.pods.insert(
            uid,
            Entry {
                pod,
                state,
                obs: Observed::default(),
                obs_at: 0,
                probes: HashMap::new(),
                volumes: None,
                volumes_at: 0,
                sync: None,
                killing: false,
                status_rv: String::new(),
                status_in_flight: false,
                status_error: String::new(),
                mirror_retry: 0,
                mirror_in_flight: false,
                first_seen_ms,
            },
        );
        self.set_known();
    }

    fn take_outcome(&mut self, out: Outcome, now_ms: u64) -> Vec<Work> {
        let Some(e) = self.pods.get_mut(&out.uid) else {
            return Vec::new();
        };
        match out.lane {
            Lane::Sync => {
                e.sync = None;
                e.state.holds = out.holds;
                e.state.mount_hold = out.mount_hold;
                e.state.sandbox_hold = out.sandbox_hold;
                if out.volumes.is_some() {
                    e.volumes = out.volumes;
                }
                if let Some(t) = out.volumes_written {
                    e.volumes_at = t;
                }
            }
            Lane::Kill => e.killing = false,
        }
        if let Some((at, obs)) = out.observed
            && at >= e.obs_at
        {
            e.obs = obs;
            e.obs_at = at;
        }
        self.changed = true;
        if out.deleted {
            let pod = e.pod.clone();
            self.pods.remove(&out.uid);
            if !files::is_static(&pod) {
                self.finished.insert(out.uid.clone());
            }
            self.set_known();
            // A checkpoint written by a watch event that crossed the pod directory's removal
            // is gone with the clean-up's next pass.
            let mut work = self.gc();
            // The mirror goes with the static pod, unless another static pod of the same name
            // (an edited manifest) is there now: that mirror is, or becomes, the new pod's.
            let replaced = self
                .pods
                .values()
                .any(|o| files::is_static(&o.pod) && o.pod.key() == pod.key());
            if files::is_static(&pod)
                && !replaced
                && let Some(m) = self.mirrors.remove(&pod.key())
            {
                work.push(Work::Api(ApiJob::DeleteMirror {
                    mirror: Box::new(m),
                }));
            }
            return work;
        }
        // What the work left behind is acted on at once (a stopped pod is removed, ...).
        self.step_pod(&out.uid, now_ms)
    }

    /// One step of pod `uid`: the work it needs, if it is not busy.
    fn step_pod(&mut self, uid: &str, now_ms: u64) -> Vec<Work> {
        let Some(e) = self.pods.get_mut(uid) else {
            return Vec::new();
        };
        let deleting = e.pod.deleting();
        if deleting {
            if let Some(cancel) = &e.sync {
                cancel.store(true, Ordering::SeqCst);
            }
            if e.killing {
                return Vec::new();
            }
        } else if e.sync.is_some() {
            return Vec::new();
        }
        let step = state::step(&e.pod, &e.state, &e.obs, now_ms);
        e.state.apply(&step.changes);
        if let (Some((reason, message)), false) = (
            step.changes.iter().find_map(|c| match c {
                state::Change::Failed { reason, message } => Some((reason, message)),
                _ => None,
            }),
            files::is_static(&e.pod),
        ) {
            super::checkpoint::write_failed(&self.cfg.root_dir, &e.pod, reason.as_str(), message);
        }
        for ev in &step.events {
            if ev.reason == Reason::DeadlineExceeded {
                info!("pod {}: {}", e.pod.key(), ev.message);
            }
            record(self.events.as_ref(), &e.pod, ev);
        }
        if step.actions.is_empty() {
            return Vec::new();
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let lane = if deleting {
            e.killing = true;
            Lane::Kill
        } else {
            e.sync = Some(cancel.clone());
            Lane::Sync
        };
        vec![Work::Pod(Box::new(Job {
            pod: e.pod.clone(),
            lane,
            actions: step.actions,
            resync_volumes: false,
            state: e.state.clone(),
            volumes: e.volumes.clone(),
            obs: e.obs.clone(),
            cancel,
        }))]
    }

    /// Every pod, once: its step, its probes, its volumes' refresh, its mirror, its status.
    pub fn round(&mut self, now_ms: u64) -> Vec<Work> {
        let uids: Vec<String> = self.pods.keys().cloned().collect();
        let mut work = Vec::new();
        for uid in &uids {
            work.extend(self.step_pod(uid, now_ms));
            work.extend(self.probe(uid, now_ms));
            work.extend(self.resync_volumes(uid, now_ms));
            work.extend(self.ensure_mirror(uid, now_ms));
            work.extend(self.report(uid, now_ms));
        }
        work
    }

    /// A running pod's volumes are written again every `syncFrequency` (on its sync lane).
    fn resync_volumes(&mut self, uid: &str, now_ms: u64) -> Vec<Work> {
        let Some(e) = self.pods.get_mut(uid) else {
            return Vec::new();
        };
        if e.volumes.is_none()
            || e.sync.is_some()
            || e.state.finished(&e.pod)
            || e.pod.deleting()
            || now_ms / 1000 < e.volumes_at + self.cfg.volume_resync.as_secs()
        {
            return Vec::new();
        }
        let cancel = Arc::new(AtomicBool::new(false));
        e.sync = Some(cancel.clone());
        vec![Work::Pod(Box::new(Job {
            pod: e.pod.clone(),
            lane: Lane::Sync,
            actions: Vec::new(),
            resync_volumes: true,
            state: e.state.clone(),
            volumes: e.volumes.clone(),
            obs: e.obs.clone(),
            cancel,
        }))]
    }

    /// Whether what is published changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The pods with their latest status, for the 10250 API. A static pod whose manifest
    /// changed is, for a while, two pods of one name: the old one stopping and its successor;
    /// the API (logs, exec) sees the successor.
    pub fn snapshot(&self) -> Vec<super::view::PodView> {
        let superseded = |e: &Entry| {
            e.pod.deleting()
                && self
                    .pods
                    .values()
                    .any(|o| o.pod.key() == e.pod.key() && !o.pod.deleting())
        };
        self.pods
            .values()
            .filter(|e| !superseded(e))
            .map(|e| {
                let mut v = e.pod.raw.clone();
                v["status"] = e.pod.status.clone();
                super::view::PodView {
                    sandbox: e.obs.sandbox.as_ref().map(|s| s.id.clone()),
                    sandbox_image: e
                        .obs
                        .sandbox
                        .as_ref()
                        .map_or_else(String::new, |s| s.image.clone()),
                    ..super::view::PodView::of(v)
                }
            })
            .collect()
    }

    /// How many pods are held (tests, metrics).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }
}

mod probing;
mod writes;

#[cfg(test)]
mod tests;
