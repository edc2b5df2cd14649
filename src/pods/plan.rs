//! The pod lifecycle as a pure step function: from the pod (what should be) and what the runtime
//! shows (what is), the next actions. Each container moves through an explicit graph
//! (absent -> created -> running -> exited -> restarted or done) and the pod through
//! sandbox-less -> sandbox ready -> running -> completed, or -> terminating -> gone.

use std::time::Duration;

use super::spec::{Pod, RestartPolicy};

/// One container as the runtime shows it (the latest attempt of that name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObs {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub state: CState,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// Nanoseconds since the epoch, 0 when not yet.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub image_ref: String,
    /// Its `io.kubernetes.container.hash` annotation ("" when it has none: made by an agent
    /// that did not write one, and then never taken for a changed definition).
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CState {
    Created,
    Running,
    Exited,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxObs {
    pub id: String,
    pub ready: bool,
    pub ip: String,
    pub attempt: u32,
    /// Its image (the runtime's pause image), from its verbose status; "" when not given.
    pub image: String,
}

/// What the runtime holds for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The newest sandbox; older ones are in `stale_sandboxes`.
    pub sandbox: Option<SandboxObs>,
    pub stale_sandboxes: Vec<String>,
    /// The latest attempt of each container name.
    pub containers: Vec<ContainerObs>,
    /// The attempt before the latest (kept for lastState, as the kubelet keeps it).
    pub previous: Vec<ContainerObs>,
    /// Older attempts still, to be removed.
    pub old_containers: Vec<String>,
}

impl Observed {
    pub fn container(&self, name: &str) -> Option<&ContainerObs> {
        self.containers.iter().find(|c| c.name == name)
    }

    pub fn previous(&self, name: &str) -> Option<&ContainerObs> {
        self.previous.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    RunSandbox {
        attempt: u32,
    },
    /// Pull when the policy asks, create, start.
    StartContainer {
        name: String,
        attempt: u32,
    },
    /// Start a container the runtime created but did not start.
    StartCreated {
        id: String,
    },
    StopContainer {
        id: String,
        grace: Duration,
    },
    RemoveContainer {
        id: String,
    },
    StopSandbox {
        id: String,
    },
    RemoveSandbox {
        id: String,
    },
    /// Everything is gone: delete the API object (grace 0, uid precondition).
    DeletePod,
}

/// An init container failed for good (`restartPolicy: Never`): the pod has failed.
pub fn init_failed(pod: &Pod, obs: &Observed) -> bool {
    pod.spec.restart_policy == RestartPolicy::Never
        && pod
            .spec
            .init_containers
            .iter()
            .filter(|c| !c.is_sidecar())
            .any(|c| {
                obs.container(&c.name)
                    .is_some_and(|o| o.state == CState::Exited && o.exit_code != 0)
            })
}

/// Whether the exited container `name` is to be run again (sidecars always; other init
/// containers only after a failure, and never under `Never`).
pub fn restartable(pod: &Pod, name: &str, exit_code: i32) -> bool {
    if let Some(c) = pod.spec.init_containers.iter().find(|c| c.name == name) {
        if c.is_sidecar() {
            return true;
        }
        exit_code != 0 && pod.spec.restart_policy != RestartPolicy::Never
    } else {
        should_restart(pod.spec.restart_policy, exit_code)
    }
}

/// Whether an exited container is to be run again under `policy`.
pub fn should_restart(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
}

/// The next actions for `pod` given `obs`. `may_restart(name)` says whether the crash-loop
/// back-off allows restarting that container now. Pure: the same inputs give the same plan.
pub fn step(pod: &Pod, obs: &Observed, may_restart: &dyn Fn(&str) -> bool) -> Vec<Action> {
    let mut out = Vec::new();
    if pod.deleting() {
        let grace = Duration::from_secs(pod.grace_seconds().unsigned_abs());
        let running: Vec<&ContainerObs> = obs
            .containers
            .iter()
            .filter(|c| matches!(c.state, CState::Running | CState::Unknown))
            .collect();
        // The app containers first; then the sidecars, one at a time, the last started first
        // (as the kubelet), so they serve the app until it is gone.
        let sidecars: Vec<&str> = pod
            .spec
            .init_containers
            .iter()
            .filter(|c| c.is_sidecar())
            .map(|c| c.name.as_str())
            .collect();
        let apps: Vec<&ContainerObs> = running
            .iter()
            .copied()
            .filter(|c| !sidecars.contains(&c.name.as_str()))
            .collect();
        let running: Vec<&ContainerObs> = if apps.is_empty() {
            sidecars
                .iter()
                .rev()
                .find_map(|s| running.iter().copied().find(|c| c.name == *s))
                .into_iter()
                .collect()
        } else {
            apps
        };
        if !running.is_empty() {
            for c in running {
                out.push(Action::StopContainer {
                    id: c.id.clone(),
                    grace,
                });
            }
            return out;
        }
        for c in obs.containers.iter().chain(&obs.previous) {
            out.push(Action::RemoveContainer { id: c.id.clone() });
        }
        for id in &obs.old_containers {
            out.push(Action::RemoveContainer { id: id.clone() });
        }
        if let Some(s) = &obs.sandbox {
            if s.ready {
                out.push(Action::StopSandbox { id: s.id.clone() });
            }
            out.push(Action::RemoveSandbox { id: s.id.clone() });
        }
        for id in &obs.stale_sandboxes {
            out.push(Action::RemoveSandbox { id: id.clone() });
        }
        if out.is_empty() {
            out.push(Action::DeletePod);
        }
        return out;
    }
    for id in &obs.old_containers {
        out.push(Action::RemoveContainer { id: id.clone() });
    }
    for id in &obs.stale_sandboxes {
        out.push(Action::RemoveSandbox { id: id.clone() });
    }
    let policy = pod.spec.restart_policy;
    let done = |c: &ContainerObs| c.state == CState::Exited && !should_restart(policy, c.exit_code);
    let all_done = pod
        .spec
        .containers
        .iter()
        .all(|c| obs.container(&c.name).is_some_and(done))
        || init_failed(pod, obs);
    match &obs.sandbox {
        None if all_done => return out,
        None => {
            out.push(Action::RunSandbox { attempt: 0 });
            return out;
        }
        Some(s) if !s.ready => {
            if all_done {
                return out;
            }
            // The sandbox died (a reboot, a killed pause process): stop what is left, remove
            // it, and start over in a new one, as the kubelet does.
            for c in &obs.containers {
                if matches!(c.state, CState::Running | CState::Unknown) {
                    out.push(Action::StopContainer {
                        id: c.id.clone(),
                        grace: Duration::from_secs(pod.grace_seconds().unsigned_abs()),
                    });
                }
            }
            out.push(Action::RemoveSandbox { id: s.id.clone() });
            out.push(Action::RunSandbox {
                attempt: s.attempt + 1,
            });
            return out;
        }
        Some(_) => {}
    }
    // Init containers, in order, each to a successful exit before the next one; a sidecar
    // (restartPolicy: Always) only to running, and it is restarted whenever it exits.
    for c in &pod.spec.init_containers {
        if c.is_sidecar() {
            match obs.container(&c.name) {
                None => {
                    out.push(Action::StartContainer {
                        name: c.name.clone(),
                        attempt: 0,
                    });
                    return out;
                }
                Some(o) if o.state == CState::Created => {
                    out.push(Action::StartCreated { id: o.id.clone() });
                    return out;
                }
                Some(o) if o.state == CState::Exited => {
                    if may_restart(&c.name) {
                        out.push(Action::StartContainer {
                            name: c.name.clone(),
                            attempt: o.attempt + 1,
                        });
                    }
                }
                Some(o) => restart_if_changed(pod, o, &mut out),
            }
            continue;
        }
        match obs.container(&c.name) {
            None => {
                out.push(Action::StartContainer {
                    name: c.name.clone(),
                    attempt: 0,
                });
                return out;
            }
            Some(o) => match o.state {
                CState::Created => {
                    out.push(Action::StartCreated { id: o.id.clone() });
                    return out;
                }
                CState::Running | CState::Unknown => return out,
                CState::Exited if o.exit_code == 0 => {}
                CState::Exited => {
                    if policy != RestartPolicy::Never && may_restart(&c.name) {
                        out.push(Action::StartContainer {
                            name: c.name.clone(),
                            attempt: o.attempt + 1,
                        });
                    }
                    return out;
                }
            },
        }
    }
    for c in &pod.spec.containers {
        match obs.container(&c.name) {
            None => out.push(Action::StartContainer {
                name: c.name.clone(),
                attempt: 0,
            }),
            Some(o) => match o.state {
                CState::Created => out.push(Action::StartCreated { id: o.id.clone() }),
                CState::Running | CState::Unknown => restart_if_changed(pod, o, &mut out),
                CState::Exited => {
                    if should_restart(policy, o.exit_code) && may_restart(&c.name) {
                        // The exited attempt stays (lastState) until the next one replaces it.
                        out.push(Action::StartContainer {
                            name: c.name.clone(),
                            attempt: o.attempt + 1,
                        });
                    }
                }
            },
        }
    }
    // Ephemeral containers: started once each, never again, whatever their exit.
    for c in &pod.spec.ephemeral_containers {
        match obs.container(&c.name) {
            None => out.push(Action::StartContainer {
                name: c.name.clone(),
                attempt: 0,
            }),
            Some(o) if o.state == CState::Created => {
                out.push(Action::StartCreated { id: o.id.clone() })
            }
            Some(_) => {}
        }
    }
    out
}

/// Whether the running container `c` was made from another definition than its spec's now
/// (its image was changed: the only field of a container the API lets change), by the hash
/// it was created with; one without a hash is taken as unchanged.
pub fn definition_changed(pod: &Pod, c: &ContainerObs) -> bool {
    let is_app_or_sidecar = |s: &&super::spec::Container| s.name == c.name;
    let spec = pod
        .spec
        .containers
        .iter()
        .find(is_app_or_sidecar)
        .or_else(|| {
            pod.spec
                .init_containers
                .iter()
                .filter(|s| s.is_sidecar())
                .find(is_app_or_sidecar)
        });
    spec.is_some_and(|s| {
        !c.hash.is_empty() && c.hash != super::layout::container_hash(&s.name, &s.image)
    })
}

/// A running container whose definition changed is stopped and started again (from its new
/// image) whatever the restart policy, and with a back-off of its own, as the kubelet's
/// computePodActions does.
fn restart_if_changed(pod: &Pod, o: &ContainerObs, out: &mut Vec<Action>) {
    if o.state == CState::Running && definition_changed(pod, o) {
        out.push(Action::StopContainer {
            id: o.id.clone(),
            grace: Duration::from_secs(pod.grace_seconds().unsigned_abs()),
        });
        out.push(Action::StartContainer {
            name: o.name.clone(),
            attempt: o.attempt + 1,
        });
    }
}

/// A pod that is finished (the API says Succeeded or Failed) or failed here for good
/// (activeDeadlineSeconds, an eviction): its running containers stop, within `grace` seconds
/// when given (an eviction's) or else the pod's own, then its sandbox; nothing starts again.
pub fn stop_all(pod: &Pod, obs: &Observed, grace: Option<i64>) -> Vec<Action> {
    let grace = grace.unwrap_or_else(|| pod.grace_seconds());
    let grace = Duration::from_secs(grace.unsigned_abs());
    let running: Vec<Action> = obs
        .containers
        .iter()
        .filter(|c| matches!(c.state, CState::Running | CState::Unknown))
        .map(|c| Action::StopContainer {
            id: c.id.clone(),
            grace,
        })
        .collect();
    if !running.is_empty() {
        return running;
    }
    match &obs.sandbox {
        Some(s) if s.ready => vec![Action::StopSandbox { id: s.id.clone() }],
        _ => Vec::new(),
    }
}

/// The crash-loop back-off of one container: 10 s doubling to 300 s, reset once it has run
/// for 10 minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub delay: Duration,
    /// Seconds since the epoch before which it may not restart.
    pub until: u64,
}

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

impl Backoff {
    /// After an exit at `finished` (epoch seconds) of a run that lasted `ran`.
    pub fn next(prev: Option<Backoff>, finished: u64, ran: Duration) -> Backoff {
        let delay = match prev {
            Some(p) if ran < BACKOFF_RESET => (p.delay * 2).min(BACKOFF_MAX),
            _ => BACKOFF_INITIAL,
        };
        Backoff {
            delay,
            until: finished + delay.as_secs(),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
