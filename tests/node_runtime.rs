//! The Node against kube-sim and a real containerd, checked with kubectl: registration with the
//! kubelet's labels, taints, annotation, addresses and nodeInfo; capacity and allocatable from
//! this host and the config's reservations; Ready following the runtime; the Lease; events;
//! a clean stop, Unknown after the lease runs out, and a restart that reconciles.
#![allow(clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::runtime::RuntimeEnv;
use common::*;
use serde_json::Value;

fn get(seed: &Seed, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&seed.kubectl(&a)).expect("kubectl json")
}

fn wait<T>(what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
    wait_until(what, secs, &mut String::new, f)
}

fn first_line(path: &str) -> String {
    read(std::path::Path::new(path))
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Bytes of a quantity the agent writes for memory ("<n>Ki", "<n>Mi", "<n>").
fn bytes(q: &str) -> u64 {
    for (suffix, mult) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().expect("number") * mult;
        }
    }
    q.parse().expect("number")
}

fn meminfo_kb(field: &str) -> u64 {
    read(std::path::Path::new("/proc/meminfo"))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("meminfo field")
}

fn event_reasons(seed: &Seed) -> Vec<String> {
    get(seed, &["events", "-n", "default"])["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|e| {
                    e["involvedObject"]["name"] == "n1" && e["involvedObject"]["kind"] == "Node"
                })
                .filter_map(|e| e["reason"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn node_registers_reports_status_and_keeps_its_lease() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &[]);
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    let cfg = seed.config(&format!(
        "nodeStatusUpdateFrequency: 1s\nnodeStatusReportFrequency: 1m\nnodeLeaseDurationSeconds: 4\n\
         maxPods: 220\npodLogsDir: {}\nregisterWithTaints:\n- key: edge\n  value: \"true\"\n  effect: NoSchedule\n\
         providerID: edge://n1\nsystemReserved:\n  cpu: 100m\n  memory: 200Mi\nkubeReserved:\n  memory: 56Mi\n\
         evictionHard:\n  memory.available: 100Mi\n  nodefs.available: 1Gi\n",
        tmp.path().join("pod-logs").display()
    ));
    let args = seed.agent_args(
        "n1",
        &[
            format!("--config={}", cfg.display()),
            "--node-ip=192.0.2.10".into(),
            "--node-labels=tier=edge,example.com/zone=lab".into(),
            format!(
                "--container-runtime-endpoint=unix://{}",
                env.endpoint().path()
            ),
            format!("--root-dir={}", tmp.path().join("root").display()),
            "--v=2".into(),
        ],
    );
    let mut agent = Agent::start(&args);
    agent.expect("Successfully registered node \"n1\"");
    let node = wait("Ready=True", 30, || {
        seed.try_get(&["node", "n1"])
            .filter(|n| condition(n, "Ready")["status"] == "True")
    });

    // Identity: labels, annotation, taints, providerID, addresses.
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    };
    let labels = &node["metadata"]["labels"];
    for (k, v) in [
        ("kubernetes.io/hostname", "n1"),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch),
        ("tier", "edge"),
        ("example.com/zone", "lab"),
    ] {
        assert_eq!(labels[k], v, "label {k} in {labels}");
    }
    assert_eq!(
        node["metadata"]["annotations"]["volumes.kubernetes.io/controller-managed-attach-detach"],
        "true"
    );
    // The registered taint. The real control plane's node lifecycle controller adds its own
    // (node.kubernetes.io/not-ready while the node is not Ready yet); those are not ours.
    let ours: Vec<&serde_json::Value> = node["spec"]["taints"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter(|t| {
                    !t["key"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with("node.kubernetes.io/")
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        ours,
        [&serde_json::json!({"key": "edge", "value": "true", "effect": "NoSchedule"})]
    );
    assert_eq!(node["spec"]["providerID"], "edge://n1");
    let st = &node["status"];
    assert_eq!(
        st["addresses"],
        serde_json::json!([{"type": "InternalIP", "address": "192.0.2.10"}, {"type": "Hostname", "address": "n1"}])
    );
    assert_eq!(st["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);

    // nodeInfo, against this host and the runtime's own answer.
    let v = env
        .client()
        .version(&Default::default())
        .expect("CRI version");
    let info = &st["nodeInfo"];
    let os_image = read(std::path::Path::new("/etc/os-release"))
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    for (k, want) in [
        ("machineID", first_line("/etc/machine-id")),
        ("bootID", first_line("/proc/sys/kernel/random/boot_id")),
        ("kernelVersion", first_line("/proc/sys/kernel/osrelease")),
        ("osImage", os_image),
        (
            "containerRuntimeVersion",
            format!("{}://{}", v.runtime_name, v.runtime_version),
        ),
        ("kubeletVersion", "v1.32.0".into()),
        ("operatingSystem", "linux".into()),
        ("architecture", arch.into()),
    ] {
        assert_eq!(info[k], want.as_str(), "nodeInfo.{k}");
    }
    assert!(
        info["containerRuntimeVersion"]
            .as_str()
            .is_some_and(|s| s.starts_with("containerd://1.")),
        "{info}"
    );

    // Capacity from the host; allocatable = capacity - reservations - hard eviction - huge pages.
    let cpus = read(std::path::Path::new("/proc/cpuinfo"))
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u64;
    let cap = &st["capacity"];
    let alloc = &st["allocatable"];
    assert_eq!(cap["cpu"], cpus.to_string());
    assert_eq!(cap["memory"], format!("{}Ki", meminfo_kb("MemTotal")));
    assert_eq!(cap["pods"], "220");
    let huge: u64 = cap
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("hugepages-"))
                .map(|(_, v)| bytes(v.as_str().unwrap_or("0")))
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(alloc["cpu"], format!("{}m", cpus * 1000 - 100));
    assert_eq!(
        bytes(alloc["memory"].as_str().unwrap_or("")),
        meminfo_kb("MemTotal") * 1024 - (200 << 20) - (56 << 20) - (100 << 20) - huge
    );
    let root_fs = nix::sys::statvfs::statvfs(&tmp.path().join("root")).expect("statvfs");
    let disk = root_fs.blocks() as u64 * root_fs.fragment_size() as u64;
    assert_eq!(bytes(cap["ephemeral-storage"].as_str().unwrap_or("")), disk);
    assert_eq!(
        bytes(alloc["ephemeral-storage"].as_str().unwrap_or("")),
        disk - (1 << 30)
    );

    // Conditions, Ready last; images from the runtime.
    let types: Vec<&str> = st["conditions"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["type"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        types,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    assert_eq!(
        condition(&node, "Ready")["message"],
        "kubelet is posting ready status"
    );
    assert_eq!(
        condition(&node, "MemoryPressure")["reason"],
        "KubeletHasSufficientMemory"
    );
    let names: Vec<&str> = st["images"]
        .as_array()
        .map(|i| {
            i.iter()
                .flat_map(|i| i["names"].as_array().into_iter().flatten())
                .filter_map(Value::as_str)
                .collect()
        })
        .unwrap_or_default();
    for want in [
        "docker.io/library/busybox:1.36",
        "registry.k8s.io/pause:3.9",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }

    // The lease: owned by the node, renewed every quarter of its 4 s.
    let lease_out = || seed.try_get(&["lease", "-n", "kube-node-lease", "n1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lease = loop {
        if let Some(l) = lease_out() {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no lease; agent log:\n{}",
            agent.log_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(lease["spec"]["holderIdentity"], "n1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 4);
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"],
        node["metadata"]["uid"]
    );
    let renewed = lease["spec"]["renewTime"].clone();
    wait("a lease renewal", 5, || {
        let l = get(&seed, &["lease", "-n", "kube-node-lease", "n1"]);
        (l["spec"]["renewTime"] != renewed).then_some(())
    });

    // Heartbeat-only changes wait for nodeStatusReportFrequency (1m): no writes meanwhile.
    let rv = seed
        .try_get(&["node", "n1"])
        .map(|n| n["metadata"]["resourceVersion"].clone());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        seed.try_get(&["node", "n1"])
            .map(|n| n["metadata"]["resourceVersion"].clone()),
        rv,
        "status written without a change"
    );

    let reasons = wait("the start-up events", 10, || {
        let r = event_reasons(&seed);
        r.iter().any(|r| r == "NodeHasSufficientPID").then_some(r)
    });
    for want in [
        "Starting",
        "NodeHasSufficientMemory",
        "NodeHasNoDiskPressure",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} not in {reasons:?}"
        );
    }

    // Ready follows the runtime, within one update period (1 s) plus slack.
    let was_ready_at = condition(&node, "Ready")["lastTransitionTime"].clone();
    env.stop_containerd();
    let down = wait("Ready=False after containerd stops", 10, || {
        seed.try_get(&["node", "n1"])
            .filter(|n| condition(n, "Ready")["status"] == "False")
    });
    let r = condition(&down, "Ready");
    assert_eq!(r["reason"], "KubeletNotReady");
    assert_eq!(r["message"], "container runtime is down");
    assert_ne!(r["lastTransitionTime"], was_ready_at);
    env.start_containerd();
    let up = wait("Ready=True after containerd starts", 20, || {
        seed.try_get(&["node", "n1"])
            .filter(|n| condition(n, "Ready")["status"] == "True")
    });
    assert_eq!(condition(&up, "Ready")["reason"], "KubeletReady");
    let reasons = wait("NodeNotReady and NodeReady events", 10, || {
        let r = event_reasons(&seed);
        (r.iter().any(|r| r == "NodeNotReady") && r.iter().any(|r| r == "NodeReady")).then_some(r)
    });
    assert!(!reasons.is_empty());

    // SIGTERM: heartbeats stop, the agent exits 0; the lease runs out and the node goes Unknown.
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    let unknown = wait("Ready=Unknown after the lease expires", 40, || {
        seed.try_get(&["node", "n1"])
            .filter(|n| condition(n, "Ready")["status"] == "Unknown")
    });
    assert_eq!(
        condition(&unknown, "Ready")["message"],
        "Kubelet stopped posting node status."
    );

    // A restart reconciles the existing node: same object, default labels restored, an
    // admin's own label left alone, Ready again.
    seed.kubectl(&["label", "node", "n1", "kubernetes.io/arch-", "owner=ops"]);
    let mut agent = Agent::start(&args);
    agent.expect("Node \"n1\" was previously registered");
    let again = wait("Ready=True after the restart", 30, || {
        seed.try_get(&["node", "n1"])
            .filter(|n| condition(n, "Ready")["status"] == "True")
    });
    assert_eq!(again["metadata"]["uid"], node["metadata"]["uid"]);
    assert_eq!(again["metadata"]["labels"]["kubernetes.io/arch"], arch);
    assert_eq!(again["metadata"]["labels"]["owner"], "ops");
    assert_eq!(
        get(&seed, &["nodes"])["items"].as_array().map(Vec::len),
        Some(1)
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
