//! The served API: the resource table, request-path parsing (like the apiserver's
//! RequestInfoFactory), strict decoding through k8s-openapi, and `Status` errors.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use k8s_openapi::api::authentication::v1 as authn;
use k8s_openapi::api::authorization::v1 as authz;
use k8s_openapi::api::certificates::v1 as certs;
use k8s_openapi::api::coordination::v1 as coord;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::rbac::v1 as rbac;

pub struct Res {
    pub group: &'static str,
    pub version: &'static str,
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Subresources served (`status`, `log`, `token`, `approval`, ...).
    pub subresources: &'static [&'static str],
    /// Strict decode of a request body; `Err` names the unknown field or the type error.
    pub decode: fn(&Value) -> Result<(), String>,
}

impl Res {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `pods` / `certificatesigningrequests.certificates.k8s.io`, as in apiserver messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.resource.to_string()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }
}

const CRUD: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

macro_rules! res {
    ($g:expr, $v:expr, $r:expr, $s:expr, $k:expr, $ns:expr, $short:expr, $verbs:expr, $sub:expr, $t:ty) => {
        Res {
            group: $g,
            version: $v,
            resource: $r,
            singular: $s,
            kind: $k,
            namespaced: $ns,
            short: $short,
            verbs: $verbs,
            subresources: $sub,
            decode: strict::<$t>,
        }
    };
}

pub static RESOURCES: &[Res] = &[
    res!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        &["ns"],
        &[
            "create", "delete", "get", "list", "patch", "update", "watch"
        ],
        &["status"],
        core::Namespace
    ),
    res!(
        "",
        "v1",
        "nodes",
        "node",
        "Node",
        false,
        &["no"],
        CRUD,
        &["status", "proxy"],
        core::Node
    ),
    res!(
        "",
        "v1",
        "pods",
        "pod",
        "Pod",
        true,
        &["po"],
        CRUD,
        &[
            "status",
            "log",
            "exec",
            "attach",
            "portforward",
            "binding",
            "eviction"
        ],
        core::Pod
    ),
    res!(
        "",
        "v1",
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        CRUD,
        &[],
        core::Secret
    ),
    res!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        CRUD,
        &[],
        core::ConfigMap
    ),
    res!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        &["svc"],
        CRUD,
        &[],
        core::Service
    ),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        CRUD,
        &["token"],
        core::ServiceAccount
    ),
    res!(
        "",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        CRUD,
        &[],
        core::Event
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        &[],
        CRUD,
        &[],
        coord::Lease
    ),
    res!(
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "certificatesigningrequest",
        "CertificateSigningRequest",
        false,
        &["csr"],
        CRUD,
        &["approval", "status"],
        certs::CertificateSigningRequest
    ),
    res!(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "tokenreview",
        "TokenReview",
        false,
        &[],
        &["create"],
        &[],
        authn::TokenReview
    ),
    res!(
        "authorization.k8s.io",
        "v1",
        "subjectaccessreviews",
        "subjectaccessreview",
        "SubjectAccessReview",
        false,
        &[],
        &["create"],
        &[],
        authz::SubjectAccessReview
    ),
    res!(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        false,
        &[],
        &["create"],
        &[],
        authz::SelfSubjectAccessReview
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        &[],
        CRUD,
        &[],
        rbac::ClusterRole
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        &[],
        CRUD,
        &[],
        rbac::ClusterRoleBinding
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        &[],
        CRUD,
        &[],
        rbac::Role
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        &[],
        CRUD,
        &[],
        rbac::RoleBinding
    ),
];

pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static Res> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.resource == resource)
}

pub fn by_resource(group: &str, resource: &str) -> Option<&'static Res> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
}

/// The groups served, in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut g: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !g.contains(&r.group) {
            g.push(r.group);
        }
    }
    g
}

/// Decodes `v` as `T` and rejects any field `T` does not know, naming its path, like the
/// apiserver with `fieldValidation=Strict`.
pub fn strict<T: DeserializeOwned + Serialize>(v: &Value) -> Result<(), String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    diff(v, &back, "", &mut unknown);
    match unknown.as_slice() {
        [] => Ok(()),
        [one] => Err(format!("strict decoding error: unknown field \"{one}\"")),
        many => Err(format!(
            "strict decoding error: {}",
            many.iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn diff(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => diff(v, bv, &p, out),
                    // A null is an omitted field; anything else the type dropped is unknown,
                    // empty or not.
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                diff(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// What a request addresses, parsed from its path.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub is_resource: bool,
    pub verb: String,
    pub group: String,
    pub version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub path: String,
}

/// Parses `/api/v1/namespaces/ns/pods/name/log` and friends. `method` and the `watch` query
/// decide the verb, as the apiserver's RequestInfoFactory does.
pub fn request_info(method: &str, path: &str, query: &[(String, String)]) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => {
            info.version = v.to_string();
            rest
        }
        ["apis", g, v, rest @ ..] if !rest.is_empty() => {
            info.group = g.to_string();
            info.version = v.to_string();
            rest
        }
        _ => {
            info.verb = match method {
                "POST" => "post",
                "PUT" => "put",
                "PATCH" => "patch",
                "DELETE" => "delete",
                "HEAD" => "head",
                _ => "get",
            }
            .to_string();
            return info;
        }
    };
    info.is_resource = true;
    // As the apiserver: /namespaces/NS/<resource>... addresses a namespaced resource, while
    // /namespaces/NS and /namespaces/NS/{status,finalize} address the namespace itself.
    let mut rest: Vec<&str> = rest.to_vec();
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        if rest.len() > 2 && !["status", "finalize"].contains(&rest[2]) {
            rest = rest[2..].to_vec();
        }
    }
    info.resource = rest[0].to_string();
    if let Some(n) = rest.get(1) {
        info.name = n.to_string();
    }
    if rest.len() > 2 {
        info.subresource = rest[2..].join("/");
    }
    let watch = query
        .iter()
        .any(|(k, v)| k == "watch" && (v == "true" || v == "1"));
    info.verb = match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if info.name.is_empty() => "deletecollection",
        "DELETE" => "delete",
        _ if watch => "watch",
        _ if info.name.is_empty() => "list",
        _ => "get",
    }
    .to_string();
    info
}

/// A `Status` failure: HTTP code, reason and message as the apiserver words them.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    /// The `details` of a Status about one object.
    fn about(r: &Res, name: &str) -> Value {
        json!({"name": name, "group": r.group, "kind": r.resource})
    }

    pub fn not_found(r: &Res, name: &str) -> ApiError {
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", r.qualified()),
        );
        e.details = Some(Self::about(r, name));
        e
    }
    pub fn already_exists(r: &Res, name: &str) -> ApiError {
        let mut e = ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", r.qualified()),
        );
        e.details = Some(Self::about(r, name));
        e
    }
    pub fn conflict(r: &Res, name: &str) -> ApiError {
        let mut e = ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                r.qualified()
            ),
        );
        e.details = Some(Self::about(r, name));
        e
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }
    pub fn invalid(r: &Res, name: &str, causes: &[(&str, String)]) -> ApiError {
        let msg = causes
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut e = ApiError::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {msg}", r.kind),
        );
        e.details = Some(json!({
            "name": name, "group": r.group, "kind": r.kind,
            "causes": causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f})).collect::<Vec<_>>()
        }));
        e
    }
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_names_unknown_fields() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "imagePullPolicyX": "Always"}], "nodeNam": "x"}});
        let e = strict::<core::Pod>(&pod).err().unwrap_or_default();
        assert_eq!(
            e,
            "strict decoding error: unknown field \"spec.containers[0].imagePullPolicyX\", unknown field \"spec.nodeNam\""
        );
        let ok = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {}}, "spec": {"containers": [{"name": "c"}]}, "status": {}});
        assert_eq!(strict::<core::Pod>(&ok), Ok(()));
        let empty_unknown = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dataa": {}});
        assert_eq!(
            strict::<core::ConfigMap>(&empty_unknown),
            Err("strict decoding error: unknown field \"dataa\"".into())
        );
        assert!(strict::<core::Pod>(&json!({"spec": {"containers": "x"}})).is_err());
    }

    #[test]
    fn parses_request_paths() {
        let q = |w: bool| {
            if w {
                vec![("watch".to_string(), "true".to_string())]
            } else {
                vec![]
            }
        };
        let i = request_info("GET", "/api/v1/namespaces/default/pods/p1/log", &q(false));
        assert_eq!(
            (
                i.verb.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("get", "default", "pods", "p1", "log")
        );
        let i = request_info(
            "GET",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            &q(true),
        );
        assert_eq!(
            (i.verb.as_str(), i.group.as_str(), i.resource.as_str()),
            ("watch", "certificates.k8s.io", "certificatesigningrequests")
        );
        let i = request_info("GET", "/api/v1/namespaces/kube-system", &q(false));
        assert_eq!(
            (
                i.verb.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.namespace.as_str()
            ),
            ("get", "namespaces", "kube-system", "kube-system")
        );
        let i = request_info(
            "PUT",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/c1/approval",
            &q(false),
        );
        assert_eq!(
            (i.verb.as_str(), i.name.as_str(), i.subresource.as_str()),
            ("update", "c1", "approval")
        );
        let i = request_info("GET", "/version", &q(false));
        assert!(!i.is_resource);
        let i = request_info(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts/x/token",
            &q(false),
        );
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.subresource.as_str()),
            ("create", "serviceaccounts", "token")
        );
    }
}
