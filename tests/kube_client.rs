//! The API client against the control plane: a rotated client certificate is used after `reload()` (new
//! connections with the new identity; the old pool goes with the old agent), and Status errors
//! keep the server's words.

mod common;

use std::process::Command;

use common::*;
use tinylet::config::kubeconfig::Kubeconfig;
use tinylet::kube::Client;

#[test]
fn reload_switches_to_the_rotated_client_certificate() {
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    let plane = Plane::start(&sim_dir, &[]);
    let server = std::fs::read_to_string(sim_dir.join("address"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let (cert, key) = (
        tmp.path().join("client.pem"),
        tmp.path().join("client-key.pem"),
    );
    let use_identity = |name: &str| {
        let (c, k) = common::https::pem_pair(&sim_dir, name);
        std::fs::copy(c, &cert).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(k, &key).unwrap_or_else(|e| panic!("{e}"));
    };
    use_identity("admin");
    let kc = tmp.path().join("client.kubeconfig");
    write(
        &kc,
        &format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: s\n  cluster:\n    server: {server}\n    certificate-authority: sim/ca.pem\nusers:\n- name: u\n  user:\n    client-certificate: client.pem\n    client-key: client-key.pem\ncontexts:\n- name: c\n  context:\n    cluster: s\n    user: u\n"
        ),
    );
    let api = Kubeconfig::load(&kc)
        .and_then(|k| k.resolve(&kc))
        .unwrap_or_else(|e| panic!("{e}"));
    let client = Client::new(&api, 50, 100).unwrap_or_else(|e| panic!("{e}"));
    let path = "/api/v1/namespaces/default/configmaps/kube-root-ca.crt";
    let get = || client.get::<serde_json::Value>(path);
    // The controller creates the ConfigMap shortly after start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "admin cannot read {path}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A missing object is a 404 with the apiserver's text.
    let err = client
        .get::<serde_json::Value>("/api/v1/nodes/nope")
        .err()
        .unwrap_or_else(|| panic!("404 expected"));
    assert_eq!(
        (err.code(), err.to_string().as_str()),
        (Some(404), "nodes \"nope\" not found")
    );
    // Rotated on disk: the client keeps its loaded identity until told to reload. The new one
    // may not read configmaps: kube-sim's controller-manager may not; on the real control
    // plane it may (its ClusterRole is broad), so a user RBAC knows nothing about.
    let user = if plane.upstream() {
        let (c, k) = common::upstream::client_cert(&sim_dir, "nobody");
        std::fs::copy(c, &cert).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(k, &key).unwrap_or_else(|e| panic!("{e}"));
        "nobody"
    } else {
        use_identity("kube-controller-manager");
        "system:kube-controller-manager"
    };
    assert!(get().is_ok());
    client.reload().unwrap_or_else(|e| panic!("{e}"));
    let err = get()
        .err()
        .unwrap_or_else(|| panic!("the new identity may not read it"));
    assert_eq!(err.code(), Some(403));
    assert_eq!(err.reason(), "Forbidden");
    assert_eq!(
        err.to_string(),
        format!(
            "configmaps \"kube-root-ca.crt\" is forbidden: User \"{user}\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
        )
    );
}

/// Waits for the controller to publish kube-root-ca.crt in default (shortly after start).
fn root_ca_published(sim_dir: &std::path::Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while Command::new("kubectl")
        .arg(format!(
            "--kubeconfig={}",
            sim_dir.join("admin.kubeconfig").display()
        ))
        .args(["get", "configmap", "kube-root-ca.crt"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        assert!(std::time::Instant::now() < deadline, "no kube-root-ca.crt");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs `list_watch` on default/configmaps in a thread; events arrive on the channel.
fn watch_configmaps(
    sim_dir: &std::path::Path,
) -> std::sync::mpsc::Receiver<tinylet::kube::watch::Event> {
    let kc = sim_dir.join("admin.kubeconfig");
    let api = Kubeconfig::load(&kc)
        .and_then(|k| k.resolve(&kc))
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let client = Client::new(&api, 50, 100).unwrap_or_else(|e| panic!("{e}"));
        let _ = tinylet::kube::watch::list_watch(
            &client,
            "/api/v1/namespaces/default/configmaps",
            "",
            std::time::Duration::from_secs(1),
            |e| tx.send(e).is_ok(),
        );
    });
    rx
}

fn name_of(e: &tinylet::kube::watch::Event) -> String {
    use tinylet::kube::watch::Event;
    match e {
        Event::Added(o) | Event::Modified(o) | Event::Deleted(o) => {
            o["metadata"]["name"].as_str().unwrap_or("").to_string()
        }
        Event::Listed(items) => format!(
            "listed:{}",
            items
                .iter()
                .filter_map(|o| o["metadata"]["name"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

fn next(rx: &std::sync::mpsc::Receiver<tinylet::kube::watch::Event>) -> String {
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .map(|e| name_of(&e))
        .unwrap_or_else(|_| "<nothing>".into())
}

#[test]
fn list_watch_relists_after_410_and_bookmarks_prevent_it() {
    // History of 3 events, no bookmarks: a quiet watch falls behind and must re-list.
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    // kube-sim: a watch history of 3 events and bookmarks at will are what the real API
    // server's cache cannot be told to do.
    let _sim = start_sim_with(&sim_dir, &["--watch-history", "3"]);
    root_ca_published(&sim_dir);
    let rx = watch_configmaps(&sim_dir);
    assert_eq!(next(&rx), "listed:kube-root-ca.crt");
    admin_kubectl(&sim_dir, &["create", "configmap", "a"]);
    assert_eq!(next(&rx), "a");
    for i in 0..5 {
        admin_kubectl(
            &sim_dir,
            &["-n", "kube-system", "create", "configmap", &format!("x{i}")],
        );
    }
    assert_eq!(
        next(&rx),
        "listed:a,kube-root-ca.crt",
        "410 Gone -> re-list"
    );
    admin_kubectl(&sim_dir, &["create", "configmap", "b"]);
    assert_eq!(next(&rx), "b");

    // With bookmarks every 200 ms the version keeps up and no re-list is needed.
    let tmp2 = tempdir();
    let sim2 = tmp2.path().join("sim");
    let _sim2 = start_sim_with(
        &sim2,
        &["--watch-history", "3", "--bookmark-interval", "200ms"],
    );
    root_ca_published(&sim2);
    let rx = watch_configmaps(&sim2);
    assert_eq!(next(&rx), "listed:kube-root-ca.crt");
    for i in 0..5 {
        admin_kubectl(
            &sim2,
            &["-n", "kube-system", "create", "configmap", &format!("x{i}")],
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    admin_kubectl(&sim2, &["create", "configmap", "c"]);
    assert_eq!(
        next(&rx),
        "c",
        "no re-list: bookmarks carried the version forward"
    );
}

#[test]
fn create_update_patch_delete_and_conflicts() {
    use tinylet::kube::PatchKind;
    let tmp = tempdir();
    let sim_dir = tmp.path().join("sim");
    let _plane = Plane::start(&sim_dir, &[]);
    let kc = sim_dir.join("admin.kubeconfig");
    let api = Kubeconfig::load(&kc)
        .and_then(|k| k.resolve(&kc))
        .unwrap_or_else(|e| panic!("{e}"));
    let c = Client::new(&api, 50, 100).unwrap_or_else(|e| panic!("{e}"));
    let base = "/api/v1/namespaces/default/configmaps";
    let created: serde_json::Value = c.create(base, &serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "1"}})).unwrap_or_else(|e| panic!("{e}"));
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let path = format!("{base}/cm");
    let merged: serde_json::Value = c
        .patch(
            &path,
            PatchKind::Merge,
            &serde_json::json!({"data": {"b": "2"}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(merged["data"], serde_json::json!({"a": "1", "b": "2"}));
    let strategic: serde_json::Value = c
        .patch(
            &path,
            PatchKind::Strategic,
            &serde_json::json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(strategic["metadata"]["labels"]["x"], "y");
    // An update with the stale resourceVersion from the create is a conflict.
    let mut stale = created.clone();
    stale["data"]["c"] = serde_json::json!("3");
    let err = c
        .update::<_, serde_json::Value>(&path, &stale)
        .err()
        .unwrap_or_else(|| panic!("409 expected"));
    assert_eq!(err.code(), Some(409), "{err}");
    assert!(
        err.to_string().contains("the object has been modified"),
        "{err}"
    );
    assert_ne!(
        rv,
        strategic["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
    );
    let mut fresh = strategic.clone();
    fresh["data"]["c"] = serde_json::json!("3");
    let updated: serde_json::Value = c.update(&path, &fresh).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(updated["data"]["c"], "3");
    // A field the API does not know: accepted by default (the API server's Warn), refused
    // with fieldValidation=Strict, naming it.
    let typo = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dataa": {}});
    c.create::<_, serde_json::Value>(base, &typo)
        .unwrap_or_else(|e| panic!("the default is Warn, not Strict: {e}"));
    let mut typo2 = typo.clone();
    typo2["metadata"]["name"] = serde_json::json!("y");
    let err = c
        .create::<_, serde_json::Value>(&format!("{base}?fieldValidation=Strict"), &typo2)
        .err()
        .unwrap_or_else(|| panic!("400 expected"));
    assert_eq!(err.code(), Some(400));
    assert!(err.to_string().contains("unknown field \"dataa\""), "{err}");
    c.delete(&path, &serde_json::json!({}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.get::<serde_json::Value>(&path)
            .err()
            .and_then(|e| e.code()),
        Some(404)
    );
}
