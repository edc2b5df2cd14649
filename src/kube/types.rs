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
