//! The pure core of a pod's lifecycle: what the agent remembers of a pod beyond the API and the
//! runtime ([`PodState`]: when it started here, crash-loop and image-pull back-offs, the volume
//! back-off, an admission rejection, a failure by deadline), and one [`step`] from (pod, state,
//! what the runtime shows, now) to the actions to take and the changes to remember, with the
//! events they cause. No I/O: the time is passed in; table-tested below.

use std::collections::HashMap;
use std::time::Duration;

use super::admit::Rejection;
use super::error::Reason;
use super::plan::{self, Action, Backoff, CState, Observed};
use super::spec::Pod;
use super::status::Waiting;

/// A back-off on setting up the pod's volumes: not before `until_ms`, then twice `delay_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub until_ms: u64,
    pub delay_ms: u64,
}

impl Hold {
    /// The volume manager's back-off after a failure at `now_ms`: 0.5 s doubling to 2m2s.
    pub fn after(prev: Option<Hold>, now_ms: u64) -> Hold {
        let delay_ms = prev.map_or(500, |h| (h.delay_ms * 2).min(122_000));
        Hold {
            until_ms: now_ms + delay_ms,
            delay_ms,
        }
    }
}

/// What the agent remembers of a pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodState {
    /// When the agent first saw the pod (RFC 3339; the status's startTime).
    pub start_time: String,
    /// Crash-loop back-off per container and image (`backoff_key`): (the attempt it was
    /// computed for, back-off).
    pub backoff: HashMap<String, (u32, Backoff)>,
    /// Image pull (and container config) holds per container, with what to show.
    pub holds: HashMap<String, (Backoff, Waiting)>,
    /// The volumes could not be set up: not tried again before this.
    pub mount_hold: Option<Hold>,
    /// The sandbox could not be made (FailedCreatePodSandBox): not tried again before this.
    pub sandbox_hold: Option<Hold>,
    /// Refused at admission: it never runs.
    pub rejected: Option<Rejection>,
    /// Failed here for good (activeDeadlineSeconds, an eviction): reason and message for the
    /// status.
    pub failed: Option<(Reason, String)>,
    /// Evicted for node pressure.
    pub eviction: Option<Eviction>,
}

/// An eviction: when (RFC 3339; the DisruptionTarget condition's transition) and the grace
/// period its containers stop within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    pub at: String,
    pub grace: i64,
}

/// The key of a container's crash-loop back-off: its name and image, so that a new image starts
/// afresh (the kubelet keys it by the container's spec hash).
pub fn backoff_key(pod: &Pod, name: &str) -> String {
    let image = pod.container(name).map_or("", |c| c.image.as_str());
    format!("{name}@{image}")
}

/// A change to remember, decided by a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Backoff {
        /// The container's `backoff_key`.
        key: String,
        attempt: u32,
        backoff: Backoff,
    },
    Failed {
        reason: Reason,
        message: String,
    },
}

/// An event about the pod (or one of its containers) to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub container: Option<String>,
    pub warning: bool,
    pub reason: Reason,
    pub message: String,
    /// The Event's annotations (the eviction manager's, on Evicted).
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl PodEvent {
    pub fn new(container: Option<&str>, warning: bool, reason: Reason, message: String) -> Self {
        PodEvent {
            container: container.map(String::from),
            warning,
            reason,
            message,
            annotations: Default::default(),
        }
    }
}

/// What one step decided.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    pub actions: Vec<Action>,
    pub changes: Vec<Change>,
    pub events: Vec<PodEvent>,
}

/// The API says the pod finished (Succeeded or Failed).
pub fn terminal(p: &Pod) -> bool {
    matches!(p.status["phase"].as_str(), Some("Succeeded" | "Failed"))
}

pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

impl PodState {
    /// A pod seen for the first time at `now` (RFC 3339), rejected or not.
    pub fn new(pod: &Pod, now: &str, rejected: Option<Rejection>) -> PodState {
        PodState {
            start_time: pod.status["startTime"]
                .as_str()
                .map_or_else(|| now.to_string(), String::from),
            rejected,
            ..PodState::default()
        }
    }

    pub fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Backoff {
                    key,
                    attempt,
                    backoff,
                } => {
                    self.backoff.insert(key.clone(), (*attempt, *backoff));
                }
                Change::Failed { reason, message } => {
                    self.failed = Some((*reason, message.clone()));
                }
            }
        }
    }

    /// Nothing more is to run: failed here, or finished in the API (deletion aside).
    pub fn finished(&self, pod: &Pod) -> bool {
        !pod.deleting() && (self.failed.is_some() || terminal(pod))
    }

    /// A container held back from starting at `now_ms` (an image pull or config back-off).
    pub fn held(&self, container: &str, now_ms: u64) -> bool {
        self.holds
            .get(container)
            .is_some_and(|(b, _)| now_ms / 1000 < b.until)
    }
}

/// One step for `pod` at `now_ms` (milliseconds since the epoch).
pub fn step(pod: &Pod, state: &PodState, obs: &Observed, now_ms: u64) -> Step {
    let now = now_ms / 1000;
    let mut out = Step::default();
    if !pod.deleting() {
        if state.rejected.is_some() {
            return out;
        }
        if terminal(pod) && obs.sandbox.is_none() && obs.containers.is_empty() {
            // Finished before and cleaned up: nothing to run or report again.
            return out;
        }
    }
    // activeDeadlineSeconds, counted from the pod's start on this node: past it the pod fails
    // (DeadlineExceeded) and its containers stop.
    let deadline = pod.raw["spec"]["activeDeadlineSeconds"].as_u64();
    let started = crate::timefmt::parse_rfc3339(&state.start_time);
    let mut failed = state.failed.is_some();
    if let (Some(d), Some(t0), false, false) = (deadline, started, failed, pod.deleting())
        && !terminal(pod)
        && now >= t0 + d
    {
        out.changes.push(Change::Failed {
            reason: Reason::DeadlineExceeded,
            message: DEADLINE_MESSAGE.into(),
        });
        out.events.push(PodEvent::new(
            None,
            true,
            Reason::DeadlineExceeded,
            DEADLINE_MESSAGE.into(),
        ));
        failed = true;
    }
    let finished = !pod.deleting() && (failed || terminal(pod));
    // Crash-loop back-off: computed once per exited attempt that is to run again.
    let mut backoff = state.backoff.clone();
    for c in &obs.containers {
        // A pod being deleted never restarts a container: no back-off, no BackOff event.
        if finished
            || pod.deleting()
            || c.state != CState::Exited
            || !plan::restartable(pod, &c.name, c.exit_code)
        {
            continue;
        }
        let key = backoff_key(pod, &c.name);
        let prev = backoff.get(&key).copied();
        if prev.is_some_and(|(attempt, _)| attempt == c.attempt) {
            continue;
        }
        let ended = (c.finished_at.max(0) / 1_000_000_000) as u64;
        let ran = Duration::from_nanos((c.finished_at - c.started_at).max(0).unsigned_abs());
        let b = Backoff::next(prev.map(|(_, b)| b), ended.max(1), ran);
        backoff.insert(key.clone(), (c.attempt, b));
        out.changes.push(Change::Backoff {
            key,
            attempt: c.attempt,
            backoff: b,
        });
        let m = &pod.metadata;
        out.events.push(PodEvent::new(
            Some(&c.name),
            true,
            Reason::BackOff,
            format!(
                "Back-off restarting failed container {} in pod {}_{}({})",
                c.name, m.name, m.namespace, m.uid
            ),
        ));
    }
    let may_restart = |name: &str| {
        backoff
            .get(&backoff_key(pod, name))
            .is_none_or(|(_, b)| now >= b.until)
    };
    let mut actions = if finished {
        plan::stop_all(pod, obs, state.eviction.as_ref().map(|e| e.grace))
    } else {
        plan::step(pod, obs, &may_restart)
    };
    // Held containers (an image pull or config back-off) and a held volume setup wait.
    let mount_held = state.mount_hold.is_some_and(|h| now_ms < h.until_ms);
    let sandbox_held = state.sandbox_hold.is_some_and(|h| now_ms < h.until_ms);
    actions.retain(|a| match a {
        Action::RunSandbox { .. } => !sandbox_held,
        Action::StartContainer { name, .. } => !mount_held && !state.held(name, now_ms),
        _ => true,
    });
    out.actions = actions;
    out
}

/// Why a container waits, as the status shows it: an image pull hold (ImagePullBackOff while
/// its back-off runs), a config error, or CrashLoopBackOff while the crash-loop back-off runs.
pub fn waiting(
    pod: &Pod,
    state: &PodState,
    obs: &Observed,
    name: &str,
    now_ms: u64,
) -> Option<Waiting> {
    let now = now_ms / 1000;
    if let Some((b, w)) = state.holds.get(name) {
        let reason = if now < b.until && w.reason == Reason::ErrImagePull {
            Reason::ImagePullBackOff
        } else {
            w.reason
        };
        return Some(Waiting {
            reason,
            message: w.message.clone(),
        });
    }
    if state.failed.is_some() || terminal(pod) {
        return None;
    }
    let (_, b) = state.backoff.get(&backoff_key(pod, name))?;
    let c = obs.container(name)?;
    (c.state == CState::Exited && now < b.until).then(|| Waiting {
        reason: Reason::CrashLoopBackOff,
        message: format!(
            "back-off {}s restarting failed container={name} pod={}_{}({})",
            b.delay.as_secs(),
            pod.metadata.name,
            pod.metadata.namespace,
            pod.metadata.uid
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::plan::{ContainerObs, SandboxObs};
    use serde_json::json;

    const T0: u64 = 1_796_000_000;

    fn pod(spec: serde_json::Value, phase: Option<&str>) -> Pod {
        let mut v =
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec});
        if let Some(p) = phase {
            v["status"] = json!({"phase": p});
        }
        Pod::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn app(policy: &str) -> Pod {
        pod(
            json!({"restartPolicy": policy, "containers": [{"name": "a", "image": "x:1"}]}),
            None,
        )
    }

    fn state() -> PodState {
        PodState {
            start_time: crate::timefmt::Civil::from_system(
                std::time::UNIX_EPOCH + Duration::from_secs(T0),
            )
            .rfc3339(),
            ..PodState::default()
        }
    }

    fn exited(attempt: u32, code: i32, started: u64, finished: u64) -> ContainerObs {
        ContainerObs {
            id: format!("c{attempt}"),
            name: "a".into(),
            attempt,
            state: CState::Exited,
            exit_code: code,
            reason: String::new(),
            message: String::new(),
            created_at: 1,
            started_at: (started * 1_000_000_000) as i64,
            finished_at: (finished * 1_000_000_000) as i64,
            image_ref: String::new(),
            hash: String::new(),
        }
    }

    fn running(obs: Vec<ContainerObs>) -> Observed {
        Observed {
            sandbox: Some(SandboxObs {
                id: "s".into(),
                ready: true,
                ip: "10.0.0.2".into(),
                attempt: 0,
                image: String::new(),
            }),
            containers: obs,
            ..Observed::default()
        }
    }

    fn ms(secs: u64) -> u64 {
        secs * 1000
    }

    /// A container that exits while its pod is being deleted is not backed off or restarted,
    /// and no `BackOff` event says it is (seen in the demo right after `Killing`).
    #[test]
    fn a_deleted_pod_never_backs_off() {
        let mut p = app("Always");
        p.metadata.deletion_timestamp = Some("2026-12-01T00:00:00Z".into());
        let obs = running(vec![exited(0, 137, T0, T0 + 1)]);
        let out = step(&p, &state(), &obs, ms(T0 + 2));
        assert!(out.events.is_empty() && out.changes.is_empty(), "{out:?}");
        assert!(
            !out.actions
                .iter()
                .any(|a| matches!(a, Action::StartContainer { .. })),
            "{:?}",
            out.actions
        );
    }

    /// Crash-loop back-off: computed once per exited attempt, 10 s then doubling; the restart
    /// waits it out; CrashLoopBackOff is shown meanwhile.
    #[test]
    fn crash_loop_back_off_timing() {
        let p = app("Always");
        let mut s = state();
        let obs = running(vec![exited(0, 1, T0, T0 + 1)]);
        let first = step(&p, &s, &obs, ms(T0 + 2));
        assert_eq!(first.actions, [], "held by the back-off");
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.events[0].reason, Reason::BackOff);
        let Change::Backoff { backoff, .. } = first.changes[0].clone() else {
            panic!("{first:?}")
        };
        assert_eq!((backoff.delay.as_secs(), backoff.until), (10, T0 + 11));
        s.apply(&first.changes);
        let w = waiting(&p, &s, &obs, "a", ms(T0 + 5)).unwrap_or_else(|| panic!("waiting"));
        assert_eq!(w.reason, Reason::CrashLoopBackOff);
        assert!(
            w.message
                .starts_with("back-off 10s restarting failed container=a pod=p_ns(u1)")
        );
        let again = step(&p, &s, &obs, ms(T0 + 5));
        assert!(
            again.changes.is_empty() && again.events.is_empty(),
            "once per attempt"
        );
        let due = step(&p, &s, &obs, ms(T0 + 11));
        assert_eq!(
            due.actions,
            [Action::StartContainer {
                name: "a".into(),
                attempt: 1
            }]
        );
        // The next exit doubles it.
        let obs = running(vec![exited(1, 1, T0 + 11, T0 + 12)]);
        let second = step(&p, &s, &obs, ms(T0 + 12));
        let Change::Backoff { backoff, .. } = second.changes[0].clone() else {
            panic!("{second:?}")
        };
        assert_eq!(backoff.delay.as_secs(), 20);
        // A new image starts afresh (kubectl set image on a crash-looping pod): 10 s again.
        s.apply(&second.changes);
        let mut updated = p.clone();
        updated.spec.containers[0].image = "busybox:2".into();
        let fresh = step(&updated, &s, &obs, ms(T0 + 12));
        let Change::Backoff { backoff, .. } = fresh.changes[0].clone() else {
            panic!("{fresh:?}")
        };
        assert_eq!(backoff.delay.as_secs(), 10, "not 40");
        // OnFailure does not restart a success: no back-off at all.
        let ok = step(
            &app("OnFailure"),
            &state(),
            &running(vec![exited(0, 0, T0, T0 + 1)]),
            ms(T0 + 2),
        );
        assert!(ok.changes.is_empty() && ok.actions.is_empty());
    }

    /// activeDeadlineSeconds: past it, Failed (DeadlineExceeded), one event, containers stop.
    #[test]
    fn deadline_exceeded() {
        let p = pod(
            json!({"activeDeadlineSeconds": 30, "containers": [{"name": "a", "image": "x:1"}]}),
            None,
        );
        let s = state();
        let mut c = exited(0, 0, T0, T0);
        c.state = CState::Running;
        let obs = running(vec![c]);
        assert!(step(&p, &s, &obs, ms(T0 + 29)).changes.is_empty());
        let past = step(&p, &s, &obs, ms(T0 + 30));
        assert_eq!(
            past.changes,
            [Change::Failed {
                reason: Reason::DeadlineExceeded,
                message: DEADLINE_MESSAGE.into()
            }]
        );
        assert_eq!(past.events[0].reason, Reason::DeadlineExceeded);
        assert!(matches!(past.actions[..], [Action::StopContainer { .. }]));
        let mut s2 = s.clone();
        s2.apply(&past.changes);
        assert!(s2.finished(&p));
        assert!(step(&p, &s2, &obs, ms(T0 + 31)).events.is_empty(), "once");
    }

    /// A rejected pod never runs; a finished one (the API says so) never restarts; a finished
    /// one already cleaned up is left alone.
    #[test]
    fn rejected_and_finished_pods() {
        let p = app("Always");
        let mut s = state();
        s.rejected = Some(("OutOfcpu".into(), "Pod was rejected: ...".into()));
        assert_eq!(step(&p, &s, &Observed::default(), ms(T0)), Step::default());
        let done = pod(
            json!({"restartPolicy": "Always", "containers": [{"name": "a", "image": "x:1"}]}),
            Some("Succeeded"),
        );
        let s = state();
        let obs = running(vec![exited(0, 0, T0, T0 + 1)]);
        let st = step(&done, &s, &obs, ms(T0 + 100));
        assert!(st.changes.is_empty(), "no back-off for a finished pod");
        assert_eq!(st.actions, [Action::StopSandbox { id: "s".into() }]);
        assert_eq!(
            step(&done, &s, &Observed::default(), ms(T0)),
            Step::default()
        );
        assert_eq!(waiting(&done, &s, &obs, "a", ms(T0)), None);
    }

    /// Holds: a container held by an image pull back-off does not start before it runs out,
    /// and shows ImagePullBackOff meanwhile; a held volume setup holds every start.
    #[test]
    fn pull_and_mount_holds() {
        let p = app("Always");
        let mut s = state();
        s.holds.insert(
            "a".into(),
            (
                Backoff {
                    delay: Duration::from_secs(10),
                    until: T0 + 10,
                },
                Waiting {
                    reason: Reason::ErrImagePull,
                    message: "not found".into(),
                },
            ),
        );
        let obs = running(vec![]);
        assert_eq!(step(&p, &s, &obs, ms(T0 + 5)).actions, []);
        let w = waiting(&p, &s, &obs, "a", ms(T0 + 5)).unwrap_or_else(|| panic!("held"));
        assert_eq!(
            (w.reason, w.message.as_str()),
            (Reason::ImagePullBackOff, "not found")
        );
        assert_eq!(
            waiting(&p, &s, &obs, "a", ms(T0 + 10)).map(|w| w.reason),
            Some(Reason::ErrImagePull)
        );
        assert_eq!(step(&p, &s, &obs, ms(T0 + 10)).actions.len(), 1);
        s.holds.clear();
        s.mount_hold = Some(Hold::after(None, ms(T0)));
        assert_eq!(step(&p, &s, &obs, ms(T0)).actions, []);
        assert_eq!(step(&p, &s, &obs, ms(T0) + 500).actions.len(), 1);
        let h = Hold::after(s.mount_hold, ms(T0));
        assert_eq!(h.delay_ms, 1000);
        // A sandbox the runtime refused is not asked for again before its hold runs out.
        s.mount_hold = None;
        s.sandbox_hold = Some(Hold::after(None, ms(T0)));
        let none = Observed::default();
        assert_eq!(step(&p, &s, &none, ms(T0) + 499).actions, []);
        assert!(matches!(
            step(&p, &s, &none, ms(T0) + 500).actions[..],
            [Action::RunSandbox { .. }]
        ));
        let mut h = h;
        for _ in 0..20 {
            h = Hold::after(Some(h), ms(T0));
        }
        assert_eq!(h.delay_ms, 122_000, "capped at 2m2s");
    }
}
