//! The stats and metrics routes on a real node (issue #16): pods on a real containerd, read
//! with curl through the seed's authn/authz. `/stats/summary` decoded with a test-side copy of
//! the upstream Summary types (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`, unknown fields
//! refused) and held to the cgroup files read here; `/metrics/resource`, `/metrics/cadvisor`
//! and `/metrics/probes` parsed by the Prometheus project's own parser; `/run/` and `/logs/`;
//! `kubectl top` through metrics-server on the real control plane.
#![allow(clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::https::{cert_args, curl_at};
use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;
/// The upstream types, as their json tags spell them (every field is here to be decoded: a
/// name tinylet misspells is an unknown field, one it omits where Go does not is an error).
#[allow(dead_code)]
mod upstream {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Summary {
        pub node: NodeStats,
        pub pods: Vec<PodStats>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct NodeStats {
        pub node_name: String,
        pub system_containers: Option<Vec<ContainerStats>>,
        pub start_time: String,
        pub cpu: Option<CpuStats>,
        pub memory: Option<MemoryStats>,
        pub fs: Option<FsStats>,
        pub network: Option<NetworkStats>,
        pub runtime: Option<RuntimeStats>,
        pub rlimit: Option<RlimitStats>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct RuntimeStats {
        pub image_fs: Option<FsStats>,
        pub container_fs: Option<FsStats>,
    }

    /// `FsStats` is inline: its fields are spelled out here.
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct VolumeStats {
        pub time: String,
        pub available_bytes: Option<u64>,
        pub capacity_bytes: Option<u64>,
        pub used_bytes: Option<u64>,
        pub inodes_free: Option<u64>,
        pub inodes: Option<u64>,
        pub inodes_used: Option<u64>,
        pub name: String,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct PodStats {
        pub pod_ref: PodReference,
        pub start_time: String,
        pub containers: Vec<ContainerStats>,
        pub cpu: Option<CpuStats>,
        pub memory: Option<MemoryStats>,
        pub network: Option<NetworkStats>,
        pub volume: Option<Vec<VolumeStats>>,
        #[serde(rename = "ephemeral-storage")]
        pub ephemeral_storage: Option<FsStats>,
        #[serde(rename = "process_stats")]
        pub process_stats: Option<ProcessStats>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct ProcessStats {
        pub process_count: Option<u64>,
    }

    /// `InterfaceStats` is inline (`json:",inline"`): its fields are spelled out here.
    #[derive(Deserialize, Debug, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct NetworkStats {
        pub time: String,
        pub name: String,
        pub rx_bytes: Option<u64>,
        pub rx_errors: Option<u64>,
        pub tx_bytes: Option<u64>,
        pub tx_errors: Option<u64>,
        pub interfaces: Option<Vec<InterfaceStats>>,
    }

    #[derive(Deserialize, Debug, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct InterfaceStats {
        pub name: String,
        pub rx_bytes: Option<u64>,
        pub rx_errors: Option<u64>,
        pub tx_bytes: Option<u64>,
        pub tx_errors: Option<u64>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct PodReference {
        pub name: String,
        pub namespace: String,
        pub uid: String,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ContainerStats {
        pub name: String,
        pub start_time: String,
        pub cpu: Option<CpuStats>,
        pub memory: Option<MemoryStats>,
        pub rootfs: Option<FsStats>,
        pub logs: Option<FsStats>,
    }

    #[derive(Deserialize, Debug, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct CpuStats {
        pub time: String,
        pub usage_nano_cores: Option<u64>,
        pub usage_core_nano_seconds: Option<u64>,
    }

    #[derive(Deserialize, Debug, Clone)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct MemoryStats {
        pub time: String,
        pub available_bytes: Option<u64>,
        pub usage_bytes: Option<u64>,
        pub working_set_bytes: Option<u64>,
        pub rss_bytes: Option<u64>,
        pub page_faults: Option<u64>,
        pub major_page_faults: Option<u64>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct FsStats {
        pub time: String,
        pub available_bytes: Option<u64>,
        pub capacity_bytes: Option<u64>,
        pub used_bytes: Option<u64>,
        pub inodes_free: Option<u64>,
        pub inodes: Option<u64>,
        pub inodes_used: Option<u64>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct RlimitStats {
        pub time: String,
        pub maxpid: Option<u64>,
        pub curproc: Option<u64>,
    }
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: burn
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "while :; do :; done"]
    resources:
      requests: {cpu: 100m, memory: 16Mi}
---
apiVersion: v1
kind: Pod
metadata:
  name: idle
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "head -c 1048576 /dev/zero > /scratch/f && echo written && exec sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
    readinessProbe:
      exec: {command: ["true"]}
      periodSeconds: 1
  volumes:
  - {name: scratch, emptyDir: {}}
"#;

/// A figure read straight from a cgroup file of this machine.
fn cgroup_file(path: &str) -> u64 {
    read(std::path::Path::new(path))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn summary_and_resource_metrics_of_real_pods() {
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
        "enableSystemLogQuery: true\nfeatureGates:\n  NodeLogQuery: true\n",
        false,
    );
    let manifest = tmp.path().join("pods.yaml");
    write(&manifest, PODS);
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let serving = seed.cert_dir().join("kubelet-server-current.pem");
    wait(&mut agent, "the serving certificate", 30, || {
        serving.exists().then_some(())
    });
    let mut ids = HashMap::new();
    for name in ["burn", "idle"] {
        let id = wait(&mut agent, &format!("{name} to run"), 90, || {
            let p = seed.try_get(&["pod", name])?;
            let s = &p["status"]["containerStatuses"][0];
            s["state"]["running"].is_object().then(|| {
                (
                    p["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                    s["containerID"]
                        .as_str()
                        .unwrap_or("")
                        .replace("containerd://", ""),
                    p["status"]["qosClass"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase(),
                )
            })
        });
        ids.insert(name, id);
    }
    // The emptyDir is written before the first summary walks it (walks are cached).
    wait(&mut agent, "idle to write its emptyDir", 30, || {
        seed.kubectl(&["logs", "idle"])
            .contains("written")
            .then_some(())
    });
    let admin = cert_args(&seed.sim_dir, "admin");
    let ca = seed.sim_dir.join("ca.pem");
    let get = |path: &str| {
        let (code, body) = curl_at(&node_ip(), port, path, &ca, &admin);
        assert_eq!(code, "200", "{path}: {body}");
        body
    };
    let summary = |only: bool| -> upstream::Summary {
        let q = if only {
            "?only_cpu_and_memory=true"
        } else {
            ""
        };
        let body = get(&format!("/stats/summary{q}"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not a Summary: {e}\n{body}"))
    };
    let first = summary(false);
    std::thread::sleep(Duration::from_secs(3));
    let s = summary(false);

    let n = &s.node;
    assert_eq!(n.node_name, "n1");
    assert!(n.start_time.ends_with('Z'), "{}", n.start_time);
    let node_cpu = n.cpu.clone().expect("node cpu");
    let node_mem = n.memory.clone().expect("node memory");
    assert!(
        node_cpu.usage_nano_cores.is_some_and(|c| c > 0),
        "{node_cpu:?}"
    );
    assert!(node_mem.working_set_bytes.is_some_and(|w| w > 0));
    assert!(node_mem.available_bytes.is_some_and(|a| a > 0));
    let fs = n.fs.as_ref().expect("node fs");
    assert_eq!(
        fs.used_bytes.unwrap_or(0) + fs.available_bytes.unwrap_or(0),
        fs.capacity_bytes.unwrap_or(1)
    );
    assert!(
        n.rlimit
            .as_ref()
            .and_then(|r| r.curproc)
            .is_some_and(|p| p > 10)
    );
    let sys: Vec<&str> = n
        .system_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert!(sys.contains(&"pods") && sys.contains(&"kubelet"), "{sys:?}");

    let pod = |name: &str| {
        s.pods
            .iter()
            .find(|p| p.pod_ref.name == name && p.pod_ref.namespace == "default")
            .unwrap_or_else(|| panic!("no pod {name} in {:?}", s.pods))
    };
    let (burn, idle) = (pod("burn"), pod("idle"));
    assert_eq!(burn.pod_ref.uid, ids["burn"].0);
    let rate = |c: &Option<upstream::CpuStats>| c.as_ref().and_then(|c| c.usage_nano_cores);
    // A busy loop on a two-core machine that runs other tests: well above an idle sleep.
    let burning = rate(&burn.containers[0].cpu).expect("burn's rate");
    let idling = rate(&idle.containers[0].cpu).expect("idle's rate");
    assert!(burning > 200_000_000, "burn uses {burning} nanocores");
    assert!(idling < 50_000_000, "idle uses {idling} nanocores");
    assert!(
        rate(&burn.cpu).is_some_and(|p| p >= burning / 2),
        "the pod holds its container"
    );
    let cum = |c: &Option<upstream::CpuStats>| c.as_ref().and_then(|c| c.usage_core_nano_seconds);
    let burn_first = first
        .pods
        .iter()
        .find(|p| p.pod_ref.name == "burn")
        .expect("burn before");
    assert!(
        cum(&burn.containers[0].cpu) > cum(&burn_first.containers[0].cpu),
        "CPU time grows"
    );
    assert!(cum(&burn.cpu) >= cum(&burn.containers[0].cpu));
    assert!(cum(&Some(node_cpu.clone())) >= cum(&burn.cpu));

    // Held to the cgroup files, read here (v1 on this machine; v2 where the mount is unified).
    let (uid, id, qos) = &ids["idle"];
    let parent = format!("{}/kubepods/{qos}/pod{uid}/{id}", env.cgroup_parent());
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let usage_file = if unified {
        format!("/sys/fs/cgroup{parent}/memory.current")
    } else {
        format!("/sys/fs/cgroup/memory{parent}/memory.usage_in_bytes")
    };
    let on_disk = cgroup_file(&usage_file);
    let served = idle.containers[0]
        .memory
        .as_ref()
        .and_then(|m| m.usage_bytes)
        .expect("idle memory");
    assert!(
        served.abs_diff(on_disk) < 1 << 20,
        "idle's memory: served {served}, {usage_file} says {on_disk}"
    );
    assert_eq!(
        idle.containers[0].start_time.len(),
        "2026-12-02T00:00:00Z".len()
    );

    // Network: the pod's eth0 from its sandbox's namespace, held to what the pod itself reads
    // there a moment later (counters only grow; the probe traffic is small).
    let net = idle.network.clone().expect("idle's network");
    assert_eq!(net.name, "eth0", "{net:?}");
    let names: Vec<&str> = net
        .interfaces
        .iter()
        .flatten()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["eth0"], "no loopback");
    let served_rx = net.rx_bytes.expect("rxBytes");
    let dev = seed.kubectl(&["exec", "idle", "--", "cat", "/proc/net/dev"]);
    let inside: u64 = dev
        .lines()
        .find_map(|l| l.trim().strip_prefix("eth0:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no eth0 in the pod's /proc/net/dev:\n{dev}"));
    assert!(
        inside >= served_rx && inside - served_rx < 1 << 20,
        "eth0 rx: served {served_rx}, the pod reads {inside}"
    );
    assert!(
        n.network.as_ref().is_some_and(|n| n.interfaces.is_some()),
        "the node's network"
    );

    // Filesystems: the runtime's image filesystem, the container's writable layer and log, the
    // emptyDir holding the 1 MiB the pod wrote, and the sum as ephemeral storage.
    let image_fs = n
        .runtime
        .as_ref()
        .and_then(|r| r.image_fs.as_ref())
        .expect("imageFs");
    assert!(
        image_fs.used_bytes.is_some_and(|u| u > 1 << 20),
        "{image_fs:?}"
    );
    let c = &idle.containers[0];
    assert!(
        c.rootfs
            .as_ref()
            .is_some_and(|r| r.used_bytes.is_some() && r.capacity_bytes.is_some()),
        "{c:?}"
    );
    assert!(
        c.logs
            .as_ref()
            .and_then(|l| l.used_bytes)
            .is_some_and(|u| u > 0),
        "{c:?}"
    );
    let scratch = idle
        .volume
        .iter()
        .flatten()
        .find(|v| v.name == "scratch")
        .unwrap_or_else(|| panic!("no scratch volume in {:?}", idle.volume));
    let scratch_used = scratch.used_bytes.unwrap_or(0);
    assert!((1 << 20..2 << 20).contains(&scratch_used), "{scratch:?}");
    let eph = idle
        .ephemeral_storage
        .as_ref()
        .and_then(|e| e.used_bytes)
        .unwrap_or(0);
    assert!(
        eph >= scratch_used,
        "ephemeral {eph} holds the emptyDir's {scratch_used}"
    );

    // The pod's processes: the sandbox's pause and its container's at least.
    let procs = idle.process_stats.as_ref().and_then(|p| p.process_count);
    assert!(procs.is_some_and(|n| n >= 2), "{:?}", idle.process_stats);

    // only_cpu_and_memory: no filesystems, no process limits, no process counts.
    let small = summary(true);
    assert!(small.node.fs.is_none() && small.node.rlimit.is_none());
    assert!(small.pods.iter().all(|p| p.process_stats.is_none()));
    assert!(small.pods.iter().all(|p| p.network.is_none()));
    assert!(small.pods.iter().any(|p| p.pod_ref.name == "burn"));

    // /metrics/resource, parsed by prometheus_client; the figures metrics-server reads.
    let metrics = get("/metrics/resource");
    let families = prometheus_families(&metrics);
    for f in [
        "node_cpu_usage_seconds counter",
        "node_memory_working_set_bytes gauge",
        "container_cpu_usage_seconds counter",
        "container_memory_working_set_bytes gauge",
        "container_start_time_seconds gauge",
        "pod_cpu_usage_seconds counter",
        "resource_scrape_error gauge",
    ] {
        assert!(
            families.iter().any(|l| l.starts_with(f)),
            "no {f} in {families:?}"
        );
    }
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("container_cpu_usage_seconds_total{container=\"c\",namespace=\"default\",pod=\"burn\"}")
        })
        .unwrap_or_else(|| panic!("no burn series in\n{metrics}"));
    let secs: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a value");
    let before = cum(&burn.containers[0].cpu).unwrap_or(0) as f64 / 1e9;
    assert!(secs >= before, "{secs} s now, {before} s at the summary");
    assert!(metrics.contains("\nresource_scrape_error 0\n"));

    // /run/: a command run to its end in a container; a failing one is a 500 naming it.
    let mut post = admin.clone();
    post.extend(["-X".to_string(), "POST".to_string()]);
    let run = |q: &str| {
        curl_at(
            &node_ip(),
            port,
            &format!("/run/default/idle/c?cmd={q}"),
            &ca,
            &post,
        )
    };
    assert_eq!(run("echo+run+works"), ("200".into(), "run works\n".into()));
    assert_eq!(
        run("false"),
        ("500".into(), "command 'false' exited with 1: ".into())
    );
    let (code, body) = curl_at(
        &node_ip(),
        port,
        "/run/default/nopod/c?cmd=true",
        &ca,
        &post,
    );
    assert_eq!(
        (code.as_str(), body.trim()),
        ("404", "pod \"nopod\" does not exist")
    );

    // /logs/: the node's /var/log, listed and read; nothing outside it.
    let name = format!("tinylet-stats-test-{}", std::process::id());
    let file = std::path::Path::new("/var/log").join(format!("{name}.log"));
    let link = std::path::Path::new("/var/log").join(format!("{name}-escape"));
    write(&file, "a line of the node's log\n");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc/hostname", &link).expect("symlink");
    let listing = get("/logs/");
    let (read_back, escaped, dotdot) = (
        curl_at(&node_ip(), port, &format!("/logs/{name}.log"), &ca, &admin),
        curl_at(
            &node_ip(),
            port,
            &format!("/logs/{name}-escape"),
            &ca,
            &admin,
        )
        .0,
        {
            let mut a = admin.clone();
            a.push("--path-as-is".into());
            curl_at(&node_ip(), port, "/logs/../etc/passwd", &ca, &a).0
        },
    );
    // The node log query (enableSystemLogQuery with the NodeLogQuery gate). No journald runs
    // here, so a service is read from its file by the kubelet's heuristics.
    let queries = [
        format!("?query={name}"),
        format!("?query=./{name}.log"),
        format!("?query={name}&tailLines=1"),
        format!("?query={name}-escape"),
        format!("?query=/{name}.log"),
        format!("x?query={name}"),
        "?tailLines=x".to_string(),
    ];
    let answers: Vec<(String, String)> = queries
        .iter()
        .map(|q| curl_at(&node_ip(), port, &format!("/logs/{q}"), &ca, &admin))
        .collect();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&link);
    let line = "a line of the node's log\n";
    let want = [
        ("200", line.to_string()),
        ("200", line.to_string()),
        (
            "200",
            format!(
                "\noptions present and query resolved to log files for [{name}]\ntry without specifying options\n"
            ),
        ),
        (
            "200",
            format!(
                "\nerror getting log for {name}-escape: openat {name}-escape: path escapes from parent\n"
            ),
        ),
        (
            "406",
            format!(
                "query: Invalid value: [\"/{name}.log\"]: statat /{name}.log: path escapes from parent\n"
            ),
        ),
        ("406", "path not allowed in query mode\n".to_string()),
        (
            "400",
            "tailLines: Invalid value: \"x\": strconv.Atoi: parsing \"x\": invalid syntax\n"
                .to_string(),
        ),
    ];
    for ((q, got), (code, body)) in queries.iter().zip(&answers).zip(&want) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str()),
            (*code, body.as_str()),
            "/logs/{q}"
        );
    }
    assert!(
        listing.starts_with("<!doctype html>")
            && listing.contains(&format!("<a href=\"{name}.log\">")),
        "{listing}"
    );
    assert_eq!(
        read_back,
        ("200".into(), "a line of the node's log\n".into())
    );
    assert_eq!(
        (escaped.as_str(), dotdot.as_str()),
        ("404", "404"),
        "a symlink out of /var/log, and .."
    );

    // /metrics/probes: the idle pod's readiness probe, run every second.
    let probes = get("/metrics/probes");
    let families = prometheus_families(&probes);
    assert!(
        families
            .iter()
            .any(|l| l.starts_with("prober_probe counter")),
        "{families:?}"
    );
    let series = format!(
        "prober_probe_total{{container=\"c\",namespace=\"default\",pod=\"idle\",pod_uid=\"{}\",probe_type=\"Readiness\",result=\"successful\"}} ",
        ids["idle"].0
    );
    let runs: u64 = probes
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{probes}"));
    assert!(runs >= 2, "{runs} readiness runs");
    let timed = "prober_probe_duration_seconds_count{container=\"c\",namespace=\"default\",pod=\"idle\",probe_type=\"Readiness\"} ";
    let timed_runs: u64 = probes
        .lines()
        .find_map(|l| l.strip_prefix(timed))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {timed} in\n{probes}"));
    assert!(timed_runs >= 2, "{timed_runs} timed readiness runs");

    // /metrics/cadvisor: the series dashboards read, with cAdvisor's labels.
    let cadvisor = get("/metrics/cadvisor");
    let families = prometheus_families(&cadvisor);
    for f in [
        "container_cpu_usage_seconds counter",
        "container_memory_working_set_bytes gauge",
        "container_memory_rss gauge",
        "container_memory_usage_bytes gauge",
        "container_memory_cache gauge",
        "container_start_time_seconds gauge",
        "container_fs_usage_bytes gauge",
        "container_fs_reads counter",
        "machine_cpu_cores gauge",
        "machine_memory_bytes gauge",
    ] {
        assert!(
            families.iter().any(|l| l.starts_with(f)),
            "no {f} in {families:?}"
        );
    }
    let (_, id, _) = &ids["burn"];
    let burn_cpu = cadvisor
        .lines()
        .find(|l| {
            l.starts_with("container_cpu_usage_seconds_total{container=\"c\",cpu=\"total\"")
                && l.contains(&format!("name=\"{id}\""))
        })
        .unwrap_or_else(|| panic!("no burn container series in\n{cadvisor}"));
    assert!(
        burn_cpu.contains("image=\"docker.io/library/busybox:1.36\"")
            && burn_cpu.contains("namespace=\"default\",pod=\"burn\"}"),
        "{burn_cpu}"
    );
    // The settings of the CRI's cgroup: requests.cpu 100m is 102 shares, no limit no quota.
    let burn_shares = cadvisor
        .lines()
        .find(|l| {
            l.starts_with("container_spec_cpu_shares{container=\"c\"")
                && l.contains(&format!("name=\"{id}\""))
        })
        .unwrap_or_else(|| panic!("no container_spec_cpu_shares of burn in\n{cadvisor}"));
    assert!(burn_shares.ends_with("} 102"), "{burn_shares}");
    assert!(
        !cadvisor
            .lines()
            .any(|l| l.starts_with("container_spec_cpu_quota")
                && l.contains(&format!("name=\"{id}\""))),
        "burn has no CPU limit"
    );
    let idle_rx = cadvisor
        .lines()
        .find(|l| {
            l.starts_with("container_network_receive_bytes_total{container=\"\"")
                && l.contains("interface=\"eth0\"")
                && l.contains("pod=\"idle\"")
        })
        .unwrap_or_else(|| panic!("no network series of idle's sandbox in\n{cadvisor}"));
    assert!(idle_rx.contains("namespace=\"default\""), "{idle_rx}");
    // The sandbox's series carry containerd's sandbox_image (scripts/runtime-env's).
    assert!(
        idle_rx.contains("image=\"registry.k8s.io/pause:3.9\""),
        "{idle_rx}"
    );
    // The root's filesystem as cAdvisor reports it: its mount source as the device, its size
    // as `stat -f` gives it (fragment size times blocks).
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let root_dev = info
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(4) == Some(&"/"))
        .and_then(|f| Some(f[f.iter().position(|w| *w == "-")? + 2].to_string()))
        .expect("the mount of /");
    let size = std::process::Command::new("stat")
        .args(["-f", "-c", "%S %b", "/"])
        .output()
        .map(|o| text(&o.stdout))
        .expect("stat -f /");
    let size: u64 = size
        .split_whitespace()
        .map(|n| n.parse::<u64>().expect("a number"))
        .product();
    let limit = format!(
        "container_fs_limit_bytes{{container=\"\",device=\"{root_dev}\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"}} {size} "
    );
    assert!(
        cadvisor.lines().any(|l| l.starts_with(&limit)),
        "no {limit:?} in\n{cadvisor}"
    );

    // /metrics: the kubelet's own series that dashboards read, of this node's runtime.
    let own = get("/metrics");
    let families = prometheus_families(&own);
    for f in [
        "kubelet_node_name gauge",
        "kubelet_running_pods gauge",
        "kubelet_running_containers gauge",
        "kubelet_pod_start_duration_seconds histogram",
        "kubelet_runtime_operations counter",
        "kubelet_runtime_operations_duration_seconds histogram",
    ] {
        assert!(
            families.iter().any(|l| l.starts_with(f)),
            "no {f} in {families:?}"
        );
    }
    let sample = |series: &str| -> f64 {
        own.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{own}"))
    };
    assert_eq!(sample("kubelet_node_name{node=\"n1\"}"), 1.0);
    assert!(sample("kubelet_running_pods") >= 2.0);
    assert!(sample("kubelet_running_containers{container_state=\"running\"}") >= 2.0);
    assert!(sample("kubelet_pod_start_duration_seconds_count") >= 2.0);
    assert!(sample("kubelet_runtime_operations_total{operation_type=\"create_container\"}") >= 2.0);
    assert!(sample("kubelet_runtime_operations_total{operation_type=\"list_podsandbox\"}") >= 1.0);
    assert!(
        sample(
            "kubelet_runtime_operations_duration_seconds_count{operation_type=\"run_podsandbox\"}"
        ) >= 2.0
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}

/// `kubectl top` on the real control plane: metrics-server (v0.8, `scripts/upstream
/// metrics-server`) scrapes the node's `/metrics/resource` as on any cluster (its own client
/// certificate, the kubelet's authz by SubjectAccessReview on nodes/metrics, the serving
/// certificate verified with the cluster CA), and `kubectl top node` / `top pod` print figures
/// through the aggregated metrics.k8s.io API: the busy pod above the idle one.
#[test]
fn kubectl_top_through_metrics_server() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed, mut agent, ..
    } = PodNode::start(&env, tmp.path(), "", false);
    assert!(
        seed.upstream(),
        "metrics-server needs the real control plane (TINYLET_CONTROL_PLANE=sim was set)"
    );
    let manifest = tmp.path().join("pods.yaml");
    write(&manifest, PODS);
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let serving = seed.cert_dir().join("kubelet-server-current.pem");
    wait(&mut agent, "the serving certificate", 30, || {
        serving.exists().then_some(())
    });
    let out = run(std::process::Command::new(repo().join("scripts/upstream"))
        .arg("metrics-server")
        .arg(&seed.sim_dir)
        .arg(node_ip()));
    assert!(
        out.status.success(),
        "scripts/upstream metrics-server: {}",
        text(&out.stderr)
    );
    let ms_log = || read(&seed.sim_dir.join("logs/metrics-server.log"));
    // Two scrapes (15 s apart) before a rate exists.
    let node = wait_until("kubectl top node", 120, &mut || ms_log(), || {
        seed.try_kubectl(&["top", "node", "n1", "--no-headers"])
    });
    let f: Vec<&str> = node.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"n1"), "{node}");
    assert!(
        f.get(1).is_some_and(|c| c.ends_with('m')) && f.get(3).is_some_and(|m| m.ends_with("Mi")),
        "cores and memory: {node}"
    );
    let millicores = |pod: &str| -> Option<u64> {
        let line = seed.try_kubectl(&["top", "pod", pod, "--no-headers"])?;
        line.split_whitespace()
            .nth(1)?
            .strip_suffix('m')?
            .parse()
            .ok()
    };
    let (burn, idle) = wait_until("kubectl top pod", 120, &mut || ms_log(), || {
        Some((millicores("burn")?, millicores("idle")?))
    });
    assert!(burn > 200 && idle < 50, "burn {burn}m, idle {idle}m");
    let containers = seed.kubectl(&["top", "pod", "burn", "--containers", "--no-headers"]);
    assert!(
        containers.starts_with("burn") && containers.contains(" c "),
        "{containers}"
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
