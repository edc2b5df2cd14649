//! What a kubelet's own identity may do (the Node authorizer), status subresources, CSR denial,
//! and restarting kube-sim on the same directory.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{kubectl, ok, start_in, text};

/// A kubeconfig for `system:node:<node>` with a client cert signed by kube-sim's CA.
fn node_kubeconfig(dir: &Path, node: &str) -> std::path::PathBuf {
    let d = |n: &str| dir.join(n).display().to_string();
    let (_, csr) = common::key_and_csr(
        dir,
        node,
        &format!("/O=system:nodes/CN=system:node:{node}"),
        None,
    );
    common::sign_with_ca(dir, &csr, node, "extendedKeyUsage=clientAuth\n");
    let kc = dir.join(format!("{node}.kubeconfig"));
    let server = std::fs::read_to_string(dir.join("address")).unwrap_or_default();
    for args in [
        vec![
            "config".to_string(),
            "set-cluster".into(),
            "c".into(),
            format!("--server={server}"),
            format!("--certificate-authority={}", d("ca.pem")),
            "--embed-certs=true".into(),
        ],
        vec![
            "config".into(),
            "set-credentials".into(),
            "u".into(),
            format!("--client-certificate={}", d(&format!("{node}.pem"))),
            format!("--client-key={}", d(&format!("{node}.key"))),
            "--embed-certs=true".into(),
        ],
        vec![
            "config".into(),
            "set-context".into(),
            "x".into(),
            "--cluster=c".into(),
            "--user=u".into(),
        ],
        vec!["config".into(), "use-context".into(), "x".into()],
    ] {
        let o = kubectl(
            Some(&kc),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            None,
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    kc
}

#[test]
fn node_authorizer_limits_a_kubelet_to_its_own_objects() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path();
    let _sim = start_in(dir, &[]);
    let admin = dir.join("admin.kubeconfig");
    let n1 = node_kubeconfig(dir, "n1");
    // A kubelet registers its own Node and Lease.
    let node = |name: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            .to_string()
    };
    ok(&n1, &["create", "-f", "-"], Some(&node("n1")));
    ok(&admin, &["create", "-f", "-"], Some(&node("n2")));
    let lease = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}).to_string();
    ok(&n1, &["create", "-f", "-"], Some(&lease));
    // Its own status: yes. Another node's: no, with the apiserver's text.
    let status = "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"kubelet is posting ready status\"}]}}";
    ok(
        &n1,
        &[
            "patch",
            "node",
            "n1",
            "--subresource=status",
            "--type=strategic",
            "-p",
            status,
        ],
        None,
    );
    assert_eq!(
        ok(&admin, &["get", "node", "n1", "--no-headers"], None)
            .split_whitespace()
            .nth(1),
        Some("Ready")
    );
    let o = kubectl(
        Some(&n1),
        &[
            "patch",
            "node",
            "n2",
            "--subresource=status",
            "--type=strategic",
            "-p",
            status,
        ],
        None,
    );
    // (kubectl reads the status subresource before patching it; either verb is refused.)
    let err = text(&o.stderr);
    assert!(
        err.contains("nodes \"n2\" is forbidden: User \"system:node:n1\" cannot ")
            && err.contains(" resource \"nodes/status\" in API group \"\" at the cluster scope"),
        "{err}"
    );
    // Secrets: only those a pod bound to the node uses.
    ok(
        &admin,
        &["create", "secret", "generic", "s1", "--from-literal=a=b"],
        None,
    );
    let o = kubectl(Some(&n1), &["get", "secret", "s1"], None);
    assert!(text(&o.stderr).contains("secrets \"s1\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\""), "{}", text(&o.stderr));
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "a"}}}]}]}}).to_string();
    ok(&admin, &["create", "-f", "-"], Some(&pod));
    ok(&n1, &["get", "secret", "s1"], None);
    // The node may patch the status of its own pods only (kubectl patch reads the subresource
    // first, which the Node authorizer does not allow, so ask with can-i).
    let can = |pod: &str| {
        ok(
            &admin,
            &[
                "auth",
                "can-i",
                "patch",
                &format!("pods/{pod}"),
                "--subresource=status",
                "--as=system:node:n1",
                "--as-group=system:nodes",
            ],
            None,
        )
        .trim()
        .to_string()
    };
    let other = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p2"}, "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "busybox"}]}}).to_string();
    ok(&admin, &["create", "-f", "-"], Some(&other));
    assert_eq!(can("p1"), "yes");
    assert_eq!(
        kubectl(
            Some(&admin),
            &[
                "auth",
                "can-i",
                "patch",
                "pods/p2",
                "--subresource=status",
                "--as=system:node:n1",
                "--as-group=system:nodes"
            ],
            None
        )
        .stdout,
        b"no\n"
    );
    // Pod status through the status subresource; the spec cannot change that way.
    ok(
        &admin,
        &[
            "patch",
            "pod",
            "p1",
            "--subresource=status",
            "--type=merge",
            "-p",
            "{\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.0.5\"},\"spec\":{\"nodeName\":\"n2\"}}",
        ],
        None,
    );
    assert_eq!(
        ok(
            &admin,
            &[
                "get",
                "pod",
                "p1",
                "-o",
                "jsonpath={.status.phase} {.status.podIP} {.spec.nodeName}"
            ],
            None
        ),
        "Running 10.1.0.5 n1"
    );
    // ... and the main resource cannot change the status.
    ok(
        &admin,
        &[
            "patch",
            "pod",
            "p1",
            "--type=merge",
            "-p",
            "{\"status\":{\"phase\":\"Failed\"},\"metadata\":{\"labels\":{\"x\":\"y\"}}}",
        ],
        None,
    );
    assert_eq!(
        ok(
            &admin,
            &[
                "get",
                "pod",
                "p1",
                "-o",
                "jsonpath={.status.phase} {.metadata.labels.x}"
            ],
            None
        ),
        "Running y"
    );
    // The kubelet's final delete of its own pod (grace 0, uid precondition) removes it.
    let uid = ok(
        &admin,
        &["get", "pod", "p1", "-o", "jsonpath={.metadata.uid}"],
        None,
    );
    let o = kubectl(
        Some(&n1),
        &[
            "delete",
            "--raw",
            "/api/v1/namespaces/default/pods/p1",
            "-f",
            "-",
        ],
        Some(&format!(
            "{{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"gracePeriodSeconds\":0,\"preconditions\":{{\"uid\":\"{uid}\"}}}}"
        )),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        !kubectl(Some(&admin), &["get", "pod", "p1"], None)
            .status
            .success()
    );
    // Describe reads as on a real cluster.
    let described = ok(&admin, &["describe", "node", "n1"], None);
    assert!(
        described
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["Ready", "True"])),
        "{described}"
    );
}

#[test]
fn denied_csrs_and_restarts_on_the_same_dir() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path();
    let sim = start_in(dir, &[]);
    let admin = dir.join("admin.kubeconfig");
    let (_, x_csr) = common::key_and_csr(
        dir,
        "x",
        "/O=system:nodes/CN=system:node:x",
        Some("IP:10.0.0.9"),
    );
    use base64::Engine;
    let req =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&x_csr).unwrap_or_default());
    let csr = serde_json::json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "csr-x"}, "spec": {"request": req, "signerName": "kubernetes.io/kubelet-serving", "usages": ["digital signature", "server auth"]}}).to_string();
    ok(&admin, &["create", "-f", "-"], Some(&csr));
    assert!(ok(&admin, &["certificate", "deny", "csr-x"], None).contains("csr-x denied"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ok(&admin, &["get", "csr", "csr-x", "--no-headers"], None)
            .split_whitespace()
            .last(),
        Some("Denied")
    );
    assert!(ok(&admin, &["describe", "csr", "csr-x"], None).contains("Denied"));
    let ca_before = std::fs::read(dir.join("ca.pem")).unwrap_or_default();
    let admin_before = std::fs::read(dir.join("admin.pem")).unwrap_or_default();
    drop(sim);
    let _sim = start_in(dir, &[]);
    assert_eq!(
        std::fs::read(dir.join("ca.pem")).unwrap_or_default(),
        ca_before,
        "the CA is reused"
    );
    assert_eq!(
        std::fs::read(dir.join("admin.pem")).unwrap_or_default(),
        admin_before,
        "client certs are reused"
    );
    // Certificates issued before the restart still authenticate.
    assert!(ok(&admin, &["get", "--raw", "/healthz"], None).contains("ok"));
}
