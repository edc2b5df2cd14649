//! Pod volumes on the node: emptyDir (disk), hostPath (types checked), configMap, secret,
//! downwardAPI and projected (serviceAccountToken by the TokenRequest API, configMap, secret,
//! downwardAPI) under `<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`, contents
//! written atomically as the kubelet's AtomicWriter does (a timestamped dir, the `..data`
//! symlink swapped, one symlink per visible name), and the container mounts they give.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Value, json};

use super::admit::NodeLimits;
use super::seams::Api;
use super::spec::Pod;

use super::atomic::mkdir;
pub use super::atomic::{Files, write_atomic};

fn err(pod: &Pod, vol: &str, why: impl std::fmt::Display) -> String {
    format!(
        "MountVolume.SetUp failed for volume {vol:?} of pod {}: {why}",
        pod.key()
    )
}

fn mode_of(v: &Value, default: u32) -> u32 {
    v.as_u64().map_or(default, |m| (m & 0o7777) as u32)
}

/// Files from a configMap's or secret's data: all keys, or the `items` chosen.
fn from_data(
    data: &BTreeMap<String, Vec<u8>>,
    items: &Value,
    default_mode: u32,
    what: &str,
) -> Result<Files, String> {
    let mut out = Files::new();
    match items.as_array() {
        Some(items) if !items.is_empty() => {
            for it in items {
                let key = it["key"].as_str().unwrap_or("");
                let path = it["path"].as_str().unwrap_or(key);
                let Some(content) = data.get(key) else {
                    return Err(format!("{what}: key {key:?} not found"));
                };
                out.insert(
                    path.to_string(),
                    (content.clone(), mode_of(&it["mode"], default_mode)),
                );
            }
        }
        _ => {
            for (k, v) in data {
                out.insert(k.clone(), (v.clone(), default_mode));
            }
        }
    }
    Ok(out)
}

fn config_map_data(cm: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut d = BTreeMap::new();
    if let Some(m) = cm["data"].as_object() {
        for (k, v) in m {
            d.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
        }
    }
    if let Some(m) = cm["binaryData"].as_object() {
        for (k, v) in m {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or(""))
                .unwrap_or_default();
            d.insert(k.clone(), b);
        }
    }
    d
}

fn secret_data(s: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut d = BTreeMap::new();
    if let Some(m) = s["data"].as_object() {
        for (k, v) in m {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or(""))
                .unwrap_or_default();
            d.insert(k.clone(), b);
        }
    }
    d
}

/// A downwardAPI field of the pod.
fn field(pod: &Pod, path: &str) -> Result<Vec<u8>, String> {
    let m = &pod.metadata;
    let kv = |map: &BTreeMap<String, String>| {
        map.iter()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    };
    Ok(match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "metadata.labels" => kv(&m.labels),
        "metadata.annotations" => kv(&m.annotations),
        other => {
            if let Some(k) = other
                .strip_prefix("metadata.labels['")
                .and_then(|k| k.strip_suffix("']"))
            {
                m.labels.get(k).cloned().unwrap_or_default()
            } else if let Some(k) = other
                .strip_prefix("metadata.annotations['")
                .and_then(|k| k.strip_suffix("']"))
            {
                m.annotations.get(k).cloned().unwrap_or_default()
            } else {
                return Err(format!("fieldRef {other:?} is not supported"));
            }
        }
    }
    .into_bytes())
}

fn downward(
    pod: &Pod,
    items: &Value,
    default_mode: u32,
    node: &NodeLimits,
) -> Result<Files, String> {
    let mut out = Files::new();
    for it in items.as_array().into_iter().flatten() {
        let path = it["path"].as_str().unwrap_or("");
        let value = if let Some(fp) = it["fieldRef"]["fieldPath"].as_str() {
            field(pod, fp)?
        } else if let Some(r) = it["resourceFieldRef"].as_object() {
            // A volume names its container (the API requires it).
            let name = r.get("containerName").and_then(Value::as_str).unwrap_or("");
            let c = pod.raw_container(name);
            if c.is_null() {
                return Err(format!(
                    "downwardAPI item {path:?}: no container {name:?} in the pod"
                ));
            }
            super::env::resource_field(&c, &it["resourceFieldRef"], node)
                .map_err(|e| format!("downwardAPI item {path:?}: {e}"))?
                .into_bytes()
        } else {
            return Err(format!(
                "downwardAPI item {path:?}: neither fieldRef nor resourceFieldRef"
            ));
        };
        out.insert(
            path.to_string(),
            (value, mode_of(&it["mode"], default_mode)),
        );
    }
    Ok(out)
}

/// GET a namespaced object; None when it does not exist.
fn get_opt(c: &dyn Api, path: &str) -> Result<Option<Value>, String> {
    match c.get(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code == Some(404) => Ok(None),
        Err(e) => Err(e.message),
    }
}

/// The data of configMap (`kind` "configmap") or secret ("secret") `obj`, values decoded;
/// None when it does not exist.
pub fn object_data(
    c: &dyn Api,
    ns: &str,
    kind: &str,
    obj: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    let secret = kind == "secret";
    let plural = if secret { "secrets" } else { "configmaps" };
    Ok(
        get_opt(c, &format!("/api/v1/namespaces/{ns}/{plural}/{obj}"))?.map(|o| {
            if secret {
                secret_data(&o)
            } else {
                config_map_data(&o)
            }
        }),
    )
}

/// The files of a configMap or secret volume source (`obj` its object, `src` the source with
/// its `items` and `optional`).
fn object_files(
    c: &dyn Api,
    ns: &str,
    kind: &str,
    obj: &str,
    src: &Value,
    mode: u32,
) -> Result<Files, String> {
    match object_data(c, ns, kind, obj)? {
        Some(data) => from_data(&data, &src["items"], mode, &format!("{kind} {obj:?}")),
        None if src["optional"] == true => Ok(Files::new()),
        None => Err(format!("{kind} {obj:?} not found")),
    }
}

/// A projected token as the API server issued it: when it expires and the lifetime it was
/// given (the server may have cut or lengthened the one asked for), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    pub expires: u64,
    pub ttl: u64,
}

/// Whether a token issued as `i` is due for renewal at `now`, as the kubelet's token manager:
/// within 20% of its lifetime of expiring, or older than 24 hours.
pub fn due(i: Option<Issued>, now: u64) -> bool {
    let Some(i) = i else {
        return true;
    };
    let issued_at = i.expires.saturating_sub(i.ttl);
    now >= issued_at + 24 * 3600 || now + i.ttl / 5 >= i.expires
}

/// `<pod dir>/tokens.json`: how each of the pod's projected tokens (`<volume>/<path>`) was
/// issued, kept beside the volumes so that a restart of the agent knows when to renew.
fn issued_file(root_dir: &Path, uid: &str) -> PathBuf {
    super::layout::pod_dir(root_dir, uid).join("tokens.json")
}

fn read_issued(root_dir: &Path, uid: &str) -> BTreeMap<String, Issued> {
    std::fs::read(issued_file(root_dir, uid))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_issued(
    root_dir: &Path,
    uid: &str,
    issued: &BTreeMap<String, Issued>,
) -> Result<(), String> {
    let file = issued_file(root_dir, uid);
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(issued).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| format!("writing {}: {e}", file.display()))
}

/// A token for the pod's ServiceAccount, bound to the pod (TokenRequest), and how the API
/// server issued it.
fn token(c: &dyn Api, pod: &Pod, src: &Value, now: u64) -> Result<(Vec<u8>, Issued), String> {
    let sa = pod.raw["spec"]["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    let mut spec = json!({
        "expirationSeconds": src["expirationSeconds"].as_i64().unwrap_or(3600),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid},
    });
    if let Some(a) = src["audience"].as_str().filter(|a| !a.is_empty()) {
        spec["audiences"] = json!([a]);
    }
    let req =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let path = format!(
        "/api/v1/namespaces/{}/serviceaccounts/{sa}/token",
        pod.metadata.namespace
    );
    let v: Value = c
        .create(&path, &req)
        .map_err(|e| format!("requesting a token for {sa}: {e}"))?;
    let token = v["status"]["token"]
        .as_str()
        .map(|t| t.as_bytes().to_vec())
        .ok_or("the TokenRequest answer has no token")?;
    // What the server granted, not what was asked for.
    let asked = src["expirationSeconds"].as_u64().unwrap_or(3600);
    let ttl = v["spec"]["expirationSeconds"].as_u64().unwrap_or(asked);
    let expires = v["status"]["expirationTimestamp"]
        .as_str()
        .and_then(crate::timefmt::parse_rfc3339)
        .unwrap_or(now + ttl);
    Ok((token, Issued { expires, ttl }))
}

/// Writes `files` (when they could be made) into `d`. When the API server could not give them
/// and `d` holds what an earlier run wrote (after a reboot with the API server away), that is
/// kept: the pod runs with its last known configuration, as it did before.
/// Writes `files` into `d` atomically; with the pod's `fsGroup`, readable by that group, which
/// owns them (the kubelet's SetVolumeOwnership over its read-only volumes).
fn write_owned(d: &Path, mut files: Files, fs_group: Option<u32>) -> Result<(), String> {
    if let Some(gid) = fs_group {
        for (_, mode) in files.values_mut() {
            *mode |= 0o440;
        }
        write_atomic(d, &files)?;
        return super::atomic::own(d, gid, true);
    }
    write_atomic(d, &files)
}

fn write_or_keep(
    pod: &Pod,
    name: &str,
    d: PathBuf,
    files: Result<Files, String>,
) -> Result<PathBuf, String> {
    match files {
        Ok(files) => write_owned(&d, files, fs_group(pod)).map_err(|e| err(pod, name, e))?,
        Err(e) if d.join("..data").exists() => {
            crate::warn!(
                "{}; keeping the content written before in {}",
                err(pod, name, e),
                d.display()
            );
        }
        Err(e) => return Err(err(pod, name, e)),
    }
    Ok(d)
}

/// The pod's `securityContext.fsGroup`.
fn fs_group(pod: &Pod) -> Option<u32> {
    pod.raw["spec"]["securityContext"]["fsGroup"]
        .as_u64()
        .and_then(|g| u32::try_from(g).ok())
}

/// The host path of every volume of `pod`, its content written. Without an API client
/// (standalone, or the API server away) only volumes that need no API object can be made
/// afresh.
pub fn prepare(
    pod: &Pod,
    root_dir: &Path,
    node: &NodeLimits,
    c: Option<&dyn Api>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let api = || c.ok_or_else(|| "no API server to read it from".to_string());
    let ns = &pod.metadata.namespace;
    let base = root_dir
        .join("pods")
        .join(&pod.metadata.uid)
        .join("volumes");
    let mut out = BTreeMap::new();
    for v in pod.raw["spec"]["volumes"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("").to_string();
        let dir = |plugin: &str| base.join(format!("kubernetes.io~{plugin}")).join(&name);
        let path = if v["emptyDir"].is_object() {
            let d = dir("empty-dir");
            // Set up once (again after a reboot took its tmpfs): what the pod then does to it,
            // a chmod included, stays, as with the kubelet's ready marker.
            let memory = v["emptyDir"]["medium"] == "Memory";
            let fresh = !d.exists() || (memory && !is_mount_point(&d));
            mkdir(&d, 0o777).map_err(|e| err(pod, &name, e))?;
            if memory {
                let size = v["emptyDir"]["sizeLimit"]
                    .as_str()
                    .map(|q| {
                        crate::config::quantity::Quantity::parse(q)
                            .map(|q| q.value())
                            .map_err(|e| err(pod, &name, format!("sizeLimit {q:?}: {e}")))
                    })
                    .transpose()?;
                mount_tmpfs(&d, size).map_err(|e| err(pod, &name, e))?;
            }
            // mkdir's mode is cut by the umask; emptyDir is world-writable, as the kubelet's,
            // and with an fsGroup the group's, set-group-id (its content is the pod's own).
            if fresh {
                let mut mode = 0o777;
                if let Some(gid) = fs_group(pod) {
                    std::os::unix::fs::lchown(&d, None, Some(gid))
                        .map_err(|e| err(pod, &name, e))?;
                    mode |= 0o2000;
                }
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| err(pod, &name, e))?;
            }
            d
        } else if let Some(hp) = v["hostPath"].as_object() {
            let p = PathBuf::from(hp.get("path").and_then(Value::as_str).unwrap_or(""));
            let kind = hp.get("type").and_then(Value::as_str).unwrap_or("");
            check_host_path(&p, kind).map_err(|e| err(pod, &name, e))?;
            p
        } else if v["configMap"].is_object() {
            let cm = &v["configMap"];
            let cm_name = cm["name"].as_str().unwrap_or("");
            let mode = mode_of(&cm["defaultMode"], 0o644);
            let files = api().and_then(|c| object_files(c, ns, "configmap", cm_name, cm, mode));
            write_or_keep(pod, &name, dir("configmap"), files)?
        } else if v["secret"].is_object() {
            let s = &v["secret"];
            let s_name = s["secretName"].as_str().unwrap_or("");
            let mode = mode_of(&s["defaultMode"], 0o644);
            let files = api().and_then(|c| object_files(c, ns, "secret", s_name, s, mode));
            let d = dir("secret");
            mkdir(&d, 0o750).map_err(|e| err(pod, &name, e))?;
            write_or_keep(pod, &name, d, files)?
        } else if v["downwardAPI"].is_object() {
            let dv = &v["downwardAPI"];
            let files = downward(pod, &dv["items"], mode_of(&dv["defaultMode"], 0o644), node)
                .map_err(|e| err(pod, &name, e))?;
            let d = dir("downward-api");
            write_owned(&d, files, fs_group(pod)).map_err(|e| err(pod, &name, e))?;
            d
        } else if v["projected"].is_object() {
            let pv = &v["projected"];
            let mode = mode_of(&pv["defaultMode"], 0o644);
            let now = crate::timefmt::now_secs();
            let mut issued = read_issued(root_dir, &pod.metadata.uid);
            let before = issued.clone();
            let files = (|| {
                let mut files = Files::new();
                for src in pv["sources"].as_array().into_iter().flatten() {
                    let part = if src["serviceAccountToken"].is_object() {
                        let t = &src["serviceAccountToken"];
                        let path = t["path"].as_str().unwrap_or("token");
                        let key = format!("{name}/{path}");
                        let current = std::fs::read(dir("projected").join("..data").join(path));
                        let tok = match current {
                            Ok(tok) if !due(issued.get(&key).copied(), now) => tok,
                            _ => {
                                let (tok, i) = token(api()?, pod, t, now)?;
                                issued.insert(key, i);
                                tok
                            }
                        };
                        Files::from([(path.to_string(), (tok, mode))])
                    } else if let Some((kind, r)) =
                        [("configmap", &src["configMap"]), ("secret", &src["secret"])]
                            .into_iter()
                            .find(|(_, r)| r.is_object())
                    {
                        let obj = r["name"].as_str().unwrap_or("");
                        object_files(api()?, ns, kind, obj, r, mode)?
                    } else if src["downwardAPI"].is_object() {
                        downward(pod, &src["downwardAPI"]["items"], mode, node)?
                    } else {
                        return Err("unsupported projected source".to_string());
                    };
                    files.extend(part);
                }
                Ok(files)
            })();
            let d = write_or_keep(pod, &name, dir("projected"), files)?;
            if issued != before {
                write_issued(root_dir, &pod.metadata.uid, &issued)
                    .map_err(|e| err(pod, &name, e))?;
            }
            d
        } else {
            return Err(err(pod, &name, "volume type not supported yet"));
        };
        out.insert(name, path);
    }
    Ok(out)
}

/// Whether `p` is a mount point (in this process's mount table).
pub fn is_mount_point(p: &Path) -> bool {
    let want = p.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// A `medium: Memory` emptyDir: tmpfs on `dir`, `size` bytes when `sizeLimit` is set (else the
/// kernel's default, half the memory), once.
fn mount_tmpfs(dir: &Path, size: Option<i64>) -> Result<(), String> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut opts = "mode=0777".to_string();
    if let Some(s) = size {
        opts.push_str(&format!(",size={s}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| format!("mounting tmpfs on {}: {e}", dir.display()))
}

/// hostPath `type` checks, as the kubelet's.
fn check_host_path(p: &Path, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(p);
    let is = |f: &dyn Fn(&std::fs::Metadata) -> bool| meta.as_ref().is_ok_and(f);
    let want = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "hostPath type check failed: {} is not a {what}",
                p.display()
            ))
        }
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                mkdir(p, 0o755)
            } else {
                want(is(&|m| m.is_dir()), "directory")
            }
        }
        "Directory" => want(is(&|m| m.is_dir()), "directory"),
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map(|_| ())
                    .map_err(|e| format!("creating {}: {e}", p.display()))
            } else {
                want(is(&|m| m.is_file()), "file")
            }
        }
        "File" => want(is(&|m| m.is_file()), "file"),
        "Socket" => want(is(&|m| m.file_type().is_socket()), "socket"),
        "CharDevice" => want(is(&|m| m.file_type().is_char_device()), "character device"),
        "BlockDevice" => want(is(&|m| m.file_type().is_block_device()), "block device"),
        other => Err(format!("unknown hostPath type {other:?}")),
    }
}

/// The CRI mounts of one container from its volumeMounts. A `subPath` (or a `subPathExpr`
/// expanded with the container's environment `env`) is resolved and bound safely under
/// `pod_dir` (see `subpath`).
pub fn mounts(
    pod: &Pod,
    container: &str,
    volumes: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
    env: &[(String, String)],
) -> Result<Vec<crate::cri::api::Mount>, String> {
    let spec = pod.raw_container(container);
    let mut out = Vec::new();
    for (i, m) in spec["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = m["name"].as_str().unwrap_or("");
        let Some(host) = volumes.get(name) else {
            return Err(format!(
                "container {container:?}: volumeMount of unknown volume {name:?}"
            ));
        };
        let non_empty = |k: &str| m[k].as_str().filter(|s| !s.is_empty());
        let sub = match (non_empty("subPath"), non_empty("subPathExpr")) {
            (Some(s), _) => Some(s.to_string()),
            (None, Some(e)) => Some(super::subpath::expand(e, env)?),
            (None, None) => None,
        };
        let host = match sub {
            Some(sub) => super::subpath::prepare(host, &sub, pod_dir, name, container, i)?,
            None => host.clone(),
        };
        out.push(crate::cri::api::Mount {
            container_path: m["mountPath"].as_str().unwrap_or("").to_string(),
            host_path: host.display().to_string(),
            readonly: m["readOnly"] == true,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
