//! The seed guide's TLS bootstrap, replayed against the control plane with the real kubectl: the 403
//! before the kubelet-bootstrap binding, auto-approval after csr-crb.yaml, the kubelet's file
//! names, modes and kubeconfig, and a restart that skips the bootstrap.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn seed_bootstrap_end_to_end() {
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    let plane = Plane::start(&sim_dir, &[]);
    let server = std::fs::read_to_string(sim_dir.join("address"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let node = tmp.path().join("node");
    std::fs::create_dir_all(&node).unwrap_or_default();

    // Step 1: a bootstrap token and the bootstrap kubeconfig, as the seed guide makes them.
    let token = plane.token(
        &sim_dir,
        "system:bootstrappers:zhangjun-k8s-01",
        "kubelet-bootstrap-token",
    );
    let boot = node.join("kubelet-bootstrap.kubeconfig");
    let out = run(
        Command::new(repo().join("scripts/make-bootstrap-kubeconfig"))
            .args([
                "--node",
                "zhangjun-k8s-01",
                "--server",
                &server,
                "--token",
                &token,
                "--ca",
            ])
            .arg(sim_dir.join("ca.pem"))
            .arg("--out")
            .arg(&boot),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    write(
        &node.join("kubelet-config.yaml"),
        &without_listeners(&seed_config().replace("kubeAPIOPS", "kubeAPIQPS")),
    );
    let kubeconfig = node.join("kubelet.kubeconfig");
    let cert_dir = node.join("cert");
    let args: Vec<String> = vec![
        format!("--config={}", node.join("kubelet-config.yaml").display()),
        format!("--bootstrap-kubeconfig={}", boot.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--cert-dir={}", cert_dir.display()),
        "--hostname-override=zhangjun-k8s-01".into(),
        "--node-ip=10.0.0.5".into(),
        "--v=2".into(),
    ];

    // Without the kubelet-bootstrap binding: the seed's error, and a retry.
    let mut agent = Agent::start(&args);
    let line = agent.expect("Failed while requesting a signed certificate from the master");
    let id = &token[..6];
    assert!(line.starts_with('E'), "{line}");
    assert!(line.ends_with(&format!("cannot create certificate signing request: certificatesigningrequests.certificates.k8s.io is forbidden: User \"system:bootstrap:{id}\" cannot create resource \"certificatesigningrequests\" in API group \"certificates.k8s.io\" at the cluster scope")), "{line}");
    assert!(
        cert_dir.join("kubelet-client.key.tmp").exists(),
        "the key in progress is kept"
    );
    assert_eq!(mode(&cert_dir.join("kubelet-client.key.tmp")), 0o600);

    // With it, the CSR goes in and waits for approval.
    bind_bootstrappers(&sim_dir);
    let sent = agent.expect("sent certificate signing request node-csr-");
    let name = csr_name_in(&sent);
    std::thread::sleep(Duration::from_millis(500));
    let csrs = admin_kubectl(&sim_dir, &["get", "csr"]);
    assert!(
        csrs.lines().any(|l| l.starts_with(&name)
            && l.contains(&format!("system:bootstrap:{id}"))
            && l.ends_with("Pending")),
        "{csrs}"
    );

    // The seed's csr-crb.yaml lets the controller approve it.
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
    agent.expect("bootstrap done: client certificate");

    // serverTLSBootstrap: the serving CSR waits for a human, as in the guide.
    agent.expect("(kubernetes.io/kubelet-serving)");
    std::thread::sleep(Duration::from_millis(500));
    let csrs = admin_kubectl(&sim_dir, &["get", "csr"]);
    let pending: Vec<&str> = csrs.lines().filter(|l| l.contains("Pending")).collect();
    assert_eq!(pending.len(), 1, "{csrs}");
    assert!(
        pending[0].contains("kubernetes.io/kubelet-serving")
            && pending[0].contains("system:node:zhangjun-k8s-01"),
        "{csrs}"
    );
    assert!(
        !cert_dir.join("kubelet-server-current.pem").exists(),
        "no serving cert before approval"
    );
    // kubectl get csr | grep Pending | awk '{print $1}' | xargs kubectl certificate approve
    let serving_csr = pending[0]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    admin_kubectl(&sim_dir, &["certificate", "approve", &serving_csr]);
    agent.expect("kubelet-server: certificate rotated");
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0), "{}", log.join("\n"));
    let server_cert = cert_dir.join("kubelet-server-current.pem");
    assert!(std::fs::read_link(&server_cert).is_ok_and(|t| {
        t.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("kubelet-server-20"))
    }));
    let x = text(
        &run(Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName,extendedKeyUsage",
                "-in",
            ])
            .arg(&server_cert))
        .stdout,
    );
    assert!(
        x.contains("subject=O = system:nodes, CN = system:node:zhangjun-k8s-01")
            && x.contains("DNS:zhangjun-k8s-01, IP Address:10.0.0.5")
            && x.contains("TLS Web Server Authentication"),
        "{x}"
    );

    // Files as the kubelet writes them.
    let current = cert_dir.join("kubelet-client-current.pem");
    let target = std::fs::read_link(&current).unwrap_or_else(|e| panic!("{e}"));
    let fname = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        fname.starts_with("kubelet-client-20")
            && fname.ends_with(".pem")
            && fname.len() == "kubelet-client-YYYY-MM-DD-HH-MM-SS.pem".len(),
        "{fname}"
    );
    assert!(
        target.is_absolute() && target.starts_with(&cert_dir),
        "{target:?}"
    );
    assert_eq!(mode(&target), 0o600);
    assert_eq!(mode(&kubeconfig), 0o600);
    assert!(!cert_dir.join("kubelet-client.key.tmp").exists());
    let pem = read(&target);
    assert!(
        pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"),
        "cert and key in one file"
    );
    let x = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
            "-in",
        ])
        .arg(&current));
    let x = text(&x.stdout);
    assert!(
        x.contains("subject=O = system:nodes, CN = system:node:zhangjun-k8s-01")
            && x.contains("TLS Web Client Authentication"),
        "{x}"
    );
    let kc = read(&kubeconfig);
    for want in [
        "name: default-cluster",
        "name: default-auth",
        "current-context: default-context",
        &format!("client-certificate: {}", current.display()),
        &format!("client-key: {}", current.display()),
    ] {
        assert!(kc.contains(want), "{want} missing:\n{kc}");
    }
    // kubectl authenticates with it, as system:node:zhangjun-k8s-01.
    let v = run(Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["get", "--raw", "/version"]));
    assert!(
        text(&v.stdout).contains("\"gitVersion\""),
        "{}",
        text(&v.stderr)
    );
    let who = run(Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args([
            "auth",
            "can-i",
            "create",
            "certificatesigningrequests/selfnodeclient",
        ]));
    assert_eq!(
        text(&who.stdout).trim(),
        "yes",
        "the node's renewals are allowed by csr-crb.yaml"
    );

    // A restart finds a valid kubeconfig and skips the bootstrap.
    let mut agent = Agent::start(&args);
    agent.expect("waiting for SIGTERM");
    let (code, log) = agent.stop();
    assert_eq!(code, Some(0));
    assert!(
        !log.iter().any(|l| l.contains("Rotating certificates")),
        "{}",
        log.join("\n")
    );
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("(from {})", kubeconfig.display()))),
        "{}",
        log.join("\n")
    );
}

#[test]
fn bootstrap_failures_are_logged_and_retried() {
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    let plane = Plane::start(&sim_dir, &[]);
    let server = std::fs::read_to_string(sim_dir.join("address"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let ca = sim_dir.join("ca.pem");
    let node = tmp.path().join("node");
    let make = |name: &str, server: &str, token: &str| {
        let p = node.join(name);
        kubectl_bootstrap_kubeconfig(&p, &ca, server, token);
        p
    };
    let agent_args = |boot: &Path, cert_dir: &Path| -> Vec<String> {
        vec![
            format!("--bootstrap-kubeconfig={}", boot.display()),
            format!("--kubeconfig={}", node.join("kubelet.kubeconfig").display()),
            format!("--cert-dir={}", cert_dir.display()),
            "--hostname-override=n1".into(),
        ]
    };
    // Unknown token: 401.
    let unknown = make("unknown.kubeconfig", &server, "abcdef.0123456789abcdef");
    let mut a = Agent::start(&agent_args(&unknown, &node.join("c1")));
    let l = a.expect("Failed while requesting a signed certificate");
    assert!(
        l.ends_with("cannot create certificate signing request: Unauthorized"),
        "{l}"
    );
    // ... and it retries.
    a.expect("Rotating certificates");
    a.expect("Failed while requesting a signed certificate");
    assert_eq!(a.stop().0, Some(0));

    // Unreachable server.
    let dead = make(
        "dead.kubeconfig",
        "https://127.0.0.1:1",
        "abcdef.0123456789abcdef",
    );
    let mut a = Agent::start(&agent_args(&dead, &node.join("c2")));
    let l = a.expect("Failed while requesting a signed certificate");
    assert!(
        l.contains("https://127.0.0.1:1/apis/certificates.k8s.io/v1/certificatesigningrequests")
            && l.to_lowercase().contains("connect"),
        "{l}"
    );
    assert_eq!(a.stop().0, Some(0));

    // Cert dir not writable (a path below a regular file).
    let blocker = node.join("not-a-dir");
    write(&blocker, "x");
    let tok = plane.token(&sim_dir, "system:bootstrappers:n1", "");
    let good = make("good.kubeconfig", &server, &tok);
    // Without the 10250 server (whose self-signed certificate needs the directory too).
    let no_server = node.join("no-server.yaml");
    write(
        &no_server,
        "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\nenableServer: false\nhealthzPort: 0\n",
    );
    let mut args = agent_args(&good, &blocker.join("cert"));
    args.push(format!("--config={}", no_server.display()));
    let mut a = Agent::start(&args);
    let l = a.expect("Failed while requesting a signed certificate");
    assert!(
        l.contains(&blocker.join("cert").display().to_string()),
        "{l}"
    );
    assert_eq!(a.stop().0, Some(0));
    // With it, the agent cannot serve at all and exits, naming the directory, as the
    // kubelet's InitializeTLS does.
    let out = run(Command::new(bin())
        .args(agent_args(&good, &blocker.join("cert")))
        .arg(format!("--root-dir={}", node.join("root").display()))
        .arg("--healthz-port=0"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "tinylet: the serving certificate\n  caused by: creating {}: Not a directory",
            blocker.join("cert").display()
        )),
        "{err}"
    );

    // A denied CSR.
    bind_bootstrappers(&sim_dir);
    let mut a = Agent::start(&agent_args(&good, &node.join("c4")));
    let sent = a.expect("sent certificate signing request node-csr-");
    let name = csr_name_in(&sent);
    admin_kubectl(&sim_dir, &["certificate", "deny", &name]);
    let l = a.expect("is denied");
    assert!(
        l.contains(&format!(
            "certificate signing request {name} is denied, reason: KubectlDeny"
        )),
        "{l}"
    );
    assert_eq!(a.stop().0, Some(0));
}

#[test]
fn sigkill_while_waiting_for_approval_resumes_the_same_request() {
    let tmp = tempdir();
    let seed = Seed::start(tmp.path(), &[]);
    seed.bind_bootstrappers();
    let node = seed.node.clone();
    let args = seed.agent_args("n1", &[]);
    let mut agent = Agent::start(&args);
    let sent = agent.expect("sent certificate signing request node-csr-");
    let name = csr_name_in(&sent);
    agent.kill();
    // Restarted: the kept key names the same CSR, which it waits for instead of sending another.
    let mut agent = Agent::start(&args);
    agent.expect(&format!(
        "certificate signing request {name} exists already; waiting for it"
    ));
    seed.apply_csr_crb();
    agent.expect("bootstrap done");
    assert_eq!(agent.stop().0, Some(0));
    let csrs = seed.kubectl(&["get", "csr", "--no-headers"]);
    assert_eq!(csrs.lines().count(), 1, "one request for one key: {csrs}");
    assert!(!node.join("cert/kubelet-client.key.tmp").exists());
    assert!(node.join("cert/kubelet-client-current.pem").exists());

    // Killed after the pair was stored but before the kubeconfig was written: the restart
    // writes the kubeconfig from the stored pair without a new request.
    std::fs::remove_file(node.join("kubelet.kubeconfig")).unwrap_or_else(|e| panic!("{e}"));
    let mut agent = Agent::start(&args);
    agent.expect("using the valid client certificate already in");
    agent.expect("bootstrap done");
    assert_eq!(agent.stop().0, Some(0));
    assert_eq!(
        seed.kubectl(&["get", "csr", "--no-headers"])
            .lines()
            .count(),
        1
    );
    assert!(node.join("kubelet.kubeconfig").exists());
}
