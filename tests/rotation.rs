//! Certificate rotation against kube-sim with short-lived certificates: both the client and the
//! serving certificate are renewed at 70-90% of their lifetime, the client renewal authenticated
//! by the current client certificate (a `selfnodeclient` CSR from system:node:<node>).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

fn target(link: &Path) -> Option<PathBuf> {
    std::fs::read_link(link).ok()
}

#[test]
fn client_and_serving_certificates_rotate() {
    let tmp = tempdir();
    // 30 s certificates, not backdated: renewals fall 21-27 s after issuance.
    let seed = Seed::start(
        tmp.path(),
        &[
            "--signing-duration",
            "30s",
            "--backdate",
            "0s",
            "--approve-serving-csrs",
        ],
    );
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    let cfg = seed.config("rotateCertificates: true\nserverTLSBootstrap: true\n");
    let cert_dir = seed.cert_dir();
    let args = seed.agent_args(
        "n1",
        &[
            format!("--config={}", cfg.display()),
            "--node-ip=10.0.0.7".into(),
            "--v=2".into(),
        ],
    );
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
    // No runtime listens here: its sanity-check errors are expected, nothing else.
    assert!(
        !log.iter()
            .any(|l| l.starts_with('E') && !l.contains("Container runtime sanity check failed")),
        "no errors expected:\n{}",
        log.join("\n")
    );

    // The renewal was requested by the node itself, not with the bootstrap token.
    let csrs = seed.kubectl(&["get", "csr", "--sort-by=.metadata.creationTimestamp"]);
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
    let seed = Seed::start(tmp.path(), &[]);
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    let cfg = seed.config("serverTLSBootstrap: true\n");
    let cert_dir = seed.cert_dir();
    let args = seed.agent_args(
        "n1",
        &[
            format!("--config={}", cfg.display()),
            "--node-ip=10.0.0.8".into(),
        ],
    );
    let mut agent = Agent::start(&args);
    let sent = agent.expect("(kubernetes.io/kubelet-serving)");
    let name = csr_name_in(&sent);
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
    seed.kubectl(&["certificate", "approve", &name]);
    agent.expect("kubelet-server: certificate rotated");
    assert_eq!(agent.stop().0, Some(0));
    assert_eq!(
        target(&cert_dir.join("kubelet-client-current.pem")),
        client_before,
        "the client pair was left alone"
    );
    assert!(!cert_dir.join("kubelet-server.key.tmp").exists());
    let serving: Vec<String> = seed
        .kubectl(&["get", "csr", "--no-headers"])
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

/// #14 D5: the API server is away for longer than the client certificate lives (an edge box
/// offline). When it is back, the agent bootstraps again by itself (the expired certificate
/// cannot authenticate a renewal), its loops pick up the new certificate, the serving
/// certificate is renewed with it and 10250 answers again: no restart by hand.
#[test]
fn an_expired_client_certificate_is_bootstrapped_again_after_an_outage() {
    let tmp = tempdir();
    // 40 s certificates, not backdated; the objects survive kube-sim's restart (--persist).
    let seed = Seed::start(
        tmp.path(),
        &[
            "--signing-duration",
            "40s",
            "--backdate",
            "0s",
            "--approve-serving-csrs",
            "--persist",
        ],
    );
    seed.bind_bootstrappers();
    seed.apply_csr_crb();
    let port = common::https::free_port();
    let ca = seed.sim_dir.join("ca.pem");
    let cfg = seed.node.join("kubelet-config.yaml");
    write(
        &cfg,
        &format!(
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\naddress: 127.0.0.1\nport: {port}\nhealthzPort: 0\n\
             rotateCertificates: true\nserverTLSBootstrap: true\n\
             authentication:\n  anonymous:\n    enabled: false\n  webhook:\n    enabled: true\n  x509:\n    clientCAFile: {}\n\
             authorization:\n  mode: Webhook\n",
            ca.display()
        ),
    );
    let cert_dir = seed.cert_dir();
    let args = seed.agent_args(
        "n1",
        &[
            format!("--config={}", cfg.display()),
            "--node-ip=127.0.0.1".into(),
        ],
    );
    let mut agent = Agent::start(&args);
    agent.expect("bootstrap done");
    agent.expect("kubelet-server: certificate rotated");
    let admin = common::https::cert_args(&seed.sim_dir, "admin");
    assert_eq!(common::https::curl(port, "/healthz", &ca, &admin).0, "200");
    let first = target(&cert_dir.join("kubelet-client-current.pem"));
    // The API server goes away before the first rotation and stays away past expiry.
    seed.stop_sim();
    let down = Instant::now();
    let expired = |p: &Path| {
        let out = run(std::process::Command::new("openssl")
            .args(["x509", "-checkend", "0", "-noout", "-in"])
            .arg(p));
        !out.status.success()
    };
    let current = cert_dir.join("kubelet-client-current.pem");
    while !expired(&current) {
        assert!(
            down.elapsed() < Duration::from_secs(60),
            "the certificate did not expire"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    std::thread::sleep(Duration::from_secs(5));
    seed.start_sim_again();
    // Within one retry period (32 s) of the manager's back-off, plus the CSR round trip.
    agent.expect("bootstrapping again with");
    agent.expect("kubelet-client: certificate rotated");
    assert!(!expired(&current), "a fresh client certificate");
    assert_ne!(target(&current), first);
    let back = Instant::now();
    loop {
        let (code, _) = common::https::curl(port, "/healthz", &ca, &admin);
        if code == "200" {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "10250 did not come back (last code {code}); log:\n{}",
            agent.log_so_far()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The node's own loops use the new certificate: its lease is renewed again.
    let renewed = |l: &serde_json::Value| {
        l["spec"]["renewTime"]
            .as_str()
            .and_then(tinylet::timefmt::parse_rfc3339)
    };
    let t0 = seed
        .try_get(&["lease", "n1", "-n", "kube-node-lease"])
        .and_then(|l| renewed(&l));
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = seed
            .try_get(&["lease", "n1", "-n", "kube-node-lease"])
            .and_then(|l| renewed(&l));
        if now.is_some() && now > t0 {
            break;
        }
        assert!(Instant::now() < deadline, "the lease was not renewed again");
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(agent.stop().0, Some(0));
}
