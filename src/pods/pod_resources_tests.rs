//! Tables for the pod's sums, QoS class and cgroup settings (cases after the kubelet's
//! TestResourceConfigForPod, TestComputePodQOS and component-helpers' TestPodResourceRequests).

use super::*;
use serde_json::json;

fn c(name: &str, requests: Value, limits: Value) -> Value {
    json!({"name": name, "image": "x", "resources": {"requests": requests, "limits": limits}})
}

fn sidecar(name: &str, requests: Value, limits: Value) -> Value {
    let mut v = c(name, requests, limits);
    v["restartPolicy"] = json!("Always");
    v
}

fn pod(containers: Vec<Value>, init: Vec<Value>) -> Value {
    json!({"metadata": {"name": "p"}, "spec": {"containers": containers, "initContainers": init}})
}

fn l(pairs: &[(&str, i64)]) -> List {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const MI: i64 = 1 << 20;

#[test]
fn requests_add_up_as_the_sidecar_kep_says() {
    // Apps add up; the larger init need wins when it is more.
    let p = pod(
        vec![
            c("a", json!({"cpu": "100m", "memory": "64Mi"}), json!({})),
            c("b", json!({"cpu": "200m"}), json!({})),
        ],
        vec![c("init", json!({"cpu": "1", "memory": "1Mi"}), json!({}))],
    );
    assert_eq!(
        requests(&p),
        l(&[("cpu", 1000), ("memory", 64 * MI * 1000)])
    );
    // A sidecar is added, and counted with each init container after it (not before).
    let p = pod(
        vec![c("app", json!({"cpu": "100m"}), json!({}))],
        vec![
            c("first", json!({"cpu": "300m"}), json!({})),
            sidecar("proxy", json!({"cpu": "200m"}), json!({})),
            c("second", json!({"cpu": "250m"}), json!({})),
        ],
    );
    assert_eq!(
        requests(&p),
        l(&[("cpu", 450)]),
        "max(100+200, 300, 200+250)"
    );
    // A limit without a request requests the limit; overhead is added.
    let mut p = pod(vec![c("a", json!({}), json!({"memory": "1Gi"}))], vec![]);
    p["spec"]["overhead"] = json!({"memory": "10Mi"});
    assert_eq!(requests(&p), l(&[("memory", (1024 + 10) * MI * 1000)]));
}

#[test]
fn pod_level_resources_stand_in_for_the_sums() {
    let mut p = pod(
        vec![
            c("a", json!({"cpu": "100m"}), json!({})),
            c("b", json!({"memory": "8Mi"}), json!({})),
        ],
        vec![],
    );
    p["spec"]["resources"] = json!({"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi", "example.com/x": "1"}});
    assert!(pod_level_set(&p));
    assert_eq!(requests(&p), l(&[("cpu", 1000), ("memory", 8 * MI * 1000)]));
    let (lims, cpu, memory) = limits(&p);
    assert_eq!(lims, l(&[("cpu", 2000), ("memory", 1024 * MI * 1000)]));
    assert!(cpu && memory, "declared at pod level");
    // Containers without limits take the pod-level ones for their own cgroup.
    let a = &p["spec"]["containers"][0]["resources"];
    assert_eq!(
        container_resources(&p, a),
        json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "2", "memory": "1Gi"}})
    );
    let own = json!({"limits": {"memory": "4Mi"}});
    assert_eq!(
        container_resources(&p, &own),
        json!({"limits": {"memory": "4Mi", "cpu": "2"}})
    );
    assert_eq!(
        container_resources(&p, &Value::Null),
        json!({"limits": {"cpu": "2", "memory": "1Gi"}})
    );
    let plain = pod(vec![c("a", json!({}), json!({}))], vec![]);
    assert!(!pod_level_set(&plain));
    assert_eq!(container_resources(&plain, &own), own);
}

#[test]
fn limits_are_declared_only_when_every_container_has_one() {
    let p = pod(
        vec![
            c("a", json!({}), json!({"cpu": "1", "memory": "1Gi"})),
            c("b", json!({}), json!({"memory": "1Gi"})),
        ],
        vec![],
    );
    let (lims, cpu, memory) = limits(&p);
    assert_eq!(lims["cpu"], 1000);
    assert!(!cpu && memory);
    // An init container without a limit after a sidecar with one counts as declared.
    let p = pod(
        vec![c("a", json!({}), json!({"cpu": "1"}))],
        vec![
            sidecar("s", json!({}), json!({"cpu": "500m"})),
            c("i", json!({}), json!({})),
        ],
    );
    let (lims, cpu, _) = limits(&p);
    assert!(cpu);
    assert_eq!(lims["cpu"], 1500);
    // Overhead is added to a limit there is, only.
    let mut p = pod(vec![c("a", json!({}), json!({"cpu": "1"}))], vec![]);
    p["spec"]["overhead"] = json!({"cpu": "100m", "memory": "10Mi"});
    assert_eq!(limits(&p).0, l(&[("cpu", 1100)]));
}

#[test]
fn qos_as_the_api_computes_it() {
    let g = json!({"cpu": "1", "memory": "1Gi"});
    let cases = [
        (
            pod(vec![c("a", json!({}), json!({}))], vec![]),
            Qos::BestEffort,
        ),
        (
            pod(vec![c("a", json!({}), g.clone())], vec![]),
            Qos::Guaranteed,
        ),
        // An init container without limits makes it Burstable.
        (
            pod(
                vec![c("a", json!({}), g.clone())],
                vec![c("i", json!({"cpu": "1"}), json!({}))],
            ),
            Qos::Burstable,
        ),
        // Requests below the limits.
        (
            pod(vec![c("a", json!({"cpu": "500m"}), g.clone())], vec![]),
            Qos::Burstable,
        ),
        // The API compares the sums: 1+2 requested, 2+1 limited.
        (
            pod(
                vec![
                    c(
                        "a",
                        json!({"cpu": "1", "memory": "1Gi"}),
                        json!({"cpu": "2", "memory": "1Gi"}),
                    ),
                    c(
                        "b",
                        json!({"cpu": "2", "memory": "1Gi"}),
                        json!({"cpu": "1", "memory": "1Gi"}),
                    ),
                ],
                vec![],
            ),
            Qos::Guaranteed,
        ),
        // Zero amounts and other resources do not count.
        (
            pod(
                vec![c("a", json!({"cpu": "0", "example.com/x": "1"}), json!({}))],
                vec![],
            ),
            Qos::BestEffort,
        ),
    ];
    for (p, want) in cases {
        assert_eq!(qos(&p), want, "{p}");
    }
    // Pod-level resources decide alone.
    let mut p = pod(vec![c("a", json!({}), json!({}))], vec![]);
    p["spec"]["resources"] = json!({"limits": g.clone()});
    assert_eq!(qos(&p), Qos::Burstable, "pod-level limits without requests");
    p["spec"]["resources"]["requests"] = g.clone();
    assert_eq!(qos(&p), Qos::Guaranteed);
    p["spec"]["resources"] = json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}});
    assert_eq!(qos(&p), Qos::Burstable, "no cpu limit");
    // The API server's status.qosClass is taken as it is.
    p["status"] = json!({"qosClass": "BestEffort"});
    assert_eq!(qos(&p), Qos::BestEffort);
}

#[test]
fn the_kubelets_pod_cgroup() {
    let gib = 1i64 << 30;
    let guaranteed = pod(
        vec![c("a", json!({}), json!({"cpu": "100m", "memory": "1Gi"}))],
        vec![],
    );
    assert_eq!(
        pod_cgroup(&guaranteed, true),
        PodCgroup {
            cpu_shares: 102,
            cpu_quota: Some(10_000),
            memory: Some(gib)
        }
    );
    assert_eq!(
        pod_cgroup(&guaranteed, false).cpu_quota,
        Some(-1),
        "cpuCFSQuota off"
    );
    let burstable = pod(
        vec![
            c(
                "a",
                json!({"cpu": "250m"}),
                json!({"cpu": "500m", "memory": "1Gi"}),
            ),
            c("b", json!({"cpu": "250m"}), json!({"memory": "1Gi"})),
        ],
        vec![],
    );
    assert_eq!(
        pod_cgroup(&burstable, true),
        PodCgroup {
            cpu_shares: 512,
            cpu_quota: None,
            memory: Some(2 * gib)
        },
        "no quota: b has no cpu limit"
    );
    let best = pod(vec![c("a", json!({}), json!({}))], vec![]);
    assert_eq!(
        pod_cgroup(&best, true),
        PodCgroup {
            cpu_shares: 2,
            cpu_quota: None,
            memory: None
        }
    );
    // Pod-level limits over containers without any.
    let mut p = pod(
        vec![c("a", json!({}), json!({})), c("b", json!({}), json!({}))],
        vec![],
    );
    p["spec"]["resources"] =
        json!({"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "256Mi"}});
    assert_eq!(
        pod_cgroup(&p, true),
        PodCgroup {
            cpu_shares: 1024,
            cpu_quota: Some(200_000),
            memory: Some(256 << 20)
        }
    );
    assert_eq!(
        (shares(1), shares(0), shares(1_000_000_000)),
        (2, 2, 262_144)
    );
    assert_eq!((quota(1), quota(0), quota(1500)), (1000, 0, 150_000));
    assert_eq!((whole(1500), whole(1000), whole(0)), (2, 1, 0));
}

#[test]
fn oom_scores_as_the_kubelets() {
    let gib = 1u64 << 30;
    let cap = 4 * gib;
    let burstable = pod(
        vec![
            c("a", json!({"memory": "1Gi"}), json!({})),
            c("b", json!({"cpu": "100m"}), json!({})),
            c("all", json!({"memory": "4Gi"}), json!({})),
        ],
        vec![sidecar("proxy", json!({"memory": "256Mi"}), json!({}))],
    );
    assert_eq!(oom_score_adj(&burstable, "a", cap), 750);
    assert_eq!(
        oom_score_adj(&burstable, "b", cap),
        999,
        "no request: 1000 is BestEffort's"
    );
    assert_eq!(
        oom_score_adj(&burstable, "all", cap),
        3,
        "the floor above Guaranteed"
    );
    // A sidecar goes no higher than the regular container with the least request (b's 0 ->
    // 1000 -> its own 938 stays): and with a: min(938, 750).
    assert_eq!(oom_score_adj(&burstable, "proxy", cap), 938);
    let mut two = pod(
        vec![c("a", json!({"memory": "1Gi"}), json!({}))],
        vec![sidecar("proxy", json!({"memory": "256Mi"}), json!({}))],
    );
    assert_eq!(oom_score_adj(&two, "proxy", cap), 750);
    // Node-critical: as Guaranteed, whatever its class.
    two["spec"]["priorityClassName"] = json!("system-node-critical");
    two["spec"]["priority"] = json!(2_000_001_000);
    assert_eq!(oom_score_adj(&two, "a", cap), -997);
    let g = pod(
        vec![c("a", json!({}), json!({"cpu": "1", "memory": "1Gi"}))],
        vec![],
    );
    assert_eq!(oom_score_adj(&g, "a", cap), -997);
    let be = pod(vec![c("a", json!({}), json!({}))], vec![]);
    assert_eq!(oom_score_adj(&be, "a", cap), 1000);
    // Pod-level: the 1.5 GiB of the pod's request no container holds, shared by both.
    let mut lvl = pod(
        vec![
            c("a", json!({"memory": "512Mi"}), json!({})),
            c("b", json!({}), json!({})),
        ],
        vec![],
    );
    lvl["spec"]["resources"] = json!({"requests": {"memory": "2Gi"}});
    assert_eq!(oom_score_adj(&lvl, "a", cap), 688);
    assert_eq!(oom_score_adj(&lvl, "b", cap), 813);
}
