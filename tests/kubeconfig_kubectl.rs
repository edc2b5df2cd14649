//! kubeconfig compatibility with the real kubectl 1.32: tinylet reads what kubectl writes, and
//! kubectl reads what tinylet writes.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use tinylet::config::kubeconfig::{Credentials, Kubeconfig, Source};

fn kubectl_view(path: &Path) -> String {
    let out = run(Command::new("kubectl")
        .args(["config", "view", "--raw", "-o", "json"])
        .arg(format!("--kubeconfig={}", path.display())));
    assert!(
        out.status.success(),
        "kubectl config view: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn reads_the_seed_bootstrap_kubeconfig_written_by_kubectl() {
    let dir = tempdir();
    let ca = make_ca(dir.path());
    let path = dir.path().join("kubelet-bootstrap.kubeconfig");
    kubectl_bootstrap_kubeconfig(
        &path,
        &ca,
        "https://172.27.138.251:6443",
        "2sb8wy.euialqfpxfbcljby",
    );
    let k = Kubeconfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let a = k.resolve(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.server, "https://172.27.138.251:6443");
    assert_eq!(
        a.ca,
        Some(Source::Inline(std::fs::read(&ca).unwrap_or_default()))
    );
    match &a.credentials {
        Credentials::Token(t) => assert_eq!(t.expose(), "2sb8wy.euialqfpxfbcljby"),
        other => panic!("want a token, got {other:?}"),
    }
    // Writing it back changes nothing kubectl can see.
    let ours = dir.path().join("ours.kubeconfig");
    write(&ours, &k.to_yaml());
    assert_eq!(kubectl_view(&path), kubectl_view(&ours));
}

#[test]
fn kubectl_reads_the_kubeconfig_tinylet_writes_after_bootstrap() {
    let dir = tempdir();
    let ca = make_ca(dir.path());
    let pem = dir.path().join("cert/kubelet-client-current.pem");
    let k = Kubeconfig::for_kubelet_client(
        "https://10.0.0.1:6443",
        &std::fs::read(&ca).unwrap_or_default(),
        &pem,
    );
    let path = dir.path().join("kubelet.kubeconfig");
    write(&path, &k.to_yaml());
    let view = kubectl_view(&path);
    let v: serde_yaml::Value =
        serde_yaml::from_str(&view).unwrap_or_else(|e| panic!("{e}: {view}"));
    let get = |path: &[&str]| -> String {
        let mut cur = &v;
        for p in path {
            cur = match p.parse::<usize>() {
                Ok(i) => &cur[i],
                Err(_) => &cur[*p],
            };
        }
        cur.as_str().unwrap_or_default().to_string()
    };
    assert_eq!(get(&["current-context"]), "default-context");
    assert_eq!(get(&["clusters", "0", "name"]), "default-cluster");
    assert_eq!(
        get(&["clusters", "0", "cluster", "server"]),
        "https://10.0.0.1:6443"
    );
    assert_eq!(get(&["contexts", "0", "context", "user"]), "default-auth");
    assert_eq!(get(&["contexts", "0", "context", "namespace"]), "default");
    assert_eq!(
        get(&["users", "0", "user", "client-certificate"]),
        pem.display().to_string()
    );
    assert_eq!(
        get(&["users", "0", "user", "client-key"]),
        pem.display().to_string()
    );
    // kubectl edits it and tinylet still reads it.
    let out = run(Command::new("kubectl")
        .args([
            "config",
            "set-context",
            "default-context",
            "--namespace=kube-system",
        ])
        .arg(format!("--kubeconfig={}", path.display())));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let back = Kubeconfig::load(&path)
        .and_then(|k| k.resolve(&path))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        back.credentials,
        Credentials::ClientCert {
            cert: Source::File(pem.clone()),
            key: Source::File(pem)
        }
    );
}

#[test]
fn relative_paths_resolve_against_the_kubeconfig_dir_and_kubectl_agrees() {
    let dir = tempdir();
    let path = dir.path().join("sub/x.kubeconfig");
    // Hand-written, as operators do (kubectl itself absolutizes paths against its cwd).
    write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters:\n- name: c\n  cluster:\n    server: https://h:6443\n    certificate-authority: ca.pem\nusers:\n- name: u\n  user:\n    client-certificate: certs/u.pem\n    client-key: certs/u-key.pem\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n",
    );
    let a = Kubeconfig::load(&path)
        .and_then(|k| k.resolve(&path))
        .unwrap_or_else(|e| panic!("{e}"));
    let base = dir.path().join("sub");
    assert_eq!(a.ca, Some(Source::File(base.join("ca.pem"))));
    assert_eq!(
        a.credentials,
        Credentials::ClientCert {
            cert: Source::File(base.join("certs/u.pem")),
            key: Source::File(base.join("certs/u-key.pem"))
        }
    );
    // kubectl resolves them the same way (`config view --flatten` reads the files it points at).
    write(&base.join("ca.pem"), "CA");
    write(&base.join("certs/u.pem"), "CERT");
    write(&base.join("certs/u-key.pem"), "KEY");
    let out = run(Command::new("kubectl")
        .args([
            "config",
            "view",
            "--flatten",
            "--raw",
            "-o",
            "jsonpath={.users[0].user.client-certificate-data}",
        ])
        .arg(format!("--kubeconfig={}", path.display())));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Q0VSVA=="); // base64("CERT")
}

#[test]
fn reads_kubectl_files_with_null_sections() {
    let dir = tempdir();
    let path = dir.path().join("partial.kubeconfig");
    let out = run(Command::new("kubectl")
        .args([
            "config",
            "set-credentials",
            "u",
            "--token=abcdef.0123456789abcdef",
        ])
        .arg(format!("--kubeconfig={}", path.display())));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        read(&path).contains("clusters: null"),
        "kubectl's format changed: {}",
        read(&path)
    );
    let k = Kubeconfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(k.clusters.is_empty());
    let e = k
        .resolve(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        e,
        format!("kubeconfig {}: current-context is not set", path.display())
    );
}
