//! A pod's status from what the runtime shows, without I/O: phase, conditions, IPs, and each
//! container's state (waiting with its reason, running, terminated with exit code and times),
//! restart count and readiness, as the kubelet reports them.

use serde_json::{Value, json};

use super::plan::{CState, ContainerObs, Observed, should_restart};
use super::spec::{Pod, RestartPolicy};
use crate::timefmt::Civil;

fn time(nanos: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos.max(0).unsigned_abs());
    Civil::from_system(t).rfc3339()
}

/// Why a container is not running yet, when the agent knows better than the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: super::error::Reason,
    pub message: String,
}

fn state_of(c: &ContainerObs) -> Value {
    let id = format!("containerd://{}", c.id);
    match c.state {
        CState::Running => json!({"running": {"startedAt": time(c.started_at)}}),
        CState::Exited => {
            let reason = if c.reason.is_empty() {
                if c.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .to_string()
            } else {
                c.reason.clone()
            };
            let mut t = json!({"exitCode": c.exit_code, "reason": reason, "containerID": id,
                "startedAt": time(c.started_at), "finishedAt": time(c.finished_at)});
            if !c.message.is_empty() {
                t["message"] = json!(c.message);
            }
            json!({ "terminated": t })
        }
        CState::Created | CState::Unknown => json!({"waiting": {"reason": "ContainerCreating"}}),
    }
}

/// The status for `pod` now. `waiting(name)` names a reason the agent holds a container with
/// (CrashLoopBackOff, ErrImagePull...); `probed(name)` is a running container's (started,
/// ready): its startup and readiness probes passed (true without them); `start_time` is when the
/// agent first saw the pod.
pub fn build(
    pod: &Pod,
    obs: &Observed,
    host_ip: &str,
    start_time: &str,
    now: &str,
    waiting: &dyn Fn(&str) -> Option<Waiting>,
    probed: &dyn Fn(&str) -> (bool, bool),
) -> Value {
    let policy = pod.spec.restart_policy;
    // A finished pod (Succeeded or Failed, as `pod.status` says) runs nothing again: its exited
    // containers stay terminated.
    let finished = matches!(pod.status["phase"].as_str(), Some("Succeeded" | "Failed"));
    let sandbox_ready = obs.sandbox.as_ref().is_some_and(|s| s.ready);
    let mut statuses = Vec::new();
    let (mut running, mut exited_ok, mut exited_failed, mut waiting_n) = (0, 0, 0, 0);
    for spec in &pod.spec.containers {
        let o = obs.container(&spec.name);
        let held = waiting(&spec.name);
        let mut st = json!({
            "name": spec.name, "image": spec.image, "imageID": "", "ready": false,
            "restartCount": o.map_or(0, |o| o.attempt), "started": false,
            "state": {"waiting": {"reason": "ContainerCreating"}},
        });
        if let Some(p) = obs
            .previous(&spec.name)
            .filter(|p| p.state == CState::Exited)
        {
            st["lastState"] = state_of(p);
        }
        if let Some(o) = o {
            st["containerID"] = json!(format!("containerd://{}", o.id));
            st["imageID"] = json!(o.image_ref);
            st["state"] = state_of(o);
            match o.state {
                CState::Running => {
                    running += 1;
                    let (started, ready) = probed(&spec.name);
                    st["ready"] = json!(ready);
                    st["started"] = json!(started);
                }
                CState::Exited => {
                    if o.exit_code == 0 {
                        exited_ok += 1;
                    } else {
                        exited_failed += 1;
                    }
                    if should_restart(policy, o.exit_code) && !finished {
                        // Waiting to run again: the last run becomes lastState.
                        st["lastState"] = st["state"].take();
                        st["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                    }
                }
                CState::Created | CState::Unknown => waiting_n += 1,
            }
        } else {
            waiting_n += 1;
        }
        if let Some(w) = held {
            let mut wv = json!({"reason": w.reason.as_str()});
            if !w.message.is_empty() {
                wv["message"] = json!(w.message);
            }
            if st["state"].get("terminated").is_some() {
                st["lastState"] = st["state"].take();
            }
            st["state"] = json!({ "waiting": wv });
            st["ready"] = json!(false);
        }
        statuses.push(st);
    }
    // Init containers: each done once it exited 0; app containers wait for all of them.
    let mut init_statuses = Vec::new();
    let mut initialized = true;
    let mut incomplete: Vec<&str> = Vec::new();
    for spec in &pod.spec.init_containers {
        let o = obs.container(&spec.name);
        let sidecar = spec.is_sidecar();
        // A sidecar counts once it has started; it is ready as its probes say.
        let ok = if sidecar {
            o.is_some_and(|o| o.state != CState::Created)
        } else {
            o.is_some_and(|o| o.state == CState::Exited && o.exit_code == 0)
        };
        initialized &= ok;
        if !ok {
            incomplete.push(spec.name.as_str());
        }
        let ready = if sidecar {
            o.is_some_and(|o| o.state == CState::Running) && probed(&spec.name).1
        } else {
            ok
        };
        let mut st = json!({
            "name": spec.name, "image": spec.image, "imageID": "", "ready": ready,
            "restartCount": o.map_or(0, |o| o.attempt), "started": false,
            "state": {"waiting": {"reason": "PodInitializing"}},
        });
        if let Some(o) = o {
            st["containerID"] = json!(format!("containerd://{}", o.id));
            st["imageID"] = json!(o.image_ref);
            st["state"] = state_of(o);
            st["started"] = json!(o.state == CState::Running && (!sidecar || probed(&spec.name).0));
            if sidecar && o.state == CState::Exited && !finished {
                // Waiting to run again, as an app container under Always.
                st["lastState"] = st["state"].take();
                st["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
            }
        }
        if let Some(p) = obs
            .previous(&spec.name)
            .filter(|p| p.state == CState::Exited)
        {
            st["lastState"] = state_of(p);
        }
        if let Some(w) = waiting(&spec.name) {
            if st["state"].get("terminated").is_some() {
                st["lastState"] = st["state"].take();
            }
            st["state"] = json!({"waiting": {"reason": w.reason.as_str(), "message": w.message}});
        }
        init_statuses.push(st);
    }
    if !initialized {
        for st in &mut statuses {
            if st["state"]["waiting"]["reason"] == "ContainerCreating" {
                st["state"] = json!({"waiting": {"reason": "PodInitializing"}});
            }
        }
    }
    let n = pod.spec.containers.len();
    let phase = if super::plan::init_failed(pod, obs) {
        "Failed"
    } else if !initialized {
        "Pending"
    } else if exited_ok + exited_failed == n
        && statuses
            .iter()
            .all(|s| s["state"].get("terminated").is_some())
    {
        match policy {
            _ if exited_failed == 0 => "Succeeded",
            RestartPolicy::Never => "Failed",
            _ => "Running",
        }
    } else if running > 0 || (exited_ok + exited_failed > 0 && waiting_n == 0) {
        "Running"
    } else {
        "Pending"
    };
    // While a deleted pod's containers are being taken down, what is left says little: keep the
    // phase the API has rather than falling back to Pending.
    let phase = match pod.status["phase"].as_str() {
        Some(api) if pod.deleting() && phase == "Pending" => api,
        _ => phase,
    };
    let all_ready = statuses.iter().all(|s| s["ready"] == json!(true));
    // Readiness gates: conditions others set in the API; Ready waits for each to be True.
    let api_conditions = pod.status["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let gate_not_ready = pod.raw["spec"]["readinessGates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["conditionType"].as_str())
        .find_map(|t| match api_conditions.iter().find(|c| c["type"] == t) {
            None => Some(format!(
                "corresponding condition of pod readiness gate \"{t}\" does not exist."
            )),
            Some(c) if c["status"] != "True" => Some(format!(
                "the status of pod readiness gate \"{t}\" is not \"True\", but {}",
                c["status"].as_str().unwrap_or("")
            )),
            Some(_) => None,
        });
    let cond = |t: &str, ok: bool, reason: Option<&str>| {
        let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }});
        if let (false, Some(r)) = (ok, reason) {
            c["reason"] = json!(r);
        }
        c
    };
    // The kubelet's messages name the containers, as Go prints a list.
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| s["ready"] != json!(true))
        .filter_map(|s| s["name"].as_str())
        .collect();
    let named = |what: &str, names: &[&str]| {
        format!("containers with {what} status: [{}]", names.join(" "))
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            cond("PodReadyToStartContainers", sandbox_ready, None),
            cond("Initialized", initialized, Some("ContainersNotInitialized")),
            cond("Ready", all_ready && gate_not_ready.is_none(), Some(if phase == "Succeeded" || phase == "Failed" { "PodCompleted" } else if all_ready { "ReadinessGatesNotReady" } else { "ContainersNotReady" })),
            cond("ContainersReady", all_ready, Some(if phase == "Succeeded" || phase == "Failed" { "PodCompleted" } else { "ContainersNotReady" })),
            cond("PodScheduled", true, None),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "qosClass": pod.qos_class(),
        "containerStatuses": statuses,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    // Ephemeral containers: run once, never ready, not in the pod's phase or conditions.
    let ephemeral: Vec<Value> = pod
        .spec
        .ephemeral_containers
        .iter()
        .map(|spec| {
            let mut st = json!({
                "name": spec.name, "image": spec.image, "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}},
            });
            if let Some(o) = obs.container(&spec.name) {
                st["containerID"] = json!(format!("containerd://{}", o.id));
                st["imageID"] = json!(o.image_ref);
                st["state"] = state_of(o);
            }
            if let Some(w) = waiting(&spec.name) {
                st["state"] =
                    json!({"waiting": {"reason": w.reason.as_str(), "message": w.message}});
            }
            st
        })
        .collect();
    if !ephemeral.is_empty() {
        status["ephemeralContainerStatuses"] = json!(ephemeral);
    }
    let done = phase == "Succeeded" || phase == "Failed";
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        let message = match c["type"].as_str() {
            Some("Initialized") if !initialized => named("incomplete", &incomplete),
            Some("Ready") if all_ready => match &gate_not_ready {
                Some(why) => why.clone(),
                None => continue,
            },
            Some("Ready" | "ContainersReady") if !all_ready && !done => named("unready", &unready),
            _ => continue,
        };
        c["message"] = json!(message);
    }
    // Transition times move only when a condition's status does.
    let old = api_conditions;
    if let Some(list) = status["conditions"].as_array_mut() {
        for c in list.iter_mut() {
            let prev = old.iter().find(|o| o["type"] == c["type"]);
            c["lastProbeTime"] = Value::Null;
            c["lastTransitionTime"] = match prev {
                Some(p) if p["status"] == c["status"] && p["lastTransitionTime"].is_string() => {
                    p["lastTransitionTime"].clone()
                }
                _ => json!(now),
            };
        }
        // Conditions the kubelet does not own (readiness gates, DisruptionTarget) are kept
        // as the API has them.
        const OWN: [&str; 5] = [
            "PodReadyToStartContainers",
            "Initialized",
            "Ready",
            "ContainersReady",
            "PodScheduled",
        ];
        for c in &old {
            if !c["type"].as_str().is_some_and(|t| OWN.contains(&t)) {
                list.push(c.clone());
            }
        }
    }
    if let Some(s) = obs.sandbox.as_ref().filter(|s| !s.ip.is_empty()) {
        status["podIP"] = json!(s.ip);
        status["podIPs"] = json!([{"ip": s.ip}]);
    } else if pod.spec.host_network && sandbox_ready {
        status["podIP"] = json!(host_ip);
        status["podIPs"] = json!([{"ip": host_ip}]);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::plan::SandboxObs;

    fn pod(policy: &str) -> Pod {
        Pod::from_value(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "a", "image": "busybox:1.36"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"}]}}))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn obs(state: Option<(CState, i32)>, attempt: u32) -> Observed {
        Observed {
            sandbox: Some(SandboxObs {
                id: "s".into(),
                ready: true,
                ip: "10.88.0.5".into(),
                attempt: 0,
                image: String::new(),
            }),
            containers: state
                .map(|(state, exit_code)| ContainerObs {
                    id: "abc".into(),
                    name: "a".into(),
                    attempt,
                    state,
                    exit_code,
                    reason: String::new(),
                    message: String::new(),
                    created_at: 1_795_910_399_000_000_000,
                    started_at: 1_795_910_399_000_000_000,
                    finished_at: 1_795_910_400_000_000_000,
                    image_ref: "sha256:beef".into(),
                    hash: String::new(),
                })
                .into_iter()
                .collect(),
            ..Observed::default()
        }
    }

    fn none(_: &str) -> Option<Waiting> {
        None
    }

    fn yes(_: &str) -> (bool, bool) {
        (true, true)
    }

    #[test]
    fn a_failing_readiness_probe_keeps_a_running_pod_unready() {
        let p = pod("Always");
        let s = build(
            &p,
            &obs(Some((CState::Running, 0)), 0),
            "h",
            "t1",
            "t2",
            &none,
            &|_| (true, false),
        );
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["containerStatuses"][0]["ready"], false);
        assert_eq!(s["containerStatuses"][0]["started"], true);
        assert_eq!(cond(&s, "Ready")["status"], "False");
        assert_eq!(cond(&s, "Ready")["reason"], "ContainersNotReady");
    }

    /// Readiness gates: Ready waits for each gate's condition (set by others) to be True, and
    /// those conditions are kept in the status written.
    #[test]
    fn readiness_gates_hold_ready_and_their_conditions_stay() {
        let mut p = pod("Always");
        p.raw["spec"]["readinessGates"] = json!([{"conditionType": "k8s.io/gate"}]);
        let running = obs(Some((CState::Running, 0)), 0);
        let s = build(&p, &running, "h", "t1", "t2", &none, &yes);
        assert_eq!(cond(&s, "ContainersReady")["status"], "True");
        assert_eq!(cond(&s, "Ready")["status"], "False");
        assert_eq!(cond(&s, "Ready")["reason"], "ReadinessGatesNotReady");
        assert_eq!(
            cond(&s, "Ready")["message"],
            "corresponding condition of pod readiness gate \"k8s.io/gate\" does not exist."
        );
        for (gate, ready) in [("False", "False"), ("True", "True")] {
            p.status["conditions"] = json!([
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t0"},
                {"type": "k8s.io/gate", "status": gate, "lastTransitionTime": "t0"}]);
            let s = build(&p, &running, "h", "t1", "t2", &none, &yes);
            assert_eq!(cond(&s, "Ready")["status"], ready, "gate {gate}");
            assert_eq!(
                cond(&s, "k8s.io/gate")["status"],
                gate,
                "the gate's condition is kept"
            );
        }
    }

    #[test]
    fn a_finished_pod_shows_its_containers_terminated() {
        let mut p = pod("Always");
        let s = build(
            &p,
            &obs(Some((CState::Exited, 137)), 0),
            "h",
            "t1",
            "t2",
            &none,
            &yes,
        );
        assert!(s["containerStatuses"][0]["state"]["waiting"].is_object());
        p.status["phase"] = json!("Failed");
        let s = build(
            &p,
            &obs(Some((CState::Exited, 137)), 0),
            "h",
            "t1",
            "t2",
            &none,
            &yes,
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            137
        );
        assert!(s["containerStatuses"][0]["lastState"].is_null());
    }

    fn cond<'a>(s: &'a Value, t: &str) -> &'a Value {
        s["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == t))
            .unwrap_or_else(|| panic!("no {t}"))
    }

    #[test]
    fn pending_running_succeeded_failed() {
        let p = pod("Never");
        let s = build(&p, &obs(None, 0), "192.0.2.1", "t1", "t2", &none, &yes);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(cond(&s, "PodReadyToStartContainers")["status"], "True");
        assert_eq!(cond(&s, "PodScheduled")["lastTransitionTime"], "t0", "kept");
        assert_eq!(s["podIP"], "10.88.0.5");
        assert_eq!(s["qosClass"], "BestEffort");

        let s = build(
            &p,
            &obs(Some((CState::Running, 0)), 0),
            "192.0.2.1",
            "t1",
            "t2",
            &none,
            &yes,
        );
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(
            (c["ready"].clone(), c["started"].clone()),
            (json!(true), json!(true))
        );
        assert_eq!(c["containerID"], "containerd://abc");
        assert_eq!(c["state"]["running"]["startedAt"], "2026-11-28T23:59:59Z");
        assert_eq!(cond(&s, "Ready")["status"], "True");

        let s = build(
            &p,
            &obs(Some((CState::Exited, 0)), 0),
            "192.0.2.1",
            "t1",
            "t2",
            &none,
            &yes,
        );
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        assert_eq!(cond(&s, "Ready")["reason"], "PodCompleted");
        let s = build(
            &p,
            &obs(Some((CState::Exited, 3)), 0),
            "192.0.2.1",
            "t1",
            "t2",
            &none,
            &yes,
        );
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Error"
        );
    }

    #[test]
    fn the_previous_attempt_is_the_last_state_of_a_running_one() {
        let p = pod("Always");
        let mut o = obs(Some((CState::Running, 0)), 1);
        let mut prev = o.containers[0].clone();
        prev.id = "old".into();
        prev.attempt = 0;
        prev.state = CState::Exited;
        prev.exit_code = 3;
        o.previous.push(prev);
        let s = build(&p, &o, "h", "t1", "t2", &none, &yes);
        let c = &s["containerStatuses"][0];
        assert_eq!(c["restartCount"], 1);
        assert!(c["state"]["running"].is_object());
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 3);
        assert_eq!(
            c["lastState"]["terminated"]["containerID"],
            "containerd://old"
        );
    }

    #[test]
    fn a_container_held_by_its_startup_probe_is_not_started() {
        let p = pod("Always");
        let s = build(
            &p,
            &obs(Some((CState::Running, 0)), 0),
            "h",
            "t1",
            "t2",
            &none,
            &|_| (false, false),
        );
        let c = &s["containerStatuses"][0];
        assert_eq!(
            (c["started"].clone(), c["ready"].clone()),
            (json!(false), json!(false))
        );
    }

    #[test]
    fn a_terminating_pod_keeps_its_phase_while_its_containers_go() {
        let mut p = pod("Always");
        p.metadata.deletion_timestamp = Some("2026-11-29T00:00:00Z".into());
        p.status["phase"] = json!("Running");
        let s = build(&p, &obs(None, 0), "h", "t1", "t2", &none, &yes);
        assert_eq!(s["phase"], "Running");
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": "Never",
                "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                "containers": [{"name": "a", "image": "busybox:1.36"}]}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut o = obs(None, 0);
        let s = build(&p, &o, "h", "t1", "t2", &none, &yes);
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            cond(&s, "Initialized")["reason"],
            "ContainersNotInitialized"
        );
        assert_eq!(
            cond(&s, "Initialized")["message"],
            "containers with incomplete status: [init]"
        );
        assert_eq!(
            cond(&s, "ContainersReady")["message"],
            "containers with unready status: [a]"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let done = |state, exit_code| ContainerObs {
            id: "i".into(),
            name: "init".into(),
            attempt: 0,
            state,
            exit_code,
            reason: String::new(),
            message: String::new(),
            created_at: 1,
            started_at: 1,
            finished_at: 2,
            image_ref: "sha256:1".into(),
            hash: String::new(),
        };
        o.containers = vec![done(CState::Exited, 0)];
        let s = build(&p, &o, "h", "t1", "t2", &none, &yes);
        assert_eq!(cond(&s, "Initialized")["status"], "True");
        assert_eq!(s["initContainerStatuses"][0]["ready"], true);
        assert_eq!(
            s["initContainerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        o.containers = vec![done(CState::Exited, 1)];
        let s = build(&p, &o, "h", "t1", "t2", &none, &yes);
        assert_eq!(
            s["phase"], "Failed",
            "a failed init container fails a Never pod"
        );
    }

    #[test]
    fn restarting_containers_wait_with_their_last_state() {
        let p = pod("Always");
        let backoff = |_: &str| {
            Some(Waiting {
                reason: super::super::error::Reason::CrashLoopBackOff,
                message: "back-off 20s restarting failed container=a pod=p_ns(u1)".into(),
            })
        };
        let s = build(
            &p,
            &obs(Some((CState::Exited, 1)), 2),
            "h",
            "t1",
            "t2",
            &backoff,
            &yes,
        );
        assert_eq!(s["phase"], "Running");
        let c = &s["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(cond(&s, "Ready")["reason"], "ContainersNotReady");
    }
}
