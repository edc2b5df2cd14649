//! Authentication (x509 client certs, bootstrap tokens, ServiceAccount tokens) and authorization
//! (RBAC over the stored roles and bindings, the built-in bootstrap roles, the Node authorizer).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::api::{self, RequestInfo};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
}

impl User {
    pub fn new(name: &str, groups: &[&str]) -> User {
        User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            uid: String::new(),
        }
    }
    pub fn anonymous() -> User {
        User::new("system:anonymous", &["system:unauthenticated"])
    }
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }
}

/// ServiceAccount tokens issued through TokenRequest: token -> (user, expiry unix seconds).
#[derive(Default)]
pub struct Tokens {
    pub issued: HashMap<String, (User, i64)>,
}

pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Resolves a bearer token; `None` means 401.
pub fn authenticate_token(store: &Store, tokens: &Tokens, token: &str) -> Option<User> {
    if let Some((id, secret)) = token.split_once('.') {
        let bootstrap = id.len() == 6
            && secret.len() == 16
            && token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.');
        if bootstrap {
            return bootstrap_user(store, id, secret);
        }
    }
    let (user, exp) = tokens.issued.get(token)?;
    (*exp > unix_now()).then(|| user.clone())
}

fn secret_field(s: &Value, k: &str) -> Option<String> {
    use base64::Engine;
    let b = s["data"][k].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b).ok()?;
    String::from_utf8(raw).ok()
}

fn bootstrap_user(store: &Store, id: &str, secret: &str) -> Option<User> {
    let r = api::find("", "v1", "secrets")?;
    let s = store.get(r, "kube-system", &format!("bootstrap-token-{id}"))?;
    if s["type"].as_str() != Some("bootstrap.kubernetes.io/token") {
        return None;
    }
    if secret_field(s, "token-id").as_deref() != Some(id)
        || secret_field(s, "token-secret").as_deref() != Some(secret)
    {
        return None;
    }
    if secret_field(s, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return None;
    }
    if let Some(exp) = secret_field(s, "expiration") {
        let t = chrono::DateTime::parse_from_rfc3339(&exp).ok()?;
        if t.timestamp() <= unix_now() {
            return None;
        }
    }
    if s["metadata"]["deletionTimestamp"].is_string() {
        return None;
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    if let Some(extra) = secret_field(s, "auth-extra-groups") {
        groups.extend(
            extra
                .split(',')
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty()),
        );
    }
    groups.push("system:authenticated".into());
    Some(User {
        name: format!("system:bootstrap:{id}"),
        groups,
        uid: String::new(),
    })
}

/// The attributes an authorization decision is about.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub path: String,
    pub is_resource: bool,
}

impl Attrs {
    pub fn from_info(i: &RequestInfo) -> Attrs {
        Attrs {
            verb: i.verb.clone(),
            group: i.group.clone(),
            resource: i.resource.clone(),
            subresource: i.subresource.clone(),
            namespace: i.namespace.clone(),
            name: i.name.clone(),
            path: i.path.clone(),
            is_resource: i.is_resource,
        }
    }
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, a: &Attrs) -> bool {
    let verbs = str_list(&rule["verbs"]);
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    if !a.is_resource {
        return str_list(&rule["nonResourceURLs"]).iter().any(|u| {
            *u == "*" || *u == a.path || (u.ends_with('*') && a.path.starts_with(&u[..u.len() - 1]))
        });
    }
    let groups = str_list(&rule["apiGroups"]);
    if !groups.iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let resources = str_list(&rule["resources"]);
    let res_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == combined
            || (a.subresource.is_empty() && *r == a.resource)
            || (r.starts_with("*/") && r[2..] == a.subresource)
    });
    if !res_ok {
        return false;
    }
    let names = str_list(&rule["resourceNames"]);
    names.is_empty() || names.contains(&a.name.as_str())
}

fn subject_matches(subject: &Value, u: &User, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or("");
    match subject["kind"].as_str() {
        Some("User") => name == u.name,
        Some("Group") => u.in_group(name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            u.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

/// RBAC: whether any binding that names the user grants the attributes. `system:masters` is
/// the superuser group, as in the apiserver.
pub fn rbac_allows(store: &Store, u: &User, a: &Attrs) -> bool {
    if u.in_group("system:masters") {
        return true;
    }
    let Some(crb) = api::by_resource("rbac.authorization.k8s.io", "clusterrolebindings") else {
        return false;
    };
    let Some(cr) = api::by_resource("rbac.authorization.k8s.io", "clusterroles") else {
        return false;
    };
    let Some(rb) = api::by_resource("rbac.authorization.k8s.io", "rolebindings") else {
        return false;
    };
    let Some(role) = api::by_resource("rbac.authorization.k8s.io", "roles") else {
        return false;
    };
    let rules_allow = |r: &Value| {
        r["rules"]
            .as_array()
            .is_some_and(|rules| rules.iter().any(|x| rule_allows(x, a)))
    };
    for b in store.list(crb, "") {
        if !b["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, u, "")))
        {
            continue;
        }
        if b["roleRef"]["kind"].as_str() == Some("ClusterRole")
            && let Some(r) = store.get(cr, "", b["roleRef"]["name"].as_str().unwrap_or(""))
            && rules_allow(r)
        {
            return true;
        }
    }
    if a.namespace.is_empty() {
        return false;
    }
    for b in store.list(rb, &a.namespace) {
        if !b["subjects"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, u, &a.namespace)))
        {
            continue;
        }
        let name = b["roleRef"]["name"].as_str().unwrap_or("");
        let r = match b["roleRef"]["kind"].as_str() {
            Some("ClusterRole") => store.get(cr, "", name),
            Some("Role") => store.get(role, &a.namespace, name),
            _ => None,
        };
        if r.is_some_and(rules_allow) {
            return true;
        }
    }
    false
}

/// The Node authorizer's view: what a `system:node:<name>` user may do beyond RBAC.
pub fn node_allows(store: &Store, u: &User, a: &Attrs) -> bool {
    let Some(node) = u.name.strip_prefix("system:node:") else {
        return false;
    };
    if !u.in_group("system:nodes") || !a.is_resource {
        return false;
    }
    let read = matches!(a.verb.as_str(), "get" | "list" | "watch");
    let own = a.name == node;
    match (
        a.group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "nodes", "") => {
            read || a.verb == "create"
                || (own && matches!(a.verb.as_str(), "update" | "patch" | "delete"))
        }
        ("", "nodes", "status") => own && matches!(a.verb.as_str(), "update" | "patch" | "get"),
        ("coordination.k8s.io", "leases", "") => {
            a.namespace == "kube-node-lease"
                && (a.verb == "create"
                    || (own && matches!(a.verb.as_str(), "get" | "update" | "patch" | "delete")))
        }
        ("", "pods", "") => {
            read || a.verb == "create"
                || (a.verb == "delete" && pod_on_node(store, &a.namespace, &a.name, node))
        }
        ("", "pods", "status") => {
            pod_on_node(store, &a.namespace, &a.name, node)
                && matches!(a.verb.as_str(), "update" | "patch")
        }
        ("", "pods", "eviction") => a.verb == "create",
        // Every service, for containers' service environment.
        ("", "services", "") => read,
        ("", "events", "") | ("events.k8s.io", "events", "") => {
            matches!(a.verb.as_str(), "create" | "update" | "patch")
        }
        ("", "secrets" | "configmaps" | "persistentvolumeclaims", "") => {
            a.verb == "get"
                && referenced_by_node_pod(store, node, &a.namespace, &a.resource, &a.name)
        }
        ("", "serviceaccounts", "token") => {
            a.verb == "create"
                && referenced_by_node_pod(store, node, &a.namespace, "serviceaccounts", &a.name)
        }
        ("", "serviceaccounts", "") => {
            a.verb == "get"
                && referenced_by_node_pod(store, node, &a.namespace, "serviceaccounts", &a.name)
        }
        ("certificates.k8s.io", "certificatesigningrequests", "") => {
            matches!(a.verb.as_str(), "create" | "get" | "list" | "watch")
        }
        ("authentication.k8s.io", "tokenreviews", "")
        | ("authorization.k8s.io", "subjectaccessreviews", "") => a.verb == "create",
        _ => false,
    }
}

fn pod_on_node(store: &Store, ns: &str, name: &str, node: &str) -> bool {
    api::find("", "v1", "pods")
        .and_then(|r| store.get(r, ns, name))
        .is_some_and(|p| p["spec"]["nodeName"].as_str() == Some(node))
}

/// Whether a pod bound to `node` uses the named secret/configmap/serviceaccount/pvc.
fn referenced_by_node_pod(store: &Store, node: &str, ns: &str, resource: &str, name: &str) -> bool {
    let Some(pods) = api::find("", "v1", "pods") else {
        return false;
    };
    store
        .list(pods, ns)
        .into_iter()
        .filter(|p| p["spec"]["nodeName"].as_str() == Some(node))
        .any(|p| {
            let mut refs: Vec<String> = Vec::new();
            pod_refs(&p["spec"], resource, &mut refs);
            refs.iter().any(|r| r == name)
        })
}

pub fn pod_refs(spec: &Value, resource: &str, out: &mut Vec<String>) {
    let push = |out: &mut Vec<String>, v: &Value| {
        if let Some(s) = v.as_str() {
            out.push(s.to_string());
        }
    };
    match resource {
        "serviceaccounts" => push(out, &spec["serviceAccountName"]),
        "persistentvolumeclaims" => {
            for v in spec["volumes"].as_array().into_iter().flatten() {
                push(out, &v["persistentVolumeClaim"]["claimName"]);
            }
        }
        "secrets" | "configmaps" => {
            let (vol, env_ref, env_from, proj) = if resource == "secrets" {
                ("secret", "secretKeyRef", "secretRef", "secret")
            } else {
                ("configMap", "configMapKeyRef", "configMapRef", "configMap")
            };
            for v in spec["volumes"].as_array().into_iter().flatten() {
                push(
                    out,
                    &v[vol][if resource == "secrets" {
                        "secretName"
                    } else {
                        "name"
                    }],
                );
                for s in v["projected"]["sources"].as_array().into_iter().flatten() {
                    push(out, &s[proj]["name"]);
                }
            }
            for list in ["containers", "initContainers", "ephemeralContainers"] {
                for c in spec[list].as_array().into_iter().flatten() {
                    for e in c["env"].as_array().into_iter().flatten() {
                        push(out, &e["valueFrom"][env_ref]["name"]);
                    }
                    for e in c["envFrom"].as_array().into_iter().flatten() {
                        push(out, &e[env_from]["name"]);
                    }
                }
            }
            if resource == "secrets" {
                for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
                    push(out, &s["name"]);
                }
            }
        }
        _ => {}
    }
}

/// The NodeRestriction admission plugin on a pod created by `system:node:<node>`: only a mirror
/// pod bound to itself, controlled by its Node object, referencing no other API objects.
pub fn node_restriction_pod_create(
    node: &str,
    node_uid: Option<&str>,
    pod: &Value,
) -> Result<(), String> {
    if !pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Err(format!(
            "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
        ));
    }
    if pod["spec"]["nodeName"].as_str() != Some(node) {
        return Err(format!(
            "node {node:?} can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match owners.as_slice() {
        [] => {
            return Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ));
        }
        [o] => {
            if o["apiVersion"] != "v1" || o["kind"] != "Node" || o["name"].as_str() != Some(node) {
                return Err(format!(
                    "node {node:?} can only create pods with an owner reference set to itself"
                ));
            }
            if o["controller"] != true {
                return Err(format!(
                    "node {node:?} can only create pods with a controller owner reference set to itself"
                ));
            }
            if o["blockOwnerDeletion"] == true {
                return Err(format!(
                    "node {node:?} must not set blockOwnerDeletion on an owner reference"
                ));
            }
            let got = o["uid"].as_str().unwrap_or("");
            match node_uid {
                None => {
                    return Err(format!(
                        "error looking up node {node} to verify uid: node {node:?} not found"
                    ));
                }
                Some(want) if want != got => {
                    return Err(format!(
                        "node {node} UID mismatch: expected {got} got {want}"
                    ));
                }
                Some(_) => {}
            }
        }
        _ => {
            return Err(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ));
        }
    }
    let spec = &pod["spec"];
    if spec["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(format!(
            "node {node:?} can not create pods that reference a service account"
        ));
    }
    for (resource, word) in [
        ("secrets", "secrets"),
        ("configmaps", "configmaps"),
        ("persistentvolumeclaims", "persistentvolumeclaims"),
    ] {
        let mut refs = Vec::new();
        pod_refs(spec, resource, &mut refs);
        if !refs.is_empty() {
            return Err(format!(
                "node {node:?} can not create pods that reference {word}"
            ));
        }
    }
    Ok(())
}

/// Node authorizer, then RBAC, as the apiserver's `--authorization-mode=Node,RBAC`.
pub fn authorize(store: &Store, u: &User, a: &Attrs) -> bool {
    node_allows(store, u, a) || rbac_allows(store, u, a)
}

/// The apiserver's 403 text.
pub fn forbidden_message(u: &User, a: &Attrs) -> String {
    if !a.is_resource {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            u.name, a.verb, a.path
        );
    }
    let gr = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let what = if a.name.is_empty() {
        gr.clone()
    } else {
        format!("{gr} \"{}\"", a.name)
    };
    let res = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    format!(
        "{what} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\" {scope}",
        u.name, a.verb, a.group
    )
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn urls(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

/// The bootstrap ClusterRoles and ClusterRoleBindings a kubelet meets (a subset of
/// plugin/pkg/auth/authorizer/rbac/bootstrappolicy), stored like any object.
pub fn bootstrap_policy() -> (Vec<Value>, Vec<Value>) {
    let read = ["get", "list", "watch"];
    let roles = [
        (
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        (
            "system:discovery",
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        (
            "system:public-info-viewer",
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        (
            "system:basic-user",
            vec![rule(
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                &["create"],
            )],
        ),
        (
            "system:node-bootstrapper",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/nodeclient"],
                &["create"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests/selfnodeclient"],
                &["create"],
            )],
        ),
        (
            "system:kubelet-api-admin",
            vec![
                rule(&[""], &["nodes"], &["get", "list", "watch", "proxy"]),
                rule(
                    &[""],
                    &["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"],
                    &["*"],
                ),
            ],
        ),
        (
            "system:node-proxier",
            vec![
                rule(&[""], &["endpoints", "services"], &read),
                rule(&[""], &["nodes"], &read),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"],
                ),
            ],
        ),
        (
            "system:kube-controller-manager",
            vec![
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "patch", "update"],
                ),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["create", "get", "update"],
                ),
                rule(
                    &[""],
                    &["secrets", "serviceaccounts"],
                    &["create", "get", "list", "watch", "update", "delete"],
                ),
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
                rule(&["*"], &["*"], &["list", "watch"]),
            ],
        ),
        (
            "view",
            vec![rule(
                &[""],
                &[
                    "pods",
                    "configmaps",
                    "events",
                    "namespaces",
                    "serviceaccounts",
                ],
                &read,
            )],
        ),
    ];
    let mut role_objs = Vec::new();
    for (name, rules) in roles {
        role_objs.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "rules": rules
        }));
    }
    let bindings = [
        (
            "cluster-admin",
            "cluster-admin",
            vec![("Group", "system:masters")],
        ),
        (
            "system:discovery",
            "system:discovery",
            vec![("Group", "system:authenticated")],
        ),
        (
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                ("Group", "system:authenticated"),
                ("Group", "system:unauthenticated"),
            ],
        ),
        (
            "system:basic-user",
            "system:basic-user",
            vec![("Group", "system:authenticated")],
        ),
        (
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![("User", "system:kube-controller-manager")],
        ),
    ];
    let mut binding_objs = Vec::new();
    for (name, role, subjects) in bindings {
        let subjects: Vec<Value> = subjects
            .iter()
            .map(|(k, n)| json!({"kind": k, "name": n, "apiGroup": "rbac.authorization.k8s.io"}))
            .collect();
        binding_objs.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}, "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": subjects
        }));
    }
    (role_objs, binding_objs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_text_matches_the_seed() {
        let u = User::new("system:bootstrap:82jfrm", &["system:bootstrappers"]);
        let a = Attrs {
            verb: "create".into(),
            group: "certificates.k8s.io".into(),
            resource: "certificatesigningrequests".into(),
            is_resource: true,
            ..Default::default()
        };
        assert_eq!(
            forbidden_message(&u, &a),
            "certificatesigningrequests.certificates.k8s.io is forbidden: User \"system:bootstrap:82jfrm\" cannot create resource \"certificatesigningrequests\" in API group \"certificates.k8s.io\" at the cluster scope"
        );
    }

    #[test]
    fn rules_match_subresources_and_urls() {
        let r = rule(&[""], &["nodes/metrics"], &["get"]);
        let mut a = Attrs {
            verb: "get".into(),
            resource: "nodes".into(),
            subresource: "metrics".into(),
            is_resource: true,
            ..Default::default()
        };
        assert!(rule_allows(&r, &a));
        a.subresource = "proxy".into();
        assert!(!rule_allows(&r, &a));
        let u = urls(&["/apis/*"], &["get"]);
        let a = Attrs {
            verb: "get".into(),
            path: "/apis/rbac.authorization.k8s.io".into(),
            ..Default::default()
        };
        assert!(rule_allows(&u, &a));
    }
}
