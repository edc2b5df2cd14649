//! The agent process itself: starts on the seed's unfixed template, warns once per unknown field
//! and removed flag, lists what it accepts but does not implement, and exits 0 on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Starts the agent, waits until it logs `ready_marker`, sends `sig`, and returns its exit
/// status and everything it logged.
fn run_until(args: &[String], ready_marker: &str, sig: Signal) -> (Option<i32>, String) {
    let (args, _root) = with_root_dir(args);
    let mut child = Command::new(bin())
        .args(&args)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let stderr = child
        .stderr
        .take()
        .unwrap_or_else(|| panic!("no stderr pipe"));
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut seen = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if line.contains(ready_marker) {
            seen = true;
            break;
        }
    }
    let pid = Pid::from_raw(child.id() as i32);
    if seen {
        kill(pid, sig).unwrap_or_else(|e| panic!("kill: {e}"));
    } else {
        let _ = child.kill();
    }
    let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
    let log = reader.join().unwrap_or_default();
    assert!(seen, "agent never logged {ready_marker:?}:\n{log}");
    (status.code(), log)
}

#[test]
fn starts_on_the_unfixed_seed_template_and_stops_on_sigterm() {
    let dir = tempdir();
    let cfg = dir.path().join("kubelet-config.yaml");
    let text = without_listeners(&seed_config());
    write(&cfg, &text);
    let args: Vec<String> = [
        format!("--config={}", cfg.display()),
        "--hostname-override=zhangjun-k8s-01".into(),
        "--network-plugin=cni".into(),
        "--container-runtime".into(),
        "remote".into(),
        "--logtostderr=true".into(),
        "--v=2".into(),
    ]
    .into();
    let (code, log) = run_until(&args, "waiting for SIGTERM or SIGINT", Signal::SIGTERM);
    assert_eq!(code, Some(0), "{log}");

    // klog header on every line: Lmmdd hh:mm:ss.uuuuuu pid file:line] msg
    for l in log.lines() {
        let b = l.as_bytes();
        assert!(
            matches!(b[0], b'I' | b'W' | b'E')
                && b[5] == b' '
                && b[8] == b':'
                && b[14] == b'.'
                && l.contains("] "),
            "not klog format: {l:?}"
        );
    }
    let want = format!(
        "{}:{}: kubeAPIOPS: unknown field (did you mean \"kubeAPIQPS\"?)",
        cfg.display(),
        line_of(&text, "kubeAPIOPS")
    );
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with('W') && l.contains(&want))
        .collect();
    assert_eq!(
        warned.len(),
        1,
        "one warning for kubeAPIOPS expected:\n{log}"
    );
    for flag in [
        "--network-plugin=cni",
        "--container-runtime=remote",
        "--logtostderr=true",
    ] {
        assert_eq!(
            log.lines()
                .filter(
                    |l| l.starts_with('W') && l.contains(&format!("flag {flag} is not supported"))
                )
                .count(),
            1,
            "{flag}:\n{log}"
        );
    }
    let ni: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("accepted but not implemented: "))
        .collect();
    assert_eq!(ni.len(), 1, "{log}");
    for field in ["cgroupsPerQOS", "readOnlyPort"] {
        assert!(ni[0].contains(field), "{field} not listed: {}", ni[0]);
    }
    // Fields tinylet acts on are not in it.
    for field in [
        "cgroupDriver",
        "volumeStatsAggPeriod",
        "clusterDNS",
        "containerLogMaxSize",
        "evictionHard",
    ] {
        assert!(!ni[0].contains(field), "{field} listed: {}", ni[0]);
    }
    assert!(
        !ni[0].contains("kubeAPIOPS"),
        "unknown fields are not 'accepted': {}",
        ni[0]
    );
    // --v=2 shows the FLAG lines (V(1)).
    assert!(
        log.contains("FLAG: --hostname-override=\"zhangjun-k8s-01\""),
        "{log}"
    );
    assert!(log.contains("received SIGTERM, exiting"), "{log}");
}

#[test]
fn verbosity_gates_flag_lines_and_sigint_also_stops() {
    let dir = tempdir();
    let cfg = dir.path().join("kubelet-config.yaml");
    write(
        &cfg,
        &without_listeners(&seed_config().replace("kubeAPIOPS", "kubeAPIQPS")),
    );
    let args = vec![
        format!("--config={}", cfg.display()),
        "--hostname-override=n1".to_string(),
    ];
    let (code, log) = run_until(&args, "waiting for SIGTERM or SIGINT", Signal::SIGINT);
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("FLAG:"), "FLAG lines are V(1):\n{log}");
    assert!(!log.contains("unknown field"), "{log}");
    assert!(log.contains("received SIGINT, exiting"), "{log}");
}

#[test]
fn config_error_at_startup_reads_like_check_config() {
    let dir = tempdir();
    let cfg = dir.path().join("kubelet-config.yaml");
    write(
        &cfg,
        &seed_config().replace("maxPods: 220", "maxPods: many"),
    );
    let args = [
        format!("--config={}", cfg.display()),
        "--hostname-override=n1".to_string(),
    ];
    let agent = run(Command::new(bin()).args(&args));
    let check = run(Command::new(bin()).arg("check-config").args(&args));
    assert_eq!(agent.status.code(), Some(2));
    assert_eq!(check.status.code(), Some(2));
    let line = format!(
        "{}:{}: maxPods: invalid type: string \"many\", expected i32",
        cfg.display(),
        line_of(&read(&cfg), "maxPods")
    );
    for out in [&agent, &check] {
        assert!(
            text(&out.stderr).lines().any(|l| l.trim() == line),
            "{}",
            text(&out.stderr)
        );
    }
    // check-config is strict: the unknown field is a second problem there, a warning at startup.
    assert!(text(&check.stderr).contains("kubeAPIOPS: unknown field"));
    assert!(!text(&agent.stderr).contains("kubeAPIOPS"));
}
