//! Pods stopping in parallel (issues #14 D6 and #18), against kube-sim and a real containerd:
//! ten pods and a three-container pod, all ignoring SIGTERM with a 5 s grace period, deleted
//! at once are gone in about one grace period (one after another they took 65 s); and while a
//! pod waits out a 30 s grace period, a new pod starts and has its status reported.
#![allow(clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;

/// A container that ignores SIGTERM: only the grace period's SIGKILL ends it.
const STUBBORN: &str = r#"["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]"#;

fn stubborn_pod(name: &str, containers: usize, grace: u32, label: &str) -> String {
    let cs: String = (0..containers)
        .map(|i| {
            format!(
                "  - name: c{i}\n    image: docker.io/library/busybox:1.36\n    command: {STUBBORN}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    group: {label}\nspec:\n  terminationGracePeriodSeconds: {grace}\n  containers:\n{cs}---\n"
    )
}

fn running(seed: &Seed, name: &str, n: usize) -> bool {
    seed.try_get(&["pod", name]).is_some_and(|p| {
        p["status"]["containerStatuses"]
            .as_array()
            .is_some_and(|cs| cs.len() == n && cs.iter().all(|c| c["state"]["running"].is_object()))
    })
}

#[test]
fn a_drain_takes_one_grace_period_and_a_stop_blocks_nobody() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed, mut agent, ..
    } = PodNode::start(&env, tmp.path(), "maxPods: 40\n", false);
    let mut manifest: String = (0..10)
        .map(|i| stubborn_pod(&format!("stubborn-{i}"), 1, 5, "drain"))
        .collect();
    manifest.push_str(&stubborn_pod("three", 3, 5, "drain"));
    let file = tmp.path().join("drain.yaml");
    write(&file, &manifest);
    seed.kubectl(&["apply", "-f", &file.display().to_string()]);
    wait(&mut agent, "eleven pods running", 120, || {
        ((0..10).all(|i| running(&seed, &format!("stubborn-{i}"), 1)) && running(&seed, "three", 3))
            .then_some(())
    });

    // All deleted at once: every container needs its SIGKILL at the end of the grace period.
    let t0 = Instant::now();
    seed.kubectl(&["delete", "pod", "-l", "group=drain", "--wait=false"]);
    wait(&mut agent, "the drained pods to be gone", 90, || {
        seed.try_get(&["pods", "-l", "group=drain"])
            .filter(|l| l["items"].as_array().is_some_and(Vec::is_empty))
    });
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "13 containers of 11 pods with a 5 s grace were gone in {took:?}: in parallel that is \
         one grace period and the removals; one after another it is 65 s"
    );

    // A pod waits out a 30 s grace period; a pod created meanwhile starts and is reported.
    write(&file, &stubborn_pod("slow", 1, 30, "slow"));
    seed.kubectl(&["apply", "-f", &file.display().to_string()]);
    wait(&mut agent, "slow to run", 60, || {
        running(&seed, "slow", 1).then_some(())
    });
    seed.kubectl(&["delete", "pod", "slow", "--wait=false"]);
    let deleted = Instant::now();
    write(
        &file,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: quick\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: docker.io/library/busybox:1.36\n    command: [\"sleep\", \"3600\"]\n",
    );
    seed.kubectl(&["apply", "-f", &file.display().to_string()]);
    wait(&mut agent, "quick to run and be reported", 60, || {
        running(&seed, "quick", 1).then_some(())
    });
    let slow = seed.try_get(&["pod", "slow"]);
    assert!(
        slow.is_some_and(|p| p["metadata"]["deletionTimestamp"].is_string()),
        "quick ran and was reported while slow still waited out its grace period ({:?} after \
         its deletion)",
        deleted.elapsed()
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
