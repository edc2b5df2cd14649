//! The Kubernetes objects tinylet reads and writes, as its own serde types: only the fields it
//! needs, unknown fields ignored on decode, names checked against k8s-openapi in tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `meta/v1 Status`, the body of every API failure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub code: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// `v1 Node`: what the agent registers and reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default)]
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<crate::config::kubelet::Taint>,
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "String::is_empty"
    )]
    pub provider_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    #[serde(default, rename = "podCIDR", skip_serializing_if = "String::is_empty")]
    pub pod_cidr: String,
}

/// Resource name -> quantity text, as `ResourceList`.
pub type ResourceList = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: ResourceList,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: ResourceList,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<NodeCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default)]
    pub daemon_endpoints: DaemonEndpoints,
    #[serde(default)]
    pub node_info: NodeSystemInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ContainerImage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonEndpoints {
    #[serde(default)]
    pub kubelet_endpoint: DaemonEndpoint,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonEndpoint {
    #[serde(rename = "Port", default)]
    pub port: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSystemInfo {
    #[serde(default, rename = "machineID")]
    pub machine_id: String,
    #[serde(default, rename = "systemUUID")]
    pub system_uuid: String,
    #[serde(default, rename = "bootID")]
    pub boot_id: String,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub os_image: String,
    #[serde(default)]
    pub container_runtime_version: String,
    #[serde(default)]
    pub kubelet_version: String,
    /// Deprecated upstream and left empty by kubelets since 1.31; required by the schema.
    #[serde(default)]
    pub kube_proxy_version: String,
    #[serde(default)]
    pub operating_system: String,
    #[serde(default)]
    pub architecture: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub size_bytes: i64,
}

/// `coordination.k8s.io/v1 Lease`: the node's heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: LeaseSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_duration_seconds: Option<i32>,
    /// MicroTime: RFC 3339 with microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<String>,
}

/// `v1 Event` (core/v1, as the kubelet's recorder writes them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub involved_object: ObjectReference,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub source: EventSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
    #[serde(default)]
    pub count: i32,
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub reporting_component: String,
    #[serde(default)]
    pub reporting_instance: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
}

/// `certificates.k8s.io/v1 CertificateSigningRequest` (build with [`CertificateSigningRequest::new`],
/// which fills apiVersion and kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSigningRequest {
    #[serde(default = "csr_api_version")]
    pub api_version: String,
    #[serde(default = "csr_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: CsrSpec,
    #[serde(default)]
    pub status: CsrStatus,
}

impl CertificateSigningRequest {
    pub fn new(name: &str, spec: CsrSpec) -> CertificateSigningRequest {
        CertificateSigningRequest {
            api_version: csr_api_version(),
            kind: csr_kind(),
            metadata: ObjectMeta {
                name: name.to_string(),
                ..ObjectMeta::default()
            },
            spec,
            status: CsrStatus::default(),
        }
    }
}

fn csr_api_version() -> String {
    "certificates.k8s.io/v1".into()
}

fn csr_kind() -> String {
    "CertificateSigningRequest".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrSpec {
    /// The PEM request, base64-encoded as the API's `[]byte` fields are.
    pub request: String,
    pub signer_name: String,
    pub usages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CsrCondition>,
    /// The issued PEM chain, base64-encoded; empty until the signer issues it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CsrCondition {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub object: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1 as upstream;

    /// Our JSON must read as the upstream type and the upstream JSON as ours, with nothing lost.
    fn round_trip<Ours, Theirs>(ours: &Ours)
    where
        Ours: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
        Theirs: Serialize + for<'de> Deserialize<'de>,
    {
        let json = serde_json::to_value(ours).unwrap_or_default();
        let theirs: Theirs = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("upstream cannot read ours: {e}\n{json}"));
        let back = serde_json::to_value(&theirs).unwrap_or_default();
        // Every field we write is a field upstream knows, with the same value (an unknown field
        // would be dropped). Upstream may add its own (apiVersion, kind, metadata).
        assert_subset(&strip_nulls(&json), &strip_nulls(&back), "");
        let again: Ours =
            serde_json::from_value(back).unwrap_or_else(|e| panic!("we cannot read upstream: {e}"));
        assert_eq!(&again, ours);
    }

    fn assert_subset(ours: &Value, theirs: &Value, path: &str) {
        match (ours, theirs) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in a {
                    let p = format!("{path}.{k}");
                    let other = b
                        .get(k)
                        .unwrap_or_else(|| panic!("field {p} of ours is unknown upstream"));
                    assert_subset(v, other, &p);
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                assert_eq!(a.len(), b.len(), "{path}");
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert_subset(x, y, &format!("{path}[{i}]"));
                }
            }
            (a, b) => assert_eq!(a, b, "{path}"),
        }
    }

    fn strip_nulls(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), strip_nulls(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn csr_matches_k8s_openapi() {
        let csr = CertificateSigningRequest {
            api_version: csr_api_version(),
            kind: csr_kind(),
            metadata: ObjectMeta {
                name: "node-csr-x".into(),
                labels: [("a".to_string(), "b".to_string())].into(),
                resource_version: "7".into(),
                ..ObjectMeta::default()
            },
            spec: CsrSpec {
                request: "UEVN".into(),
                signer_name: "kubernetes.io/kube-apiserver-client-kubelet".into(),
                usages: vec!["digital signature".into(), "client auth".into()],
                expiration_seconds: Some(3600),
                username: "system:bootstrap:abcdef".into(),
            },
            status: CsrStatus {
                conditions: vec![CsrCondition {
                    type_: "Approved".into(),
                    status: "True".into(),
                    reason: "AutoApproved".into(),
                    message: "ok".into(),
                }],
                certificate: "Q0VSVA==".into(),
            },
        };
        round_trip::<_, upstream::CertificateSigningRequest>(&csr);
    }

    #[test]
    fn node_lease_and_event_match_k8s_openapi() {
        let meta = ObjectMeta {
            name: "n1".into(),
            uid: "u-1".into(),
            labels: [("kubernetes.io/os".to_string(), "linux".to_string())].into(),
            owner_references: vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: "n1".into(),
                uid: "u-1".into(),
            }],
            ..ObjectMeta::default()
        };
        let node = Node {
            api_version: "v1".into(),
            kind: "Node".into(),
            metadata: meta.clone(),
            spec: NodeSpec {
                taints: vec![crate::config::kubelet::Taint {
                    key: "edge".into(),
                    value: "true".into(),
                    effect: crate::config::kubelet::TaintEffect::NoSchedule,
                    time_added: None,
                }],
                provider_id: "edge://n1".into(),
                unschedulable: true,
                pod_cidr: "10.0.0.0/24".into(),
            },
            status: NodeStatus {
                capacity: [("cpu".to_string(), "2".to_string())].into(),
                allocatable: [("memory".to_string(), "1Gi".to_string())].into(),
                conditions: vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    reason: "KubeletReady".into(),
                    message: "kubelet is posting ready status".into(),
                    last_heartbeat_time: Some("2026-11-29T01:02:03Z".into()),
                    last_transition_time: Some("2026-11-29T01:02:03Z".into()),
                }],
                addresses: vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "10.0.0.5".into(),
                }],
                daemon_endpoints: DaemonEndpoints {
                    kubelet_endpoint: DaemonEndpoint { port: 10250 },
                },
                node_info: NodeSystemInfo {
                    machine_id: "m".into(),
                    system_uuid: "s".into(),
                    boot_id: "b".into(),
                    kernel_version: "k".into(),
                    os_image: "o".into(),
                    container_runtime_version: "containerd://1.6.20".into(),
                    kubelet_version: "v1.32.0".into(),
                    kube_proxy_version: "".into(),
                    operating_system: "linux".into(),
                    architecture: "arm64".into(),
                },
                images: vec![ContainerImage {
                    names: vec!["busybox:1.36".into()],
                    size_bytes: 123,
                }],
            },
        };
        round_trip::<_, k8s_openapi::api::core::v1::Node>(&node);
        let lease = Lease {
            api_version: "coordination.k8s.io/v1".into(),
            kind: "Lease".into(),
            metadata: meta.clone(),
            spec: LeaseSpec {
                holder_identity: Some("n1".into()),
                lease_duration_seconds: Some(40),
                renew_time: Some("2026-11-29T01:02:03.123456Z".into()),
            },
        };
        round_trip::<_, k8s_openapi::api::coordination::v1::Lease>(&lease);
        let event = Event {
            api_version: "v1".into(),
            kind: "Event".into(),
            metadata: ObjectMeta {
                name: "n1.1872a".into(),
                namespace: "default".into(),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: "".into(),
                kind: "Node".into(),
                namespace: "".into(),
                name: "n1".into(),
                uid: "n1".into(),
                field_path: "spec.containers{app}".into(),
            },
            reason: "Starting".into(),
            message: "Starting kubelet.".into(),
            source: EventSource {
                component: "kubelet".into(),
                host: "n1".into(),
            },
            first_timestamp: Some("2026-11-29T01:02:03Z".into()),
            last_timestamp: Some("2026-11-29T01:02:03Z".into()),
            count: 1,
            type_: "Normal".into(),
            reporting_component: "kubelet".into(),
            reporting_instance: "n1".into(),
        };
        round_trip::<_, k8s_openapi::api::core::v1::Event>(&event);
    }

    #[test]
    fn status_matches_k8s_openapi() {
        let s = Status {
            status: "Failure".into(),
            message: "forbidden".into(),
            reason: "Forbidden".into(),
            code: 403,
        };
        round_trip::<_, k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(&s);
    }
}
