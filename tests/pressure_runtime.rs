//! Admission under node pressure, against kube-sim and a real containerd: with a hard eviction
//! threshold the node cannot meet (memory.available < 99%: what the host itself uses is more
//! than 1%, and allocatable keeps that 1% for requests), the node reports MemoryPressure
//! and the agent refuses a BestEffort pod as the kubelet's eviction admit handler does (Failed,
//! Evicted, "The node had condition: [MemoryPressure]. "), while a Burstable pod and a
//! BestEffort pod that tolerates the memory-pressure taint run.
#![allow(clippy::expect_used)]

mod common;

use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;

fn pod(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: n1\n  \
         terminationGracePeriodSeconds: 1\n{extra}  containers:\n  - name: c\n    \
         image: docker.io/library/busybox:1.36\n    command: [\"sleep\", \"3600\"]\n{res}---\n",
        res = if name == "burstable" {
            "    resources:\n      requests:\n        memory: 1Mi\n"
        } else {
            ""
        }
    )
}

#[test]
fn memory_pressure_refuses_best_effort_pods_only() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed, mut agent, ..
    } = PodNode::start(
        &env,
        tmp.path(),
        "evictionHard:\n  memory.available: 99%\n",
        false,
    );
    let node = wait(&mut agent, "MemoryPressure on the node", 60, || {
        seed.try_get(&["node", "n1"]).filter(|n| {
            n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "MemoryPressure" && c["status"] == "True")
        })
    });
    let cond = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "MemoryPressure")
        .cloned()
        .unwrap_or_default();
    assert_eq!(cond["reason"], "KubeletHasInsufficientMemory", "{cond}");
    let manifest = tmp.path().join("pods.yaml");
    let tolerates = "  tolerations:\n  - key: node.kubernetes.io/memory-pressure\n    \
                     operator: Exists\n    effect: NoSchedule\n";
    write(
        &manifest,
        &[
            pod("besteffort", ""),
            pod("burstable", ""),
            pod("tolerant", tolerates),
        ]
        .concat(),
    );
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let refused = wait(&mut agent, "besteffort refused", 60, || {
        seed.try_get(&["pod", "besteffort"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(
        refused["status"]["reason"], "Evicted",
        "{}",
        refused["status"]
    );
    assert_eq!(
        refused["status"]["message"],
        "Pod was rejected: The node had condition: [MemoryPressure]. "
    );
    for name in ["burstable", "tolerant"] {
        wait(&mut agent, &format!("{name} running"), 60, || {
            seed.try_get(&["pod", name])
                .filter(|p| p["status"]["phase"] == "Running")
        });
    }
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
