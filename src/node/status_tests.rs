//! Table tests of the Node status core: conditions, capacity, allocatable, addresses, images.

use super::*;
use crate::config::kubelet::{ReservedResource, T};
use crate::config::quantity::Quantity;
use crate::kube::patch::diff;
use serde_json::{Value, json};

fn q(s: &str) -> crate::config::kubelet::Q {
    serde_json::from_value(json!(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn reserved(pairs: &[(&str, &str)]) -> ReservedMap {
    pairs
        .iter()
        .map(|(k, v)| {
            let k: ReservedResource =
                serde_json::from_value(json!(k)).unwrap_or_else(|e| panic!("{e}"));
            (k, q(v))
        })
        .collect()
}

fn t(s: &str) -> T {
    T(ThresholdValue::parse(s).unwrap_or_else(|e| panic!("{e}")))
}

fn spec() -> Spec {
    Spec {
        name: "n1".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        taints: vec![],
        provider_id: String::new(),
        max_pods: 220,
        pods_per_core: 0,
        system_reserved: reserved(&[("cpu", "250m"), ("memory", "256Mi")]),
        kube_reserved: reserved(&[("memory", "128Mi"), ("ephemeral-storage", "1Gi")]),
        eviction_hard: [
            (Signal::MemoryAvailable, t("100Mi")),
            (Signal::NodefsAvailable, t("10%")),
            (Signal::NodefsInodesFree, t("5%")),
        ]
        .into(),
        eviction_soft: ThresholdMap::new(),
        port: 10250,
        kubelet_version: "v1.32.0".into(),
        max_images: 50,
    }
}

fn machine() -> Machine {
    Machine {
        cpus: 4,
        memory_bytes: 4 << 30,
        hugepages: vec![(2 << 20, 16), (1 << 30, 0)],
        machine_id: "m".into(),
        system_uuid: String::new(),
        boot_id: "boot-1".into(),
        kernel_version: "6.1.0".into(),
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
    }
}

fn facts() -> Facts {
    Facts {
        machine: machine(),
        rootfs: FsStats {
            capacity_bytes: 100 << 30,
            available_bytes: 50 << 30,
            inodes: 1000,
            inodes_free: 900,
            ..FsStats::default()
        },
        addresses: vec![NodeAddress {
            type_: "InternalIP".into(),
            address: "10.0.0.5".into(),
        }],
        runtime_version: "containerd://1.6.20".into(),
        not_ready: vec![],
        pressure: Pressure::default(),
        images: vec![],
    }
}

#[test]
fn quantities_print_as_the_api_does() {
    assert_eq!(binary_si(0), "0");
    assert_eq!(binary_si(4 << 30), "4Gi");
    assert_eq!(binary_si(2048076 * 1024), "2048076Ki");
    assert_eq!(binary_si(1000), "1000");
    assert_eq!(cpu_text(4000), "4");
    assert_eq!(cpu_text(3750), "3750m");
    assert_eq!(cpu_text(0), "0");
}

#[test]
fn allocatable_subtracts_reservations_evictions_and_huge_pages() {
    let s = spec();
    let cap = capacity(&s, &machine(), &facts().rootfs);
    let a = allocatable(&s, &cap).to_list();
    assert_eq!(cap.to_list()["memory"], "4Gi");
    assert_eq!(cap.to_list()["hugepages-2Mi"], "32Mi");
    assert_eq!(cap.to_list()["hugepages-1Gi"], "0");
    assert_eq!(a["cpu"], "3750m");
    // 4096Mi - 256Mi - 128Mi - 100Mi (eviction) - 32Mi (huge pages)
    assert_eq!(a["memory"], "3580Mi");
    assert_eq!(a["pods"], "220");
    // 100Gi - 1Gi - 10% of 100Gi (truncated to bytes)
    let ten = ((100u64 << 30) as f64 * 0.1) as u64;
    assert_eq!(a["ephemeral-storage"], binary_si((99u64 << 30) - ten));
    // Floored at zero, and podsPerCore caps pods.
    let mut big = spec();
    big.system_reserved = reserved(&[("cpu", "10"), ("memory", "100Gi")]);
    big.pods_per_core = 10;
    let cap = capacity(&big, &machine(), &facts().rootfs);
    let a = allocatable(&big, &cap).to_list();
    assert_eq!((a["cpu"].as_str(), a["memory"].as_str()), ("0", "0"));
    assert_eq!(cap.pods, 40);
}

#[test]
fn pressure_from_thresholds() {
    let s = spec();
    let o = |mem_avail: u64, disk_avail: u64, inodes_free: u64, procs: u64| Observations {
        memory_capacity: 4 << 30,
        memory_available: mem_avail,
        nodefs: FsStats {
            capacity_bytes: 100 << 30,
            available_bytes: disk_avail,
            inodes: 1000,
            inodes_free,
            ..FsStats::default()
        },
        pid_max: 1000,
        processes: procs,
    };
    let none = Pressure::default();
    assert_eq!(pressure(&s, &o(1 << 30, 50 << 30, 900, 10), None), none);
    let p = pressure(&s, &o(99 << 20, 50 << 30, 900, 10), None);
    assert!(p.memory && !p.disk && !p.pid);
    let p = pressure(&s, &o(1 << 30, 9 << 30, 900, 10), None);
    assert!(p.disk && !p.memory);
    let p = pressure(&s, &o(1 << 30, 50 << 30, 49, 10), None);
    assert!(p.disk, "inodes below 5%");
    let full = FsStats {
        capacity_bytes: 100,
        available_bytes: 1,
        inodes: 10,
        inodes_free: 10,
        ..FsStats::default()
    };
    assert!(!pressure(&s, &o(1 << 30, 50 << 30, 900, 10), Some(&full)).disk);
    let mut with_image = spec();
    with_image
        .eviction_hard
        .insert(Signal::ImagefsAvailable, t("15%"));
    with_image
        .eviction_soft
        .insert(Signal::PidAvailable, t("10%"));
    assert!(pressure(&with_image, &o(1 << 30, 50 << 30, 900, 10), Some(&full)).disk);
    assert!(pressure(&with_image, &o(1 << 30, 50 << 30, 900, 950), None).pid);
    assert!(!pressure(&with_image, &o(1 << 30, 50 << 30, 900, 850), None).pid);
    let _ = Quantity::mebibytes(1);
}

#[test]
fn pressure_is_held_for_the_transition_period() {
    let t0 = std::time::Instant::now();
    let period = std::time::Duration::from_secs(300);
    let mut h = Held::default();
    let mem = Pressure {
        memory: true,
        ..Pressure::default()
    };
    assert_eq!(
        h.update(t0, Pressure::default(), period),
        Pressure::default()
    );
    assert_eq!(h.update(t0, mem, period), mem);
    let later = |s| t0 + std::time::Duration::from_secs(s);
    assert_eq!(
        h.update(later(299), Pressure::default(), period),
        mem,
        "held"
    );
    assert_eq!(
        h.update(later(300), Pressure::default(), period),
        Pressure::default(),
        "released after the period"
    );
    assert_eq!(
        h.update(later(301), Pressure::default(), std::time::Duration::ZERO),
        Pressure::default()
    );
}

fn cond<'a>(s: &'a NodeStatus, t: &str) -> &'a NodeCondition {
    s.conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t}"))
}

#[test]
fn conditions_transition_only_on_change_and_ready_is_last() {
    let s = spec();
    let (first, ev) = build(&s, &facts(), &NodeStatus::default(), "t1");
    let types: Vec<&str> = first.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    );
    let reasons: Vec<&str> = ev.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "NodeHasSufficientMemory",
            "NodeHasNoDiskPressure",
            "NodeHasSufficientPID"
        ]
    );
    assert_eq!(
        ev[0].message,
        "Node n1 status is now: NodeHasSufficientMemory"
    );
    let r = cond(&first, "Ready");
    assert_eq!(
        (r.status.as_str(), r.reason.as_str(), r.message.as_str()),
        ("True", "KubeletReady", "kubelet is posting ready status")
    );
    assert_eq!(
        first.node_info.container_runtime_version,
        "containerd://1.6.20"
    );
    assert_eq!(first.daemon_endpoints.kubelet_endpoint.port, 10250);

    // Same facts later: heartbeats move, nothing else; no events.
    let (second, ev) = build(&s, &facts(), &first, "t2");
    assert!(ev.is_empty(), "{ev:?}");
    assert!(!changed(&first, &second));
    assert_eq!(
        cond(&second, "Ready").last_heartbeat_time.as_deref(),
        Some("t2")
    );
    assert_eq!(
        cond(&second, "Ready").last_transition_time.as_deref(),
        Some("t1")
    );

    // The runtime goes away: NotReady with its reason, one event.
    let mut down = facts();
    down.not_ready = vec!["container runtime is down".into()];
    down.pressure.memory = true;
    let (third, ev) = build(&s, &down, &second, "t3");
    assert!(changed(&second, &third));
    let r = cond(&third, "Ready");
    assert_eq!(
        (r.status.as_str(), r.reason.as_str(), r.message.as_str()),
        ("False", "KubeletNotReady", "container runtime is down")
    );
    assert_eq!(r.last_transition_time.as_deref(), Some("t3"));
    let m = cond(&third, "MemoryPressure");
    assert_eq!(
        (m.status.as_str(), m.reason.as_str()),
        ("True", "KubeletHasInsufficientMemory")
    );
    let reasons: Vec<&str> = ev.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["NodeHasInsufficientMemory", "NodeNotReady"]);
    down.not_ready
        .push("container runtime network not ready: x".into());
    let (fourth, _) = build(&s, &down, &third, "t4");
    assert_eq!(
        cond(&fourth, "Ready").message,
        "[container runtime is down, container runtime network not ready: x]"
    );
    assert_eq!(
        cond(&fourth, "Ready").last_transition_time.as_deref(),
        Some("t3")
    );
}

#[test]
fn foreign_conditions_and_capacity_survive_and_reboots_are_noticed() {
    let s = spec();
    let mut prev = NodeStatus::default();
    prev.conditions.push(NodeCondition {
        type_: "Ready".into(),
        status: "Unknown".into(),
        ..NodeCondition::default()
    });
    prev.conditions.push(NodeCondition {
        type_: "NetworkUnavailable".into(),
        status: "False".into(),
        ..NodeCondition::default()
    });
    prev.capacity
        .insert("example.com/dongle".into(), "2".into());
    prev.node_info.boot_id = "boot-0".into();
    let (st, ev) = build(&s, &facts(), &prev, "t1");
    let types: Vec<&str> = st.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            "NetworkUnavailable",
            "MemoryPressure",
            "DiskPressure",
            "PIDPressure",
            "Ready"
        ]
    );
    assert_eq!(st.capacity["example.com/dongle"], "2");
    assert_eq!(st.allocatable["example.com/dongle"], "2");
    let reboot = ev
        .iter()
        .find(|e| e.reason == "Rebooted")
        .unwrap_or_else(|| panic!("{ev:?}"));
    assert!(reboot.warning);
    assert_eq!(reboot.message, "Node n1 has been rebooted, boot id: boot-1");
    assert!(
        ev.iter().any(|e| e.reason == "NodeReady"),
        "Unknown -> True"
    );
}

#[test]
fn images_are_largest_first_with_at_most_five_names() {
    let img = |id: &str, size: u64, tags: usize| crate::cri::api::Image {
        id: id.into(),
        repo_tags: (0..tags).map(|i| format!("{id}:{i}")).collect(),
        repo_digests: vec![format!("{id}@sha256:00")],
        size,
        ..Default::default()
    };
    let v = images(&[img("a", 10, 1), img("b", 30, 7), img("c", 20, 0)]);
    let order: Vec<i64> = v.iter().map(|i| i.size_bytes).collect();
    assert_eq!(order, [30, 20, 10]);
    assert_eq!(v[0].names.len(), 5);
    assert_eq!(v[0].names[0], "b@sha256:00");
    let mut s = spec();
    s.max_images = 2;
    let mut f = facts();
    f.images = v;
    assert_eq!(build(&s, &f, &NodeStatus::default(), "t").0.images.len(), 2);
}

#[test]
fn patches_carry_only_what_changed() {
    let s = spec();
    let (a, _) = build(&s, &facts(), &NodeStatus::default(), "t1");
    let (b, _) = build(&s, &facts(), &a, "t2");
    let va = serde_json::to_value(&a).unwrap_or_default();
    let vb = serde_json::to_value(&b).unwrap_or_default();
    assert_eq!(diff(&va, &va), None);
    let p = diff(&va, &vb).unwrap_or_default();
    let keys: Vec<&String> = p
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["$setElementOrder/conditions", "conditions"]);
    assert_eq!(
        p["conditions"][3],
        json!({"type": "Ready", "lastHeartbeatTime": "t2"})
    );
    assert_eq!(
        p["$setElementOrder/conditions"][3],
        json!({"type": "Ready"})
    );

    let mut f = facts();
    f.addresses[0].address = "10.0.0.6".into();
    f.machine.memory_bytes = 8 << 30;
    let (c, _) = build(&s, &f, &b, "t3");
    let vc = serde_json::to_value(&c).unwrap_or_default();
    let p = diff(&vb, &vc).unwrap_or_default();
    assert_eq!(p["capacity"], json!({"memory": "8Gi"}));
    assert_eq!(
        p["addresses"],
        json!([{"type": "InternalIP", "address": "10.0.0.6"}])
    );
    assert!(p.get("nodeInfo").is_none());
    // Removed fields and list elements are spelled out.
    let p = diff(
        &json!({"x": 1, "conditions": [{"type": "A"}, {"type": "B"}]}),
        &json!({"conditions": [{"type": "B"}]}),
    )
    .unwrap_or_default();
    assert_eq!(p["x"], Value::Null);
    assert_eq!(p["conditions"], json!([{"type": "A", "$patch": "delete"}]));
}
