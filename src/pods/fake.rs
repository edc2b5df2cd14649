//! In-crate fakes of the two seams, for unit tests of the owner and its workers without root:
//! a runtime that keeps sandboxes and containers in memory (each stop takes the time it is
//! told, so overlapping stops can be seen) and an API server that keeps objects by path and
//! records what was written.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::seams::{Api, ApiError, Cri};
use crate::cri::api::*;
use crate::cri::{CriError, grpc::Code};
use crate::kube::PatchKind;

/// The image the fake's sandboxes report in their verbose status.
pub const FAKE_PAUSE: &str = "registry.k8s.io/pause:3.10";
/// The size of every image of the fake.
pub const FAKE_IMAGE_SIZE: u64 = 100 << 20;

#[derive(Default)]
struct Runtime {
    next: u64,
    sandboxes: BTreeMap<String, (PodSandboxConfig, i32, i64)>,
    containers: BTreeMap<String, (String, ContainerConfig, ContainerStatus)>,
    images: Vec<String>,
}

/// A runtime in memory.
#[derive(Default)]
pub struct FakeCri {
    rt: Mutex<Runtime>,
    /// How long each StopContainer takes.
    pub stop_takes: Mutex<Duration>,
    stops_now: AtomicUsize,
    /// The most StopContainer calls seen at once.
    pub stops_at_once: AtomicUsize,
    /// Every call's method name, in order.
    pub calls: Mutex<Vec<String>>,
    /// Every StopContainer's timeout (seconds), in order.
    pub stop_timeouts: Mutex<Vec<i64>>,
}

fn not_found(method: &'static str, what: &str) -> CriError {
    CriError::Status {
        method,
        code: Code::NotFound,
        message: format!("{what} not found"),
    }
}

impl FakeCri {
    pub fn with_images(images: &[&str]) -> FakeCri {
        let f = FakeCri::default();
        f.lock().images = images.iter().map(|s| s.to_string()).collect();
        f
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.rt.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn call(&self, m: &str) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(m.to_string());
    }

    pub fn count(&self, m: &str) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| *c == m)
            .count()
    }

    /// Containers by name and state (1 running, 2 exited).
    pub fn containers(&self) -> Vec<(String, i32)> {
        self.lock()
            .containers
            .values()
            .map(|(_, c, s)| {
                (
                    c.metadata
                        .as_ref()
                        .map(|m| m.name.clone())
                        .unwrap_or_default(),
                    s.state,
                )
            })
            .collect()
    }

    pub fn sandboxes(&self) -> usize {
        self.lock().sandboxes.len()
    }

    /// Makes a running container exit with `code` (its process ended).
    pub fn exit(&self, name: &str, code: i32) {
        let mut rt = self.lock();
        for (_, c, s) in rt.containers.values_mut() {
            if c.metadata.as_ref().is_some_and(|m| m.name == name) && s.state == 1 {
                s.state = 2;
                s.exit_code = code;
                s.finished_at = s.started_at + 1_000_000_000;
            }
        }
    }
}

impl Cri for FakeCri {
    fn list_pod_sandbox(
        &self,
        r: &ListPodSandboxRequest,
    ) -> Result<ListPodSandboxResponse, CriError> {
        self.call("ListPodSandbox");
        let want = r
            .filter
            .as_ref()
            .map(|f| f.label_selector.clone())
            .unwrap_or_default();
        let items = self
            .lock()
            .sandboxes
            .iter()
            .filter(|(_, (c, _, _))| want.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .map(|(id, (c, state, at))| PodSandbox {
                id: id.clone(),
                metadata: c.metadata.clone(),
                state: *state,
                created_at: *at,
                labels: c.labels.clone(),
                ..Default::default()
            })
            .collect();
        Ok(ListPodSandboxResponse { items })
    }

    fn list_containers(
        &self,
        r: &ListContainersRequest,
    ) -> Result<ListContainersResponse, CriError> {
        self.call("ListContainers");
        let want = r
            .filter
            .as_ref()
            .map(|f| f.label_selector.clone())
            .unwrap_or_default();
        let state = r.filter.as_ref().and_then(|f| f.state.clone());
        let containers = self
            .lock()
            .containers
            .iter()
            .filter(|(_, (_, c, _))| want.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
            .filter(|(_, (_, _, s))| state.as_ref().is_none_or(|w| w.state == s.state))
            .map(|(id, (sb, c, s))| Container {
                id: id.clone(),
                pod_sandbox_id: sb.clone(),
                metadata: c.metadata.clone(),
                image: c.image.clone(),
                image_ref: c
                    .image
                    .as_ref()
                    .map(|i| format!("sha256:{}", i.image))
                    .unwrap_or_default(),
                state: s.state,
                labels: c.labels.clone(),
                ..Default::default()
            })
            .collect();
        Ok(ListContainersResponse { containers })
    }

    fn pod_sandbox_status(
        &self,
        r: &PodSandboxStatusRequest,
    ) -> Result<PodSandboxStatusResponse, CriError> {
        self.call("PodSandboxStatus");
        let rt = self.lock();
        let Some((_, state, _)) = rt.sandboxes.get(&r.pod_sandbox_id) else {
            return Err(not_found("PodSandboxStatus", &r.pod_sandbox_id));
        };
        Ok(PodSandboxStatusResponse {
            status: Some(PodSandboxStatus {
                id: r.pod_sandbox_id.clone(),
                state: *state,
                network: Some(PodSandboxNetworkStatus {
                    ip: "10.9.0.2".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            // containerd's verbose info, in part.
            info: match r.verbose {
                true => [(
                    "info".to_string(),
                    format!(r#"{{"pid":1,"image":"{FAKE_PAUSE}"}}"#),
                )]
                .into(),
                false => Default::default(),
            },
            ..Default::default()
        })
    }

    fn container_status(
        &self,
        r: &ContainerStatusRequest,
    ) -> Result<ContainerStatusResponse, CriError> {
        self.call("ContainerStatus");
        let rt = self.lock();
        let Some((_, _, s)) = rt.containers.get(&r.container_id) else {
            return Err(not_found("ContainerStatus", &r.container_id));
        };
        Ok(ContainerStatusResponse {
            status: Some(s.clone()),
            ..Default::default()
        })
    }

    fn run_pod_sandbox(&self, r: &RunPodSandboxRequest) -> Result<RunPodSandboxResponse, CriError> {
        self.call("RunPodSandbox");
        let mut rt = self.lock();
        rt.next += 1;
        let id = format!("sb{}", rt.next);
        let at = rt.next as i64;
        rt.sandboxes
            .insert(id.clone(), (r.config.clone().unwrap_or_default(), 0, at));
        Ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    fn stop_pod_sandbox(
        &self,
        r: &StopPodSandboxRequest,
    ) -> Result<StopPodSandboxResponse, CriError> {
        self.call("StopPodSandbox");
        if let Some(s) = self.lock().sandboxes.get_mut(&r.pod_sandbox_id) {
            s.1 = 1;
        }
        Ok(StopPodSandboxResponse {})
    }

    fn remove_pod_sandbox(
        &self,
        r: &RemovePodSandboxRequest,
    ) -> Result<RemovePodSandboxResponse, CriError> {
        self.call("RemovePodSandbox");
        let mut rt = self.lock();
        rt.sandboxes.remove(&r.pod_sandbox_id);
        rt.containers
            .retain(|_, (sb, _, _)| *sb != r.pod_sandbox_id);
        Ok(RemovePodSandboxResponse {})
    }

    fn create_container(
        &self,
        r: &CreateContainerRequest,
    ) -> Result<CreateContainerResponse, CriError> {
        self.call("CreateContainer");
        let mut rt = self.lock();
        rt.next += 1;
        let id = format!("c{}", rt.next);
        let config = r.config.clone().unwrap_or_default();
        // As containerd: the sandbox's log directory joined with the container's log path.
        let log_path = rt
            .sandboxes
            .get(&r.pod_sandbox_id)
            .filter(|_| !config.log_path.is_empty())
            .map(|(sb, _, _)| format!("{}/{}", sb.log_directory, config.log_path))
            .unwrap_or_default();
        let status = ContainerStatus {
            log_path,
            id: id.clone(),
            metadata: config.metadata.clone(),
            state: 0,
            created_at: rt.next as i64,
            annotations: config.annotations.clone(),
            labels: config.labels.clone(),
            image_ref: "sha256:fake".into(),
            ..Default::default()
        };
        rt.containers
            .insert(id.clone(), (r.pod_sandbox_id.clone(), config, status));
        Ok(CreateContainerResponse { container_id: id })
    }

    fn start_container(
        &self,
        r: &StartContainerRequest,
    ) -> Result<StartContainerResponse, CriError> {
        self.call("StartContainer");
        let mut rt = self.lock();
        let Some((_, _, s)) = rt.containers.get_mut(&r.container_id) else {
            return Err(not_found("StartContainer", &r.container_id));
        };
        s.state = 1;
        s.started_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        Ok(StartContainerResponse {})
    }

    fn stop_container(&self, r: &StopContainerRequest) -> Result<StopContainerResponse, CriError> {
        self.call("StopContainer");
        self.stop_timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(r.timeout);
        let now = self.stops_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.stops_at_once.fetch_max(now, Ordering::SeqCst);
        let takes = *self.stop_takes.lock().unwrap_or_else(|p| p.into_inner());
        std::thread::sleep(takes);
        self.stops_now.fetch_sub(1, Ordering::SeqCst);
        if let Some((_, _, s)) = self.lock().containers.get_mut(&r.container_id)
            && s.state == 1
        {
            s.state = 2;
            s.exit_code = 137;
            s.finished_at = s.started_at + 1;
        }
        Ok(StopContainerResponse {})
    }

    fn remove_container(
        &self,
        r: &RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse, CriError> {
        self.call("RemoveContainer");
        self.lock().containers.remove(&r.container_id);
        Ok(RemoveContainerResponse {})
    }

    fn image_status(&self, r: &ImageStatusRequest) -> Result<ImageStatusResponse, CriError> {
        self.call("ImageStatus");
        let want = r
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        let image = self.lock().images.contains(&want).then(|| Image {
            id: format!("sha256:{want}"),
            ..Default::default()
        });
        Ok(ImageStatusResponse {
            image,
            ..Default::default()
        })
    }

    fn pull_image(&self, r: &PullImageRequest) -> Result<PullImageResponse, CriError> {
        self.call("PullImage");
        let want = r
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        if want.contains("missing") {
            return Err(not_found("PullImage", &want));
        }
        self.lock().images.push(want.clone());
        Ok(PullImageResponse { image_ref: want })
    }

    fn exec_sync(&self, _: &ExecSyncRequest) -> Result<ExecSyncResponse, CriError> {
        self.call("ExecSync");
        Ok(ExecSyncResponse::default())
    }

    /// Every image, as `sha256:<name>` tagged `<name>`, of `FAKE_IMAGE_SIZE` bytes; the pause
    /// image not pinned (as containerd 1.6).
    fn list_images(&self, _: &ListImagesRequest) -> Result<ListImagesResponse, CriError> {
        self.call("ListImages");
        let images = self
            .lock()
            .images
            .iter()
            .map(|n| Image {
                id: format!("sha256:{n}"),
                repo_tags: vec![n.clone()],
                size: FAKE_IMAGE_SIZE,
                ..Default::default()
            })
            .collect();
        Ok(ListImagesResponse { images })
    }

    fn remove_image(&self, r: &RemoveImageRequest) -> Result<RemoveImageResponse, CriError> {
        self.call("RemoveImage");
        let want = r.image.as_ref().map_or("", |i| i.image.as_str());
        let name = want.strip_prefix("sha256:").unwrap_or(want).to_string();
        let mut rt = self.lock();
        let before = rt.images.len();
        rt.images.retain(|n| *n != name);
        if rt.images.len() == before {
            return Err(not_found("RemoveImage", want));
        }
        Ok(RemoveImageResponse {})
    }

    fn image_fs_info(&self, _: &ImageFsInfoRequest) -> Result<ImageFsInfoResponse, CriError> {
        self.call("ImageFsInfo");
        Ok(ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: "/fake/imagefs".into(),
                }),
                ..Default::default()
            }],
            container_filesystems: Vec::new(),
        })
    }

    /// As containerd: the log file is opened again at its path (made when it is not there).
    fn reopen_container_log(
        &self,
        r: &ReopenContainerLogRequest,
    ) -> Result<ReopenContainerLogResponse, CriError> {
        self.call("ReopenContainerLog");
        let rt = self.lock();
        let Some((_, _, s)) = rt.containers.get(&r.container_id) else {
            return Err(not_found("ReopenContainerLog", &r.container_id));
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&s.log_path)
            .map_err(|e| CriError::Status {
                method: "ReopenContainerLog",
                code: Code::Internal,
                message: format!("{}: {e}", s.log_path),
            })?;
        Ok(ReopenContainerLogResponse {})
    }
}

/// The pod status lists with a `patchMergeKey` upstream (`k8s.io/api/core/v1`); every other
/// list is atomic and a patch replaces it. Written out here, not taken from `kube::patch`, so
/// the fake holds the API server's model and not the agent's.
fn upstream_merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" => Some("type"),
        "podIPs" | "hostIPs" => Some("ip"),
        "resourceClaimStatuses" => Some("name"),
        _ => None,
    }
}

/// A strategic merge of `patch` into `target`, enough for status patches: maps merged, null
/// deletes, keyed lists merged by their upstream key (and put in `$setElementOrder/<list>`'s
/// order when given), atomic lists replaced.
fn merge(target: &mut Value, patch: &Value) {
    let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return;
    };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        let order = p
            .get(&format!("$setElementOrder/{k}"))
            .and_then(Value::as_array)
            .cloned();
        match (v, upstream_merge_key(k)) {
            (Value::Null, _) => {
                t.remove(k);
            }
            (Value::Array(items), Some(key)) => {
                let old = t
                    .get(k)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let order = order.unwrap_or_else(|| {
                    let mut o: Vec<Value> = old.iter().map(|e| json!({key: e[key]})).collect();
                    o.extend(
                        items
                            .iter()
                            .filter(|i| !old.iter().any(|e| e[key] == i[key]))
                            .map(|i| json!({key: i[key]})),
                    );
                    o
                });
                let merged: Vec<Value> = order
                    .iter()
                    .filter(|o| {
                        !items
                            .iter()
                            .any(|x| x[key] == o[key] && x["$patch"].as_str() == Some("delete"))
                    })
                    .map(|o| {
                        let mut e = old
                            .iter()
                            .find(|x| x[key] == o[key])
                            .cloned()
                            .unwrap_or_else(|| o.clone());
                        if let Some(upd) = items.iter().find(|x| x[key] == o[key]) {
                            merge(&mut e, upd);
                        }
                        e
                    })
                    .collect();
                t.insert(k.clone(), Value::Array(merged));
            }
            (Value::Object(_), _) => merge(t.entry(k.clone()).or_insert_with(|| json!({})), v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// What the API server's typed round trip adds: every container status has `lastState` (a
/// struct field without `omitempty`, written `{}` when empty).
fn as_go_writes_it(obj: &mut Value) {
    for list in ["containerStatuses", "initContainerStatuses"] {
        if let Some(l) = obj["status"][list].as_array_mut() {
            for c in l {
                if c.get("lastState").is_none() {
                    c["lastState"] = json!({});
                }
            }
        }
    }
}

/// An API server in memory: objects by path; every write recorded as (verb, path, body).
#[derive(Default)]
pub struct FakeApi {
    pub objects: Mutex<BTreeMap<String, Value>>,
    pub writes: Mutex<Vec<(String, String, Value)>>,
}

impl FakeApi {
    pub fn put(&self, path: &str, v: Value) {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string(), v);
    }

    fn write(&self, verb: &str, path: &str, body: &Value) {
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).push((
            verb.into(),
            path.into(),
            body.clone(),
        ));
    }

    /// The writes so far with `verb`.
    pub fn writes(&self, verb: &str) -> Vec<(String, Value)> {
        self.writes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(v, _, _)| v == verb)
            .map(|(_, p, b)| (p.clone(), b.clone()))
            .collect()
    }
}

impl Api for FakeApi {
    fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
            .ok_or(ApiError {
                code: Some(404),
                message: format!("{path} not found"),
            })
    }

    fn create(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        self.write("create", path, body);
        let mut v = body.clone();
        if path.ends_with("/token") {
            v["status"] =
                json!({"token": "fake-token", "expirationTimestamp": "2099-01-01T00:00:00Z"});
        }
        Ok(v)
    }

    fn patch(&self, path: &str, _: PatchKind, body: &Value) -> Result<Value, ApiError> {
        self.write("patch", path, body);
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let obj = objects.entry(path.to_string()).or_insert_with(|| json!({}));
        merge(obj, body);
        as_go_writes_it(obj);
        obj["metadata"]["resourceVersion"] = json!("1");
        Ok(obj.clone())
    }

    fn delete(&self, path: &str, options: &Value) -> Result<Value, ApiError> {
        self.write("delete", path, options);
        Ok(json!({}))
    }
}
