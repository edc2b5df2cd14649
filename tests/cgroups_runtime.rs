//! Pod cgroups as the kubelet sets them, against the real control plane (its API server gives
//! the QoS class and takes pod-level resources) and a real containerd (cgroup v1 here, v2
//! where the machine has it): a Guaranteed pod's cpu shares, CFS quota and memory
//! limit; a Burstable pod with a sidecar (its requests added up, no quota: not every container
//! has a cpu limit); and a pod with pod-level resources (`spec.resources`) whose containers
//! have none: the pod's cgroup and each container's take the pod-level limits, and a container
//! that goes past the memory limit is OOM-killed. The QoS tiers' cgroups: `burstable` at the
//! shares of its pods' cpu requests, `besteffort` at 2, `kubepods` at the node's capacity. The
//! containers' OOM scores, a sidecar's no higher than its app's.
#![allow(clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;
use serde_json::Value;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: guaranteed
spec:
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
    resources:
      limits: {cpu: 200m, memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: burstable
spec:
  initContainers:
  - name: proxy
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
    restartPolicy: Always
    resources:
      requests: {cpu: 250m, memory: 16Mi}
      limits: {memory: 64Mi}
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
    resources:
      requests: {cpu: 250m, memory: 32Mi}
      limits: {memory: 64Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: podlevel
spec:
  restartPolicy: Never
  resources:
    requests: {cpu: 100m, memory: 32Mi}
    limits: {cpu: 500m, memory: 96Mi}
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
  - name: hog
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "sleep 2; x=$(head -c 157286400 /dev/zero | tr '\\0' a); sleep 3600"]
"#;

/// The directory of cgroup `rel` in the controller `ctrl` (v1), or in the unified hierarchy.
fn cgroup_dir(ctrl: &str, rel: &str) -> PathBuf {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let root = if v2 {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup").join(ctrl)
    };
    root.join(rel.trim_start_matches('/'))
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

fn file(ctrl: &str, rel: &str, name: &str) -> String {
    read(&cgroup_dir(ctrl, rel).join(name)).trim().to_string()
}

/// The pod's cgroup under the runtime's parent, by its QoS class.
fn pod_cgroup(env: &RuntimeEnv, pod: &Value) -> String {
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let qos = match pod["status"]["qosClass"].as_str() {
        Some("Guaranteed") => String::new(),
        Some(q) => format!("/{}", q.to_lowercase()),
        None => panic!("no qosClass: {pod}"),
    };
    format!("{}/kubepods{qos}/pod{uid}", env.cgroup_parent())
}

fn container_id(pod: &Value, name: &str) -> String {
    ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .and_then(|c| c["containerID"].as_str())
        .and_then(|id| id.strip_prefix("containerd://"))
        .unwrap_or_else(|| panic!("no container {name}: {pod}"))
        .to_string()
}

#[test]
fn pod_cgroups_carry_the_kubelets_shares_quota_and_limits() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed, mut agent, ..
    } = PodNode::start(&env, tmp.path(), "", false);
    let manifest = tmp.path().join("pods.yaml");
    write(&manifest, PODS);
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let [g, b, p] = ["guaranteed", "burstable", "podlevel"].map(|name| {
        wait(&mut agent, &format!("{name} running"), 60, || {
            seed.try_get(&["pod", name])
                .filter(|p| p["status"]["phase"] == "Running")
        })
    });
    let qos: Vec<&Value> = [&g, &b, &p].map(|p| &p["status"]["qosClass"]).to_vec();
    assert_eq!(qos, ["Guaranteed", "Burstable", "Burstable"]);

    let mem = if v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    let shares = |rel: &str| {
        if v2() {
            file("cpu", rel, "cpu.weight")
        } else {
            file("cpu", rel, "cpu.shares")
        }
    };
    let quota = |rel: &str| {
        if v2() {
            file("cpu", rel, "cpu.max")
        } else {
            let q = file("cpu", rel, "cpu.cfs_quota_us");
            format!("{q} {}", file("cpu", rel, "cpu.cfs_period_us"))
        }
    };
    let unlimited_quota = if v2() { "max 100000" } else { "-1 100000" };

    // Guaranteed: 200m -> 204 shares (weight 8), 20 ms of every 100 ms, 64 MiB.
    let rel = pod_cgroup(&env, &g);
    assert_eq!(shares(&rel), if v2() { "8" } else { "204" });
    assert_eq!(quota(&rel), "20000 100000");
    assert_eq!(file("memory", &rel, mem), (64u64 << 20).to_string());

    // Burstable: 250m + 250m (the sidecar added) -> 512 shares; no quota (no cpu limits);
    // 64 MiB + 64 MiB of memory.
    let rel = pod_cgroup(&env, &b);
    assert_eq!(shares(&rel), if v2() { "20" } else { "512" });
    assert_eq!(quota(&rel), unlimited_quota);
    assert_eq!(file("memory", &rel, mem), (128u64 << 20).to_string());

    // Pod-level: the pod's requests and limits, not its containers' (none).
    let rel = pod_cgroup(&env, &p);
    assert_eq!(shares(&rel), if v2() { "4" } else { "102" });
    assert_eq!(quota(&rel), "50000 100000");
    assert_eq!(file("memory", &rel, mem), (96u64 << 20).to_string());
    // Its container without limits gets the pod-level ones in its own cgroup.
    let c = format!("{rel}/{}", container_id(&p, "c"));
    assert_eq!(file("memory", &c, mem), (96u64 << 20).to_string());
    assert_eq!(quota(&c), "50000 100000");

    // The QoS tiers: burstable at the shares of its pods' requests (250m + 250m + 100m),
    // besteffort at the least, kubepods at the node's (no reservations: its capacity).
    let tiers = format!("{}/kubepods", env.cgroup_parent());
    let (burstable, besteffort) = (format!("{tiers}/burstable"), format!("{tiers}/besteffort"));
    wait(&mut agent, "the burstable tier's shares", 10, || {
        (shares(&burstable) == if v2() { "24" } else { "614" }).then_some(())
    });
    assert_eq!(shares(&besteffort), if v2() { "1" } else { "2" });
    let cpus = read(Path::new("/proc/cpuinfo"))
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u64;
    let node_shares = cpus * 1024;
    let node_weight = 1 + (node_shares - 2) * 9999 / 262_142;
    assert_eq!(
        shares(&tiers),
        if v2() { node_weight } else { node_shares }.to_string()
    );
    let mem_total_kib: u64 = read(Path::new("/proc/meminfo"))
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(
        file("memory", &tiers, mem),
        (mem_total_kib * 1024).to_string()
    );

    // OOM scores, read from the containers' processes: Guaranteed -997 (below); Burstable
    // 1000 - 1000 x request / memory, the sidecar no higher than the app (32 of 16 MiB).
    let oom = |pod: &Value, name: &str| {
        let rel = format!("{}/{}", pod_cgroup(&env, pod), container_id(pod, name));
        let pid = file("memory", &rel, "cgroup.procs")
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        read(&Path::new("/proc").join(pid).join("oom_score_adj"))
            .trim()
            .to_string()
    };
    // This containerd runs with restrict_oom_score_adj (scripts/runtime-env): it raises a
    // score below its own, inherited from this test, to its own.
    let own: i64 = read(Path::new("/proc/self/oom_score_adj"))
        .trim()
        .parse()
        .unwrap_or(0);
    assert_eq!(oom(&g, "c"), (-997i64).max(own).to_string());
    let app = 1000 - 1000 * (32u64 << 20) / (mem_total_kib * 1024);
    assert_eq!(oom(&b, "app"), app.to_string());
    assert_eq!(
        oom(&b, "proxy"),
        app.to_string(),
        "the sidecar's own would be higher"
    );

    // The hog goes past the pod's 96 MiB: OOM-killed, not let out.
    let p = wait(&mut agent, "the hog OOM-killed", 60, || {
        seed.try_get(&["pod", "podlevel"]).filter(|p| {
            p["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["name"] == "hog" && c["state"]["terminated"].is_object())
        })
    });
    let hog = p["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "hog")
        .cloned()
        .unwrap_or_default();
    assert_eq!(hog["state"]["terminated"]["reason"], "OOMKilled", "{hog}");
    assert_eq!(hog["state"]["terminated"]["exitCode"], 137, "{hog}");
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
