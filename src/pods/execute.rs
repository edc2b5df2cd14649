//! Carrying out a pod's actions, on a worker thread of its own (never the owner's): sandboxes
//! (the pod cgroup and log directory first), containers (image pull through the pull permits,
//! volumes, env and mounts, create, start, postStart), stops (every container of the pod at
//! once, each with its preStop hook and the pod's one grace period), removals, and the API
//! object's deletion at the end. A job reports what it left behind: a fresh look at the pod in
//! the runtime and the holds and volumes it set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::config::Config;
use super::error::{PodError, Reason};
use super::plan::{Action, Backoff, CState, Observed};
use super::seams::{Api, Cri};
use super::spec::Pod;
use super::state::{Hold, PodEvent, PodState};
use super::status::Waiting;
use crate::cri::api::*;
use crate::events::Recorder;
use crate::{error, info, vinfo, warn};

/// Host paths of a pod's volumes, by volume name.
pub type Volumes = BTreeMap<String, PathBuf>;

/// Which of a pod's two lanes a job runs on: its syncs (one at a time), or its termination,
/// which may run while a cancelled sync winds down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Sync,
    Kill,
}

/// Work for one pod.
pub struct Job {
    pub pod: Pod,
    pub lane: Lane,
    pub actions: Vec<Action>,
    /// Write the volumes' contents again (syncFrequency), rather than act.
    pub resync_volumes: bool,
    /// The owner's state of the pod (holds are updated on the way).
    pub state: PodState,
    pub volumes: Option<Volumes>,
    pub obs: Observed,
    /// Set when the pod is being deleted: a sync stops between actions.
    pub cancel: Arc<AtomicBool>,
}

/// What a job left behind.
#[derive(Debug)]
pub struct Outcome {
    pub uid: String,
    pub lane: Lane,
    /// A fresh look at the pod in the runtime after acting, and when it was taken.
    pub observed: Option<(u64, Observed)>,
    pub holds: std::collections::HashMap<String, (Backoff, Waiting)>,
    pub mount_hold: Option<Hold>,
    pub sandbox_hold: Option<Hold>,
    pub volumes: Option<Volumes>,
    /// When the volumes' contents were last written (seconds since the epoch), if now.
    pub volumes_written: Option<u64>,
    /// The pod is gone: its object deleted, its directories removed.
    pub deleted: bool,
}

/// A counting semaphore: starts and pulls at once, at most.
pub struct Permits {
    max: Option<usize>,
    used: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

pub struct Permit<'a>(&'a Permits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.0.cv.notify_one();
    }
}

impl Permits {
    /// `max` at once (None: no limit).
    pub fn new(max: Option<usize>) -> Permits {
        Permits {
            max: max.map(|m| m.max(1)),
            used: std::sync::Mutex::new(0),
            cv: std::sync::Condvar::new(),
        }
    }

    pub fn acquire(&self) -> Permit<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while self.max.is_some_and(|m| *used >= m) {
            used = self.cv.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
        Permit(self)
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The reference an event about `pod` (or its `container`) names: the container's field path
/// when it is about one, as the kubelet's.
pub fn object_ref(pod: &Pod, container: Option<&str>) -> crate::kube::types::ObjectReference {
    let field_path = container
        .map(|c| {
            let init = pod.spec.init_containers.iter().any(|i| i.name == c);
            format!(
                "spec.{}{{{c}}}",
                if init { "initContainers" } else { "containers" }
            )
        })
        .unwrap_or_default();
    crate::kube::types::ObjectReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        field_path,
    }
}

/// Records `e` about `pod`.
pub fn record(events: Option<&Recorder>, pod: &Pod, e: &PodEvent) {
    let Some(r) = events else {
        return;
    };
    r.record_about(
        object_ref(pod, e.container.as_deref()),
        crate::node::status::NodeEvent {
            warning: e.warning,
            reason: e.reason.as_str().into(),
            message: e.message.clone(),
            annotations: e.annotations.clone(),
        },
    );
}

/// What the workers share.
pub struct Executor {
    pub cfg: Arc<Config>,
    pub cri: Arc<dyn Cri>,
    pub api: Arc<dyn Api>,
    pub events: Option<Recorder>,
    /// The services of the cluster, for containers' service environment.
    pub services: super::services::Services,
    pub pulls: Permits,
    pub starts: Permits,
    /// registryPullQPS as the kubelet's: a pull past it fails with "pull QPS exceeded".
    pub(super) pull_limit: std::sync::Mutex<Option<crate::kube::Bucket>>,
}

impl Executor {
    pub fn new(
        cfg: Arc<Config>,
        cri: Arc<dyn Cri>,
        api: Arc<dyn Api>,
        events: Option<Recorder>,
        services: super::services::Services,
    ) -> Executor {
        let pull_limit = (cfg.registry_pull_qps > 0).then(|| {
            crate::kube::Bucket::new(
                f64::from(cfg.registry_pull_qps),
                f64::from(cfg.registry_burst.max(1)),
            )
        });
        Executor {
            pulls: Permits::new(cfg.parallel_pulls),
            starts: Permits::new(Some(cfg.parallel_starts)),
            pull_limit: std::sync::Mutex::new(pull_limit),
            cfg,
            cri,
            api,
            events,
            services,
        }
    }

    pub(super) fn event(
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

    /// Runs one job to its end.
    pub fn run(&self, mut job: Job) -> Outcome {
        let uid = job.pod.metadata.uid.clone();
        let mut out = Outcome {
            uid: uid.clone(),
            lane: job.lane,
            observed: None,
            holds: Default::default(),
            mount_hold: None,
            sandbox_hold: None,
            volumes: None,
            volumes_written: None,
            deleted: false,
        };
        if job.resync_volumes {
            self.resync_volumes(&mut job, &mut out);
        } else {
            // Starting is bounded (so many pods at once); stopping never waits.
            let starts = job
                .actions
                .iter()
                .any(|a| matches!(a, Action::RunSandbox { .. } | Action::StartContainer { .. }));
            let _permit = starts.then(|| self.starts.acquire());
            self.act(&mut job, &mut out);
        }
        out.holds = job.state.holds;
        out.mount_hold = job.state.mount_hold;
        out.sandbox_hold = job.state.sandbox_hold;
        if out.volumes.is_none() {
            out.volumes = job.volumes;
        }
        out
    }

    /// The job's actions, then (after a new sandbox) what runs in it, as the kubelet's SyncPod
    /// does both in one pass: the step is taken again on a fresh look, a few times at most.
    fn act(&self, job: &mut Job, out: &mut Outcome) {
        let mut actions = std::mem::take(&mut job.actions);
        let mut obs = job.obs.clone();
        for _ in 0..3 {
            let again = actions
                .iter()
                .any(|a| matches!(a, Action::RunSandbox { .. }));
            let (acted, failed) = self.execute_all(job, &obs, actions, out);
            if out.deleted {
                return;
            }
            if acted {
                let at = now_ms();
                match super::observe::Observer::new(&self.cfg.root_dir).pod(&*self.cri, &out.uid) {
                    Ok(o) => {
                        obs = o.clone();
                        out.observed = Some((at, o));
                    }
                    Err(e) => warn!("observing pod {} in the runtime: {e}", job.pod.key()),
                }
            }
            if !acted || failed || !again || job.cancel.load(Ordering::SeqCst) {
                return;
            }
            actions = super::state::step(&job.pod, &job.state, &obs, now_ms()).actions;
        }
    }

    /// Runs `actions` in order (the stops among them at once); (acted, failed).
    fn execute_all(
        &self,
        job: &mut Job,
        obs: &Observed,
        actions: Vec<Action>,
        out: &mut Outcome,
    ) -> (bool, bool) {
        let pod = job.pod.clone();
        let (stops, rest): (Vec<Action>, Vec<Action>) = actions
            .into_iter()
            .partition(|a| matches!(a, Action::StopContainer { .. }));
        let mut acted = false;
        if !stops.is_empty() {
            acted = true;
            if let Err(e) = self.stop_containers(&pod, obs, &stops) {
                error!("pod {}: stopping containers: {e}", pod.key());
                return (acted, true);
            }
        }
        for a in rest {
            if job.lane == Lane::Sync && job.cancel.load(Ordering::SeqCst) {
                vinfo!(2, "pod {}: sync cancelled by its termination", pod.key());
                return (acted, false);
            }
            vinfo!(3, "pod {}: {a:?}", pod.key());
            match self.execute(job, obs, &a) {
                Ok(true) => acted = true,
                Ok(false) => {}
                Err(e) => {
                    error!("pod {}: {a:?}: {e}", pod.key());
                    return (acted, true);
                }
            }
            if a == Action::DeletePod {
                super::gc::remove_pod_dir(&self.cfg, &out.uid);
                // Its log directory too, as the kubelet's container GC removes it.
                super::gc::remove_tree(&self.cfg.log_dir(&pod));
                out.deleted = true;
                return (true, false);
            }
        }
        (acted, false)
    }

    /// Stops containers at once, each with its preStop hook out of the one grace period, as
    /// the kubelet's killContainersWithSyncResult.
    fn stop_containers(&self, pod: &Pod, obs: &Observed, stops: &[Action]) -> Result<(), PodError> {
        let results: Vec<Result<(), PodError>> = std::thread::scope(|s| {
            let handles: Vec<_> = stops
                .iter()
                .filter_map(|a| match a {
                    Action::StopContainer { id, grace } => Some((id.clone(), *grace)),
                    _ => None,
                })
                .map(|(id, grace)| s.spawn(move || self.stop_container(pod, obs, &id, grace, None)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(PodError::Runtime("a stop panicked".into())))
                })
                .collect()
        });
        results.into_iter().collect()
    }

    /// Stops one container within `grace`, as the kubelet's killContainer: the Killing event
    /// (`why`, else why the plan stops it), then its preStop hook if it is running (the hook's
    /// time comes out of the grace period), then the runtime's stop.
    pub(super) fn stop_container(
        &self,
        pod: &Pod,
        obs: &Observed,
        id: &str,
        grace: Duration,
        why: Option<String>,
    ) -> Result<(), PodError> {
        let mut grace = grace;
        if let Some(c) = obs.containers.iter().find(|c| c.id == id) {
            let why = why.unwrap_or_else(|| {
                if !pod.deleting() && super::plan::definition_changed(pod, c) {
                    format!("Container {} definition changed, will be restarted", c.name)
                } else {
                    format!("Stopping container {}", c.name)
                }
            });
            self.event(pod, Some(&c.name), false, Reason::Killing, why);
            let hook = pod
                .container(&c.name)
                .and_then(|s| s.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.clone());
            if let (Some(h), true) = (hook, c.state == CState::Running && !grace.is_zero()) {
                let t0 = Instant::now();
                let ports = pod
                    .container(&c.name)
                    .map(|s| s.ports.clone())
                    .unwrap_or_default();
                if let Some(why) =
                    self.run_hook(pod, &h, id, &ports, &pod_ip(&self.cfg, obs), grace)
                {
                    self.event(
                        pod,
                        Some(&c.name),
                        true,
                        Reason::FailedPreStopHook,
                        format!("PreStopHook failed: {why}"),
                    );
                }
                // The hook's time comes out of the grace period, as in the kubelet.
                grace = grace
                    .saturating_sub(t0.elapsed())
                    .max(Duration::from_secs(2));
            }
        }
        self.cri.stop_container(&StopContainerRequest {
            container_id: id.to_string(),
            timeout: grace.as_secs() as i64,
        })?;
        Ok(())
    }

    /// Runs a lifecycle hook (bounded by `timeout`); the failure, if any.
    pub(super) fn run_hook(
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
        match super::probe::run(&h.handler, timeout, &*self.cri, container_id, pod_ip, ports) {
            super::probe::Outcome::Success => None,
            super::probe::Outcome::Failure(why) => {
                warn!("pod {}: hook failed: {why}", pod.key());
                Some(why)
            }
        }
    }

    /// Carries out one action; Ok(false) when held back.
    fn execute(&self, job: &mut Job, obs: &Observed, a: &Action) -> Result<bool, PodError> {
        let pod = job.pod.clone();
        let rt = &*self.cri;
        match a {
            Action::RunSandbox { attempt } => {
                let settings = super::pod_resources::pod_cgroup(&pod.raw, self.cfg.cpu_cfs_quota);
                super::cgroups::Cgroups::new(&self.cfg.cgroup_mount)
                    .create(
                        &self.cfg.cgroup_parent(&pod),
                        Some(self.cfg.pod_pids_limit),
                        &settings,
                    )
                    .map_err(PodError::Node)?;
                let dir = self.cfg.log_dir(&pod);
                std::fs::create_dir_all(&dir)
                    .map_err(|x| PodError::Node(format!("creating {}: {x}", dir.display())))?;
                let made = rt.run_pod_sandbox(&RunPodSandboxRequest {
                    config: Some(super::runtime_config::sandbox(&self.cfg, &pod, *attempt)),
                    runtime_handler: String::new(),
                });
                // A refusal is tried again after a back-off, not at each round.
                if let Err(e) = made {
                    job.state.sandbox_hold = Some(Hold::after(job.state.sandbox_hold, now_ms()));
                    let message = format!("Failed to create pod sandbox: {e}");
                    self.event(&pod, None, true, Reason::FailedCreatePodSandBox, message);
                    return Err(e.into());
                }
                job.state.sandbox_hold = None;
            }
            Action::StartContainer { name, attempt } => {
                return self.start_container(job, obs, name, *attempt);
            }
            Action::StartCreated { id } => {
                rt.start_container(&StartContainerRequest {
                    container_id: id.clone(),
                })?;
            }
            Action::StopContainer { id, grace } => {
                self.stop_container(&pod, obs, id, *grace, None)?
            }
            Action::RemoveContainer { id } => {
                rt.remove_container(&RemoveContainerRequest {
                    container_id: id.clone(),
                })?;
            }
            Action::StopSandbox { id } => {
                rt.stop_pod_sandbox(&StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })?;
            }
            Action::RemoveSandbox { id } => {
                rt.remove_pod_sandbox(&RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })?;
                if pod.deleting()
                    && let Err(e) = super::cgroups::Cgroups::new(&self.cfg.cgroup_mount)
                        .remove_pod(&self.cfg.cgroup_parent(&pod))
                {
                    warn!("pod {}: {e}", pod.key());
                }
            }
            Action::DeletePod if super::files::is_static(&pod) => {
                info!("static pod {} stopped and removed", pod.key());
            }
            Action::DeletePod => {
                let m = &pod.metadata;
                let path = format!("/api/v1/namespaces/{}/pods/{}", m.namespace, m.name);
                match self.api.delete(
                    &path,
                    &json!({"gracePeriodSeconds": 0, "preconditions": {"uid": m.uid}}),
                ) {
                    Ok(_) => info!("pod {} deleted after its containers stopped", pod.key()),
                    Err(x) if x.code == Some(404) || x.code == Some(409) => {}
                    Err(x) => return Err(x.into()),
                }
            }
        }
        Ok(true)
    }

    /// The pod's volumes, set up once (a failure holds the pod with the volume back-off).
    fn volumes(&self, job: &mut Job) -> Result<Volumes, PodError> {
        if let Some(v) = &job.volumes {
            return Ok(v.clone());
        }
        let pod = job.pod.clone();
        match super::volumes::prepare(&pod, &self.cfg.root_dir, &self.cfg.limits, Some(&*self.api))
        {
            Ok(v) => {
                job.volumes = Some(v.clone());
                job.state.mount_hold = None;
                Ok(v)
            }
            Err(e) => {
                job.state.mount_hold = Some(Hold::after(job.state.mount_hold, now_ms()));
                self.event(&pod, None, true, Reason::FailedMount, e.clone());
                Err(PodError::Mount(e))
            }
        }
    }

    /// Every `syncFrequency`, a running pod's volume contents are written again from their
    /// sources (changed configMaps and secrets, labels for downwardAPI, a token due for
    /// renewal), atomically; unchanged contents are left as they are.
    fn resync_volumes(&self, job: &mut Job, out: &mut Outcome) {
        match super::volumes::prepare(
            &job.pod,
            &self.cfg.root_dir,
            &self.cfg.limits,
            Some(&*self.api),
        ) {
            Ok(v) => out.volumes = Some(v),
            Err(why) => warn!("updating volumes of pod {}: {why}", job.pod.key()),
        }
        out.volumes_written = Some(now_ms() / 1000);
    }

    fn start_container(
        &self,
        job: &mut Job,
        obs: &Observed,
        name: &str,
        attempt: u32,
    ) -> Result<bool, PodError> {
        let pod = job.pod.clone();
        let Some(spec) = pod.container(name).cloned() else {
            return Ok(false);
        };
        let Some(sandbox) = obs.sandbox.as_ref() else {
            return Ok(false);
        };
        if job.state.held(name, now_ms()) {
            return Ok(false);
        }
        let image = ImageSpec {
            image: spec.image.clone(),
            ..Default::default()
        };
        let config = super::runtime_config::sandbox(&self.cfg, &pod, sandbox.attempt);
        self.ensure_image(job, name, &image, &config)?;
        job.state.holds.remove(name);
        let volumes = self.volumes(job)?;
        let pod_ip = pod_ip(&self.cfg, obs);
        // What the container is made of; a failure here is the kubelet's
        // CreateContainerConfigError (retried with a back-off; the pod stays Pending).
        let made = super::container::made(self, &pod, name, attempt, &image, &volumes, &pod_ip);
        let made = match made {
            Ok(mut m) => {
                // An ephemeral container's target: it joins that container's PID namespace.
                let target = &spec.target_container_name;
                if let (false, Some(t), Some(ns)) = (
                    target.is_empty(),
                    obs.container(target),
                    m.linux
                        .as_mut()
                        .and_then(|l| l.security_context.as_mut())
                        .and_then(|s| s.namespace_options.as_mut()),
                ) && ns.pid == NamespaceMode::Container as i32
                {
                    ns.pid = NamespaceMode::Target as i32;
                    ns.target_id = t.id.clone();
                }
                m
            }
            Err(why) => {
                Self::hold(
                    job,
                    name,
                    Waiting {
                        reason: Reason::CreateContainerConfigError,
                        message: why.clone(),
                    },
                );
                self.event(
                    &pod,
                    Some(name),
                    true,
                    Reason::Failed,
                    format!("Error: {why}"),
                );
                return Err(PodError::Config(why));
            }
        };
        let dir = self.cfg.log_dir(&pod).join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|x| PodError::Node(format!("creating {}: {x}", dir.display())))?;
        let created = self.cri.create_container(&CreateContainerRequest {
            pod_sandbox_id: sandbox.id.clone(),
            config: Some(made),
            sandbox_config: Some(config),
        })?;
        self.event(
            &pod,
            Some(name),
            false,
            Reason::Created,
            format!("Created container {name}"),
        );
        self.cri.start_container(&StartContainerRequest {
            container_id: created.container_id.clone(),
        })?;
        self.event(
            &pod,
            Some(name),
            false,
            Reason::Started,
            format!("Started container {name}"),
        );
        if let Some(h) = spec.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
            && let Some(why) = self.run_hook(
                &pod,
                h,
                &created.container_id,
                &spec.ports,
                &pod_ip,
                Duration::from_secs(30),
            )
        {
            self.event(
                &pod,
                Some(name),
                true,
                Reason::FailedPostStartHook,
                format!("PostStartHook failed: {why}"),
            );
            // A failed postStart hook kills the container; the restart policy decides.
            let _ = self.cri.stop_container(&StopContainerRequest {
                container_id: created.container_id.clone(),
                timeout: pod.grace_seconds(),
            });
        }
        info!("Started container {name} of pod {}", pod.key());
        Ok(true)
    }
}

/// The pod's IP, or the node's with the host's network.
pub fn pod_ip(cfg: &Config, obs: &Observed) -> String {
    obs.sandbox
        .as_ref()
        .map(|s| s.ip.clone())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| cfg.host_ip.clone())
}
