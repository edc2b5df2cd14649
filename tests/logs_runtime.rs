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
    } = PodNode::start(
        &env,
        tmp.path(),
        // The 190 MB log is read whole: not rotated (at the default 10Mi it would be).
        "containerLogMaxSize: 1Gi\n",
        false,
    );
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

const CHATTY: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: chatty
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: docker.io/library/busybox:1.36
    command: ["sh", "-c", "sleep 5; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo \"n $i LINE\"; [ $((i % 100)) -eq 0 ] && sleep 0.5; done; echo END; sleep 3600"]
"#;

/// Container log rotation against containerd, as the kubelet's: a log past
/// `containerLogMaxSize` is renamed to `0.log.<YYYYMMDD-hhmmss>` and reopened by the runtime,
/// the rotated file before it gzipped, at most `containerLogMaxFiles` kept; no line is lost
/// between the files, and `kubectl logs` reads the live one.
#[test]
fn logs_rotate_at_their_limit_and_nothing_is_lost() {
    let Some(env) = RuntimeEnv::start(false) else {
        return;
    };
    let tmp = tempdir();
    let PodNode {
        seed,
        mut agent,
        logs,
        ..
    } = PodNode::start(
        &env,
        tmp.path(),
        "containerLogMaxSize: 64Ki\ncontainerLogMaxFiles: 3\ncontainerLogMonitorInterval: 3s\n",
        false,
    );
    let manifest = tmp.path().join("chatty.yaml");
    write(&manifest, &CHATTY.replace("LINE", LINE));
    seed.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let pod = wait(&mut agent, "chatty running", 60, || {
        seed.try_get(&["pod", "chatty"])
            .filter(|p| p["status"]["phase"] == "Running")
    });
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let dir = logs.join(format!("default_chatty_{uid}")).join("c");
    // A follower from the start (the pod writes after 5 s): it reads on across every rotation
    // (the old file to its end, then the new one), as from the kubelet.
    let kubeconfig = format!(
        "--kubeconfig={}",
        seed.sim_dir.join("admin.kubeconfig").display()
    );
    let mut follow = Command::new("kubectl")
        .args([&kubeconfig, "logs", "-f", "chatty"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl logs -f");
    let out = follow.stdout.take().expect("stdout");
    let (tx, followed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lines: Vec<String> = BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| l != "END")
            .collect();
        let _ = tx.send(lines);
    });
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // The writer done (END in the live log, or in the newest rotated one when the last
    // rotation came after it) and the last rotation past: the live log under the limit and
    // the listing the same a monitor interval apart.
    let settled = |files: &[String]| {
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
        let live = read("0.log");
        let newest = files
            .iter()
            .find(|f| f.starts_with("0.log.") && !f.ends_with(".gz"))
            .map(|f| read(f));
        files.iter().any(|f| f.ends_with(".gz"))
            && (live.contains(" END\n") || newest.is_some_and(|n| n.contains(" END\n")))
            && live.len() < 64 << 10
    };
    let files = wait(&mut agent, "the rotations to settle", 120, || {
        let before = listing();
        if !settled(&before) {
            return None;
        }
        std::thread::sleep(Duration::from_secs(4));
        let after = listing();
        (after == before).then_some(after)
    });
    assert_eq!(files.len(), 3, "containerLogMaxFiles: {files:?}");
    assert_eq!(files[0], "0.log");
    let stamp = |f: &str, gz: bool| {
        let ts = f.strip_prefix("0.log.").unwrap_or("");
        let ts = if gz {
            ts.strip_suffix(".gz").unwrap_or("")
        } else {
            ts
        };
        ts.len() == 15
            && ts.as_bytes()[8] == b'-'
            && ts.replace('-', "").bytes().all(|b| b.is_ascii_digit())
    };
    let by = |gz: bool| {
        files
            .iter()
            .find(|f| f.starts_with("0.log.") && f.ends_with(".gz") == gz)
            .cloned()
            .unwrap_or_default()
    };
    let (plain, gz) = (by(false), by(true));
    assert!(stamp(&plain, false) && stamp(&gz, true), "{files:?}");
    // The older rotated file compressed, the newer not yet.
    assert!(gz < plain, "{files:?}");
    let (plain, gz) = (dir.join(plain), dir.join(gz));
    // The kept (plain, newest) rotated file was past the limit when it was rotated.
    let size = std::fs::metadata(&plain).map(|m| m.len()).unwrap_or(0);
    assert!(size >= 64 << 10, "{} is {size} bytes", plain.display());
    // gzip of the older, then the newer, then the live one: one unbroken run of lines.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&gz).expect("the .gz")),
        &mut text,
    )
    .expect("a gzip file");
    text.push_str(&std::fs::read_to_string(&plain).expect("the rotated file"));
    let live = std::fs::read_to_string(dir.join("0.log")).expect("the live log");
    text.push_str(&live);
    let numbers: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            // `<time> stdout F n <i> <LINE>`, the runtime's log format.
            let mut w = l.split(' ').skip(3);
            (w.next() == Some("n")).then(|| w.next()?.parse().ok())?
        })
        .collect();
    let first = numbers.first().copied().unwrap_or(0);
    assert!(first > 1, "the oldest rotated files were removed");
    assert_eq!(
        numbers,
        (first..=3000).collect::<Vec<u64>>(),
        "lines lost or doubled between the files"
    );
    assert!(text.ends_with(" END\n"), "the last line");
    let followed = followed.recv_timeout(Duration::from_secs(60));
    let _ = follow.kill();
    let _ = follow.wait();
    let followed = followed.expect("kubectl logs -f to reach END across the rotations");
    let numbers: Vec<u64> = followed
        .iter()
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect();
    assert_eq!(
        numbers,
        (1..=3000).collect::<Vec<u64>>(),
        "kubectl logs -f lost or doubled lines across the rotations"
    );
    // kubectl logs reads the live file, as from the kubelet.
    let shown = seed.kubectl(&["logs", "chatty"]);
    let messages: Vec<&str> = live
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        messages,
        "kubectl logs shows the live log"
    );
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
