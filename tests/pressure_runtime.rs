//! Node pressure against the real control plane and a real containerd, with thresholds the
//! node cannot meet (memory.available < 99%: what the host itself uses is more than 1%, and
//! allocatable keeps that 1% for requests).
//!
//! Admission: with a soft threshold inside its grace period the node reports MemoryPressure
//! and the agent refuses a BestEffort pod as the kubelet's eviction admit handler does (Failed,
//! Evicted, "The node had condition: [MemoryPressure]. "), while a Burstable pod and a
//! BestEffort pod that tolerates the memory-pressure taint run (and, the grace period not
//! over, are not evicted).
//!
//! Eviction: once a soft threshold's grace period is over, the eviction manager evicts one pod
//! per round in the kubelet's order (the pod over its memory request first, then the one
//! within it), each within `evictionMaxPodGracePeriod` though it would take longer: Failed,
//! Evicted, the kubelet's message, a DisruptionTarget condition, an Evicted event, counted in
//! `kubelet_evictions`; a critical pod (priority >= 2000000000) is never evicted.
#![allow(clippy::expect_used)]

mod common;

use common::https::{cert_args, curl_at};
use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;
use serde_json::{Value, json};

fn pod(name: &str, extra: &str, request: Option<&str>, command: &str) -> String {
    let res = request.map_or_else(String::new, |r| {
        format!("    resources:\n      requests:\n        memory: {r}\n")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: n1\n\
         {extra}  containers:\n  - name: c\n    image: docker.io/library/busybox:1.36\n    \
         command: [\"sh\", \"-c\", {command:?}]\n{res}---\n"
    )
}

const SLEEP: &str = "sleep 3600";

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
        "evictionHard:\n  memory.available: 1Ki\nevictionSoft:\n  memory.available: 99%\n\
         evictionSoftGracePeriod:\n  memory.available: 1h\n",
        false,
    );
    let node = wait(&mut agent, "MemoryPressure on the node", 60, || {
        seed.try_get(&["node", "n1"])
            .filter(|n| condition(n, "MemoryPressure")["status"] == "True")
    });
    let cond = condition(&node, "MemoryPressure");
    assert_eq!(cond["reason"], "KubeletHasInsufficientMemory", "{cond}");
    let manifest = tmp.path().join("pods.yaml");
    let tolerates = "  tolerations:\n  - key: node.kubernetes.io/memory-pressure\n    \
                     operator: Exists\n    effect: NoSchedule\n";
    write(
        &manifest,
        &[
            pod("besteffort", "", None, SLEEP),
            pod("burstable", "", Some("1Mi"), SLEEP),
            pod("tolerant", tolerates, None, SLEEP),
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
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.contains("evicting pod")),
        "nothing is evicted within the soft threshold's grace period"
    );
}

#[test]
fn pods_are_evicted_one_at_a_time_in_the_kubelets_order() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed,
        mut agent,
        port,
        ..
    } = PodNode::start(
        &env,
        tmp.path(),
        "evictionHard:\n  memory.available: 1Ki\nevictionSoft:\n  memory.available: 99%\n\
         evictionSoftGracePeriod:\n  memory.available: 20s\nevictionMaxPodGracePeriod: 3\n",
        false,
    );
    let manifest = tmp.path().join("pods.yaml");
    // The hog holds 16 MiB over its 1Mi request and ignores SIGTERM (its 60 s grace period
    // would run out before it stopped); calm stays within its request.
    let hog = "trap '' TERM; x=$(head -c 16777216 /dev/zero | tr '\\0' a); sleep 3600 & wait";
    write(
        &manifest,
        &[
            pod(
                "hog",
                "  terminationGracePeriodSeconds: 60\n",
                Some("1Mi"),
                hog,
            ),
            pod("calm", "", Some("256Mi"), SLEEP),
            // The built-in class of 2000001000 (system-node-critical).
            pod(
                "critical",
                "  priorityClassName: system-node-critical\n",
                Some("1Mi"),
                SLEEP,
            )
            .replace(
                "  name: critical\n",
                "  name: critical\n  namespace: kube-system\n",
            ),
        ]
        .concat(),
    );
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    for (name, ns) in [
        ("hog", "default"),
        ("calm", "default"),
        ("critical", "kube-system"),
    ] {
        wait(&mut agent, &format!("{name} running"), 60, || {
            seed.try_get(&["pod", name, "-n", ns])
                .filter(|p| p["status"]["phase"] == "Running")
        });
    }
    let hog = wait(&mut agent, "the hog evicted", 120, || {
        seed.try_get(&["pod", "hog"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    let calm = seed.try_get(&["pod", "calm"]).unwrap_or_default();
    assert_eq!(
        calm["status"]["phase"], "Running",
        "one pod per round: calm is not evicted with the hog"
    );
    let st = &hog["status"];
    assert_eq!(st["reason"], "Evicted", "{st}");
    let hog_message = st["message"].as_str().unwrap_or_default().to_string();
    let message = hog_message.as_str();
    assert!(
        message.starts_with("The node was low on resource: memory. Threshold quantity: "),
        "{message}"
    );
    assert!(
        message.ends_with(", request is 1Mi, has larger consumption of memory. ")
            && message.contains("Container c was using "),
        "{message}"
    );
    let disruption = condition(&hog, "DisruptionTarget");
    assert_eq!(disruption["reason"], "TerminationByKubelet", "{st}");
    assert_eq!(disruption["message"], st["message"]);
    // Killed within the eviction's 3 s, not its own 60 s.
    let hog = wait(&mut agent, "the hog's container stopped", 30, || {
        seed.try_get(&["pod", "hog"])
            .filter(|p| p["status"]["containerStatuses"][0]["state"]["terminated"].is_object())
    });
    let terminated = &hog["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 137, "{terminated}");
    let secs = |v: &Value| {
        v.as_str()
            .and_then(tinylet::timefmt::parse_rfc3339)
            .unwrap_or_else(|| panic!("not a time: {v}"))
    };
    let took =
        secs(&terminated["finishedAt"]).saturating_sub(secs(&disruption["lastTransitionTime"]));
    assert!(took <= 15, "stopped {took} s after its eviction");
    // Then calm, within its request: the message names no container.
    let calm = wait(&mut agent, "calm evicted", 120, || {
        seed.try_get(&["pod", "calm"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    let message = calm["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("The node was low on resource: memory. ")
            && !message.contains("Container"),
        "{message}"
    );
    // The critical pod is never evicted.
    agent.expect("eviction manager: unable to evict any pods from the node");
    assert_eq!(
        seed.try_get(&["pod", "critical", "-n", "kube-system"])
            .unwrap_or_default()["status"]["phase"],
        "Running"
    );
    let evicted_events = wait(&mut agent, "the Evicted events", 30, || {
        let events = seed.try_get(&["events"])?;
        let evicted: Vec<Value> = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["reason"] == "Evicted" && e["type"] == "Warning")
            .cloned()
            .collect();
        (evicted.len() == 2).then_some(evicted)
    });
    // Annotated as the kubelet's: the containers over their request and their usage (as in
    // the message), the starved resource.
    let notes = |pod: &str| {
        evicted_events
            .iter()
            .find(|e| e["involvedObject"]["name"] == pod)
            .map(|e| e["metadata"]["annotations"].clone())
            .unwrap_or_default()
    };
    let hog_notes = notes("hog");
    let usage = hog_notes["offending_containers_usage"]
        .as_str()
        .unwrap_or("-");
    assert_eq!(hog_notes["offending_containers"], "c", "{hog_notes}");
    assert!(
        hog_message.contains(&format!("Container c was using {usage}, request is 1Mi")),
        "{hog_notes} against {hog_message}"
    );
    assert_eq!(hog_notes["starved_resource"], "memory", "{hog_notes}");
    assert_eq!(
        notes("calm"),
        json!({"offending_containers": "", "offending_containers_usage": "", "starved_resource": "memory"})
    );
    let (code, metrics) = curl_at(
        &node_ip(),
        port,
        "/metrics",
        &seed.sim_dir.join("ca.pem"),
        &cert_args(&seed.sim_dir, "admin"),
    );
    assert_eq!(code, "200", "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l == "kubelet_evictions{eviction_signal=\"memory.available\"} 2"),
        "{metrics}"
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
