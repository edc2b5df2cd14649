//! The owner's rounds against the fakes, without root: a harness carries the work out
//! synchronously (observe, step, execute, report), so each test reads as a pod's life; one
//! test runs the real threads to show the owner never waits for a slow stop.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::pods::execute::Executor;
use crate::pods::fake::{FakeApi, FakeCri};
use crate::pods::report::ApiWorker;
use crate::pods::seams::{Api, Cri};

fn config(root: &std::path::Path) -> Config {
    Config {
        node: "n1".into(),
        host_ip: "10.0.0.1".into(),
        pod_logs_dir: root.join("logs"),
        cgroup_root: "/".into(),
        cgroup_driver: crate::pods::layout::CgroupDriver::Cgroupfs,
        cluster_dns: vec![],
        cluster_domain: "cluster.local".into(),
        sync_every: Duration::from_millis(100),
        root_dir: root.join("root"),
        node_memory: 1 << 30,
        cpu_cfs_quota: true,
        limits: super::super::admit::NodeLimits {
            max_pods: 10,
            cpu_millis: 2000,
            memory: 1 << 30,
            ephemeral: 1 << 34,
            labels: Default::default(),
            sysctls: super::super::sysctls::Allowlist::new(&[], "6.1.0")
                .unwrap_or_else(|e| panic!("{e}")),
        },
        cgroup_mount: root.join("cgroup"),
        pod_pids_limit: -1,
        kubepods: None,
        api_source: true,
        static_source: false,
        resolv_conf: root.join("resolv.conf"),
        seccomp_default: false,
        registry_pull_qps: 0,
        registry_burst: 0,
        parallel_pulls: Some(1),
        parallel_starts: 10,
        volume_resync: Duration::from_secs(60),
        log_rotation: crate::pods::log_rotation::Policy {
            max_size: 10 << 20,
            max_files: 5,
            every: Duration::from_secs(10),
        },
        image_gc: crate::pods::image_gc::Policy {
            high_percent: 85,
            low_percent: 80,
            min_age: Duration::from_secs(120),
            max_age: Duration::ZERO,
        },
        pressure: Default::default(),
    }
}

fn pod(name: &str, containers: &[&str], extra: Value) -> Pod {
    let cs: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox:1", "imagePullPolicy": "IfNotPresent"}))
        .collect();
    let mut spec = json!({"containers": cs, "terminationGracePeriodSeconds": 5});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    Pod::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "resourceVersion": "1"},
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

struct Harness {
    owner: Owner,
    cri: Arc<FakeCri>,
    api: Arc<FakeApi>,
    exec: Executor,
    observer: super::super::observe::Observer,
    api_worker: ApiWorker,
    /// The probe jobs the owner sent out, not run.
    probes: Vec<probe::Job>,
    _tmp: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cfg = Arc::new(config(tmp.path()));
        let cri = Arc::new(FakeCri::with_images(&["busybox:1"]));
        let api = Arc::new(FakeApi::default());
        let exec = Executor::new(cfg.clone(), cri.clone(), api.clone(), None, synced());
        Harness {
            owner: Owner::new(cfg.clone(), None, Arc::default()),
            observer: super::super::observe::Observer::new(&cfg.root_dir),
            api_worker: ApiWorker::new("n1"),
            probes: Vec::new(),
            cri,
            api,
            exec,
            _tmp: tmp,
        }
    }

    fn send(&mut self, m: Msg) {
        let work = self.owner.take(Input::Source(m), now());
        self.carry_out(work);
    }

    fn carry_out(&mut self, work: Vec<Work>) {
        let mut queue = work;
        while let Some(w) = queue.pop() {
            let next = match w {
                Work::Pod(job) => {
                    let out = self.exec.run(*job);
                    self.owner.take(Input::Done(out), now())
                }
                Work::Api(job) => {
                    let done = self.api_worker.run(&*self.api, job);
                    self.owner.take(Input::Api(done), now())
                }
                Work::Stop { id, .. } => {
                    let _ = self
                        .cri
                        .stop_container(&crate::cri::api::StopContainerRequest {
                            container_id: id,
                            timeout: 0,
                        });
                    Vec::new()
                }
                Work::Probe(j) => {
                    self.probes.push(*j);
                    Vec::new()
                }
                Work::Gc => Vec::new(),
            };
            queue.extend(next);
        }
    }

    /// Rounds until nothing is left to do (a few at most).
    fn settle(&mut self) {
        for _ in 0..6 {
            let o = self
                .observer
                .relist(&*self.cri, now())
                .unwrap_or_else(|e| panic!("{e}"));
            self.owner.take(Input::Observed(o), now());
            let work = self.owner.round(now());
            if work.is_empty() {
                return;
            }
            self.carry_out(work);
        }
    }

    /// The status the API holds for pod `name`, after every patch.
    fn status(&self, name: &str) -> Value {
        self.api
            .get(&format!("/api/v1/namespaces/default/pods/{name}/status"))
            .map(|v| v["status"].clone())
            .unwrap_or(Value::Null)
    }
}

/// The services, read (none there).
fn synced() -> crate::pods::services::Services {
    Arc::new(std::sync::RwLock::new(Some(Default::default())))
}

fn now() -> u64 {
    super::super::execute::now_ms()
}

#[test]
fn a_pod_runs_and_its_status_is_written() {
    let mut h = Harness::new();
    h.send(Msg::Listed(vec![pod("web", &["app"], json!({}))]));
    h.settle();
    assert_eq!(h.cri.containers(), [("app".to_string(), 1)]);
    assert_eq!(h.cri.count("RunPodSandbox"), 1, "one sandbox");
    let st = h.status("web");
    assert_eq!(st["phase"], "Running", "{st}");
    // Its start is timed (once: see the end).
    assert_eq!(pod_starts(&h), "1");
    assert!(
        st["containerStatuses"][0]["state"]["running"].is_object(),
        "{st}"
    );
    assert_eq!(st["podIP"], "10.9.0.2");
    // The published view carries the sandbox and its image (verbose status, for cAdvisor's
    // `image` label of the sandbox).
    let view = h.owner.snapshot();
    assert!(view[0].sandbox.is_some(), "{:?}", view[0].sandbox);
    assert_eq!(view[0].sandbox_image, crate::pods::fake::FAKE_PAUSE);
    // The uid is the patch's precondition.
    let (_, body) = h
        .api
        .writes("patch")
        .into_iter()
        .next_back()
        .unwrap_or_default();
    assert_eq!(body["metadata"]["uid"], "uid-web");
    // Nothing changes: no more writes, no more CRI work.
    let writes = h.api.writes("patch").len();
    let creates = h.cri.count("CreateContainer");
    h.settle();
    assert_eq!(
        (h.api.writes("patch").len(), h.cri.count("CreateContainer")),
        (writes, creates)
    );
    assert_eq!(pod_starts(&h), "1");
}

fn pod_starts(h: &Harness) -> String {
    let mut out = String::new();
    h.owner.health.pods.render(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix("kubelet_pod_start_duration_seconds_count "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_deleted_pod_stops_its_containers_at_once_then_goes() {
    let mut h = Harness::new();
    let p = pod("three", &["a", "b", "c"], json!({}));
    h.send(Msg::Listed(vec![p.clone()]));
    h.settle();
    assert_eq!(h.cri.containers().len(), 3);
    *h.cri.stop_takes.lock().unwrap_or_else(|e| e.into_inner()) = Duration::from_millis(300);
    let mut gone = p.clone();
    gone.metadata.deletion_timestamp = Some("2026-12-01T00:00:00Z".into());
    gone.metadata.deletion_grace_period_seconds = Some(5);
    gone.raw["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
    h.send(Msg::Upsert(Box::new(gone)));
    h.settle();
    assert_eq!(
        h.cri
            .stops_at_once
            .load(std::sync::atomic::Ordering::SeqCst),
        3,
        "the three containers were stopped together"
    );
    assert_eq!(h.cri.sandboxes(), 0, "the sandbox is removed");
    let deletes = h.api.writes("delete");
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].0, "/api/v1/namespaces/default/pods/three");
    assert_eq!(
        deletes[0].1,
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-three"}})
    );
    assert!(h.owner.is_empty(), "the pod is forgotten");
    // A watch event sent before the deletion, arriving after it: not a new pod, and no
    // checkpoint (which a restart without the API server would run again).
    let mut late = p.clone();
    late.metadata.resource_version = "7".into();
    late.status = json!({"phase": "Running", "startTime": "2026-12-01T00:00:00Z"});
    h.send(Msg::Upsert(Box::new(late)));
    h.settle();
    assert!(h.owner.is_empty(), "a late event does not bring it back");
    let dir = h.owner.cfg.root_dir.join("pods/uid-three");
    assert!(!dir.exists(), "{} was written again", dir.display());
    assert_eq!(h.cri.count("RunPodSandbox"), 1, "nothing is run again");
}

#[test]
fn a_failing_pull_is_held_and_reported() {
    let mut h = Harness::new();
    let mut p = pod("pull", &["app"], json!({}));
    p.spec.containers[0].image = "missing:1".into();
    p.raw["spec"]["containers"][0]["image"] = json!("missing:1");
    h.send(Msg::Listed(vec![p]));
    h.settle();
    let st = h.status("pull");
    let w = &st["containerStatuses"][0]["state"]["waiting"];
    assert_eq!(w["reason"], "ImagePullBackOff", "{st}");
    assert!(
        w["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing:1 not found")),
        "{w}"
    );
    let pulls = h.cri.count("PullImage");
    h.settle();
    assert_eq!(h.cri.count("PullImage"), pulls, "held by its back-off");
}

#[test]
fn a_pod_past_the_node_is_rejected_without_a_sandbox() {
    let mut h = Harness::new();
    let greedy = pod(
        "greedy",
        &["app"],
        json!({"containers": [{"name": "app", "image": "busybox:1", "resources": {"requests": {"cpu": "3"}}}]}),
    );
    h.send(Msg::Listed(vec![greedy]));
    h.settle();
    let st = h.status("greedy");
    assert_eq!(
        (st["phase"].as_str(), st["reason"].as_str()),
        (Some("Failed"), Some("OutOfcpu"))
    );
    assert_eq!(h.cri.count("RunPodSandbox"), 0);
    assert_eq!(pod_starts(&h), "0", "a rejected pod never starts");
}

/// A configMap volume comes from the API; while it is missing the pod waits (the volume
/// back-off), and once it is there the container starts with it mounted.
#[test]
fn volumes_come_from_the_api_and_wait_for_it() {
    let mut h = Harness::new();
    let p = pod(
        "vols",
        &["app"],
        json!({
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
            "containers": [{"name": "app", "image": "busybox:1",
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
        }),
    );
    h.send(Msg::Listed(vec![p]));
    h.settle();
    assert_eq!(h.cri.count("CreateContainer"), 0, "waits for its configMap");
    let st = h.status("vols");
    assert_eq!(
        st["containerStatuses"][0]["state"]["waiting"]["reason"], "ContainerCreating",
        "{st}"
    );
    h.api.put(
        "/api/v1/namespaces/default/configmaps/cfg",
        json!({"data": {"motd": "hello"}}),
    );
    std::thread::sleep(Duration::from_millis(600));
    h.settle();
    assert_eq!(h.cri.containers(), [("app".to_string(), 1)]);
    let motd = h
        ._tmp
        .path()
        .join("root/pods/uid-vols/volumes/kubernetes.io~configmap/cfg/motd");
    assert_eq!(std::fs::read_to_string(motd).unwrap_or_default(), "hello");
}

#[test]
fn a_crashing_container_restarts_after_its_back_off() {
    let mut h = Harness::new();
    h.send(Msg::Listed(vec![pod("crash", &["app"], json!({}))]));
    h.settle();
    h.cri.exit("app", 3);
    h.settle();
    let st = h.status("crash");
    let c = &st["containerStatuses"][0];
    assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff", "{st}");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{st}");
    assert_eq!(h.cri.count("CreateContainer"), 1, "not before the back-off");
}

/// `containerStatuses` is atomic in the API: when one of two containers changes, the patch
/// must carry both, or the API server keeps only the one sent.
#[test]
fn one_container_changing_keeps_the_others_status() {
    let mut h = Harness::new();
    h.send(Msg::Listed(vec![pod("two", &["a", "b"], json!({}))]));
    h.settle();
    let names = |st: &Value| -> Vec<String> {
        st["containerStatuses"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|c| c["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&h.status("two")), ["a", "b"]);
    h.cri.exit("b", 1);
    h.settle();
    let st = h.status("two");
    assert_eq!(names(&st), ["a", "b"], "{st}");
    assert!(
        st["containerStatuses"][0]["state"]["running"].is_object(),
        "{st}"
    );
    assert_eq!(
        st["containerStatuses"][1]["lastState"]["terminated"]["exitCode"], 1,
        "{st}"
    );
}

/// The real threads: a pod whose container takes 3 s to stop is being deleted, and a pod
/// added meanwhile starts at once: the owner does not wait for the stop.
#[test]
fn a_slow_stop_does_not_hold_another_pods_start() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cri = Arc::new(FakeCri::with_images(&["busybox:1"]));
    let api = Arc::new(FakeApi::default());
    let snapshot = crate::pods::Snapshot::default();
    let stop = Arc::new(crate::stop::Stop::default());
    let pods = super::super::runner::start(
        config(tmp.path()),
        api.clone(),
        cri.clone(),
        snapshot.clone(),
        None,
        synced(),
        stop.clone(),
        Arc::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let slow = pod("slow", &["app"], json!({}));
    assert!(pods.inbox.send(Msg::Listed(vec![slow.clone()])));
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("slow to run", &|| {
        cri.containers() == [("app".to_string(), 1)]
    });
    *cri.stop_takes.lock().unwrap_or_else(|e| e.into_inner()) = Duration::from_secs(3);
    let mut gone = slow.clone();
    gone.metadata.deletion_timestamp = Some("2026-12-01T00:00:00Z".into());
    assert!(pods.inbox.send(Msg::Upsert(Box::new(gone))));
    wait_for("the slow stop to begin", &|| {
        cri.count("StopContainer") == 1
    });
    assert!(
        pods.inbox
            .send(Msg::Upsert(Box::new(pod("fast", &["web"], json!({})))))
    );
    wait_for("fast to start while slow stops", &|| {
        cri.containers().iter().any(|(n, s)| n == "web" && *s == 1)
    });
    assert_eq!(
        cri.stops_at_once.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the slow stop is still in progress"
    );
    assert!(
        cri.containers().iter().any(|(n, s)| n == "app" && *s == 1),
        "the slow container has not stopped yet"
    );
    stop.stop();
}

/// A liveness failure past its threshold stops the container within the probe's own
/// terminationGracePeriodSeconds when it names one, else the pod's.
#[test]
fn a_failed_liveness_probe_stops_within_its_own_grace() {
    for (probe_grace, want) in [(Some(7), 7), (None, 5)] {
        let mut h = Harness::new();
        let mut probe = json!({"exec": {"command": ["false"]}, "failureThreshold": 1});
        if let Some(g) = probe_grace {
            probe["terminationGracePeriodSeconds"] = json!(g);
        }
        let mut p = pod("live", &["app"], json!({}));
        p.raw["spec"]["containers"][0]["livenessProbe"] = probe;
        let p = Pod::from_value(p.raw.clone()).unwrap_or_else(|e| panic!("{e}"));
        h.send(Msg::Listed(vec![p]));
        h.settle();
        let job = h
            .probes
            .pop()
            .unwrap_or_else(|| panic!("no liveness probe was due"));
        let done = probe::Done {
            job,
            outcome: probe::Outcome::Failure("exit 1".into()),
            took: Duration::from_millis(1),
        };
        let stops: Vec<i64> = h
            .owner
            .take(Input::Probed(done), now())
            .into_iter()
            .filter_map(|w| match w {
                Work::Stop { grace, .. } => Some(grace),
                _ => None,
            })
            .collect();
        assert_eq!(stops, [want], "probe grace {probe_grace:?}");
    }
}

/// The eviction manager's choice: the pod fails (Evicted, the message, a DisruptionTarget
/// condition), its container stops within the eviction's grace period, not the pod's, and
/// nothing restarts; a static pod is never evicted.
#[test]
fn an_evicted_pod_fails_and_stops_within_the_evictions_grace() {
    let mut h = Harness::new();
    let mut static_pod = pod("static", &["s"], json!({}));
    static_pod
        .metadata
        .annotations
        .insert(files::SOURCE_ANNOTATION.into(), "file".into());
    h.send(Msg::Listed(vec![pod(
        "hog",
        &["app"],
        json!({"restartPolicy": "Always"}),
    )]));
    h.send(Msg::Static(vec![static_pod]));
    h.settle();
    assert_eq!(h.status("hog")["phase"], "Running");
    let message = "The node was low on resource: memory. ".to_string();
    for uid in ["uid-hog", "uid-static"] {
        let work = h.owner.take(
            Input::Evict {
                uid: uid.into(),
                message: message.clone(),
                annotations: Default::default(),
                grace: 1,
            },
            now(),
        );
        h.carry_out(work);
    }
    h.settle();
    let st = h.status("hog");
    assert_eq!(
        (&st["phase"], &st["reason"], &st["message"]),
        (&json!("Failed"), &json!("Evicted"), &json!(message)),
        "{st}"
    );
    let disruption: Vec<&Value> = st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "DisruptionTarget")
        .collect();
    assert_eq!(disruption.len(), 1, "{st}");
    assert_eq!(disruption[0]["reason"], "TerminationByKubelet");
    assert_eq!(disruption[0]["status"], "True");
    let stops = h
        .cri
        .stop_timeouts
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    assert_eq!(
        stops,
        [1],
        "one stop, within the eviction's 1 s (the pod's is 5 s)"
    );
    let mut running: Vec<(String, i32)> = h.cri.containers();
    running.sort();
    assert_eq!(running, [("app".to_string(), 2), ("s".to_string(), 1)]);
    // Evicted again (the manager's next round): nothing more happens.
    let work = h.owner.take(
        Input::Evict {
            uid: "uid-hog".into(),
            message: "again".into(),
            annotations: Default::default(),
            grace: 1,
        },
        now(),
    );
    h.carry_out(work);
    h.settle();
    assert_eq!(h.status("hog")["message"], json!(message));
    assert_eq!(h.cri.count("CreateContainer"), 2, "nothing restarted");
    // Checkpointed as Failed at once: a restart before the API has the status runs it no more.
    let restored = crate::pods::checkpoint::restore(&h.owner.cfg.root_dir);
    let hog = restored.iter().find(|p| p.metadata.name == "hog");
    assert_eq!(
        hog.map(|p| (p.status["phase"].clone(), p.status["reason"].clone())),
        Some((json!("Failed"), json!("Evicted")))
    );
}
