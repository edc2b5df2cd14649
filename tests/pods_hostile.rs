//! Hostile and failing pods on a real node (issue #14: D1, D8, D9, D11, D12), against kube-sim
//! and a real containerd, driven with kubectl: symlinks planted in a volume do not reach the
//! host through `subPath` or `subPathExpr`; unsafe sysctls are refused at admission; a missing
//! configMap gives one aggregated event, retried with back-off; projected tokens are renewed by
//! the lifetime the API server granted.
#![allow(clippy::expect_used)]

mod common;

use serde_json::Value;

use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;

const PODS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  greeting: hello-through-a-subpath
---
apiVersion: v1
kind: Pod
metadata:
  name: escape
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  volumes:
  - name: vol
    emptyDir: {}
  initContainers:
  - name: plant
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "ln -s HOST_DIR /vol/escape && ln -s / /vol/root"]
    volumeMounts:
    - name: vol
      mountPath: /vol
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "cat /host/secret; touch /host/pwned; sleep 3600"]
    volumeMounts:
    - name: vol
      mountPath: /host
      subPath: escape
  - name: root
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "touch /host/tmp/MARK; sleep 3600"]
    volumeMounts:
    - name: vol
      mountPath: /host
      subPath: root
---
apiVersion: v1
kind: Pod
metadata:
  name: exprs
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: vol
    emptyDir: {}
  - name: cfg
    configMap:
      name: cfg
  initContainers:
  - name: plant
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "mkdir -p /vol/real && echo inside > /vol/real/file && ln -s real /vol/inside"]
    volumeMounts:
    - name: vol
      mountPath: /vol
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo from-$POD_NAME > /data/file; cat /in/file; cat /etc/greeting; echo; sleep 3600"]
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    volumeMounts:
    - name: vol
      mountPath: /data
      subPathExpr: $(POD_NAME)
    - name: vol
      mountPath: /in
      subPath: inside
    - name: cfg
      mountPath: /etc/greeting
      subPath: greeting
---
apiVersion: v1
kind: Pod
metadata:
  name: dotdot
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: vol
    emptyDir: {}
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
    env:
    - name: UP
      value: ../../../../etc
    volumeMounts:
    - name: vol
      mountPath: /data
      subPathExpr: $(UP)
---
apiVersion: v1
kind: Pod
metadata:
  name: msgmax
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    sysctls:
    - name: kernel.msgmax
      value: "65536"
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: hostnet
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  securityContext:
    sysctls:
    - name: net.ipv4.ip_local_port_range
      value: "32768 60999"
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: shm
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    sysctls:
    - name: kernel.shmmni
      value: "8192"
    - name: net.ipv4.tcp_syncookies
      value: "0"
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/tcp_syncookies; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: nocm
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: missing
    configMap:
      name: nope
  containers:
  - name: app
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
    volumeMounts:
    - name: missing
      mountPath: /etc/missing
"#;

fn waiting(p: &Value, container: &str) -> (String, String) {
    let c = p["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .cloned()
        .unwrap_or_default();
    let w = &c["state"]["waiting"];
    (
        w["reason"].as_str().unwrap_or("").to_string(),
        w["message"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn hostile_pods_stay_in_what_their_spec_grants() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed, mut agent, ..
    } = PodNode::start_with_sim(
        &env,
        tmp.path(),
        &["--max-token-expiration", "20s"],
        "allowedUnsafeSysctls: [\"kernel.shm*\"]\nsyncFrequency: 2s\n",
        false,
    );
    let host = tmp.path().join("host-secret");
    // What the link to / would touch on the host, unique to this run.
    let mark = format!(
        "pwned-{}",
        tmp.path().file_name().unwrap_or_default().to_string_lossy()
    );
    std::fs::create_dir_all(host.join("tmp")).expect("host dir");
    write(&host.join("secret"), "host-only\n");
    let manifest = tmp.path().join("pods.yaml");
    write(
        &manifest,
        &PODS
            .replace("HOST_DIR", &host.display().to_string())
            .replace("MARK", &mark),
    );
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let root = tmp.path().join("root");

    // D1: the planted links lead nowhere; the pod is told the kubelet's text, no host path.
    let escape = wait(&mut agent, "escape's containers to be refused", 90, || {
        seed.try_get(&["pod", "escape"]).filter(|p| {
            waiting(p, "app").0 == "CreateContainerConfigError"
                && waiting(p, "root").0 == "CreateContainerConfigError"
        })
    });
    assert_eq!(
        waiting(&escape, "app").1,
        "failed to prepare subPath for volumeMount \"vol\" of container \"app\""
    );
    assert_eq!(
        waiting(&escape, "root").1,
        "failed to prepare subPath for volumeMount \"vol\" of container \"root\""
    );
    assert!(!host.join("pwned").exists() && !host.join("tmp").join(&mark).exists());
    assert!(!std::path::Path::new("/tmp").join(&mark).exists());

    // D9: subPathExpr is expanded (and made), links inside the volume are fine, a configMap
    // key by subPath works; an expanded `..` is refused.
    let exprs = wait(&mut agent, "exprs to run", 90, || {
        seed.try_get(&["pod", "exprs"])
            .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
    });
    let uid = exprs["metadata"]["uid"].as_str().unwrap_or("");
    let written = root.join(format!(
        "pods/{uid}/volumes/kubernetes.io~empty-dir/vol/exprs/file"
    ));
    wait(
        &mut agent,
        "the file written through subPathExpr",
        30,
        || {
            std::fs::read_to_string(&written)
                .ok()
                .filter(|c| c == "from-exprs\n")
        },
    );
    wait(&mut agent, "exprs' log", 30, || {
        seed.try_kubectl(&["logs", "exprs"])
            .filter(|l| l == "inside\nhello-through-a-subpath\n")
    });
    let dotdot = wait(&mut agent, "dotdot to be refused", 60, || {
        seed.try_get(&["pod", "dotdot"])
            .filter(|p| waiting(p, "app").0 == "CreateContainerConfigError")
    });
    assert_eq!(
        waiting(&dotdot, "app").1,
        "unable to provision SubPath `../../../../etc`: must not contain '..'"
    );

    // D11: unsafe sysctls are refused at admission, before any sandbox; allowed ones run.
    for (pod, message) in [
        (
            "msgmax",
            "Pod was rejected: forbidden sysctl: \"kernel.msgmax\" not allowlisted",
        ),
        (
            "hostnet",
            "Pod was rejected: forbidden sysctl: \"net.ipv4.ip_local_port_range\" not allowed with host net enabled",
        ),
    ] {
        let p = wait(&mut agent, &format!("{pod} to be rejected"), 30, || {
            seed.try_get(&["pod", pod])
                .filter(|p| p["status"]["phase"] == "Failed")
        });
        assert_eq!(p["status"]["reason"], "SysctlForbidden", "{pod}");
        assert_eq!(p["status"]["message"], message, "{pod}");
        let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let sandboxes = env
            .client()
            .list_pod_sandbox(&tinylet::cri::api::ListPodSandboxRequest {
                filter: Some(tinylet::cri::api::PodSandboxFilter {
                    label_selector: [("io.kubernetes.pod.uid".to_string(), uid)].into(),
                    ..Default::default()
                }),
            })
            .expect("ListPodSandbox")
            .items;
        assert!(sandboxes.is_empty(), "{pod} got a sandbox: {sandboxes:?}");
    }
    wait(&mut agent, "shm's sysctls", 60, || {
        seed.try_kubectl(&["logs", "shm"])
            .filter(|l| l == "8192\n0\n")
    });

    // D12: the API server granted 20 s (asked: 3607): the token is renewed within its life.
    let shm = seed.try_get(&["pod", "shm"]).expect("shm");
    let uid = shm["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let projected = root.join(format!("pods/{uid}/volumes/kubernetes.io~projected"));
    let token_file = std::fs::read_dir(&projected)
        .expect("projected volumes")
        .flatten()
        .map(|d| d.path().join("token"))
        .find(|p| p.exists())
        .expect("a token");
    let first = read(&token_file);
    let issued = read(&root.join(format!("pods/{uid}/tokens.json")));
    assert!(issued.contains("\"ttl\":20"), "{issued}");
    wait(&mut agent, "the token to be renewed", 40, || {
        (read(&token_file) != first).then_some(())
    });

    // D8: one FailedMount Event for the missing configMap, counted, not one per second.
    wait(
        &mut agent,
        "a FailedMount counted several times",
        60,
        || {
            let list = seed.try_get(&["events", "--field-selector", "involvedObject.name=nocm"])?;
            let mounts: Vec<&Value> = list["items"]
                .as_array()?
                .iter()
                .filter(|e| e["reason"] == "FailedMount")
                .collect();
            (mounts.len() == 1 && mounts[0]["count"].as_i64() >= Some(4)).then_some(())
        },
    );
    std::thread::sleep(std::time::Duration::from_secs(10));
    let list = seed
        .try_get(&["events", "--field-selector", "involvedObject.name=nocm"])
        .expect("events");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = items
        .iter()
        .filter(|e| e["reason"] == "FailedMount")
        .collect();
    assert_eq!(failed.len(), 1, "one Event object: {items:?}");
    assert!(
        failed[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("configmap \"nope\" not found")),
        "{}",
        failed[0]
    );
    let count = failed[0]["count"].as_i64().unwrap_or(0);
    assert!(
        (4..=12).contains(&count),
        "retried with back-off, not every second: count {count} after about a minute"
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
