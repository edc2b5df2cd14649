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
                Some(_) => {}
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
                CState::Running | CState::Unknown => {}
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
    out
}

/// A pod that is finished (the API says Succeeded or Failed) or failed here for good
/// (activeDeadlineSeconds): its running containers stop, then its sandbox; nothing starts again.
pub fn stop_all(pod: &Pod, obs: &Observed) -> Vec<Action> {
    let grace = Duration::from_secs(pod.grace_seconds().unsigned_abs());
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
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(policy: &str, deleting: bool) -> Pod {
        let mut meta = json!({"name": "p", "namespace": "ns", "uid": "u1"});
        if deleting {
            meta["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
            meta["deletionGracePeriodSeconds"] = json!(5);
        }
        Pod::from_value(json!({"metadata": meta, "spec": {"restartPolicy": policy,
            "containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "x:1"}]}}))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn sandbox(ready: bool) -> Option<SandboxObs> {
        Some(SandboxObs {
            id: "s1".into(),
            ready,
            ip: "10.0.0.2".into(),
            attempt: 0,
        })
    }

    fn c(name: &str, state: CState, exit: i32) -> ContainerObs {
        ContainerObs {
            id: format!("id-{name}"),
            name: name.into(),
            attempt: 0,
            state,
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            created_at: 1,
            started_at: 2,
            finished_at: 3,
            image_ref: "sha256:1".into(),
        }
    }

    fn obs(sb: Option<SandboxObs>, cs: Vec<ContainerObs>) -> Observed {
        Observed {
            sandbox: sb,
            containers: cs,
            ..Observed::default()
        }
    }

    fn start(name: &str, attempt: u32) -> Action {
        Action::StartContainer {
            name: name.into(),
            attempt,
        }
    }

    fn rm(name: &str) -> Action {
        Action::RemoveContainer {
            id: format!("id-{name}"),
        }
    }

    fn stop(name: &str) -> Action {
        Action::StopContainer {
            id: format!("id-{name}"),
            grace: Duration::from_secs(5),
        }
    }

    #[test]
    fn sidecars_start_in_order_and_keep_running() {
        use CState::*;
        let p = Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": "Never",
                "initContainers": [{"name": "side", "image": "x:1", "restartPolicy": "Always"},
                                   {"name": "setup", "image": "x:1"}],
                "containers": [{"name": "a", "image": "x:1"}]}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rows: Vec<(Observed, bool, Vec<Action>)> = vec![
            (obs(sandbox(true), vec![]), true, vec![start("side", 0)]),
            // The sidecar running: the next init container, then the app.
            (
                obs(sandbox(true), vec![c("side", Running, 0)]),
                true,
                vec![start("setup", 0)],
            ),
            (
                obs(
                    sandbox(true),
                    vec![c("side", Running, 0), c("setup", Exited, 0)],
                ),
                true,
                vec![start("a", 0)],
            ),
            // A sidecar that exits is restarted even under Never, after its back-off.
            (
                obs(
                    sandbox(true),
                    vec![
                        c("side", Exited, 1),
                        c("setup", Exited, 0),
                        c("a", Running, 0),
                    ],
                ),
                true,
                vec![start("side", 1)],
            ),
            (
                obs(
                    sandbox(true),
                    vec![
                        c("side", Exited, 1),
                        c("setup", Exited, 0),
                        c("a", Running, 0),
                    ],
                ),
                false,
                vec![],
            ),
        ];
        for (o, may, want) in rows {
            assert_eq!(step(&p, &o, &|_| may), want, "{o:?}");
        }
        // Deleted: the app stops first, then the sidecar.
        let mut gone = p.clone();
        gone.metadata.deletion_timestamp = Some("2026-11-29T00:00:00Z".into());
        let stop30 = |n: &str| Action::StopContainer {
            id: format!("id-{n}"),
            grace: Duration::from_secs(30),
        };
        let both = obs(
            sandbox(true),
            vec![
                c("side", Running, 0),
                c("setup", Exited, 0),
                c("a", Running, 0),
            ],
        );
        assert_eq!(step(&gone, &both, &|_| true), vec![stop30("a")]);
        let side_only = obs(
            sandbox(true),
            vec![
                c("side", Running, 0),
                c("setup", Exited, 0),
                c("a", Exited, 137),
            ],
        );
        assert_eq!(step(&gone, &side_only, &|_| true), vec![stop30("side")]);
        assert!(restartable(&p, "side", 0));
        assert!(!restartable(&p, "setup", 1));
        // A failed sidecar does not fail the pod's initialization.
        assert!(!init_failed(
            &p,
            &obs(sandbox(true), vec![c("side", Exited, 1)])
        ));
    }

    #[test]
    fn stop_all_table() {
        use CState::*;
        let p = pod("Always", false);
        let stop30 = |n: &str| Action::StopContainer {
            id: format!("id-{n}"),
            grace: Duration::from_secs(30),
        };
        let rows: Vec<(Observed, Vec<Action>)> = vec![
            (
                obs(sandbox(true), vec![c("a", Running, 0), c("b", Exited, 1)]),
                vec![stop30("a")],
            ),
            (
                obs(sandbox(true), vec![c("a", Exited, 137), c("b", Exited, 1)]),
                vec![Action::StopSandbox { id: "s1".into() }],
            ),
            (obs(sandbox(false), vec![c("a", Exited, 137)]), vec![]),
            (obs(None, vec![]), vec![]),
        ];
        for (o, want) in rows {
            assert_eq!(stop_all(&p, &o), want, "{o:?}");
        }
    }

    /// The graph, one row per (pod, what the runtime shows) -> actions.
    #[test]
    fn step_table() {
        use CState::*;
        let yes = |_: &str| true;
        let no = |_: &str| false;
        type Row<'a> = (
            &'a str,
            Pod,
            Observed,
            &'a dyn Fn(&str) -> bool,
            Vec<Action>,
        );
        let rows: Vec<Row> = vec![
            (
                "new pod: a sandbox first",
                pod("Always", false),
                obs(None, vec![]),
                &yes,
                vec![Action::RunSandbox { attempt: 0 }],
            ),
            (
                "sandbox ready: start every container",
                pod("Always", false),
                obs(sandbox(true), vec![]),
                &yes,
                vec![start("a", 0), start("b", 0)],
            ),
            (
                "created, not started",
                pod("Always", false),
                obs(sandbox(true), vec![c("a", Created, 0), c("b", Running, 0)]),
                &yes,
                vec![Action::StartCreated { id: "id-a".into() }],
            ),
            (
                "all running: nothing",
                pod("Always", false),
                obs(sandbox(true), vec![c("a", Running, 0), c("b", Running, 0)]),
                &yes,
                vec![],
            ),
            (
                "Always restarts an exit 0",
                pod("Always", false),
                obs(sandbox(true), vec![c("a", Exited, 0), c("b", Running, 0)]),
                &yes,
                vec![start("a", 1)],
            ),
            (
                "back-off holds the restart",
                pod("Always", false),
                obs(sandbox(true), vec![c("a", Exited, 1), c("b", Running, 0)]),
                &no,
                vec![],
            ),
            (
                "OnFailure keeps an exit 0",
                pod("OnFailure", false),
                obs(sandbox(true), vec![c("a", Exited, 0), c("b", Exited, 2)]),
                &yes,
                vec![start("b", 1)],
            ),
            (
                "Never: a finished pod stays as it is",
                pod("Never", false),
                obs(sandbox(true), vec![c("a", Exited, 0), c("b", Exited, 1)]),
                &yes,
                vec![],
            ),
            (
                "Never, sandbox gone after completion: nothing",
                pod("Never", false),
                obs(None, vec![c("a", Exited, 0), c("b", Exited, 0)]),
                &yes,
                vec![],
            ),
            (
                "dead sandbox: stop, remove, new attempt",
                pod("Always", false),
                obs(sandbox(false), vec![c("a", Running, 0), c("b", Exited, 0)]),
                &yes,
                vec![
                    Action::StopContainer {
                        id: "id-a".into(),
                        grace: Duration::from_secs(30),
                    },
                    Action::RemoveSandbox { id: "s1".into() },
                    Action::RunSandbox { attempt: 1 },
                ],
            ),
            (
                "deleting: stop running containers with the grace period",
                pod("Always", true),
                obs(sandbox(true), vec![c("a", Running, 0), c("b", Exited, 0)]),
                &yes,
                vec![stop("a")],
            ),
            (
                "deleting, all stopped: remove containers, stop and remove the sandbox",
                pod("Always", true),
                obs(sandbox(true), vec![c("a", Exited, 0), c("b", Exited, 0)]),
                &yes,
                vec![
                    rm("a"),
                    rm("b"),
                    Action::StopSandbox { id: "s1".into() },
                    Action::RemoveSandbox { id: "s1".into() },
                ],
            ),
            (
                "deleting, nothing left: delete the object",
                pod("Always", true),
                obs(None, vec![]),
                &yes,
                vec![Action::DeletePod],
            ),
        ];
        for (what, p, o, may, want) in rows {
            assert_eq!(step(&p, &o, may), want, "{what}");
        }
        // Leftovers of older attempts go first.
        let mut o = obs(sandbox(true), vec![c("a", Running, 0), c("b", Running, 0)]);
        o.old_containers = vec!["old".into()];
        o.stale_sandboxes = vec!["s0".into()];
        assert_eq!(
            step(&pod("Always", false), &o, &yes),
            [
                Action::RemoveContainer { id: "old".into() },
                Action::RemoveSandbox { id: "s0".into() }
            ]
        );
    }

    fn init_pod(policy: &str) -> Pod {
        Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": policy,
                "initContainers": [{"name": "i1", "image": "x:1"}, {"name": "i2", "image": "x:1"}],
                "containers": [{"name": "a", "image": "x:1"}]}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn init_containers_run_in_order_to_success() {
        use CState::*;
        let yes = |_: &str| true;
        let p = init_pod("Always");
        assert_eq!(
            step(&p, &obs(sandbox(true), vec![]), &yes),
            [start("i1", 0)]
        );
        assert_eq!(
            step(&p, &obs(sandbox(true), vec![c("i1", Running, 0)]), &yes),
            []
        );
        assert_eq!(
            step(&p, &obs(sandbox(true), vec![c("i1", Exited, 0)]), &yes),
            [start("i2", 0)]
        );
        assert_eq!(
            step(
                &p,
                &obs(sandbox(true), vec![c("i1", Exited, 0), c("i2", Exited, 1)]),
                &yes
            ),
            [start("i2", 1)],
            "a failed init container is retried"
        );
        assert_eq!(
            step(
                &p,
                &obs(sandbox(true), vec![c("i1", Exited, 0), c("i2", Exited, 0)]),
                &yes
            ),
            [start("a", 0)],
            "then the app containers"
        );
        let never = init_pod("Never");
        let failed = obs(sandbox(true), vec![c("i1", Exited, 2)]);
        assert_eq!(step(&never, &failed, &yes), []);
        assert!(init_failed(&never, &failed));
        assert!(!restartable(&p, "i1", 0) && restartable(&p, "i1", 1) && restartable(&p, "a", 0));
    }

    #[test]
    fn backoff_doubles_to_five_minutes_and_resets_after_ten() {
        let short = Duration::from_secs(1);
        let mut b = Backoff::next(None, 100, short);
        let mut delays = vec![b.delay.as_secs()];
        for _ in 0..6 {
            b = Backoff::next(Some(b), 100, short);
            delays.push(b.delay.as_secs());
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.until, 400);
        let reset = Backoff::next(Some(b), 1000, Duration::from_secs(601));
        assert_eq!((reset.delay.as_secs(), reset.until), (10, 1010));
    }
}
