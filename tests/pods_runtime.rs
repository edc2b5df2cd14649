//! Pods end to end, against kube-sim and a real containerd, driven with kubectl: a pod runs with
//! its command, args and env, its status flows back (phase, IPs, container state, readiness),
//! its log lands in the pod log dir; a crashing container restarts under CrashLoopBackOff; a
//! `restartPolicy: Never` pod completes; deletion stops the containers within the grace period,
//! removes the sandbox and deletes the object.
#![allow(clippy::expect_used)]

mod common;

use std::time::Duration;

use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;
use serde_json::Value;

/// Lifecycle hooks and a startup probe; the preStop hook leaves a file in a hostPath.
const HOOKS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooks
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: host
    hostPath:
      path: HOST_DIR
      type: Directory
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "while [ ! -e /tmp/started ]; do sleep 0.2; done; echo post-start ran; sleep 2; touch /tmp/up; sleep 3600"]
    volumeMounts:
    - name: host
      mountPath: /host
    lifecycle:
      postStart:
        exec:
          command: ["touch", "/tmp/started"]
      preStop:
        exec:
          command: ["sh", "-c", "echo pre-stop ran > /host/prestop"]
    startupProbe:
      exec:
        command: ["test", "-e", "/tmp/up"]
      periodSeconds: 1
      failureThreshold: 30
"#;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c"]
    args: ['echo "hello $GREETING from $(hostname)"; sleep 3600']
    env:
    - name: GREETING
      value: world
---
apiVersion: v1
kind: Pod
metadata:
  name: crash
spec:
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo bye; exit 3"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  greeting: hello-from-configmap
  other: not-mounted
---
apiVersion: v1
kind: Secret
metadata:
  name: sec
stringData:
  password: s3cret
---
apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels:
    tier: edge
spec:
  restartPolicy: Never
  volumes:
  - name: cfg
    configMap:
      name: cfg
      items:
      - key: greeting
        path: greeting
        mode: 256
  - name: sec
    secret:
      secretName: sec
  - name: scratch
    emptyDir: {}
  - name: pod
    downwardAPI:
      items:
      - path: ns
        fieldRef:
          fieldPath: metadata.namespace
      - path: tier
        fieldRef:
          fieldPath: metadata.labels['tier']
  initContainers:
  - name: prep
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo init-was-here > /scratch/from-init"]
    volumeMounts:
    - name: scratch
      mountPath: /scratch
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c"]
    args:
    - |
      cat /scratch/from-init
      cat /etc/cfg/greeting; echo
      ls /etc/cfg
      cat /etc/sec/password; echo
      stat -L -c %a /etc/cfg/greeting
      ls /var/run/secrets/kubernetes.io/serviceaccount
      echo ok > /scratch/x && cat /scratch/x
      cat /etc/pod/ns; echo; cat /etc/pod/tier; echo
      touch /etc/cfg/x 2>/dev/null || echo read-only
      echo "$POD_NAME $CFG $S_password $(POD_NAME)"
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: CFG
      valueFrom:
        configMapKeyRef:
          name: cfg
          key: greeting
    envFrom:
    - secretRef:
        name: sec
      prefix: S_
    volumeMounts:
    - name: cfg
      mountPath: /etc/cfg
      readOnly: true
    - name: sec
      mountPath: /etc/sec
    - name: scratch
      mountPath: /scratch
    - name: pod
      mountPath: /etc/pod
---
apiVersion: v1
kind: Pod
metadata:
  name: probed
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: scratch
    emptyDir: {}
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; sleep 3600"]
    volumeMounts:
    - name: scratch
      mountPath: /scratch
    # Run before a liveness probe's kill too, as the kubelet runs it.
    lifecycle:
      preStop:
        exec:
          command: ["sh", "-c", "echo pre-stop ran >> /scratch/prestop"]
    readinessProbe:
      exec:
        command: ["sh", "-c", "test -e /tmp/ready || { echo not ready yet; exit 1; }"]
      periodSeconds: 1
    livenessProbe:
      exec:
        command: ["test", "!", "-e", "/tmp/ready"]
      initialDelaySeconds: 4
      periodSeconds: 1
      failureThreshold: 2
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"]
    resources:
      limits:
        memory: 24Mi
        cpu: 500m
---
apiVersion: v1
kind: Pod
metadata:
  name: greedy
spec:
  # Bound to the node directly: the scheduler would never place it (no node has 1000 cpus),
  # so only the agent's own admission can refuse it.
  nodeName: n1
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    resources:
      requests:
        cpu: "1000"
---
apiVersion: v1
kind: Pod
metadata:
  name: once
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["true"]
"#;

#[test]
fn pods_run_report_restart_complete_and_terminate() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed,
        mut agent,
        logs,
        args,
        ..
    } = PodNode::start(&env, tmp.path(), "podPidsLimit: 77\n", true);
    wait(&mut agent, "the node to be Ready", 30, || {
        seed.try_get(&["node", "n1"]).filter(node_ready)
    });
    let manifest = tmp.path().join("pods.yaml");
    write(&manifest, PODS);
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let host_dir = tmp.path().join("host");
    std::fs::create_dir_all(&host_dir).expect("host dir");
    let hooks_manifest = tmp.path().join("hooks.yaml");
    write(
        &hooks_manifest,
        &HOOKS.replace("HOST_DIR", &host_dir.display().to_string()),
    );
    seed.kubectl(&["apply", "-f", &hooks_manifest.display().to_string()]);

    // The long-running pod: Running, ready, with a pod IP from the CNI bridge.
    let web = wait(&mut agent, "web to run", 60, || {
        seed.try_get(&["pod", "web"]).filter(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"][0]["ready"] == true
        })
    });
    let st = &web["status"];
    assert_eq!(st["hostIP"], node_ip().as_str());
    let ip = st["podIP"].as_str().unwrap_or("");
    let subnet = env.var("SUBNET");
    let prefix = subnet.rsplit_once('.').map_or(subnet, |(p, _)| p);
    assert!(ip.starts_with(prefix), "pod IP {ip} not in {subnet}");
    assert_eq!(st["qosClass"], "BestEffort");
    let c = &st["containerStatuses"][0];
    assert_eq!(c["name"], "app");
    assert_eq!(c["restartCount"], 0);
    assert!(
        c["containerID"]
            .as_str()
            .is_some_and(|s| s.starts_with("containerd://")),
        "{c}"
    );
    assert!(c["imageID"].as_str().is_some_and(|s| !s.is_empty()), "{c}");
    assert!(c["state"]["running"]["startedAt"].is_string(), "{c}");
    let ready = st["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "True");
    // The pod's cgroup, made by the agent with podPidsLimit (cgroup v1 or v2).
    let uid0 = web["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let rel = format!(
        "{}/kubepods/besteffort/pod{uid0}",
        env.cgroup_parent().trim_start_matches('/')
    );
    let pod_cgroup = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .iter()
        .map(|m| std::path::Path::new(m).join(&rel))
        .find(|p| p.join("pids.max").exists())
        .expect("the pod's pids cgroup");
    assert_eq!(read(&pod_cgroup.join("pids.max")).trim(), "77");
    // Its log, in the kubelet's place and format.
    let uid = web["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let log = logs.join(format!("default_web_{uid}/app/0.log"));
    let line = wait(&mut agent, "the container's log line", 10, || {
        std::fs::read_to_string(&log).ok().filter(|l| !l.is_empty())
    });
    assert!(
        line.contains(" stdout F hello world from web\n"),
        "{line:?}"
    );
    // kubectl logs, through the API server's proxy to the 10250 API; the API's /pods lists it.
    let serving = seed.cert_dir().join("kubelet-server-current.pem");
    wait(&mut agent, "the serving certificate", 20, || {
        serving.exists().then_some(())
    });
    assert_eq!(seed.kubectl(&["logs", "web"]), "hello world from web\n");
    // kubectl exec: the API server's proxy, then tinylet's splice to containerd's stream.
    assert_eq!(
        seed.kubectl(&[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo $GREETING on $(hostname)"
        ]),
        "world on web\n"
    );
    let kubectl_raw = |args: &[&str], stdin: &[u8]| {
        use std::io::Write;
        let mut child = std::process::Command::new("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                seed.sim_dir.join("admin.kubeconfig").display()
            ))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin).expect("stdin");
        }
        child.wait_with_output().expect("kubectl output")
    };
    let out = kubectl_raw(
        &["exec", "-i", "web", "--", "sh", "-c", "tr a-z A-Z; exit 3"],
        b"piped in\n",
    );
    assert_eq!(text(&out.stdout), "PIPED IN\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("command terminated with exit code 3"),
        "{}",
        text(&out.stderr)
    );
    let listed: Value =
        serde_json::from_str(&seed.kubectl(&["get", "--raw", "/api/v1/nodes/n1/proxy/pods"]))
            .expect("PodList");
    let names: Vec<&str> = listed["items"]
        .as_array()
        .map(|i| {
            i.iter()
                .filter_map(|p| p["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(names.contains(&"web"), "{names:?}");

    // The crashing pod restarts after the 10 s back-off and shows CrashLoopBackOff meanwhile.
    let crash = wait(&mut agent, "crash to restart", 60, || {
        seed.try_get(&["pod", "crash"])
            .filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1))
    });
    let c = &crash["status"]["containerStatuses"][0];
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3, "{c}");
    assert_eq!(seed.kubectl(&["logs", "crash", "--previous"]), "bye\n");
    assert_eq!(crash["status"]["phase"], "Running");
    wait(&mut agent, "CrashLoopBackOff", 30, || {
        seed.try_get(&["pod", "crash"]).filter(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        })
    });

    // Probes: not ready while the readiness probe fails, ready once it passes; the liveness
    // probe then fails twice and the container is restarted.
    wait(&mut agent, "probed running but not ready", 30, || {
        seed.try_get(&["pod", "probed"]).filter(|p| {
            p["status"]["phase"] == "Running"
                && p["status"]["containerStatuses"][0]["ready"] == false
        })
    });
    wait(&mut agent, "probed ready", 30, || {
        seed.try_get(&["pod", "probed"])
            .filter(|p| p["status"]["containerStatuses"][0]["ready"] == true)
    });
    wait(
        &mut agent,
        "probed restarted by its liveness probe",
        40,
        || {
            seed.try_get(&["pod", "probed"])
                .filter(|p| p["status"]["containerStatuses"][0]["restartCount"].as_u64() >= Some(1))
        },
    );
    let ran = seed.kubectl(&["exec", "probed", "--", "cat", "/scratch/prestop"]);
    assert!(
        !ran.is_empty() && ran.lines().all(|l| l == "pre-stop ran"),
        "the preStop hook before the liveness kill: {ran:?}"
    );

    // Volumes: configMap (an item with its mode, read-only), secret, emptyDir, downwardAPI and
    // the kube-api-access projected volume kube-sim injects (token, ca.crt, namespace).
    wait(&mut agent, "vols to succeed", 60, || {
        seed.try_get(&["pod", "vols"])
            .filter(|p| p["status"]["phase"] == "Succeeded")
    });
    let vols = seed.try_get(&["pod", "vols"]).expect("vols");
    let init = &vols["status"]["initContainerStatuses"][0];
    assert_eq!(init["name"], "prep");
    assert_eq!(init["state"]["terminated"]["reason"], "Completed", "{init}");
    assert_eq!(
        seed.kubectl(&["logs", "vols"]),
        "init-was-here\nhello-from-configmap\ngreeting\ns3cret\n400\nca.crt\nnamespace\ntoken\nok\ndefault\nedge\nread-only\nvols hello-from-configmap s3cret vols\n"
    );

    // Limits reach the container: past its memory limit it is OOMKilled; Guaranteed QoS.
    let hog = wait(&mut agent, "hog to be OOMKilled", 60, || {
        seed.try_get(&["pod", "hog"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    // The reason is the runtime's (the kubelet's too): containerd 1.6 on cgroup v1 says
    // OOMKilled when its OOM event beats the exit event, and Error (137, SIGKILL) when the
    // machine is loaded and the exit wins; seen both ways in full parallel runs.
    let t = &hog["status"]["containerStatuses"][0]["state"]["terminated"];
    assert!(
        matches!(t["reason"].as_str(), Some("OOMKilled" | "Error")) && t["exitCode"] == 137,
        "{t}"
    );
    assert_eq!(hog["status"]["qosClass"], "Guaranteed");

    // restartPolicy Never, exit 0: Succeeded, not restarted.
    let once = wait(&mut agent, "once to succeed", 60, || {
        seed.try_get(&["pod", "once"])
            .filter(|p| p["status"]["phase"] == "Succeeded")
    });
    let c = &once["status"]["containerStatuses"][0];
    assert_eq!(c["state"]["terminated"]["reason"], "Completed");
    assert_eq!(c["restartCount"], 0);

    // Lifecycle hooks and a startup probe: postStart runs (the container waits for it), the
    // pod is ready only once the startup probe passes, preStop runs on deletion.
    let hooks = wait(
        &mut agent,
        "hooks ready after its startup probe",
        40,
        || {
            seed.try_get(&["pod", "hooks"])
                .filter(|p| p["status"]["containerStatuses"][0]["ready"] == true)
        },
    );
    assert_eq!(hooks["status"]["containerStatuses"][0]["restartCount"], 0);
    assert_eq!(seed.kubectl(&["logs", "hooks"]), "post-start ran\n");
    seed.kubectl(&["delete", "pod", "hooks", "--wait=false"]);
    wait(&mut agent, "hooks to be gone", 30, || {
        seed.try_get(&["pod", "hooks"]).is_none().then_some(())
    });
    assert_eq!(read(&host_dir.join("prestop")), "pre-stop ran\n");

    // Admission: more cpu than the node has is refused with the kubelet's reason.
    let greedy = wait(&mut agent, "greedy to be rejected", 30, || {
        seed.try_get(&["pod", "greedy"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(greedy["status"]["reason"], "OutOfcpu");
    assert!(
        greedy["status"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Pod was rejected: Node didn't have enough resource: cpu, requested: 1000000, used: ")),
        "{}",
        greedy["status"]
    );

    // A restart of the agent (SIGKILL) adopts the running containers instead of recreating them.
    let before = seed.try_get(&["pod", "web"]).expect("web");
    agent.kill();
    let mut agent = Agent::start(&args);
    agent.expect("SyncLoop ADD: pod \"default/web\"");
    std::thread::sleep(Duration::from_secs(3));
    let after = seed.try_get(&["pod", "web"]).expect("web");
    for f in ["containerID", "restartCount", "ready"] {
        assert_eq!(
            after["status"]["containerStatuses"][0][f], before["status"]["containerStatuses"][0][f],
            "{f} after the restart"
        );
    }
    assert_eq!(after["status"]["phase"], "Running");

    // A new image for a running container (the one field of it the API lets change): the
    // container is stopped and started again from it, under a new ID, as the kubelet does.
    let old_id = after["status"]["containerStatuses"][0]["containerID"].clone();
    seed.kubectl(&[
        "set",
        "image",
        "pod/web",
        "app=docker.io/library/busybox:latest",
    ]);
    let web = wait(&mut agent, "web restarted on its new image", 60, || {
        seed.try_get(&["pod", "web"]).filter(|p| {
            let c = &p["status"]["containerStatuses"][0];
            c["restartCount"] == 1 && c["ready"] == true && c["containerID"] != old_id
        })
    });
    let c = &web["status"]["containerStatuses"][0];
    assert_eq!(c["image"], "docker.io/library/busybox:latest", "{c}");
    assert_eq!(c["lastState"]["terminated"]["containerID"], old_id, "{c}");

    // Deletion: the agent stops the container within the 2 s grace period, removes the
    // sandbox and deletes the object.
    seed.kubectl(&["delete", "pod", "web", "--wait=false"]);
    wait(&mut agent, "web to be gone from the API", 30, || {
        seed.try_get(&["pod", "web"]).is_none().then_some(())
    });
    // The pods' events, as the kubelet records them (kubectl describe shows these).
    let events = wait(&mut agent, "the pods' events", 20, || {
        let list = seed.try_get(&["events"])?;
        let got: Vec<(String, String, String)> = list["items"]
            .as_array()?
            .iter()
            .map(|e| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (
                    s(&e["involvedObject"]["name"]),
                    s(&e["reason"]),
                    s(&e["message"]),
                )
            })
            .collect();
        got.iter()
            .any(|(n, r, _)| n == "web" && r == "Killing")
            .then_some(got)
    });
    let has = |pod: &str, reason: &str, message: &str| {
        events
            .iter()
            .any(|(n, r, m)| n == pod && r == reason && m.starts_with(message))
    };
    for (pod, reason, message) in [
        (
            "web",
            "Pulled",
            "Container image \"docker.io/library/busybox:1.36\" already present on machine",
        ),
        ("web", "Created", "Created container app"),
        ("web", "Started", "Started container app"),
        (
            "web",
            "Killing",
            "Container app definition changed, will be restarted",
        ),
        ("web", "Killing", "Stopping container app"),
        (
            "crash",
            "BackOff",
            "Back-off restarting failed container app in pod crash_default(",
        ),
        (
            "probed",
            "Unhealthy",
            "Readiness probe failed: not ready yet\n",
        ),
        (
            "probed",
            "Killing",
            "Container app failed liveness probe, will be restarted",
        ),
    ] {
        assert!(
            has(pod, reason, message),
            "no {reason} event for {pod}: {events:?}"
        );
    }
    let rt = env.client();
    let left = rt
        .list_pod_sandbox(&tinylet::cri::api::ListPodSandboxRequest {
            filter: Some(tinylet::cri::api::PodSandboxFilter {
                label_selector: [("io.kubernetes.pod.uid".to_string(), uid.clone())].into(),
                ..Default::default()
            }),
        })
        .expect("ListPodSandbox")
        .items;
    assert!(left.is_empty(), "sandbox of the deleted pod left: {left:?}");
    assert!(
        !pod_cgroup.exists(),
        "the pod cgroup {} is left",
        pod_cgroup.display()
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}

const STATIC_WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\n  namespace: kube-system\n  labels:\n    tier: control\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: docker.io/library/busybox:1.36\n    command: [\"sh\", \"-c\", \"echo VERSION; sleep 3600\"]\n";

const PRIVATE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: private
spec:
  terminationGracePeriodSeconds: 1
  imagePullSecrets:
  - name: regcred
  containers:
  - name: app
    image: AUTH_REGISTRY/library/busybox:1.36
    imagePullPolicy: Always
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: private-nocreds
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: AUTH_REGISTRY/library/busybox:1.36
    imagePullPolicy: Always
    command: ["sleep", "3600"]
"#;

const KEEPER: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: keeper
data:
  motd: kept-through-reboots
---
apiVersion: v1
kind: Pod
metadata:
  name: keeper
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: cfg
    configMap:
      name: keeper
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "cat /cfg/motd; sleep 3600"]
    volumeMounts:
    - name: cfg
      mountPath: /cfg
---
apiVersion: v1
kind: Pod
metadata:
  name: gone
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
"#;

const AFTER: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: after\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: docker.io/library/busybox:1.36\n    command: [\"sleep\", \"3600\"]\n";

fn pod_uid(p: &Value) -> String {
    p["metadata"]["uid"].as_str().unwrap_or("").to_string()
}

fn container_id(p: &Value) -> String {
    p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("containerd://")
        .to_string()
}

/// The runtime's running containers of pod `uid`.
fn running_in_runtime(rt: &tinylet::cri::Runtime, uid: &str) -> Vec<String> {
    use tinylet::cri::api::*;
    rt.list_containers(&ListContainersRequest {
        filter: Some(ContainerFilter {
            label_selector: [("io.kubernetes.pod.uid".to_string(), uid.to_string())].into(),
            state: Some(ContainerStateValue { state: 1 }),
            ..Default::default()
        }),
    })
    .map(|l| l.containers.into_iter().map(|c| c.id).collect())
    .unwrap_or_default()
}

/// Static pods with their mirror pods (NodeRestriction enforced), image pull secrets against a
/// registry that wants them, and a "reboot" with the API server away: the checkpointed pods come
/// back, and the API server's list settles them once it is back.
#[test]
fn static_pods_pull_secrets_and_reboot_with_the_api_server_away() {
    let Some(env) = RuntimeEnv::start(true) else {
        return;
    };
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &["--approve-serving-csrs", "--persist"]);
    seed_steps(&seed);
    // The agent reaches the API server through a forwarder the test can take down.
    let proxy = common::proxy::Proxy::start(seed.server.trim_start_matches("https://"));
    let boot = read(&seed.bootstrap).replace(&seed.server, &proxy.url());
    write(&seed.bootstrap, &boot);
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    write(
        &manifests.join("web.yaml"),
        &STATIC_WEB.replace("VERSION", "v1"),
    );
    let cfg = tmp.path().join("kubelet-config.yaml");
    let extra = format!(
        "staticPodPath: {}\nfileCheckFrequency: 1s\n",
        manifests.display()
    );
    write(
        &cfg,
        &serving_config(&seed, &env, &tmp.path().join("pod-logs"), &extra),
    );
    let root = tmp.path().join("root");
    let args = node_args(&seed, &env, &cfg, &root, true);
    let mut agent = Agent::start(&args);
    agent.expect("Successfully registered node \"n1\"");
    let node_uid = seed
        .try_get(&["node", "n1"])
        .map(|n| pod_uid(&n))
        .expect("node n1");

    // The static pod runs, and its mirror pod shows it in the API.
    let get_mirror = |want: &dyn Fn(&Value) -> bool| {
        seed.try_get(&["pod", "-n", "kube-system", "static-web-n1"])
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null() && want(p))
    };
    let mirror = wait(&mut agent, "the static pod's mirror, Running", 60, || {
        get_mirror(&|p| p["status"]["phase"] == "Running" && !container_id(p).is_empty())
    });
    let ann = &mirror["metadata"]["annotations"];
    let hash = ann["kubernetes.io/config.hash"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(hash.len(), 32, "{ann}");
    assert_eq!(ann["kubernetes.io/config.mirror"], hash.as_str());
    assert_eq!(ann["kubernetes.io/config.source"], "file");
    assert_ne!(pod_uid(&mirror), hash, "the mirror has the API's own uid");
    assert_eq!(mirror["metadata"]["labels"]["tier"], "control");
    assert_eq!(
        mirror["metadata"]["ownerReferences"][0],
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": node_uid, "controller": true})
    );
    assert!(
        mirror["spec"]["volumes"].is_null(),
        "no service account token is injected into a mirror pod: {}",
        mirror["spec"]
    );
    let static_container = container_id(&mirror);
    let rt = env.client();
    assert_eq!(
        running_in_runtime(&rt, &hash),
        std::slice::from_ref(&static_container)
    );
    assert_eq!(
        seed.kubectl(&["logs", "-n", "kube-system", "static-web-n1"]),
        "v1\n"
    );
    // The node's credentials may create mirror pods only (NodeRestriction).
    let node_kubeconfig = seed.node.join("kubelet.kubeconfig");
    let out = std::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={}", node_kubeconfig.display()))
        .args([
            "run",
            "sneaky",
            "--image=busybox",
            "--overrides",
            r#"{"spec":{"nodeName":"n1"}}"#,
        ])
        .output()
        .expect("kubectl");
    assert!(
        text(&out.stderr).contains("pods \"sneaky\" is forbidden: pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"),
        "{}",
        text(&out.stderr)
    );

    // Deleting the mirror pod does not touch the static pod: the mirror comes back.
    seed.kubectl(&[
        "delete",
        "pod",
        "-n",
        "kube-system",
        "static-web-n1",
        "--wait=false",
    ]);
    let again = wait(&mut agent, "a new mirror pod", 30, || {
        get_mirror(&|p| pod_uid(p) != pod_uid(&mirror) && p["status"]["phase"] == "Running")
    });
    assert_eq!(
        container_id(&again),
        static_container,
        "the container was not restarted"
    );

    // An edited manifest is a new pod: the old one stops, the mirror is replaced.
    write(
        &manifests.join("web.yaml"),
        &STATIC_WEB.replace("VERSION", "v2"),
    );
    let edited = wait(&mut agent, "the edited static pod's mirror", 60, || {
        get_mirror(&|p| {
            p["metadata"]["annotations"]["kubernetes.io/config.hash"] != hash.as_str()
                && p["status"]["phase"] == "Running"
                && !container_id(p).is_empty()
        })
    });
    wait(
        &mut agent,
        "the old static pod's container to stop",
        30,
        || running_in_runtime(&rt, &hash).is_empty().then_some(()),
    );
    assert_eq!(
        seed.kubectl(&["logs", "-n", "kube-system", "static-web-n1"]),
        "v2\n"
    );

    // Image pull secrets: the registry that wants credentials gets them from the secret.
    let registry = env.var("AUTH_REGISTRY").to_string();
    seed.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={registry}"),
        &format!("--docker-username={}", env.var("AUTH_USER")),
        &format!("--docker-password={}", env.var("AUTH_PASSWORD")),
    ]);
    let private = tmp.path().join("private.yaml");
    write(&private, &PRIVATE.replace("AUTH_REGISTRY", &registry));
    seed.kubectl(&["apply", "-f", &private.display().to_string()]);
    wait(&mut agent, "the private image's pod to run", 60, || {
        seed.try_get(&["pod", "private"])
            .filter(|p| p["status"]["phase"] == "Running")
    });
    let refused = wait(
        &mut agent,
        "the pull without credentials to fail",
        60,
        || {
            seed.try_get(&["pod", "private-nocreds"]).filter(|p| {
                let r = &p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"];
                r == "ErrImagePull" || r == "ImagePullBackOff"
            })
        },
    );
    let why = refused["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or("")
        .to_lowercase();
    assert!(why.contains("401") || why.contains("unauthorized"), "{why}");
    seed.kubectl(&[
        "delete",
        "-f",
        &private.display().to_string(),
        "--wait=false",
    ]);

    // The manifest removed: the static pod stops and its mirror goes.
    std::fs::remove_file(manifests.join("web.yaml")).expect("rm manifest");
    let edited_hash = edited["metadata"]["annotations"]["kubernetes.io/config.hash"]
        .as_str()
        .unwrap_or("")
        .to_string();
    wait(
        &mut agent,
        "the static pod to stop and its mirror to go",
        30,
        || {
            (running_in_runtime(&rt, &edited_hash).is_empty()
                && seed
                    .try_get(&["pod", "-n", "kube-system", "static-web-n1"])
                    .is_none())
            .then_some(())
        },
    );
    assert!(
        !root.join("pods").join(&edited_hash).exists(),
        "the static pod's dir is left"
    );

    // Reboot with the API server away: the agent stops, the API server becomes unreachable, the
    // runtime loses every running container (stopped sandboxes, as after a power cut).
    let keeper = tmp.path().join("keeper.yaml");
    write(&keeper, KEEPER);
    seed.kubectl(&["apply", "-f", &keeper.display().to_string()]);
    let running = |name: &str| {
        seed.try_get(&["pod", name])
            .filter(|p| p["status"]["phase"] == "Running" && !container_id(p).is_empty())
    };
    let before = wait(&mut agent, "keeper to run", 60, || running("keeper"));
    let gone = wait(&mut agent, "gone to run", 60, || running("gone"));
    wait(&mut agent, "the private pods to be gone", 30, || {
        (seed.try_get(&["pod", "private"]).is_none()
            && seed.try_get(&["pod", "private-nocreds"]).is_none())
        .then_some(())
    });
    let (keeper_uid, gone_uid) = (pod_uid(&before), pod_uid(&gone));
    assert!(
        root.join("pods")
            .join(&keeper_uid)
            .join("pod.json")
            .exists()
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
    proxy.set_down(true);
    use tinylet::cri::api::*;
    for s in rt
        .list_pod_sandbox(&ListPodSandboxRequest::default())
        .expect("sandboxes")
        .items
    {
        rt.stop_pod_sandbox(&StopPodSandboxRequest {
            pod_sandbox_id: s.id,
        })
        .expect("stop sandbox");
    }
    assert!(running_in_runtime(&rt, &keeper_uid).is_empty());
    // Meanwhile `gone` is deleted in the API.
    seed.kubectl(&["delete", "pod", "gone", "--grace-period=0", "--force"]);
    let mut agent = Agent::start(&args);
    agent.expect("restored 2 pod(s) from checkpoints");
    let back = wait(
        &mut agent,
        "keeper's container back with the API server away",
        60,
        || {
            let ids = running_in_runtime(&rt, &keeper_uid);
            (!ids.is_empty()).then_some(ids)
        },
    );
    assert_ne!(back[0], container_id(&before));
    let cfg_kept = agent.log_so_far();
    assert!(
        cfg_kept.contains("keeping the content written before"),
        "the configMap volume was kept from before: {cfg_kept}"
    );
    let out = rt
        .exec_sync(&ExecSyncRequest {
            container_id: back[0].clone(),
            cmd: vec!["cat".into(), "/cfg/motd".into()],
            timeout: 10,
        })
        .expect("exec");
    assert_eq!(text(&out.stdout), "kept-through-reboots");
    // The API server back: its list settles it. keeper's status shows the new container; gone,
    // deleted meanwhile, is stopped and its directory removed.
    proxy.set_down(false);
    wait(
        &mut agent,
        "keeper's status to show the new container",
        60,
        || {
            seed.try_get(&["pod", "keeper"])
                .filter(|p| container_id(p) == back[0] && p["status"]["phase"] == "Running")
        },
    );
    // The watch resumed: a pod created now runs.
    let after = tmp.path().join("after.yaml");
    write(&after, AFTER);
    seed.kubectl(&["apply", "-f", &after.display().to_string()]);
    wait(
        &mut agent,
        "a pod created after the API server came back to run",
        60,
        || running("after"),
    );
    // kube-sim itself restarted (its objects kept, as an apiserver's are in etcd; its watch
    // history not: the agent's watch gets 410 and lists again): the watch resumes.
    seed.restart_sim();
    write(&after, &AFTER.replace("name: after", "name: after-restart"));
    seed.kubectl(&["apply", "-f", &after.display().to_string()]);
    wait(
        &mut agent,
        "a pod created after kube-sim restarted to run",
        60,
        || running("after-restart"),
    );
    wait(
        &mut agent,
        "gone's containers and dir to be removed",
        60,
        || {
            (running_in_runtime(&rt, &gone_uid).is_empty()
                && !root.join("pods").join(&gone_uid).exists())
            .then_some(())
        },
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}

const SECURE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: secure
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "id; touch /x || true; grep -E '^(CapBnd|NoNewPrivs)' /proc/self/status; sleep 3600"]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
        add: ["NET_BIND_SERVICE"]
---
apiVersion: v1
kind: Pod
metadata:
  name: masked
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo timer_list=$(wc -c < /proc/timer_list); grep ' /proc/sys ' /proc/mounts; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: nonroot
spec:
  securityContext:
    runAsNonRoot: true
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: deadline
spec:
  terminationGracePeriodSeconds: 1
  activeDeadlineSeconds: 4
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ports
spec:
  terminationGracePeriodSeconds: 1
  hostAliases:
  - ip: 192.0.2.7
    hostnames: ["foo.local", "bar.local"]
  dnsPolicy: None
  dnsConfig:
    nameservers: ["192.0.2.10"]
    searches: ["example.test"]
    options:
    - name: ndots
      value: "2"
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "cat /etc/resolv.conf; mkdir /www; echo hello-hostport > /www/index.html; httpd -f -p 8080 -h /www"]
    ports:
    - containerPort: 8080
      hostPort: HOST_PORT
---
apiVersion: v1
kind: Pod
metadata:
  name: attachme
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "read line; echo got $line"]
    stdin: true
    stdinOnce: true
---
apiVersion: v1
kind: Pod
metadata:
  name: sidecar
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  volumes:
  - name: shared
    emptyDir: {}
  initContainers:
  - name: side
    image: docker.io/library/busybox:1.36
    restartPolicy: Always
    command: ["sh", "-c", "echo side up > /shared/side; sleep 3600"]
    volumeMounts:
    - name: shared
      mountPath: /shared
  - name: setup
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "for i in $(seq 50); do test -e /shared/side && exit 0; sleep 0.1; done; exit 1"]
    volumeMounts:
    - name: shared
      mountPath: /shared
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "cat /shared/side; until test -e /shared/done; do sleep 0.2; done"]
    volumeMounts:
    - name: shared
      mountPath: /shared
---
apiVersion: v1
kind: Pod
metadata:
  name: last-words
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo -n 'bye from the file' > /dev/termination-log; exit 1"]
  - name: logs
    image: docker.io/library/busybox:1.36
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo line one; echo last words; exit 2"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: live
data:
  key: one
---
apiVersion: v1
kind: Pod
metadata:
  name: live
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: cfg
    configMap:
      name: live
  - name: mem
    emptyDir:
      medium: Memory
      sizeLimit: 1Mi
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
    volumeMounts:
    - name: cfg
      mountPath: /cfg
    - name: mem
      mountPath: /mem
"#;

/// Security contexts as the container sees them, the runAsNonRoot check, activeDeadlineSeconds,
/// a hostPort reached from the node, dnsPolicy None with a dnsConfig, kubectl port-forward,
/// kubectl attach -i, and a sidecar (restartable init container).
#[test]
fn security_deadlines_networking_streams_and_sidecars() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &["--approve-serving-csrs"]);
    seed_steps(&seed);
    let cfg = tmp.path().join("kubelet-config.yaml");
    write(
        &cfg,
        &serving_config(
            &seed,
            &env,
            &tmp.path().join("pod-logs"),
            "syncFrequency: 2s\n",
        ),
    );
    let args = node_args(&seed, &env, &cfg, &tmp.path().join("root"), true);
    let mut agent = Agent::start(&args);
    agent.expect("Successfully registered node \"n1\"");
    let host_port = std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let manifest = tmp.path().join("secure.yaml");
    write(
        &manifest,
        &SECURE.replace("HOST_PORT", &host_port.to_string()),
    );
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let running = |name: &str| {
        seed.try_get(&["pod", name])
            .filter(|p| p["status"]["phase"] == "Running")
    };
    let log_of = |agent: &mut Agent, name: &str, needle: &str| {
        wait(agent, &format!("{name}'s log"), 30, || {
            let out = std::process::Command::new("kubectl")
                .arg(format!(
                    "--kubeconfig={}",
                    seed.sim_dir.join("admin.kubeconfig").display()
                ))
                .args(["logs", name])
                .output()
                .ok()?;
            let log = text(&out.stdout);
            log.contains(needle).then_some(log)
        })
    };
    wait(&mut agent, "secure to run", 60, || running("secure"));
    let log = log_of(&mut agent, "secure", "NoNewPrivs");
    assert!(log.contains("uid=1000 gid=3000 groups=2000,3000"), "{log}");
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(log.contains("NoNewPrivs:\t1"), "{log}");
    // The bounding set: NET_BIND_SERVICE (bit 10) only.
    assert!(log.contains("CapBnd:\t0000000000000400"), "{log}");
    wait(&mut agent, "masked to run", 60, || running("masked"));
    let log = log_of(&mut agent, "masked", "/proc/sys");
    assert!(
        log.contains("timer_list=0\n"),
        "the kubelet's masked paths: {log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" /proc/sys ") && l.contains(" ro,")),
        "the kubelet's read-only paths: {log}"
    );

    let refused = wait(&mut agent, "nonroot to be refused", 60, || {
        seed.try_get(&["pod", "nonroot"]).filter(|p| {
            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                == "CreateContainerConfigError"
        })
    });
    assert_eq!(
        refused["status"]["containerStatuses"][0]["state"]["waiting"]["message"],
        "container has runAsNonRoot and image will run as root (pod: \"default/nonroot\", container: app)"
    );
    assert_eq!(refused["status"]["phase"], "Pending");

    let failed = wait(&mut agent, "deadline to fail", 60, || {
        seed.try_get(&["pod", "deadline"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    assert_eq!(failed["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        failed["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    let stopped = wait(&mut agent, "deadline's container to stop", 30, || {
        seed.try_get(&["pod", "deadline"])
            .filter(|p| p["status"]["containerStatuses"][0]["state"]["terminated"].is_object())
    });
    assert_eq!(stopped["status"]["phase"], "Failed");
    let events = seed.kubectl(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=deadline",
    ]);
    assert!(events.contains("DeadlineExceeded"), "{events}");

    wait(&mut agent, "ports to run", 60, || running("ports"));
    let log = log_of(&mut agent, "ports", "nameserver");
    assert!(log.contains("nameserver 192.0.2.10"), "{log}");
    assert!(log.contains("search example.test"), "{log}");
    assert!(log.contains("options ndots:2"), "{log}");
    // The kubelet's managed /etc/hosts: the pod's IP under its name, and the hostAliases.
    let ports_ip = running("ports")
        .and_then(|p| p["status"]["podIP"].as_str().map(String::from))
        .unwrap_or_default();
    let hosts = seed.kubectl(&["exec", "ports", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n"),
        "{hosts}"
    );
    assert!(hosts.contains(&format!("\n{ports_ip}\tports\n")), "{hosts}");
    assert!(
        hosts.ends_with("# Entries added by HostAliases.\n192.0.2.7\tfoo.local\tbar.local\n"),
        "{hosts}"
    );
    // The hostPort, from the node: CNI's portmap forwards it to the pod.
    let page = wait(&mut agent, "the hostPort to answer", 30, || {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{host_port}/"))
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    });
    assert_eq!(page, "hello-hostport\n");
    // kubectl port-forward: the API server's proxy, then the splice to the runtime's stream.
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let kubeconfig = format!(
        "--kubeconfig={}",
        seed.sim_dir.join("admin.kubeconfig").display()
    );
    let mut forward = std::process::Command::new("kubectl")
        .arg(&kubeconfig)
        .args(["port-forward", "pod/ports", &format!("{local}:8080")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let forwarded = wait(&mut agent, "the forwarded port to answer", 30, || {
        let out = std::process::Command::new("curl")
            .args(["-fsS", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{local}/"))
            .output()
            .ok()?;
        out.status.success().then(|| text(&out.stdout))
    });
    let _ = forward.kill();
    let _ = forward.wait();
    assert_eq!(forwarded, "hello-hostport\n");
    // kubectl attach -i: stdin reaches the container's own process.
    wait(&mut agent, "attachme to run", 60, || running("attachme"));
    let out = {
        use std::io::Write;
        let mut child = std::process::Command::new("kubectl")
            .arg(&kubeconfig)
            .args(["attach", "-i", "attachme", "-c", "app"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl attach");
        if let Some(mut i) = child.stdin.take() {
            i.write_all(b"hello-attach\n").expect("stdin");
        }
        child.wait_with_output().expect("kubectl attach output")
    };
    assert!(
        text(&out.stdout).contains("got hello-attach"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let done = wait(&mut agent, "attachme to complete", 30, || {
        seed.try_get(&["pod", "attachme"])
            .filter(|p| p["status"]["phase"] == "Succeeded")
    });
    assert_eq!(
        done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    // Termination messages: the file at terminationMessagePath, else the log's tail.
    let ended = wait(&mut agent, "last-words to fail", 60, || {
        seed.try_get(&["pod", "last-words"])
            .filter(|p| p["status"]["phase"] == "Failed")
    });
    let message = |name: &str| {
        ended["status"]["containerStatuses"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == name))
            .map(|c| c["state"]["terminated"]["message"].clone())
            .unwrap_or_default()
    };
    assert_eq!(message("file"), "bye from the file");
    assert_eq!(message("logs"), "line one\nlast words\n");

    // A configMap's new content reaches the running pod (syncFrequency); a Memory emptyDir is
    // a tmpfs of sizeLimit, unmounted and removed with the pod.
    let live = wait(&mut agent, "live to run", 60, || running("live"));
    let exec = |cmd: &str| seed.kubectl(&["exec", "live", "--", "sh", "-c", cmd]);
    assert_eq!(exec("cat /cfg/key"), "one");
    seed.kubectl(&[
        "patch",
        "configmap",
        "live",
        "-p",
        r#"{"data":{"key":"two"}}"#,
    ]);
    wait(&mut agent, "the configMap update in the pod", 30, || {
        (exec("cat /cfg/key") == "two").then_some(())
    });
    let mem =
        exec("grep ' /mem ' /proc/mounts; dd if=/dev/zero of=/mem/f bs=1k count=2048 2>&1; true");
    assert!(
        mem.contains("tmpfs /mem tmpfs") && mem.contains("size=1024k"),
        "{mem}"
    );
    assert!(mem.contains("No space left on device"), "{mem}");
    let live_dir = tmp.path().join("root/pods").join(pod_uid(&live));
    assert!(live_dir.exists());
    seed.kubectl(&["delete", "pod", "live"]);
    wait(
        &mut agent,
        "live's directory to go (tmpfs unmounted)",
        30,
        || (!live_dir.exists()).then_some(()),
    );
    let mounts = read(std::path::Path::new("/proc/self/mountinfo"));
    assert!(
        !mounts.contains(&live_dir.display().to_string()),
        "{mounts}"
    );

    // A sidecar: started before the next init container, running beside the app, stopped once
    // the app (restartPolicy: Never) has completed.
    let with_side = wait(&mut agent, "the sidecar pod's app to run", 60, || {
        running("sidecar")
            .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
    });
    let side = &with_side["status"]["initContainerStatuses"][0];
    assert_eq!(side["name"], "side");
    assert!(side["state"]["running"].is_object(), "{side}");
    assert_eq!(
        (side["ready"].clone(), side["started"].clone()),
        (serde_json::json!(true), serde_json::json!(true))
    );
    assert_eq!(
        with_side["status"]["initContainerStatuses"][1]["state"]["terminated"]["exitCode"],
        0
    );
    assert_eq!(seed.kubectl(&["logs", "sidecar", "-c", "app"]), "side up\n");
    seed.kubectl(&[
        "exec",
        "sidecar",
        "-c",
        "app",
        "--",
        "touch",
        "/shared/done",
    ]);
    let done = wait(&mut agent, "the sidecar pod to complete", 60, || {
        seed.try_get(&["pod", "sidecar"]).filter(|p| {
            p["status"]["phase"] == "Succeeded"
                && p["status"]["initContainerStatuses"][0]["state"]["terminated"].is_object()
        })
    });
    assert_eq!(
        done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}

/// Thirty pods at once on this two-core machine: all run; containerd restarted under them: they
/// keep running, not restarted, and their status holds; deleted: nothing is left behind
/// (sandboxes, containers, pod cgroups, pod and log directories).
#[test]
fn thirty_pods_a_runtime_restart_and_no_leaks() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &["--approve-serving-csrs"]);
    seed_steps(&seed);
    let logs = tmp.path().join("pod-logs");
    let root = tmp.path().join("root");
    let cfg = tmp.path().join("kubelet-config.yaml");
    write(&cfg, &serving_config(&seed, &env, &logs, ""));
    let args = node_args(&seed, &env, &cfg, &root, false);
    let mut agent = Agent::start(&args);
    agent.expect("Successfully registered node \"n1\"");
    let manifest: Vec<String> = (0..30)
        .map(|i| {
            AFTER.replace(
                "name: after",
                &format!("name: p{i:02}\n  labels:\n    batch: thirty"),
            )
        })
        .collect();
    let file = tmp.path().join("thirty.yaml");
    write(&file, &manifest.join("---\n"));
    seed.kubectl(&["apply", "-f", &file.display().to_string()]);
    let all_running = || {
        let list = seed.try_get(&["pods", "-l", "batch=thirty"])?;
        let items = list["items"].as_array()?.clone();
        (items.len() == 30
            && items
                .iter()
                .all(|p| p["status"]["phase"] == "Running" && !container_id(p).is_empty()))
        .then_some(items)
    };
    let before = wait(&mut agent, "30 pods to run", 300, all_running);
    let ids = |items: &[Value]| {
        let mut v: Vec<String> = items.iter().map(container_id).collect();
        v.sort();
        v
    };
    let rt = env.client();
    use tinylet::cri::api::*;
    let sandboxes = || {
        rt.list_pod_sandbox(&ListPodSandboxRequest::default())
            .expect("sandboxes")
            .items
    };
    assert_eq!(sandboxes().len(), 30, "one sandbox per pod");

    // containerd restarted: the shims keep the containers; nothing is restarted.
    env.stop_containerd();
    std::thread::sleep(Duration::from_secs(2));
    env.start_containerd();
    std::thread::sleep(Duration::from_secs(5));
    let after = wait(
        &mut agent,
        "30 pods running after the restart",
        60,
        all_running,
    );
    assert_eq!(ids(&after), ids(&before), "no container was replaced");
    assert!(
        after
            .iter()
            .all(|p| p["status"]["containerStatuses"][0]["restartCount"] == 0),
        "no restarts"
    );
    assert_eq!(sandboxes().len(), 30, "no sandbox was replaced");
    wait(&mut agent, "the node Ready again", 30, || {
        seed.try_get(&["node", "n1"]).filter(node_ready)
    });

    // All deleted: nothing left.
    seed.kubectl(&["delete", "pods", "-l", "batch=thirty", "--wait=false"]);
    wait(&mut agent, "the 30 pods to be gone", 180, || {
        seed.try_get(&["pods", "-l", "batch=thirty"])
            .filter(|l| l["items"].as_array().is_some_and(Vec::is_empty))
    });
    assert!(sandboxes().is_empty(), "{:?}", sandboxes());
    let containers = rt
        .list_containers(&ListContainersRequest::default())
        .expect("containers")
        .containers;
    assert!(containers.is_empty(), "{containers:?}");
    let entries = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let rel = format!(
        "{}/kubepods/besteffort",
        env.cgroup_parent().trim_start_matches('/')
    );
    for mount in [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup",
    ] {
        let dir = std::path::Path::new(mount).join(&rel);
        let left: Vec<String> = entries(&dir)
            .into_iter()
            .filter(|n| n.starts_with("pod"))
            .collect();
        assert!(
            left.is_empty(),
            "pod cgroups left in {}: {left:?}",
            dir.display()
        );
    }
    assert!(
        entries(&root.join("pods")).is_empty(),
        "{:?}",
        entries(&root.join("pods"))
    );
    assert!(entries(&logs).is_empty(), "{:?}", entries(&logs));
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
