//! Container logs and big answers on 10250 at a real node's scale (issue #14, D2, D3, D9),
//! against kube-sim and a real containerd, read with kubectl and curl: a pod's 190 MB log is
//! tailed, limited and read whole, four reads at once, in bounded memory; `kubectl logs -f`
//! streams as the container writes and ends when it exits; responses past 64 KiB (logs,
//! `/pods`) arrive whole; init containers' logs are served.
#![allow(clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::https::{cert_args, curl_at};
use common::pods::*;
use common::runtime::RuntimeEnv;
use common::*;

/// A line of the spam log: 120 bytes with its newline.
const LINE: &str = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01234567";
const LINES: usize = 1_500_000;

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: logspam
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "yes LINE | head -n COUNT; echo END; sleep 3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: ticker
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  initContainers:
  - name: mk
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "echo made by the init container"]
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "sleep 4; for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: big
  annotations:
    filler: FILLER
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sleep", "3600"]
"#;

#[test]
fn huge_logs_and_big_answers_in_bounded_memory() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed,
        mut agent,
        logs,
        port,
        ..
    } = PodNode::start(&env, tmp.path(), "", false);
    let manifest = tmp.path().join("pods.yaml");
    write(
        &manifest,
        &PODS
            .replace("LINE", LINE)
            .replace("COUNT", &LINES.to_string())
            .replace("FILLER", &"x".repeat(100 * 1024)),
    );
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let serving = seed.cert_dir().join("kubelet-server-current.pem");
    wait(&mut agent, "the serving certificate", 30, || {
        serving.exists().then_some(())
    });

    // D9: an init container's log, and D3: `kubectl logs -f` streams while the container
    // writes and ends when it exits.
    wait(&mut agent, "ticker to run", 60, || {
        seed.try_get(&["pod", "ticker"])
            .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
    });
    assert_eq!(
        seed.kubectl(&["logs", "ticker", "-c", "mk"]),
        "made by the init container\n"
    );
    let kubeconfig = format!(
        "--kubeconfig={}",
        seed.sim_dir.join("admin.kubeconfig").display()
    );
    let mut follow = Command::new("kubectl")
        .args([&kubeconfig, "logs", "-f", "ticker"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let out = follow.stdout.take().expect("stdout");
    let t0 = Instant::now();
    let mut lines = BufReader::new(out).lines();
    let first = lines.next().and_then(Result::ok);
    let first_at = t0.elapsed();
    assert_eq!(first.as_deref(), Some("tick 1"));
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let done_at = t0.elapsed();
    assert_eq!(
        rest,
        (2..=8).map(|i| format!("tick {i}")).collect::<Vec<_>>()
    );
    assert!(
        done_at >= first_at + Duration::from_secs(2),
        "lines came as they were written ({first_at:?}, then {done_at:?}), not at the end"
    );
    assert!(
        follow.wait().expect("kubectl").success(),
        "the stream ends when the container exits"
    );

    // D2: /pods past 64 KiB (a pod with a 100 KiB annotation), through the API server.
    let listed = wait(&mut agent, "the big pod on /pods", 60, || {
        seed.try_kubectl(&["get", "--raw", "/api/v1/nodes/n1/proxy/pods"])
            .filter(|body| body.contains("\"filler\""))
    });
    assert!(listed.len() > 100 * 1024, "{} bytes", listed.len());
    serde_json::from_str::<serde_json::Value>(&listed).expect("a whole PodList");

    // The 1.5 M-line log (about 190 MB on disk).
    let uid = wait(&mut agent, "logspam to run", 60, || {
        seed.try_get(&["pod", "logspam"])
            .filter(|p| p["status"]["containerStatuses"][0]["state"]["running"].is_object())
            .and_then(|p| p["metadata"]["uid"].as_str().map(String::from))
    });
    let file = logs.join(format!("default_logspam_{uid}/c/0.log"));
    wait(&mut agent, "the whole log to be written", 240, || {
        let len = std::fs::metadata(&file).ok()?.len();
        let tail = Command::new("tail")
            .arg("-c")
            .arg("40")
            .arg(&file)
            .output()
            .ok()?;
        (len > 150_000_000 && text(&tail.stdout).ends_with(" stdout F END\n")).then_some(())
    });
    let disk = std::fs::metadata(&file).expect("log").len();
    let rss_before = agent.status_kib("VmRSS");
    let peak_before = agent.status_kib("VmHWM");

    assert_eq!(
        seed.kubectl(&["logs", "logspam", "--tail=2"]),
        format!("{LINE}\nEND\n")
    );
    let limited = seed.kubectl(&["logs", "logspam", "--limit-bytes=100000"]);
    assert_eq!(limited.len(), 100_000, "--limit-bytes past 64 KiB");
    assert!(limited.starts_with(&format!("{LINE}\n{LINE}\n")));
    // Four tails at once straight to 10250, and a read of the whole log, counted by curl.
    let admin = cert_args(&seed.sim_dir, "admin");
    let ca = seed.sim_dir.join("ca.pem");
    let tails: Vec<_> = (0..4)
        .map(|_| {
            let (admin, ca) = (admin.clone(), ca.clone());
            let ip = node_ip();
            std::thread::spawn(move || {
                curl_at(
                    &ip,
                    port,
                    "/containerLogs/default/logspam/c?tailLines=2",
                    &ca,
                    &admin,
                )
            })
        })
        .collect();
    let whole = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            "--cacert",
        ])
        .arg(&ca)
        .args(&admin)
        .arg(format!(
            "https://{}:{port}/containerLogs/default/logspam/c",
            node_ip()
        ))
        .output()
        .expect("curl");
    for t in tails {
        let (code, body) = t.join().expect("tail");
        assert_eq!((code.as_str(), body), ("200", format!("{LINE}\nEND\n")));
    }
    let want = LINES * (LINE.len() + 1) + "END\n".len();
    assert_eq!(
        text(&whole.stdout),
        format!("200 {want}"),
        "the whole {disk}-byte log, streamed"
    );
    let peak = agent.status_kib("VmHWM");
    assert!(
        peak.saturating_sub(peak_before) < 48 * 1024,
        "memory while serving a {disk}-byte log: peak {peak_before} -> {peak} KiB (RSS before {rss_before} KiB)"
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
