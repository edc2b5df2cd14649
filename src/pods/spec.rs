//! The pod fields the agent acts on, as types: decoded from the API's JSON (unknown fields are
//! the API's and ignored), checked once (names, images) so the rest of the code cannot meet a
//! pod it cannot run.

use serde::Deserialize;
use serde_json::Value;

use crate::kube::types::ObjectMeta;

/// A missing field and an explicit `null` both mean empty, as in Go's decoding.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
    /// What the API has now (kept to compute the next status and its patch).
    #[serde(default)]
    pub status: Value,
    /// The object as the API sent it (served on /pods).
    #[serde(skip)]
    pub raw: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    #[serde(default, deserialize_with = "nullable")]
    pub init_containers: Vec<Container>,
    /// Added to a running pod (`kubectl debug`): run once each, never restarted.
    #[serde(default, deserialize_with = "nullable")]
    pub ephemeral_containers: Vec<Container>,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub host_pid: bool,
    #[serde(default)]
    pub host_ipc: bool,
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    pub node_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(default)]
    pub dns_policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, deserialize_with = "nullable")]
    pub command: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default)]
    pub resources: Value,
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// On an init container, `Always` makes it a sidecar (restartable init container).
    #[serde(default)]
    pub restart_policy: Option<String>,
    /// On an ephemeral container, the container whose process namespace it joins.
    #[serde(default, deserialize_with = "nullable")]
    pub target_container_name: String,
}

impl Container {
    /// A restartable init container: started in order with the others, then kept running.
    pub fn is_sidecar(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    #[serde(default)]
    pub post_start: Option<LifecycleHandler>,
    #[serde(default)]
    pub pre_stop: Option<LifecycleHandler>,
}

/// A postStart/preStop hook: exec, httpGet, tcpSocket or sleep.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LifecycleHandler {
    #[serde(flatten)]
    pub handler: Handler,
    #[serde(default)]
    pub sleep: Option<SleepAction>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SleepAction {
    pub seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    pub container_port: u16,
}

/// What a probe or a hook does: exec, httpGet, tcpSocket or (probes) grpc (the first one set).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    #[serde(default)]
    pub exec: Option<ExecAction>,
    #[serde(default)]
    pub http_get: Option<HttpGetAction>,
    #[serde(default)]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(default)]
    pub grpc: Option<GrpcAction>,
}

/// A gRPC health check (grpc.health.v1) on the pod's IP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct GrpcAction {
    pub port: u16,
    #[serde(default, deserialize_with = "nullable")]
    pub service: String,
}

/// A probe: one handler and its timing, with the API's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(flatten)]
    pub handler: Handler,
    #[serde(default)]
    pub initial_delay_seconds: u32,
    #[serde(default = "ten")]
    pub period_seconds: u32,
    #[serde(default = "one")]
    pub timeout_seconds: u32,
    #[serde(default = "one")]
    pub success_threshold: u32,
    #[serde(default = "three")]
    pub failure_threshold: u32,
    /// The grace period of a kill this probe causes (liveness, startup), over the pod's.
    #[serde(default)]
    pub termination_grace_period_seconds: Option<i64>,
}

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn ten() -> u32 {
    10
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExecAction {
    #[serde(default, deserialize_with = "nullable")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HttpGetAction {
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
    /// `HTTP` (the default) or `HTTPS`.
    #[serde(default, deserialize_with = "nullable")]
    pub scheme: String,
    pub port: Value,
    #[serde(default, deserialize_with = "nullable")]
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TcpSocketAction {
    pub port: Value,
    #[serde(default, deserialize_with = "nullable")]
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_from: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl Container {
    /// The policy in force: as written, else Always for `:latest` or no tag, else IfNotPresent
    /// (the API server's defaulting).
    pub fn pull_policy(&self) -> PullPolicy {
        if let Some(p) = self.image_pull_policy {
            return p;
        }
        let last = self.image.rsplit('/').next().unwrap_or("");
        let tagged = last.contains(':') || self.image.contains('@');
        if !tagged || self.image.ends_with(":latest") {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }
}

impl Pod {
    /// Decodes one pod from the API, naming it in the error.
    pub fn from_value(v: Value) -> Result<Pod, String> {
        let name = format!(
            "{}/{}",
            v["metadata"]["namespace"].as_str().unwrap_or(""),
            v["metadata"]["name"].as_str().unwrap_or("")
        );
        let mut pod: Pod =
            serde_json::from_value(v.clone()).map_err(|e| format!("pod {name}: {e}"))?;
        pod.raw = v;
        if pod.metadata.uid.is_empty() {
            return Err(format!("pod {name}: no metadata.uid"));
        }
        if pod.spec.containers.is_empty() {
            return Err(format!("pod {name}: spec.containers is empty"));
        }
        for c in pod.containers() {
            if c.image.is_empty() {
                return Err(format!("pod {name}: container {:?} has no image", c.name));
            }
        }
        Ok(pod)
    }

    /// A container's raw spec (app, init or ephemeral) by name.
    pub fn raw_container(&self, name: &str) -> Value {
        ["containers", "initContainers", "ephemeralContainers"]
            .iter()
            .filter_map(|k| self.raw["spec"][k].as_array())
            .flatten()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_default()
    }

    /// Every container's raw spec (app and init).
    pub fn raw_containers(&self) -> impl Iterator<Item = &Value> {
        ["containers", "initContainers"]
            .into_iter()
            .filter_map(|k| self.raw["spec"][k].as_array())
            .flatten()
    }

    /// A container's spec (app, init or ephemeral) by name.
    pub fn container(&self, name: &str) -> Option<&Container> {
        self.containers().find(|c| c.name == name)
    }

    /// Every container's spec: app, init, ephemeral.
    pub fn containers(&self) -> impl Iterator<Item = &Container> {
        self.spec
            .containers
            .iter()
            .chain(&self.spec.init_containers)
            .chain(&self.spec.ephemeral_containers)
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    pub fn deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }

    /// The grace period for stopping: the deletion's, else the spec's, else 30 s.
    pub fn grace_seconds(&self) -> i64 {
        self.metadata
            .deletion_grace_period_seconds
            .or(self.spec.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0)
    }

    /// The QoS class as the kubelet takes it: the API server's `status.qosClass`, else computed
    /// as the API does ([`super::pod_resources::qos`]).
    pub fn qos_class(&self) -> &'static str {
        super::pod_resources::qos(&self.raw).as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Result<Pod, String> {
        Pod::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}),
        )
    }

    #[test]
    fn decoding_checks_what_running_needs() {
        let p = pod(json!({"containers": [{"name": "c", "image": "busybox:1.36", "extra": 1}], "nodeName": "n1"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.spec.restart_policy, RestartPolicy::Always);
        assert_eq!(p.grace_seconds(), 30);
        assert_eq!(p.key(), "ns/p");
        let e = pod(json!({"containers": []})).map_or_else(|e| e, |_| String::new());
        assert_eq!(e, "pod ns/p: spec.containers is empty");
        let p = pod(
            json!({"containers": [{"name": "c", "image": "x", "args": null, "env": null}], "initContainers": null}),
        );
        assert!(p.is_ok(), "null lists are empty lists: {p:?}");
        let e = pod(json!({"containers": [{"name": "c"}]})).map_or_else(|e| e, |_| String::new());
        assert_eq!(e, "pod ns/p: container \"c\" has no image");
        let e =
            pod(json!({"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Sometimes"}))
                .map_or_else(|e| e, |_| String::new());
        assert!(
            e.starts_with("pod ns/p: unknown variant `Sometimes`"),
            "{e}"
        );
    }

    #[test]
    fn pull_policy_defaults_and_qos() {
        let c = |image: &str| Container {
            name: "c".into(),
            image: image.into(),
            command: vec![],
            args: vec![],
            working_dir: String::new(),
            env: vec![],
            image_pull_policy: None,
            resources: Value::Null,
            ports: vec![],
            readiness_probe: None,
            liveness_probe: None,
            startup_probe: None,
            lifecycle: None,
            restart_policy: None,
            target_container_name: String::new(),
        };
        assert_eq!(c("busybox").pull_policy(), PullPolicy::Always);
        assert_eq!(c("busybox:latest").pull_policy(), PullPolicy::Always);
        assert_eq!(c("busybox:1.36").pull_policy(), PullPolicy::IfNotPresent);
        assert_eq!(
            c("localhost:5000/busybox").pull_policy(),
            PullPolicy::Always
        );
        assert_eq!(
            c("busybox@sha256:00").pull_policy(),
            PullPolicy::IfNotPresent
        );
        let q = |res: Value| {
            pod(json!({"containers": [{"name": "c", "image": "x", "resources": res}]}))
                .map(|p| p.qos_class())
                .unwrap_or("")
        };
        assert_eq!(q(json!({})), "BestEffort");
        assert_eq!(q(json!({"requests": {"cpu": "1"}})), "Burstable");
        assert_eq!(
            q(
                json!({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            ),
            "Guaranteed"
        );
        assert_eq!(
            q(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
            "Guaranteed"
        );
    }
}
