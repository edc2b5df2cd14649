//! Static pods: manifests read from `staticPodPath` (a directory or one file), re-read every
//! `fileCheckFrequency`, given the kubelet's defaults (name `<name>-<node>`, a uid hashed from the
//! file, the `kubernetes.io/config.*` annotations, bound to this node) and handed to the owner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::msg::{Inbox, Msg};
use super::spec::Pod;
use crate::stop::Stop;
use crate::warn;

/// `kubernetes.io/config.source`: where a pod came from ("file" for static pods, "api").
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// `kubernetes.io/config.hash`: the static pod's uid, copied to its mirror pod.
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// `kubernetes.io/config.mirror`: set on a mirror pod, the hash of its static pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Why one manifest was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("reading static pod manifest {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("static pod manifest {path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

/// The manifest files under `path` (itself when it is a file), in name order; hidden files are
/// skipped, as the kubelet does (editors' swap files).
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read = |err| ManifestError::Read {
        path: path.to_path_buf(),
        err,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read)? {
        let entry = entry.map_err(read)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// One manifest (YAML or JSON) as the static pod the kubelet would make of it on `node`.
pub fn parse(path: &Path, text: &[u8], node: &str) -> Result<Pod, ManifestError> {
    let invalid = |why: String| ManifestError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let mut v: Value = serde_yaml::from_slice(text).map_err(|e| invalid(e.to_string()))?;
    if v["kind"] != "Pod" || v["apiVersion"] != "v1" {
        return Err(invalid(format!(
            "expected apiVersion v1, kind Pod; found {}, {}",
            v["apiVersion"], v["kind"]
        )));
    }
    let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        return Err(invalid("metadata.name is empty".into()));
    }
    let node = node.to_lowercase();
    // The uid is a hash of the manifest, this host and the file (the kubelet hashes the decoded
    // object; the bytes serve the same purpose: a changed manifest is a new pod).
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(text);
    ctx.update(format!("host:{node}file:{}", path.display()).as_bytes());
    let uid: String = ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = &mut v["metadata"];
    if meta["uid"].as_str().is_none_or(str::is_empty) {
        meta["uid"] = json!(uid);
    }
    let uid = meta["uid"].clone();
    meta["name"] = json!(format!("{name}-{node}"));
    if meta["namespace"].as_str().is_none_or(str::is_empty) {
        meta["namespace"] = json!("default");
    }
    if !meta["annotations"].is_object() {
        meta["annotations"] = json!({});
    }
    meta["annotations"][HASH_ANNOTATION] = uid;
    meta["annotations"][SOURCE_ANNOTATION] = json!("file");
    v["spec"]["nodeName"] = json!(node);
    // Static pods tolerate every NoExecute taint, so node problems do not evict them.
    let toleration = json!({"operator": "Exists", "effect": "NoExecute"});
    match v["spec"]["tolerations"].as_array_mut() {
        Some(t) if t.contains(&toleration) => {}
        Some(t) => t.push(toleration),
        None => v["spec"]["tolerations"] = json!([toleration]),
    }
    v["status"] = json!({"phase": "Pending"});
    Pod::from_value(v).map_err(invalid)
}

/// Every static pod under `path`, and what was wrong with the manifests left out.
pub fn read(path: &Path, node: &str) -> (Vec<Pod>, Vec<ManifestError>) {
    let files = match manifest_files(path) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), vec![e]),
    };
    let mut pods: Vec<Pod> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let parsed = std::fs::read(&f)
            .map_err(|err| ManifestError::Read {
                path: f.clone(),
                err,
            })
            .and_then(|text| parse(&f, &text, node));
        match parsed {
            Ok(p) if pods.iter().any(|q| q.key() == p.key()) => {
                errors.push(ManifestError::Invalid {
                    path: f,
                    why: format!("a manifest read before already defines pod {}", p.key()),
                })
            }
            Ok(p) => pods.push(p),
            Err(e) => errors.push(e),
        }
    }
    (pods, errors)
}

/// Reads `path` now and every `every`, sending the set of static pods when it changed.
pub fn run(path: &Path, node: &str, every: Duration, tx: &Inbox, stop: &Stop) {
    let mut last: Option<Vec<String>> = None;
    let mut last_errors = String::new();
    loop {
        let (pods, errors) = read(path, node);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let text = text.join("; ");
        if text != last_errors && !text.is_empty() {
            warn!("{text}");
        }
        last_errors = text;
        let uids: Vec<String> = pods.iter().map(|p| p.metadata.uid.clone()).collect();
        if last.as_ref() != Some(&uids) {
            if !tx.send(Msg::Static(pods)) {
                return;
            }
            last = Some(uids);
        }
        if stop.sleep(every) {
            return;
        }
    }
}

/// A pod from a manifest file.
pub fn is_static(p: &Pod) -> bool {
    p.metadata
        .annotations
        .get(SOURCE_ANNOTATION)
        .map(String::as_str)
        == Some("file")
}

/// A static pod's mirror in the API.
pub fn is_mirror(p: &Pod) -> bool {
    p.metadata.annotations.contains_key(MIRROR_ANNOTATION)
}

/// The mirror pod to create for static pod `p` on node `node` (uid `node_uid`): the same object
/// with the mirror annotation and the node as its controller, as NodeRestriction requires.
pub fn mirror_of(p: &Pod, node: &str, node_uid: &str) -> Value {
    let mut v = p.raw.clone();
    let hash = p.metadata.uid.clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("uid");
        m.remove("resourceVersion");
        m.remove("creationTimestamp");
    }
    v["metadata"]["annotations"][MIRROR_ANNOTATION] = json!(hash);
    v["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid, "controller": true
    }]);
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

/// Whether `mirror` is the current, live mirror of static pod `p`.
pub fn mirrors(mirror: &Pod, p: &Pod) -> bool {
    !mirror.deleting()
        && mirror.metadata.annotations.get(MIRROR_ANNOTATION) == Some(&p.metadata.uid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

    #[test]
    fn defaults_as_the_kubelet() {
        let p = parse(
            Path::new("/etc/kubernetes/manifests/web.yaml"),
            WEB.as_bytes(),
            "Edge-1",
        )
        .unwrap();
        assert_eq!(p.metadata.name, "web-edge-1");
        assert_eq!(p.metadata.namespace, "default");
        assert_eq!(p.metadata.uid.len(), 32);
        assert_eq!(p.metadata.annotations[HASH_ANNOTATION], p.metadata.uid);
        assert_eq!(
            p.metadata.annotations["kubernetes.io/config.source"],
            "file"
        );
        assert_eq!(p.metadata.labels["app"], "web");
        assert_eq!(p.raw["spec"]["nodeName"], "edge-1");
        assert_eq!(
            p.raw["spec"]["tolerations"],
            json!([{"operator": "Exists", "effect": "NoExecute"}])
        );
        assert!(is_static(&p) && !is_mirror(&p));
        // Same bytes, same file, same node: same uid; any of them changed: another.
        let again = parse(
            Path::new("/etc/kubernetes/manifests/web.yaml"),
            WEB.as_bytes(),
            "edge-1",
        )
        .unwrap();
        assert_eq!(again.metadata.uid, p.metadata.uid);
        let edited = WEB.replace("busybox", "busybox:1.36");
        let other = parse(
            Path::new("/etc/kubernetes/manifests/web.yaml"),
            edited.as_bytes(),
            "edge-1",
        )
        .unwrap();
        assert_ne!(other.metadata.uid, p.metadata.uid);
        let moved = parse(
            Path::new("/etc/kubernetes/manifests/web2.yaml"),
            WEB.as_bytes(),
            "edge-1",
        )
        .unwrap();
        assert_ne!(moved.metadata.uid, p.metadata.uid);
    }

    #[test]
    fn mirror_pod_is_what_node_restriction_accepts() {
        let p = parse(Path::new("/m/web.yaml"), WEB.as_bytes(), "n1").unwrap();
        let m = mirror_of(&p, "n1", "node-uid");
        assert!(m["metadata"]["uid"].is_null() && m["status"].is_null());
        assert_eq!(
            m["metadata"]["annotations"][MIRROR_ANNOTATION],
            json!(p.metadata.uid)
        );
        assert_eq!(
            m["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": true}])
        );
        let mut as_api = m.clone();
        as_api["metadata"]["uid"] = json!("api-uid");
        let mirror = Pod::from_value(as_api).unwrap();
        assert!(is_mirror(&mirror) && mirrors(&mirror, &p));
        let edited = parse(
            Path::new("/m/web.yaml"),
            WEB.replace("name: c", "name: d").as_bytes(),
            "n1",
        )
        .unwrap();
        assert!(!mirrors(&mirror, &edited));
    }

    #[test]
    fn bad_manifests_are_named_and_skipped() {
        let dir = std::env::temp_dir().join(format!("tinylet-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a-web.yaml"), WEB).unwrap();
        std::fs::write(dir.join(".web.yaml.swp"), "junk").unwrap();
        std::fs::write(
            dir.join("b-broken.yaml"),
            "kind: Pod\napiVersion: v1\nspec: [",
        )
        .unwrap();
        std::fs::write(
            dir.join("c-deploy.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\n",
        )
        .unwrap();
        std::fs::write(dir.join("d-noimage.json"), r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},"spec":{"containers":[{"name":"c"}]}}"#).unwrap();
        std::fs::write(
            dir.join("e-same.yaml"),
            WEB.replace("app: web", "app: other"),
        )
        .unwrap();
        let (pods, errors) = read(&dir, "n1");
        assert_eq!(pods.len(), 1, "{errors:?}");
        assert_eq!(pods[0].metadata.name, "web-n1");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:?}");
        assert!(text[0].contains("b-broken.yaml"), "{text:?}");
        assert!(
            text[1].contains("c-deploy.yaml") && text[1].contains("apps/v1"),
            "{text:?}"
        );
        assert!(
            text[2].contains("d-noimage.json") && text[2].contains("no image"),
            "{text:?}"
        );
        assert!(
            text[3].contains("e-same.yaml") && text[3].contains("default/web-n1"),
            "{text:?}"
        );
        // One file as the path; a missing path is one error naming it.
        assert_eq!(read(&dir.join("a-web.yaml"), "n1").0.len(), 1);
        let (none, e) = read(&dir.join("missing"), "n1");
        assert!(none.is_empty() && e[0].to_string().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
