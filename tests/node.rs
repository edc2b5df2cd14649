//! The Node without a container runtime behind it (runs without root): registered NotReady with
//! the runtime's reason and an unknown runtime version; `registerNode: false` waits for an
//! admin-made node and only reports its status.
#![allow(clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn wait_node(seed: &Seed, name: &str, secs: u64, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(n) = seed.try_get(&["node", name]).filter(|n| ok(n)) {
            return n;
        }
        assert!(Instant::now() < deadline, "node {name} never got there");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn without_a_runtime_the_node_registers_not_ready() {
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &[]);
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    let cfg = seed.config(&format!(
        "nodeStatusUpdateFrequency: 1s\npodLogsDir: {}\n",
        tmp.path().join("logs").display()
    ));
    // systemd's notify socket: READY=1 arrives once the node is registered.
    let notify = tmp.path().join("notify.sock");
    let systemd = std::os::unix::net::UnixDatagram::bind(&notify).expect("bind notify socket");
    systemd
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut agent = Agent::start_with_env(
        &seed.agent_args(
            "n2",
            &[
                format!("--config={}", cfg.display()),
                format!(
                    "--container-runtime-endpoint=unix://{}",
                    tmp.path().join("no-such.sock").display()
                ),
            ],
        ),
        &[
            ("NOTIFY_SOCKET", &notify),
            // WatchdogSec=1s: WATCHDOG=1 every half second while the pod loop is healthy.
            ("WATCHDOG_USEC", std::path::Path::new("1000000")),
        ],
    );
    let mut buf = [0u8; 64];
    let mut watchdog = 0;
    loop {
        let n = systemd.recv(&mut buf).expect("READY=1 from the agent");
        match &buf[..n] {
            b"READY=1" => break,
            b"WATCHDOG=1" => watchdog += 1,
            other => panic!(
                "unexpected notification {:?}",
                String::from_utf8_lossy(other)
            ),
        }
    }
    assert!(
        seed.try_get(&["node", "n2"]).is_some(),
        "READY=1 came before the node was registered"
    );
    while watchdog == 0 {
        let n = systemd.recv(&mut buf).expect("WATCHDOG=1 from the agent");
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        watchdog += 1;
    }
    agent.expect("Successfully registered node \"n2\"");
    let n = wait_node(&seed, "n2", 20, |n| {
        condition(n, "Ready")["status"] == "False"
    });
    let r = condition(&n, "Ready");
    assert_eq!(r["reason"], "KubeletNotReady");
    assert_eq!(r["message"], "container runtime is down");
    assert_eq!(
        n["status"]["nodeInfo"]["containerRuntimeVersion"],
        "remote://Unknown"
    );
    assert!(
        n["status"]["images"].is_null(),
        "no images without a runtime"
    );
    // kubectl's own view of it.
    let table = seed.kubectl(&["get", "node", "n2", "--no-headers"]);
    assert!(table.contains("NotReady"), "{table}");
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}

#[test]
fn register_node_false_reports_status_of_a_node_an_admin_made() {
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &[]);
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    let cfg = seed.config(&format!(
        "registerNode: false\nnodeStatusUpdateFrequency: 1s\npodLogsDir: {}\n",
        tmp.path().join("logs").display()
    ));
    let mut agent = Agent::start(&seed.agent_args(
        "n3",
        &[
            format!("--config={}", cfg.display()),
            format!(
                "--container-runtime-endpoint=unix://{}",
                tmp.path().join("no-such.sock").display()
            ),
        ],
    ));
    agent.expect("registerNode is false; waiting for node \"n3\" to exist");
    assert!(
        seed.try_get(&["node", "n3"]).is_none(),
        "the agent made the node itself"
    );
    let manifest = tmp.path().join("n3.yaml");
    write(
        &manifest,
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n3\n  labels:\n    made-by: admin\n",
    );
    seed.kubectl(&["create", "-f", &manifest.display().to_string()]);
    let n = wait_node(&seed, "n3", 20, |n| {
        condition(n, "Ready")["status"] == "False"
    });
    assert_eq!(n["metadata"]["labels"]["made-by"], "admin");
    assert!(
        n["metadata"]["labels"]["kubernetes.io/hostname"].is_null(),
        "registerNode: false leaves the metadata alone"
    );
    assert!(n["status"]["capacity"]["cpu"].is_string());
    let (code, _) = agent.stop();
    assert_eq!(code, Some(0));
}
