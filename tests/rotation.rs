//! Certificate rotation against kube-sim with short-lived certificates: both the client and the
//! serving certificate are renewed at 70-90% of their lifetime, the client renewal authenticated
//! by the current client certificate (a `selfnodeclient` CSR from system:node:<node>).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn target(link: &Path) -> Option<PathBuf> {
    std::fs::read_link(link).ok()
}

#[test]
fn client_and_serving_certificates_rotate() {
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    // 30 s certificates, not backdated: renewals fall 21-27 s after issuance.
    let _sim = start_sim_with(
        &sim_dir,
        &[
            "--signing-duration",
            "30s",
            "--backdate",
            "0s",
            "--approve-serving-csrs",
        ],
    );
    let server = std::fs::read_to_string(sim_dir.join("address")).unwrap_or_default();
    let tok = run(Command::new(kube_sim_bin())
        .args(["token", "create", "--kubeconfig"])
        .arg(sim_dir.join("admin.kubeconfig")));
    let node = tmp.path().join("node");
    let boot = node.join("bootstrap.kubeconfig");
    kubectl_bootstrap_kubeconfig(
        &boot,
        &sim_dir.join("ca.pem"),
        &server,
        text(&tok.stdout).trim(),
    );
    admin_kubectl(
        &sim_dir,
        &[
            "create",
            "clusterrolebinding",
            "kubelet-bootstrap",
            "--clusterrole=system:node-bootstrapper",
            "--group=system:bootstrappers",
        ],
    );
    admin_kubectl(
        &sim_dir,
        &[
            "apply",
            "-f",
            &repo()
                .join("tests/kube-sim/tests/fixtures/csr-crb.yaml")
                .display()
                .to_string(),
        ],
    );
    let cfg = node.join("kubelet-config.yaml");
    write(
        &cfg,
        "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nrotateCertificates: true\nserverTLSBootstrap: true\n",
    );
    let cert_dir = node.join("cert");
    let args = vec![
        format!("--config={}", cfg.display()),
        format!("--bootstrap-kubeconfig={}", boot.display()),
        format!("--kubeconfig={}", node.join("kubelet.kubeconfig").display()),
        format!("--cert-dir={}", cert_dir.display()),
        "--hostname-override=n1".into(),
        "--node-ip=10.0.0.7".into(),
        "--v=2".into(),
    ];
    let mut agent = Agent::start(&args);
    agent.expect("bootstrap done");
    agent.expect("kubelet-server: certificate rotated");
    let client0 = target(&cert_dir.join("kubelet-client-current.pem"));
    let server0 = target(&cert_dir.join("kubelet-server-current.pem"));
    assert!(client0.is_some() && server0.is_some());

    // Within one lifetime both have been renewed.
    agent.expect("kubelet-client: rotating the certificate (the rotation deadline)");
    agent.expect("kubelet-client: certificate rotated");
    let deadline = Instant::now() + Duration::from_secs(40);
    while target(&cert_dir.join("kubelet-server-current.pem")) == server0 {
        assert!(
            Instant::now() < deadline,
            "the serving certificate was not renewed"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let client1 = target(&cert_dir.join("kubelet-client-current.pem"));
    assert_ne!(client1, client0);
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.starts_with('E')),
        "no errors expected:\n{}",
        log.join("\n")
    );

    // The renewal was requested by the node itself, not with the bootstrap token.
    let csrs = admin_kubectl(
        &sim_dir,
        &["get", "csr", "--sort-by=.metadata.creationTimestamp"],
    );
    let client_csrs: Vec<&str> = csrs
        .lines()
        .filter(|l| l.contains("kube-apiserver-client-kubelet"))
        .collect();
    assert!(client_csrs.len() >= 2, "{csrs}");
    assert!(client_csrs[0].contains("system:bootstrap:"), "{csrs}");
    assert!(
        client_csrs[1].contains("system:node:n1") && client_csrs[1].contains("Approved,Issued"),
        "{csrs}"
    );
    // The old files stay; the current links always name a complete pair.
    for link in ["kubelet-client-current.pem", "kubelet-server-current.pem"] {
        let pem = read(&cert_dir.join(link));
        assert!(
            pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"),
            "{link}"
        );
    }
    assert!(client0.as_ref().is_some_and(|p| p.exists()));
}

#[test]
fn sigkill_while_the_serving_csr_waits_then_approval_completes_it() {
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    let _sim = start_sim(&sim_dir);
    let server = std::fs::read_to_string(sim_dir.join("address")).unwrap_or_default();
    let tok = run(Command::new(kube_sim_bin())
        .args(["token", "create", "--kubeconfig"])
        .arg(sim_dir.join("admin.kubeconfig")));
    let node = tmp.path().join("node");
    let boot = node.join("bootstrap.kubeconfig");
    kubectl_bootstrap_kubeconfig(
        &boot,
        &sim_dir.join("ca.pem"),
        &server,
        text(&tok.stdout).trim(),
    );
    admin_kubectl(
        &sim_dir,
        &[
            "create",
            "clusterrolebinding",
            "kubelet-bootstrap",
            "--clusterrole=system:node-bootstrapper",
            "--group=system:bootstrappers",
        ],
    );
    admin_kubectl(
        &sim_dir,
        &[
            "apply",
            "-f",
            &repo()
                .join("tests/kube-sim/tests/fixtures/csr-crb.yaml")
                .display()
                .to_string(),
        ],
    );
    let cfg = node.join("kubelet-config.yaml");
    write(
        &cfg,
        "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nserverTLSBootstrap: true\n",
    );
    let cert_dir = node.join("cert");
    let args = vec![
        format!("--config={}", cfg.display()),
        format!("--bootstrap-kubeconfig={}", boot.display()),
        format!("--kubeconfig={}", node.join("kubelet.kubeconfig").display()),
        format!("--cert-dir={}", cert_dir.display()),
        "--hostname-override=n1".into(),
        "--node-ip=10.0.0.8".into(),
    ];
    let mut agent = Agent::start(&args);
    let sent = agent.expect("(kubernetes.io/kubelet-serving)");
    let name = sent
        .split_whitespace()
        .find(|w| w.starts_with("node-csr-"))
        .unwrap_or_default()
        .to_string();
    agent.kill();
    assert!(
        cert_dir.join("kubelet-server.key.tmp").exists(),
        "the key in progress survives the kill"
    );
    let client_before = target(&cert_dir.join("kubelet-client-current.pem"));
    let mut agent = Agent::start(&args);
    agent.expect(&format!(
        "certificate signing request {name} exists already; waiting for it"
    ));
    admin_kubectl(&sim_dir, &["certificate", "approve", &name]);
    agent.expect("kubelet-server: certificate rotated");
    assert_eq!(agent.stop().0, Some(0));
    assert_eq!(
        target(&cert_dir.join("kubelet-client-current.pem")),
        client_before,
        "the client pair was left alone"
    );
    assert!(!cert_dir.join("kubelet-server.key.tmp").exists());
    let serving: Vec<String> = admin_kubectl(&sim_dir, &["get", "csr", "--no-headers"])
        .lines()
        .filter(|l| l.contains("kubelet-serving"))
        .map(String::from)
        .collect();
    assert_eq!(
        serving.len(),
        1,
        "one serving request across the restart: {serving:?}"
    );
}
