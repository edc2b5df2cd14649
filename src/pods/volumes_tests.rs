//! Unit tests of the volume setup: token renewal, item modes, hostPath types, downward API, emptyDir.

use super::*;

/// Renewal follows what the API server granted: 80% into its lifetime, or after a day.
#[test]
fn tokens_are_renewed_by_their_granted_lifetime() {
    let i = |expires, ttl| Some(Issued { expires, ttl });
    assert!(due(None, 1000));
    // Asked for 3607 s, granted 600: due at 480 s, not at 80% of 3607.
    assert!(!due(i(10_600, 600), 10_479));
    assert!(due(i(10_600, 600), 10_480));
    // Granted a year (extended tokens): renewed after 24 hours.
    let year = 365 * 86_400;
    assert!(!due(i(10_000 + year, year), 10_000 + 86_399));
    assert!(due(i(10_000 + year, year), 10_000 + 86_400));
}

#[test]
fn items_pick_keys_with_their_modes() {
    let data = BTreeMap::from([
        ("k1".to_string(), b"v1".to_vec()),
        ("k2".to_string(), b"v2".to_vec()),
    ]);
    let all = from_data(&data, &Value::Null, 0o644, "cm").unwrap_or_default();
    assert_eq!(all.len(), 2);
    let some = from_data(
        &data,
        &json!([{"key": "k2", "path": "dir/two", "mode": 0o400}]),
        0o644,
        "cm",
    )
    .unwrap_or_default();
    assert_eq!(some.get("dir/two"), Some(&(b"v2".to_vec(), 0o400)));
    let e = from_data(
        &data,
        &json!([{"key": "k3", "path": "x"}]),
        0o644,
        "configmap \"c\"",
    )
    .map_or_else(|e| e, |_| String::new());
    assert_eq!(e, "configmap \"c\": key \"k3\" not found");
}

#[test]
fn host_path_types() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = d.path().join("new");
    assert!(check_host_path(&p, "DirectoryOrCreate").is_ok() && p.is_dir());
    assert!(check_host_path(&p, "Directory").is_ok());
    let e = check_host_path(&p, "File").map_or_else(|e| e, |_| String::new());
    assert!(e.ends_with("new is not a file"), "{e}");
    let f = d.path().join("f");
    assert!(check_host_path(&f, "FileOrCreate").is_ok() && f.is_file());
    assert!(check_host_path(&f, "Socket").is_err());
    assert!(check_host_path(&f, "Sideways").is_err());
}

/// The suite's downward API volume pods: resource items of a named container, plain and
/// projected, written in the divisor's units; the node's allocatable where no limit is set.
#[test]
fn downward_volumes_carry_resource_fields() {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let item = |path: &str, c: &str, res: &str| json!({"path": path, "resourceFieldRef": {"containerName": c, "resource": res, "divisor": "1m"}});
    let pod = Pod::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"containers": [
            {"name": "set", "image": "x", "resources": {"limits": {"cpu": "1250m"}}},
            {"name": "unset", "image": "x"}],
        "volumes": [
            {"name": "plain", "downwardAPI": {"items": [item("cpu_limit", "set", "limits.cpu")]}},
            {"name": "proj", "projected": {"sources": [{"downwardAPI": {"items": [
                item("cpu_limit", "unset", "limits.cpu"),
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let node = NodeLimits {
        cpu_millis: 2000,
        ..Default::default()
    };
    let paths = prepare(&pod, d.path(), &node, None).unwrap_or_else(|e| panic!("{e}"));
    let read = |v: &str, f: &str| std::fs::read_to_string(paths[v].join(f)).unwrap_or_default();
    assert_eq!(read("plain", "cpu_limit"), "1250");
    assert_eq!(read("proj", "cpu_limit"), "2000", "the node's allocatable");
    assert_eq!(read("proj", "name"), "p");
    let mut bad = pod.clone();
    bad.raw["spec"]["volumes"][0]["downwardAPI"]["items"][0]["resourceFieldRef"]["containerName"] =
        json!("gone");
    let e = prepare(&bad, d.path(), &node, None).map_or_else(|e| e, |_| String::new());
    assert!(e.contains("no container \"gone\" in the pod"), "{e}");
}

/// An emptyDir is made world-writable once; a mode the pod gives it later survives the
/// next resync of the pod's volumes.
#[test]
fn an_empty_dir_is_set_up_once() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pod = Pod::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
        "spec": {"containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "scratch", "emptyDir": {}}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let node = NodeLimits::default();
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode() & 0o7777);
    let paths = prepare(&pod, d.path(), &node, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode(&paths["scratch"]), 0o777);
    std::fs::set_permissions(&paths["scratch"], std::fs::Permissions::from_mode(0o700))
        .unwrap_or_else(|e| panic!("{e}"));
    let again = prepare(&pod, d.path(), &node, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again["scratch"], paths["scratch"]);
    assert_eq!(mode(&again["scratch"]), 0o700, "the pod's chmod is kept");
}
