//! The eviction core's tables: thresholds from the configuration, observations from a summary,
//! the manager's rounds (grace periods, minimum reclaim, memory first), the ranking, the
//! message and the grace period.

use super::*;
use crate::config::kubelet::KubeletConfiguration;
use crate::stats::summary::{ContainerStats, FsStats, MemoryStats, PodRef, RlimitStats};
use serde_json::json;
use std::collections::BTreeMap;

const MI: i64 = 1 << 20;

/// A configuration file's fields, decoded as the agent decodes them.
fn config(yaml: &str) -> KubeletConfiguration {
    let path = std::path::Path::new("config.yaml");
    let (mut ctx, m) =
        crate::config::yaml::Ctx::parse(path, yaml).unwrap_or_else(|e| panic!("{e:?}"));
    crate::config::kubelet::decode(&mut ctx, m)
}

fn obs(pairs: &[(Signal, i64, i64)]) -> Observations {
    pairs
        .iter()
        .map(|&(s, available, capacity)| {
            (
                s,
                Observed {
                    available,
                    capacity,
                },
            )
        })
        .collect()
}

#[test]
fn thresholds_from_the_configuration() {
    let k = config(
        "evictionHard: {memory.available: 100Mi, nodefs.available: 10%, imagefs.available: 0%}\n\
         evictionSoft: {memory.available: 300Mi}\n\
         evictionSoftGracePeriod: {memory.available: 1m30s}\n\
         evictionMinimumReclaim: {memory.available: 50Mi}\n\
         evictionMaxPodGracePeriod: 20\n\
         enforceNodeAllocatable: [pods]\n",
    );
    let c = Config::from_kubelet(&k);
    let got: Vec<(Signal, Duration, bool)> = c
        .thresholds
        .iter()
        .map(|t| (t.signal, t.grace, t.min_reclaim.is_some()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Signal::MemoryAvailable, Duration::ZERO, true),
            (Signal::NodefsAvailable, Duration::ZERO, false),
            (Signal::MemoryAvailable, Duration::from_secs(90), true),
            // The hard memory.available threshold holds for what the pods may use.
            (Signal::AllocatableMemoryAvailable, Duration::ZERO, true),
        ],
        "imagefs.available: 0% is off"
    );
    assert_eq!(c.max_pod_grace, 20);
    // Without enforceNodeAllocatable: [pods] (the default) there is no allocatable threshold.
    let k = config("evictionHard: {memory.available: 100Mi}\nenforceNodeAllocatable: []\n");
    assert_eq!(Config::from_kubelet(&k).thresholds.len(), 1);
}

#[test]
fn observations_from_a_summary() {
    let fs = |available, capacity, free, inodes| FsStats {
        available_bytes: available,
        capacity_bytes: capacity,
        inodes_free: free,
        inodes,
        ..Default::default()
    };
    let mut s = Summary::default();
    s.node.memory = Some(MemoryStats {
        available_bytes: Some(300),
        working_set_bytes: 700,
        ..Default::default()
    });
    s.node.fs = Some(fs(10, 100, 5, 50));
    s.node.runtime = Some(crate::stats::summary::RuntimeStats {
        image_fs: Some(fs(20, 200, 6, 60)),
        container_fs: None,
    });
    s.node.rlimit = Some(RlimitStats {
        maxpid: 1000,
        curproc: 250,
        ..Default::default()
    });
    s.node.system_containers.push(ContainerStats {
        name: "pods".into(),
        memory: Some(MemoryStats {
            available_bytes: Some(40),
            working_set_bytes: 60,
            ..Default::default()
        }),
        ..Default::default()
    });
    let o = observe(&s);
    let want = obs(&[
        (Signal::MemoryAvailable, 300, 1000),
        (Signal::AllocatableMemoryAvailable, 40, 100),
        (Signal::NodefsAvailable, 10, 100),
        (Signal::NodefsInodesFree, 5, 50),
        (Signal::ImagefsAvailable, 20, 200),
        (Signal::ImagefsInodesFree, 6, 60),
        (Signal::PidAvailable, 750, 1000),
    ]);
    assert_eq!(o, want);
    // A node memory figure without an available one (no limit known) is no observation.
    s.node.memory = Some(MemoryStats::default());
    assert!(!observe(&s).contains_key(&Signal::MemoryAvailable));
}

/// A round at a time: hard thresholds act at once, soft ones once met for their grace period
/// (the count restarts when they stop being met), a threshold acted on stays until its minimum
/// reclaim is reclaimed, memory goes first.
#[test]
fn manager_rounds() {
    let k = config(
        "evictionHard: {memory.available: 100Mi, nodefs.available: 10%}\n\
         evictionSoft: {nodefs.available: 20%}\n\
         evictionSoftGracePeriod: {nodefs.available: 30s}\n\
         evictionMinimumReclaim: {memory.available: 50Mi}\n",
    );
    let c = Config::from_kubelet(&k);
    let (hard_mem, hard_fs, soft_fs) = (0, 1, 2);
    assert_eq!(c.thresholds[soft_fs].grace, Duration::from_secs(30));
    let mut m = Manager::default();
    let mem = |avail: i64| (Signal::MemoryAvailable, avail, 1000 * MI);
    let disk = |avail: i64| (Signal::NodefsAvailable, avail, 100);
    let s = 1000;
    // (at, observations, threshold acted on)
    let rows: Vec<(u64, Observations, Option<usize>)> = vec![
        (0, obs(&[mem(500 * MI), disk(50)]), None),
        // The soft disk threshold is met, within its grace period.
        (10 * s, obs(&[mem(500 * MI), disk(15)]), None),
        (39 * s, obs(&[mem(500 * MI), disk(15)]), None),
        (40 * s, obs(&[mem(500 * MI), disk(15)]), Some(soft_fs)),
        // Back above: the grace period counts afresh.
        (50 * s, obs(&[mem(500 * MI), disk(25)]), None),
        (60 * s, obs(&[mem(500 * MI), disk(15)]), None),
        // The hard one acts at once, memory before disk.
        (61 * s, obs(&[mem(500 * MI), disk(5)]), Some(hard_fs)),
        (62 * s, obs(&[mem(99 * MI), disk(5)]), Some(hard_mem)),
        // Above the threshold but not above it plus the minimum reclaim: still met.
        (63 * s, obs(&[mem(120 * MI), disk(50)]), Some(hard_mem)),
        (64 * s, obs(&[mem(151 * MI), disk(50)]), None),
        // Once resolved, the minimum reclaim no longer counts.
        (65 * s, obs(&[mem(120 * MI), disk(50)]), None),
    ];
    for (at, o, want) in rows {
        assert_eq!(m.round(&c, &o, at), want, "at {at} ms: {o:?}");
    }
    // No observation for a signal: its thresholds are not met.
    assert_eq!(m.round(&c, &Observations::new(), 70 * s), None);
}

fn pod(name: &str, priority: i64, mem_request: Option<&str>) -> Value {
    let mut p = json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}")},
        "spec": {"priority": priority, "containers": [{"name": "c"}]}});
    if let Some(r) = mem_request {
        p["spec"]["containers"][0]["resources"] = json!({"requests": {"memory": r}});
    }
    p
}

fn stats(uid: &str, ws: u64, disk: u64) -> PodStats {
    let used = |b: u64| FsStats {
        used_bytes: b,
        inodes_used: b / 10,
        ..Default::default()
    };
    let c = ContainerStats {
        name: "c".into(),
        memory: Some(MemoryStats {
            working_set_bytes: ws,
            ..Default::default()
        }),
        rootfs: Some(used(disk)),
        logs: Some(used(disk / 2)),
        ..Default::default()
    };
    PodStats {
        pod_ref: PodRef {
            uid: uid.into(),
            ..Default::default()
        },
        memory: c.memory.clone(),
        process_stats: Some(crate::stats::summary::ProcessStats {
            process_count: disk / 10,
        }),
        containers: vec![c],
        ..Default::default()
    }
}

fn order(mut pods: Vec<Candidate>, s: Signal) -> Vec<String> {
    rank(&mut pods, s);
    pods.into_iter().map(|c| c.key).collect()
}

#[test]
fn ranking_as_the_kubelets() {
    let mi = |n: u64| n << 20;
    let pods = vec![
        // Over its request, high priority.
        candidate(
            &pod("over-high", 100, Some("10Mi")),
            Some(&stats("u-over-high", mi(20), 100)),
            false,
        ),
        // Under its request, low priority, the largest user.
        candidate(
            &pod("under-low", 0, Some("1Gi")),
            Some(&stats("u-under-low", mi(500), 900)),
            false,
        ),
        // Over (no request), low priority, small.
        candidate(
            &pod("besteffort", 0, None),
            Some(&stats("u-besteffort", mi(5), 10)),
            false,
        ),
        // Over (no request), low priority, larger.
        candidate(
            &pod("besteffort-big", 0, None),
            Some(&stats("u-besteffort-big", mi(50), 5000)),
            false,
        ),
        // No stats: first.
        candidate(&pod("unknown", 1000, None), None, false),
    ];
    assert_eq!(
        order(pods.clone(), Signal::MemoryAvailable),
        [
            "ns/unknown",
            "ns/besteffort-big",
            "ns/besteffort",
            "ns/over-high",
            "ns/under-low"
        ]
    );
    // Disk: no pod requests ephemeral storage, so all exceed: priority, then usage.
    assert_eq!(
        order(pods.clone(), Signal::NodefsAvailable),
        [
            "ns/unknown",
            "ns/besteffort-big",
            "ns/under-low",
            "ns/besteffort",
            "ns/over-high"
        ]
    );
    // PIDs: priority, then more processes.
    assert_eq!(
        order(pods, Signal::PidAvailable),
        [
            "ns/unknown",
            "ns/besteffort-big",
            "ns/under-low",
            "ns/besteffort",
            "ns/over-high"
        ]
    );
}

#[test]
fn what_each_disk_signal_measures() {
    let s = stats("u-a", 0, 1000);
    let mut with_volume = s;
    with_volume.volume.push(crate::stats::summary::VolumeStats {
        fs: FsStats {
            used_bytes: 300,
            inodes_used: 3,
            ..Default::default()
        },
        name: "scratch".into(),
    });
    let u = |dedicated| {
        candidate(&pod("a", 0, None), Some(&with_volume), dedicated)
            .usage
            .unwrap_or_default()
    };
    // One filesystem: rootfs 1000 + logs 500 + volume 300 on both.
    assert_eq!(
        (u(false).nodefs, u(false).imagefs),
        ((1800, 153), (1800, 153))
    );
    // A dedicated image filesystem: nodefs has the logs and volumes, imagefs the rootfs.
    assert_eq!((u(true).nodefs, u(true).imagefs), ((800, 53), (1000, 100)));
}

#[test]
fn critical_pods_are_never_chosen() {
    let k = config("evictionHard: {memory.available: 100Mi}\n");
    let c = Config::from_kubelet(&k);
    let o = obs(&[(Signal::MemoryAvailable, 10 * MI, 1000 * MI)]);
    let mut static_pod = pod("static", 0, None);
    static_pod["metadata"]["annotations"] = json!({"kubernetes.io/config.source": "file"});
    let mut mirror = pod("mirror", 0, None);
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "h"});
    let pods = |extra: Option<Value>| {
        let mut v = vec![
            candidate(&static_pod, None, false),
            candidate(&mirror, None, false),
            candidate(&pod("system", 2_000_001_000, None), None, false),
        ];
        v.extend(extra.map(|p| candidate(&p, None, false)));
        v
    };
    assert_eq!(choose(&c.thresholds[0], &c, &o, pods(None)), None);
    let (chosen, _, _, grace) = choose(
        &c.thresholds[0],
        &c,
        &o,
        pods(Some(pod("app", 1_999_999_999, None))),
    )
    .unwrap_or_else(|| panic!("no pod chosen"));
    assert_eq!((chosen.key.as_str(), grace), ("ns/app", HARD_GRACE_SECONDS));
}

#[test]
fn the_kubelets_message() {
    let k = config("evictionHard: {memory.available: 100Mi, nodefs.available: 10%}\n");
    let c = Config::from_kubelet(&k);
    let o = obs(&[
        (Signal::MemoryAvailable, 3 * MI + 512 * 1024, 1000 * MI),
        (Signal::NodefsAvailable, 29_362_700 * 1024, 311_894_888_550),
    ]);
    let p = candidate(
        &pod("a", 0, Some("1Mi")),
        Some(&stats("u-a", 26_060 * 1024, 1024)),
        false,
    );
    let notes = |containers: &str, usage: &str, starved: &str| {
        BTreeMap::from([
            ("offending_containers".to_string(), containers.to_string()),
            ("offending_containers_usage".to_string(), usage.to_string()),
            ("starved_resource".to_string(), starved.to_string()),
        ])
    };
    assert_eq!(
        message(&c.thresholds[0], &o, &p),
        (
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 3584Ki. \
             Container c was using 26060Ki, request is 1Mi, has larger consumption of memory. "
                .to_string(),
            notes("c", "26060Ki", "memory")
        )
    );
    // A percentage threshold's quantity is of the capacity; no container over its (zero)
    // request of ephemeral storage is left out.
    assert_eq!(
        message(&c.thresholds[1], &o, &p),
        (
            "The node was low on resource: ephemeral-storage. Threshold quantity: 31189488855, \
             available: 29362700Ki. Container c was using 1536, request is 0, has larger \
             consumption of ephemeral-storage. "
                .to_string(),
            notes("c", "1536", "ephemeral-storage")
        )
    );
    // Within its request, a container is not named (the annotations say so, empty).
    let q = candidate(
        &pod("b", 0, Some("1Gi")),
        Some(&stats("u-b", 26_060 * 1024, 0)),
        false,
    );
    let low =
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 3584Ki. ";
    assert_eq!(
        message(&c.thresholds[0], &o, &q),
        (low.to_string(), notes("", "", "memory"))
    );
    // A pod-level memory request: the pod is named first, whether over it or not.
    let mut lvl = pod("lvl", 0, None);
    lvl["spec"]["resources"] = json!({"requests": {"memory": "64Mi"}});
    let lvl = candidate(&lvl, Some(&stats("u-lvl", 26_060 * 1024, 0)), false);
    let mut want = notes("c", "26060Ki", "memory");
    want.insert("offending_pod".into(), "lvl".into());
    want.insert("offending_pod_usage".into(), "26060Ki".into());
    assert_eq!(
        message(&c.thresholds[0], &o, &lvl),
        (
            format!(
                "{low}Pod lvl was using 26060Ki, request is 64Mi, has larger consumption of \
                 memory. Container c was using 26060Ki, request is 0, has larger consumption of \
                 memory. "
            ),
            want
        )
    );
    // Without the pod's stats: the message alone, no annotations (as the kubelet's).
    let unknown = candidate(&pod("u", 0, Some("1Mi")), None, false);
    assert_eq!(
        message(&c.thresholds[0], &o, &unknown),
        (low.to_string(), BTreeMap::new())
    );
    assert_eq!(decimal_si(5_000_000), "5M");
    assert_eq!(decimal_si(1_234), "1234");
}

#[test]
fn grace_periods() {
    let soft = |max: &str| {
        Config::from_kubelet(&config(&format!(
            "evictionSoft: {{memory.available: 1Gi}}\n\
             evictionSoftGracePeriod: {{memory.available: 1m}}\n{max}"
        )))
    };
    // The default hard thresholds are there too.
    let of = |c: &Config| {
        c.thresholds
            .iter()
            .find(|t| !t.grace.is_zero())
            .cloned()
            .unwrap_or_else(|| panic!("no soft threshold"))
    };
    let mut p = candidate(&pod("a", 0, None), None, false);
    p.grace = 45;
    let c = soft("evictionMaxPodGracePeriod: 20\n");
    assert_eq!(grace(&of(&c), &c, &p), 20);
    assert_eq!(grace(&c.thresholds[0], &c, &p), HARD_GRACE_SECONDS);
    // evictionMaxPodGracePeriod 0: the pod's own.
    let c = soft("");
    assert_eq!(grace(&of(&c), &c, &p), 45);
    p.grace = 0;
    assert_eq!(grace(&of(&c), &c, &p), 1);
}

#[test]
fn local_storage_limits() {
    let mut p = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"volumes": [
                {"name": "scratch", "emptyDir": {"sizeLimit": "1Ki"}},
                {"name": "mem", "emptyDir": {"medium": "Memory"}}],
            "containers": [{"name": "c", "resources": {"limits": {"ephemeral-storage": "4Ki"}}},
                {"name": "d"}]}});
    // rootfs 2048, logs 1024 for c.
    let mut s = stats("u", 0, 2048);
    let vol = |name: &str, used: u64| crate::stats::summary::VolumeStats {
        fs: FsStats {
            used_bytes: used,
            ..Default::default()
        },
        name: name.into(),
    };
    s.volume = vec![vol("scratch", 1024), vol("mem", 1 << 30)];
    s.ephemeral_storage = Some(FsStats {
        used_bytes: 4096,
        ..Default::default()
    });
    assert_eq!(
        over_local_limits(&p, &s, false),
        None,
        "all at their limits"
    );
    s.volume[0] = vol("scratch", 1025);
    assert_eq!(
        over_local_limits(&p, &s, false),
        Some((
            "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Ki\". ".into(),
            "emptydirfs.limit"
        ))
    );
    s.volume[0] = vol("scratch", 0);
    s.ephemeral_storage = Some(FsStats {
        used_bytes: 4097,
        ..Default::default()
    });
    assert_eq!(
        over_local_limits(&p, &s, false),
        Some((
            "Pod ephemeral local storage usage exceeds the total limit of containers 4Ki. ".into(),
            "ephemeralpodfs.limit"
        ))
    );
    // A second container's limit raises the pod's; c alone is then over its own.
    p["spec"]["containers"][1]["resources"] = json!({"limits": {"ephemeral-storage": "1Mi"}});
    s.containers[0].rootfs = Some(FsStats {
        used_bytes: 4000,
        ..Default::default()
    });
    assert_eq!(
        over_local_limits(&p, &s, false),
        Some((
            "Container c exceeded its local ephemeral storage limit \"4Ki\". ".into(),
            "ephemeralcontainerfs.limit"
        ))
    );
    // With a dedicated image filesystem the writable layer does not count.
    assert_eq!(over_local_limits(&p, &s, true), None);
}
