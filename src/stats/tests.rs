//! The collector on fixture hosts (cgroup v1 and v2): what the summary holds for the node, a
//! pod and its running container, and the CPU rate from two samples.

use std::time::{Duration, SystemTime};

use serde_json::json;

use super::*;

const MEMINFO: &str = "MemTotal:       16384000 kB\nMemFree:         8192000 kB\n\
    AnonPages:       1024000 kB\nInactive(file):  2048000 kB\n";

pub(super) fn tree(files: &[(String, String)]) -> (tempfile::TempDir, Roots) {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (p, c) in files {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap_or(d.path()))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, c).unwrap_or_else(|e| panic!("{e}"));
    }
    let roots = Roots {
        proc_: d.path().join("proc"),
        sys: d.path().join("sys"),
        etc: d.path().join("etc"),
        cgroup: d.path().join("cgroup"),
    };
    (d, roots)
}

pub(super) fn proc_files(self_cgroup: &str) -> Vec<(String, String)> {
    [
        ("proc/meminfo", MEMINFO),
        ("proc/stat", "cpu  1 2 3\nbtime 1796170000\n"),
        ("proc/loadavg", "0.10 0.20 0.30 2/345 999\n"),
        ("proc/sys/kernel/pid_max", "4194304\n"),
        ("proc/sys/kernel/threads-max", "95000\n"),
        ("proc/self/cgroup", self_cgroup),
        ("proc/sys/kernel/random/boot_id", "b-1\n"),
        ("proc/sys/kernel/osrelease", "6.1.0\n"),
        ("sys/devices/system/cpu/online", "0-1\n"),
        ("etc/machine-id", "m-1\n"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect()
}

fn pod_view() -> PodView {
    PodView::of(json!({
        "metadata": {"namespace": "default", "name": "web", "uid": "u1"},
        "spec": {"containers": [{"name": "app"}, {"name": "done"}]},
        "status": {"qosClass": "BestEffort", "startTime": "2026-12-02T00:00:00Z",
            "containerStatuses": [
                {"name": "app", "containerID": "containerd://c1",
                 "state": {"running": {"startedAt": "2026-12-02T00:00:05Z"}}},
                {"name": "done", "containerID": "containerd://c2",
                 "state": {"terminated": {"exitCode": 0}}}]}
    }))
}

pub(super) fn pod() -> PodSource {
    PodSource::of(&pod_view())
}

pub(super) fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn summary_on_cgroup_v1() {
    let mut files = proc_files("4:cpu,cpuacct:/agent\n3:memory:/agent\n0::/\n");
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    files.extend([
        cg("cpuacct/cpuacct.usage", "900000000000\n"),
        cg("memory/memory.usage_in_bytes", "4294967296\n"),
        cg(
            "memory/memory.stat",
            "total_inactive_file 1073741824\ntotal_rss 2147483648\n",
        ),
        cg("cpuacct/agent/cpuacct.usage", "5000000\n"),
        cg("memory/agent/memory.usage_in_bytes", "20000000\n"),
        cg("cpuacct/kubepods/cpuacct.usage", "3000000000\n"),
        cg("memory/kubepods/memory.usage_in_bytes", "300000\n"),
        cg(
            "cpuacct/kubepods/besteffort/podu1/cpuacct.usage",
            "2000000000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/memory.usage_in_bytes",
            "200000\n",
        ),
        cg(
            "cpuacct/kubepods/besteffort/podu1/c1/cpuacct.usage",
            "1000000000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/c1/memory.usage_in_bytes",
            "100000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/c1/memory.stat",
            "total_inactive_file 40000\ntotal_rss 50000\n",
        ),
    ]);
    let (d, roots) = tree(&files);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    let s = c
        .summary(
            &[pod()],
            false,
            &fs::RuntimeFs::default(),
            at(1_796_173_210),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let v = serde_json::to_value(&s).unwrap_or_default();
    let n = &v["node"];
    assert_eq!(n["nodeName"], "n1");
    assert_eq!(
        n["startTime"], "2026-12-02T00:06:40Z",
        "boot time from btime"
    );
    assert_eq!(n["cpu"]["usageCoreNanoSeconds"], 900_000_000_000u64);
    assert!(
        n["cpu"].get("usageNanoCores").is_none(),
        "no rate from one sample"
    );
    let m = &n["memory"];
    assert_eq!(
        (m["usageBytes"].as_u64(), m["workingSetBytes"].as_u64()),
        (Some(4 << 30), Some(3 << 30))
    );
    assert_eq!(
        m["availableBytes"].as_u64(),
        Some(16_384_000 * 1024 - (3 << 30)),
        "MemTotal - WS"
    );
    assert_eq!(m["rssBytes"].as_u64(), Some(2 << 30));
    assert_eq!(n["rlimit"]["maxpid"], 95_000, "min(pid_max, threads-max)");
    assert_eq!(n["rlimit"]["curproc"], 345);
    assert!(
        n["fs"]["capacityBytes"].as_u64().is_some_and(|b| b > 0),
        "statfs of the root dir"
    );
    let sys: Vec<&str> = n["systemContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(sys, ["pods", "kubelet"]);
    assert_eq!(
        n["systemContainers"][1]["cpu"]["usageCoreNanoSeconds"],
        5_000_000
    );
    let p = &v["pods"][0];
    assert_eq!(
        p["podRef"],
        json!({"name": "web", "namespace": "default", "uid": "u1"})
    );
    assert_eq!(p["startTime"], "2026-12-02T00:00:00Z");
    assert_eq!(p["cpu"]["usageCoreNanoSeconds"], 2_000_000_000u64);
    assert_eq!(p["memory"]["usageBytes"], 200_000);
    let cs = p["containers"].as_array().cloned().unwrap_or_default();
    assert_eq!(cs.len(), 1, "only the running container: {cs:?}");
    assert_eq!(cs[0]["name"], "app");
    assert_eq!(cs[0]["startTime"], "2026-12-02T00:00:05Z");
    assert_eq!(cs[0]["memory"]["workingSetBytes"], 60_000);
    assert_eq!(cs[0]["memory"]["rssBytes"], 50_000);

    // A second sample two seconds later: half a core for the container.
    let usage = d
        .path()
        .join("cgroup/cpuacct/kubepods/besteffort/podu1/c1/cpuacct.usage");
    std::fs::write(&usage, "2000000000\n").unwrap_or_else(|e| panic!("{e}"));
    let s = c
        .summary(&[pod()], true, &fs::RuntimeFs::default(), at(1_796_173_212))
        .unwrap_or_else(|e| panic!("{e}"));
    let cpu = s.pods[0].containers[0].cpu.clone().unwrap_or_default();
    assert_eq!(cpu.usage_nano_cores, Some(500_000_000));
    assert_eq!(
        s.node.cpu.and_then(|c| c.usage_nano_cores),
        Some(0),
        "the node's stayed still"
    );
    assert!(
        s.node.fs.is_none() && s.node.rlimit.is_none(),
        "only cpu and memory"
    );

    // The 10 s sampler skips a pass when a summary has just read the cgroups: the next rate
    // is then over the 4 s since that summary, not over the 1 s since the skipped sample.
    let period = Duration::from_secs(10);
    std::fs::write(&usage, "2500000000\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !c.sample(&[pod()], at(1_796_173_215), period),
        "3 s after a summary"
    );
    std::fs::write(&usage, "4000000000\n").unwrap_or_else(|e| panic!("{e}"));
    let s = c
        .summary(&[pod()], true, &fs::RuntimeFs::default(), at(1_796_173_216))
        .unwrap_or_else(|e| panic!("{e}"));
    let cpu = s.pods[0].containers[0].cpu.clone().unwrap_or_default();
    assert_eq!(
        cpu.usage_nano_cores,
        Some(500_000_000),
        "2 s of CPU over 4 s"
    );
    assert!(
        c.sample(&[pod()], at(1_796_173_226), period),
        "10 s after it"
    );
    assert!(
        !c.sample(&[pod()], at(1_796_173_227), period),
        "1 s after its own"
    );
    assert!(
        c.sample(&[pod()], at(1_796_173_100), period),
        "a clock that went back"
    );
}

#[test]
fn summary_on_cgroup_v2_with_the_systemd_driver() {
    let mut files = proc_files("0::/system.slice/tinylet.service\n");
    files.push(("proc/vmstat".into(), "pgfault 77\npgmajfault 7\n".into()));
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    let pod_dir = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podu1.slice";
    files.extend([
        cg("cgroup.controllers", "cpu memory pids\n"),
        cg("cpu.stat", "usage_usec 1000\n"),
        cg("memory.stat", "inactive_file 1024000\n"),
        cg(&format!("{pod_dir}/cpu.stat"), "usage_usec 2000\n"),
        cg(&format!("{pod_dir}/memory.current"), "8192\n"),
        cg(&format!("{pod_dir}/memory.max"), "max\n"),
        cg(
            &format!("{pod_dir}/cri-containerd-c1.scope/cpu.stat"),
            "usage_usec 1500\n",
        ),
        cg(
            &format!("{pod_dir}/cri-containerd-c1.scope/memory.current"),
            "4096\n",
        ),
        cg(
            &format!("{pod_dir}/cri-containerd-c1.scope/memory.stat"),
            "anon 2048\ninactive_file 1024\n",
        ),
    ]);
    let (d, roots) = tree(&files);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Systemd, "");
    let s = c
        .summary(&[pod()], true, &fs::RuntimeFs::default(), at(1_796_173_210))
        .unwrap_or_else(|e| panic!("{e}"));
    let mem = s.node.memory.clone().unwrap_or_default();
    assert_eq!(mem.usage_bytes, 8_192_000 * 1024, "MemTotal - MemFree");
    assert_eq!(
        mem.working_set_bytes,
        8_192_000 * 1024 - 1_024_000,
        "less the root's inactive_file"
    );
    assert_eq!((mem.page_faults, mem.major_page_faults), (77, 7));
    assert_eq!(
        s.node.cpu.map(|c| c.usage_core_nano_seconds),
        Some(1_000_000)
    );
    let p = &s.pods[0];
    assert_eq!(
        p.cpu.as_ref().map(|c| c.usage_core_nano_seconds),
        Some(2_000_000)
    );
    assert_eq!(
        p.memory.as_ref().and_then(|m| m.available_bytes),
        None,
        "no limit"
    );
    let app = &p.containers[0];
    let m = app.memory.clone().unwrap_or_default();
    assert_eq!(
        (m.usage_bytes, m.working_set_bytes, m.rss_bytes),
        (4096, 3072, 2048)
    );
    assert_eq!(
        app.cpu.as_ref().map(|c| c.usage_core_nano_seconds),
        Some(1_500_000)
    );
}

#[test]
fn container_cgroups_as_containerd_names_them() {
    assert_eq!(
        container_cgroup(CgroupDriver::Cgroupfs, "/kubepods/podu/", "abc"),
        "/kubepods/podu/abc"
    );
    assert_eq!(
        container_cgroup(
            CgroupDriver::Systemd,
            "/kubepods.slice/kubepods-podu.slice",
            "abc"
        ),
        "/kubepods.slice/kubepods-podu.slice/cri-containerd-abc.scope"
    );
}

#[test]
fn a_missing_host_file_is_an_error_that_names_it() {
    let (d, roots) = tree(&[("proc/stat".into(), "btime 1\n".into())]);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    let e = c
        .summary(&[], false, &fs::RuntimeFs::default(), at(10))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.starts_with("reading ") && e.ends_with("proc/meminfo"),
        "{e}"
    );
}

#[test]
fn cadvisor_series_for_the_root_a_pod_and_its_running_container() {
    let mut files = proc_files("0::/\n");
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    files.extend([
        cg("cpuacct/cpuacct.usage", "9000000000\n"),
        cg("memory/memory.usage_in_bytes", "4096\n"),
        cg("memory/memory.stat", "total_cache 1024\n"),
        cg(
            "cpuacct/kubepods/besteffort/podu1/cpuacct.usage",
            "2000000000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/memory.usage_in_bytes",
            "200000\n",
        ),
        cg(
            "cpuacct/kubepods/besteffort/podu1/c1/cpuacct.usage",
            "1500000000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/c1/memory.usage_in_bytes",
            "100000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/c1/memory.stat",
            "total_cache 30000\ntotal_rss 50000\ntotal_mapped_file 8192\ntotal_pgmajfault 2\n",
        ),
        cg(
            "cpuacct/kubepods/besteffort/podu1/c1/cpuacct.stat",
            "user 120\nsystem 30\n",
        ),
        cg("memory/kubepods/besteffort/podu1/c1/memory.failcnt", "4\n"),
        cg(
            "memory/kubepods/besteffort/podu1/c1/memory.max_usage_in_bytes",
            "150000\n",
        ),
        cg(
            "memory/kubepods/besteffort/podu1/c1/memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        ),
        cg("pids/kubepods/besteffort/podu1/c1/pids.current", "3\n"),
        // The QoS cgroup, reported with empty labels as cAdvisor does (burstable is absent).
        cg("cpuacct/kubepods/besteffort/cpuacct.usage", "2500000000\n"),
        cg(
            "memory/kubepods/besteffort/memory.usage_in_bytes",
            "300000\n",
        ),
    ]);
    let (d, roots) = tree(&files);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    let mut v = pod_view();
    v.object["status"]["containerStatuses"][0]["image"] = json!("docker.io/library/busybox:1.36");
    let text = c
        .cadvisor(&[PodSource::of(&v)], at(1_796_173_210))
        .unwrap_or_else(|e| panic!("{e}"));
    let ms = 1_796_173_210_000u64;
    let ctr = "container=\"app\",id=\"/kubepods/besteffort/podu1/c1\",image=\"docker.io/library/busybox:1.36\",name=\"c1\",namespace=\"default\",pod=\"web\"";
    for line in [
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds."
            .to_string(),
        "# TYPE container_cpu_usage_seconds_total counter".into(),
        format!(
            "container_cpu_usage_seconds_total{{container=\"app\",cpu=\"total\",id=\"/kubepods/besteffort/podu1/c1\",image=\"docker.io/library/busybox:1.36\",name=\"c1\",namespace=\"default\",pod=\"web\"}} 1.5 {ms}"
        ),
        format!(
            "container_cpu_usage_seconds_total{{container=\"\",cpu=\"total\",id=\"/kubepods/besteffort/podu1\",image=\"\",name=\"\",namespace=\"default\",pod=\"web\"}} 2 {ms}"
        ),
        format!(
            "container_cpu_usage_seconds_total{{container=\"\",cpu=\"total\",id=\"/\",image=\"\",name=\"\",namespace=\"\",pod=\"\"}} 9 {ms}"
        ),
        format!("container_memory_cache{{{ctr}}} 30000 {ms}"),
        format!("container_memory_rss{{{ctr}}} 50000 {ms}"),
        format!("container_memory_working_set_bytes{{{ctr}}} 100000 {ms}"),
        format!("container_start_time_seconds{{{ctr}}} 1796169605"),
        // Machine series carry no timestamp, as the kubelet's machine collector writes them.
        "machine_cpu_cores{boot_id=\"b-1\",machine_id=\"m-1\",system_uuid=\"\"} 2".into(),
        format!(
            "machine_memory_bytes{{boot_id=\"b-1\",machine_id=\"m-1\",system_uuid=\"\"}} {}",
            16_384_000u64 * 1024
        ),
        "machine_nvm_capacity{boot_id=\"b-1\",machine_id=\"m-1\",mode=\"memory_mode\",system_uuid=\"\"} 0".into(),
        "cadvisor_version_info{cadvisorRevision=\"\",cadvisorVersion=\"\",dockerVersion=\"\",kernelVersion=\"6.1.0\",osVersion=\"Linux\"} 1".into(),
        // The rest of the container's accounting (cpuacct.stat ticks are 10 ms).
        format!("container_cpu_user_seconds_total{{{ctr}}} 1.2 {ms}"),
        format!("container_cpu_system_seconds_total{{{ctr}}} 0.3 {ms}"),
        format!("container_memory_mapped_file{{{ctr}}} 8192 {ms}"),
        format!("container_memory_failcnt{{{ctr}}} 4 {ms}"),
        format!("container_memory_max_usage_bytes{{{ctr}}} 150000 {ms}"),
        format!("container_oom_events_total{{{ctr}}} 1 {ms}"),
        format!("container_threads{{{ctr}}} 3 {ms}"),
        format!("container_pressure_io_stalled_seconds_total{{{ctr}}} 0 {ms}"),
        format!(
            "container_memory_failures_total{{container=\"app\",failure_type=\"pgmajfault\",id=\"/kubepods/besteffort/podu1/c1\",image=\"docker.io/library/busybox:1.36\",name=\"c1\",namespace=\"default\",pod=\"web\",scope=\"hierarchy\"}} 2 {ms}"
        ),
        format!(
            "container_tasks_state{{container=\"app\",id=\"/kubepods/besteffort/podu1/c1\",image=\"docker.io/library/busybox:1.36\",name=\"c1\",namespace=\"default\",pod=\"web\",state=\"running\"}} 0 {ms}"
        ),
        "container_scrape_error 0".into(),
        format!(
            "container_memory_usage_bytes{{container=\"\",id=\"/kubepods/besteffort\",image=\"\",name=\"\",namespace=\"\",pod=\"\"}} 300000 {ms}"
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("c2"),
        "the terminated container is not reported"
    );
    assert!(
        !text.contains("/kubepods/burstable\""),
        "a QoS cgroup that is not there is not reported"
    );
}

const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
";

fn net_dev(iface: &str, rx: u64, tx: u64) -> String {
    format!("{NET_DEV}{iface}: {rx} 10 1 2 0 0 0 0 {tx} 20 3 4 0 0 0 0\n")
}

/// Network figures: the node's from PID 1's namespace, a pod's from its sandbox's process (or,
/// with no sandbox known, any process of the pod), on the summary and as cAdvisor series.
#[test]
fn network_of_the_node_and_of_each_sandbox() {
    let mut files = proc_files("0::/\n");
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    let pd = "kubepods/besteffort/podu1";
    files.extend([
        ("proc/1/net/dev".to_string(), net_dev("ens3", 5000, 6000)),
        ("proc/42/net/dev".to_string(), net_dev("eth0", 700, 800)),
        ("proc/43/net/dev".to_string(), net_dev("eth0", 1, 2)),
        cg("cpuacct/cpuacct.usage", "9000000000\n"),
        cg("memory/memory.usage_in_bytes", "4096\n"),
        cg(&format!("memory/{pd}/memory.usage_in_bytes"), "200000\n"),
        cg(&format!("memory/{pd}/cgroup.procs"), ""),
        cg(&format!("memory/{pd}/c1/cgroup.procs"), "43\n"),
        cg(&format!("memory/{pd}/sb1/cgroup.procs"), "42\n44\n"),
        cg(&format!("cpuacct/{pd}/sb1/cpuacct.usage"), "1000\n"),
        cg(&format!("memory/{pd}/sb1/memory.usage_in_bytes"), "4096\n"),
    ]);
    let (d, roots) = tree(&files);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    let mut with_sandbox = pod_view();
    with_sandbox.sandbox = Some("sb1".into());
    let s = c
        .summary(
            &[PodSource::of(&with_sandbox)],
            false,
            &fs::RuntimeFs::default(),
            at(1_796_173_210),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let v = serde_json::to_value(&s).unwrap_or_default();
    let node = &v["node"]["network"];
    assert_eq!(node["name"], "", "no eth0 on the node: {node}");
    assert_eq!(
        node["interfaces"],
        json!([{"name": "ens3", "rxBytes": 5000, "rxErrors": 1, "txBytes": 6000, "txErrors": 3}])
    );
    let net = &v["pods"][0]["network"];
    assert_eq!(
        (
            net["name"].as_str(),
            net["rxBytes"].as_u64(),
            net["txBytes"].as_u64()
        ),
        (Some("eth0"), Some(700), Some(800)),
        "eth0 of the sandbox's process, inline: {net}"
    );
    assert_eq!(net["time"], "2026-12-02T01:00:10Z");
    // No sandbox known: a container's process shares the pod's namespace.
    let s = c
        .summary(
            &[pod()],
            false,
            &fs::RuntimeFs::default(),
            at(1_796_173_211),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let net = s.pods[0].network.clone().unwrap_or_default();
    assert_eq!(net.default.rx_bytes, Some(1), "c1's process (43): {net:?}");
    // Only cpu and memory: no network.
    let s = c
        .summary(
            &[PodSource::of(&with_sandbox)],
            true,
            &fs::RuntimeFs::default(),
            at(1_796_173_212),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.pods[0].network.is_none() && s.node.network.is_none());

    // The sandbox's series carry its (pause) image, as cAdvisor's containerd handler's.
    with_sandbox.sandbox_image = "registry.k8s.io/pause:3.9".into();
    let text = c
        .cadvisor(&[PodSource::of(&with_sandbox)], at(1_796_173_210))
        .unwrap_or_else(|e| panic!("{e}"));
    let ms = 1_796_173_210_000u64;
    for line in [
        "# TYPE container_network_receive_bytes_total counter".to_string(),
        format!(
            "container_network_receive_bytes_total{{container=\"\",id=\"/{pd}/sb1\",image=\"registry.k8s.io/pause:3.9\",interface=\"eth0\",name=\"sb1\",namespace=\"default\",pod=\"web\"}} 700 {ms}"
        ),
        format!(
            "container_network_transmit_packets_dropped_total{{container=\"\",id=\"/{pd}/sb1\",image=\"registry.k8s.io/pause:3.9\",interface=\"eth0\",name=\"sb1\",namespace=\"default\",pod=\"web\"}} 4 {ms}"
        ),
        format!(
            "container_network_receive_bytes_total{{container=\"\",id=\"/\",image=\"\",interface=\"ens3\",name=\"\",namespace=\"\",pod=\"\"}} 5000 {ms}"
        ),
        format!(
            "container_memory_usage_bytes{{container=\"\",id=\"/{pd}/sb1\",image=\"registry.k8s.io/pause:3.9\",name=\"sb1\",namespace=\"default\",pod=\"web\"}} 4096 {ms}"
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }
    assert!(!text.contains("interface=\"lo\""), "loopback is left out");
}

/// A pod whose cgroup has no figures of its own (no pod cgroup, as with `cgroupsPerQOS: false`)
/// reports the sum of its containers.
#[test]
fn a_pod_without_its_cgroup_sums_its_containers() {
    let mut files = proc_files("0::/\n");
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    let pd = "kubepods/besteffort/podu1";
    files.extend([
        cg("cpuacct/cpuacct.usage", "9000000000\n"),
        cg("memory/memory.usage_in_bytes", "4096\n"),
        cg(&format!("cpuacct/{pd}/c1/cpuacct.usage"), "1000\n"),
        cg(&format!("memory/{pd}/c1/memory.usage_in_bytes"), "100\n"),
        cg(&format!("cpuacct/{pd}/c3/cpuacct.usage"), "2000\n"),
        cg(&format!("memory/{pd}/c3/memory.usage_in_bytes"), "300\n"),
    ]);
    let (d, roots) = tree(&files);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    let mut v = pod_view();
    v.object["status"]["containerStatuses"][1] = json!({"name": "done",
        "containerID": "containerd://c3", "state": {"running": {"startedAt": "2026-12-02T00:00:06Z"}}});
    let v = PodView::of(v.object);
    let s = c
        .summary(
            &[PodSource::of(&v)],
            true,
            &fs::RuntimeFs::default(),
            at(1_796_173_210),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let p = &s.pods[0];
    assert_eq!(p.containers.len(), 2);
    assert_eq!(
        p.cpu.as_ref().map(|c| c.usage_core_nano_seconds),
        Some(3000)
    );
    assert_eq!(p.memory.as_ref().map(|m| m.usage_bytes), Some(400));
    assert_eq!(p.memory.as_ref().and_then(|m| m.available_bytes), None);
}

/// CPU and memory settings and CFS throttling, on v1 and v2, as cAdvisor's spec series.
#[test]
fn spec_and_cfs_series_on_v1_and_v2() {
    let ms = 1_796_173_210_000u64;
    let ctr = "container=\"app\",id=\"/kubepods/besteffort/podu1/c1\",image=\"\",name=\"c1\",namespace=\"default\",pod=\"web\"";
    let pd = "kubepods/besteffort/podu1";
    for v2 in [false, true] {
        let mut files = proc_files("0::/\n");
        let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
        if v2 {
            files.extend([
                cg("cgroup.controllers", "cpu memory\n"),
                cg("cpu.stat", "usage_usec 1000\n"),
                cg(
                    &format!("{pd}/c1/cpu.stat"),
                    "usage_usec 5\nnr_periods 40\nnr_throttled 7\nthrottled_usec 250000\n",
                ),
                cg(&format!("{pd}/c1/cpu.max"), "50000 100000\n"),
                cg(&format!("{pd}/c1/cpu.weight"), "4\n"),
                cg(&format!("{pd}/c1/memory.current"), "100\n"),
                cg(&format!("{pd}/c1/memory.max"), "67108864\n"),
                cg(&format!("{pd}/c1/memory.swap.max"), "max\n"),
                cg(&format!("{pd}/c1/memory.low"), "0\n"),
            ]);
        } else {
            files.extend([
                cg("cpuacct/cpuacct.usage", "9000000000\n"),
                cg("memory/memory.usage_in_bytes", "4096\n"),
                cg(&format!("cpuacct/{pd}/c1/cpuacct.usage"), "5000\n"),
                cg(
                    &format!("cpu/{pd}/c1/cpu.stat"),
                    "nr_periods 40\nnr_throttled 7\nthrottled_time 250000000\n",
                ),
                cg(&format!("cpu/{pd}/c1/cpu.cfs_quota_us"), "50000\n"),
                cg(&format!("cpu/{pd}/c1/cpu.cfs_period_us"), "100000\n"),
                cg(&format!("cpu/{pd}/c1/cpu.shares"), "102\n"),
                cg(&format!("memory/{pd}/c1/memory.usage_in_bytes"), "100\n"),
                cg(
                    &format!("memory/{pd}/c1/memory.limit_in_bytes"),
                    "67108864\n",
                ),
                cg(
                    &format!("memory/{pd}/c1/memory.memsw.limit_in_bytes"),
                    "9223372036854771712\n",
                ),
                cg(
                    &format!("memory/{pd}/c1/memory.soft_limit_in_bytes"),
                    "9223372036854771712\n",
                ),
                // A container without a quota: no CFS series, no quota series.
                cg(&format!("cpu/{pd}/cpu.cfs_quota_us"), "-1\n"),
                cg(&format!("cpu/{pd}/cpu.shares"), "2\n"),
                cg(&format!("cpuacct/{pd}/cpuacct.usage"), "6000\n"),
            ]);
        }
        let (d, roots) = tree(&files);
        let driver = CgroupDriver::Cgroupfs;
        let c = Collector::new("n1", roots, d.path(), driver, "");
        let text = c
            .cadvisor(&[pod()], at(1_796_173_210))
            .unwrap_or_else(|e| panic!("{e}"));
        for line in [
            format!("container_cpu_cfs_periods_total{{{ctr}}} 40 {ms}"),
            format!("container_cpu_cfs_throttled_periods_total{{{ctr}}} 7 {ms}"),
            format!("container_cpu_cfs_throttled_seconds_total{{{ctr}}} 0.25 {ms}"),
            format!("container_spec_cpu_period{{{ctr}}} 100000"),
            format!("container_spec_cpu_quota{{{ctr}}} 50000"),
            // v2: weight 4 is shares 2 + 3 * 262142 / 9999 = 80.
            format!(
                "container_spec_cpu_shares{{{ctr}}} {}",
                if v2 { 80 } else { 102 }
            ),
            format!("container_spec_memory_limit_bytes{{{ctr}}} 67108864"),
            format!("container_spec_memory_swap_limit_bytes{{{ctr}}} 0"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "v2 {v2}: no line {line:?} in\n{text}"
            );
        }
        let pod_cfs = format!("container_cpu_cfs_periods_total{{container=\"\",id=\"/{pd}\"");
        assert!(!text.contains(&pod_cfs), "no quota, no CFS series: {text}");
    }
}

/// Filesystems: the runtime's image filesystem, each container's writable layer and logs,
/// each volume by `du`, and the pod's ephemeral storage as their sum (emptyDir on disk and
/// configMap count; a secret does not), with the sizes of the filesystems they are on.
#[test]
fn filesystems_of_the_runtime_containers_logs_and_volumes() {
    let mut files = proc_files("0::/\n");
    let cg = |p: &str, c: &str| (format!("cgroup/{p}"), c.to_string());
    let vols = "pods/u1/volumes";
    files.extend([
        cg("cpuacct/cpuacct.usage", "9000000000\n"),
        cg("memory/memory.usage_in_bytes", "4096\n"),
        ("logs/default_web_u1/app/0.log".into(), "x".repeat(20_000)),
        (
            format!("{vols}/kubernetes.io~empty-dir/scratch/data"),
            "y".repeat(40_000),
        ),
        (
            format!("{vols}/kubernetes.io~secret/creds/token"),
            "z".repeat(10_000),
        ),
        ("pods/u1/etc-hosts".into(), "127.0.0.1 localhost\n".into()),
    ]);
    let (d, roots) = tree(&files);
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "")
        .with_volume_stats(&d.path().join("logs"), Duration::from_secs(60));
    let mut v = pod_view();
    v.object["spec"]["volumes"] = json!([
        {"name": "scratch", "emptyDir": {}},
        {"name": "creds", "secret": {"secretName": "s"}},
        {"name": "host", "hostPath": {"path": "/etc"}},
        {"name": "missing", "configMap": {"name": "cm"}},
    ]);
    let runtime = fs::RuntimeFs {
        image_fs: Some(fs::ImageFs {
            mountpoint: d.path().to_path_buf(),
            used: fs::Usage {
                bytes: 5 << 20,
                inodes: 500,
            },
        }),
        writable: [(
            "c1".to_string(),
            fs::Usage {
                bytes: 8192,
                inodes: 3,
            },
        )]
        .into(),
    };
    let s = c
        .summary(&[PodSource::of(&v)], false, &runtime, at(1_796_173_210))
        .unwrap_or_else(|e| panic!("{e}"));
    let j = serde_json::to_value(&s).unwrap_or_default();
    let image = &j["node"]["runtime"]["imageFs"];
    assert_eq!(image["usedBytes"], 5 << 20);
    assert!(image["capacityBytes"].as_u64().is_some_and(|c| c > 0));
    assert_eq!(j["node"]["runtime"]["containerFs"], *image);
    let p = &j["pods"][0];
    let ctr = &p["containers"][0];
    assert_eq!(
        (
            ctr["rootfs"]["usedBytes"].as_u64(),
            ctr["rootfs"]["inodesUsed"].as_u64()
        ),
        (Some(8192), Some(3))
    );
    let logs = ctr["logs"]["usedBytes"].as_u64().unwrap_or(0);
    assert!((20_000..100_000).contains(&logs), "logs {logs}");
    assert_eq!(ctr["logs"]["inodesUsed"], 2, "the dir and its file");
    let names: Vec<&str> = p["volume"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(names, ["scratch", "creds"], "no hostPath, no dir yet: none");
    let vol = |i: usize| p["volume"][i]["usedBytes"].as_u64().unwrap_or(0);
    assert!(vol(0) >= 40_000 && vol(1) >= 10_000, "{}", p["volume"]);
    let eph = p["ephemeral-storage"]["usedBytes"].as_u64().unwrap_or(0);
    let hosts = fs::du(&d.path().join("pods/u1/etc-hosts")).unwrap_or_default();
    assert_eq!(
        eph,
        8192 + logs + vol(0) + hosts.bytes,
        "rootfs + logs + emptyDir + etc-hosts, no secret"
    );
    assert!(
        p["ephemeral-storage"]["capacityBytes"]
            .as_u64()
            .is_some_and(|c| c > 0)
    );
    // Only cpu and memory: no filesystem figures at all.
    let small = c
        .summary(&[PodSource::of(&v)], true, &runtime, at(1_796_173_211))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(small.node.runtime.is_none() && small.pods[0].ephemeral_storage.is_none());
    assert!(small.pods[0].volume.is_empty() && small.pods[0].containers[0].logs.is_none());
    // volumeStatsAggPeriod 0: the kubelet's volume stats collection is off; no volume
    // figures, and none counted in the ephemeral storage.
    let off = c.with_volume_stats(&d.path().join("logs"), Duration::ZERO);
    let s = off
        .summary(&[PodSource::of(&v)], false, &runtime, at(1_796_173_212))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(s.pods[0].volume.is_empty(), "{:?}", s.pods[0].volume);
    let eph_off = s.pods[0].ephemeral_storage.as_ref().map(|f| f.used_bytes);
    assert_eq!(eph_off, Some(8192 + logs + hosts.bytes));
}

/// The runtime is asked for its filesystem figures once a period; a failure is not kept.
#[test]
fn runtime_filesystem_figures_are_asked_for_once_a_period() {
    let (d, roots) = tree(&proc_files("0::/\n"));
    let c = Collector::new("n1", roots, d.path(), CgroupDriver::Cgroupfs, "");
    let calls = std::cell::Cell::new(0);
    let fetch = || -> Result<fs::RuntimeFs, String> {
        calls.set(calls.get() + 1);
        Ok(fs::RuntimeFs::default())
    };
    assert!(
        c.runtime_fs(|| Err::<fs::RuntimeFs, _>("down".to_string()))
            .is_err()
    );
    assert!(c.runtime_fs(fetch).is_ok() && c.runtime_fs(fetch).is_ok());
    assert_eq!(calls.get(), 1, "the second answer is the first one's");
    let fresh = Collector::new("n1", c.roots.clone(), d.path(), CgroupDriver::Cgroupfs, "")
        .with_volume_stats(d.path(), Duration::ZERO);
    assert!(fresh.runtime_fs(fetch).is_ok() && fresh.runtime_fs(fetch).is_ok());
    assert_eq!(calls.get(), 3, "a zero period asks every time");
}
