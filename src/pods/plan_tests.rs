//! The lifecycle step's table tests: sidecars, init containers, restarts, deletion, back-off.

use super::*;
use crate::pods::spec::Container;
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
        image: String::new(),
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
        hash: String::new(),
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
        assert_eq!(stop_all(&p, &o, None), want, "{o:?}");
    }
    // An eviction's grace period replaces the pod's.
    let o = obs(sandbox(true), vec![c("a", Running, 0)]);
    assert_eq!(
        stop_all(&p, &o, Some(1)),
        vec![Action::StopContainer {
            id: "id-a".into(),
            grace: Duration::from_secs(1),
        }]
    );
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

/// An ephemeral container (added to a running pod) starts once and, exited, stays exited,
/// whatever the pod's restart policy; it holds nothing of the pod back.
#[test]
fn ephemeral_containers_run_once() {
    use CState::*;
    let mut p = pod("Always", false);
    p.spec.ephemeral_containers = vec![Container {
        target_container_name: "a".into(),
        ..p.spec.containers[0].clone()
    }];
    p.spec.ephemeral_containers[0].name = "debugger".into();
    let up = vec![c("a", Running, 0), c("b", Running, 0)];
    let never = |_: &str| panic!("no back-off is asked for");
    assert_eq!(
        step(&p, &obs(sandbox(true), up.clone()), &never),
        [start("debugger", 0)]
    );
    for (state, exit) in [(Running, 0), (Exited, 0), (Exited, 1)] {
        let mut cs = up.clone();
        cs.push(c("debugger", state, exit));
        assert_eq!(
            step(&p, &obs(sandbox(true), cs), &never),
            [],
            "{state:?} {exit}"
        );
    }
    let mut created = up;
    created.push(c("debugger", Created, 0));
    assert_eq!(
        step(&p, &obs(sandbox(true), created), &never),
        [Action::StartCreated {
            id: "id-debugger".into()
        }]
    );
}

/// A running app container or sidecar made from another image than its spec's now is stopped
/// and started again, whatever the restart policy; an exited one follows the policy, one
/// without a hash (an older agent's) is left, and a pod being deleted only stops.
#[test]
fn a_changed_image_restarts_the_running_container() {
    use CState::*;
    let made_from = |name: &str, image: &str, state: CState, exit: i32| ContainerObs {
        hash: crate::pods::layout::container_hash(name, image),
        ..c(name, state, exit)
    };
    let p = |policy: &str| {
        Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 7,
                "initContainers": [{"name": "side", "image": "x:2", "restartPolicy": "Always"}],
                "containers": [{"name": "a", "image": "x:2"}]}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let stop7 = |name: &str| Action::StopContainer {
        id: format!("id-{name}"),
        grace: Duration::from_secs(7),
    };
    let rows: Vec<(&str, Vec<ContainerObs>, Vec<Action>)> = vec![
        (
            "Never",
            vec![
                made_from("side", "x:2", Running, 0),
                made_from("a", "x:2", Running, 0),
            ],
            vec![],
        ),
        (
            "Never",
            vec![
                made_from("side", "x:2", Running, 0),
                made_from("a", "x:1", Running, 0),
            ],
            vec![stop7("a"), start("a", 1)],
        ),
        (
            "Always",
            vec![
                made_from("side", "x:1", Running, 0),
                made_from("a", "x:2", Running, 0),
            ],
            vec![stop7("side"), start("side", 1)],
        ),
        // Exited under Never: not run again, whatever its image.
        (
            "Never",
            vec![
                made_from("side", "x:2", Running, 0),
                made_from("a", "x:1", Exited, 0),
            ],
            vec![],
        ),
        // No hash: taken as unchanged.
        (
            "Always",
            vec![made_from("side", "x:2", Running, 0), c("a", Running, 0)],
            vec![],
        ),
    ];
    for (i, (policy, cs, want)) in rows.into_iter().enumerate() {
        let got = step(&p(policy), &obs(sandbox(true), cs), &|_| true);
        assert_eq!(got, want, "row {i}");
    }
}

/// The hash the kubelet writes for a container, to the value (from the upstream kubelet's
/// HashContainer on the same name and image), so that a node handed over between the two
/// keeps its containers.
#[test]
fn the_container_hash_is_the_kubelets() {
    for (name, image, want) in [
        ("app", "docker.io/library/busybox:1.36", "13385bb0"),
        (
            "agnhost-container",
            "registry.k8s.io/e2e-test-images/agnhost:2.53",
            "7fd2e315",
        ),
        ("a&b", "x<y>:1", "be808352"),
    ] {
        assert_eq!(crate::pods::layout::container_hash(name, image), want);
    }
}
