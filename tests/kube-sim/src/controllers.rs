//! The controller-manager parts a kubelet meets: CSR approver and signer, bootstrap-token
//! cleaner, node lifecycle (Ready -> Unknown on a stale Lease), a trivial scheduler, and the
//! per-namespace `default` ServiceAccount and `kube-root-ca.crt` ConfigMap.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use x509_parser::prelude::*;

use crate::api;
use crate::auth::{self, Attrs, User};
use crate::pki::Ca;
use crate::server::State;
use crate::store::{self, Store};

pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";

pub async fn run(state: Arc<State>, ca: Arc<Ca>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let mut store = state.store();
        namespaces(&mut store, &state.ca_pem);
        csr_approver(&mut store, state.opts.approve_serving_csrs);
        csr_signer(
            &mut store,
            &ca,
            state.opts.signing_duration,
            state.opts.backdate,
        );
        token_cleaner(&mut store);
        node_lifecycle(&mut store);
        scheduler(&mut store);
    }
}

fn res(group: &str, resource: &str) -> &'static api::Res {
    match api::by_resource(group, resource) {
        Some(r) => r,
        None => panic!("kube-sim serves {group}/{resource}"),
    }
}

fn namespaces(store: &mut Store, ca_pem: &str) {
    let names: Vec<String> = store
        .list(res("", "namespaces"), "")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    for ns in names {
        if store
            .get(res("", "serviceaccounts"), &ns, "default")
            .is_none()
        {
            let _ = store.create(
                res("", "serviceaccounts"),
                &ns,
                json!({"metadata": {"name": "default"}}),
            );
        }
        if store
            .get(res("", "configmaps"), &ns, "kube-root-ca.crt")
            .is_none()
        {
            let _ = store.create(res("", "configmaps"), &ns, json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": ca_pem}}));
        }
    }
}

/// The parsed request of a CSR object.
struct Parsed {
    cn: String,
    orgs: Vec<String>,
    dns: Vec<String>,
    ips: Vec<String>,
    other_sans: bool,
    pem: String,
}

fn parse_csr(csr: &Value) -> Result<Parsed, String> {
    let b64 = csr["spec"]["request"].as_str().unwrap_or("");
    let pem_bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("spec.request is not base64: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes)
        .map_err(|e| format!("spec.request is not PEM: {e}"))?;
    let (_, req) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| format!("not a PKCS#10 request: {e}"))?;
    req.verify_signature()
        .map_err(|e| format!("bad signature: {e}"))?;
    let subj = &req.certification_request_info.subject;
    let cn = subj
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string();
    let orgs = subj
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(String::from))
        .collect();
    let (mut dns, mut ips, mut other_sans) = (Vec::new(), Vec::new(), false);
    if let Some(exts) = req.requested_extensions() {
        for e in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = e {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => dns.push(d.to_string()),
                        GeneralName::IPAddress(b) => ips.push(match b.len() {
                            4 => {
                                std::net::IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())
                                    .to_string()
                            }
                            16 => {
                                std::net::IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())
                                    .to_string()
                            }
                            _ => format!("{b:?}"),
                        }),
                        _ => other_sans = true,
                    }
                }
            }
        }
    }
    Ok(Parsed {
        cn,
        orgs,
        dns,
        ips,
        other_sans,
        pem: String::from_utf8_lossy(&pem_bytes).into_owned(),
    })
}

fn usages(csr: &Value) -> Vec<String> {
    let mut u: Vec<String> = csr["spec"]["usages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    u.sort();
    u
}

/// kube-controller-manager's checks for the two kubelet signers (pkg/apis/certificates).
fn validate(signer: &str, p: &Parsed, usages: &[String]) -> Result<(), String> {
    if p.orgs != ["system:nodes"] {
        return Err(format!(
            "subject organization is not system:nodes: {:?}",
            p.orgs
        ));
    }
    if !p.cn.starts_with("system:node:") || p.cn.len() <= "system:node:".len() {
        return Err(format!(
            "subject common name does not begin with system:node: {:?}",
            p.cn
        ));
    }
    let allowed: &[&str] = if signer == CLIENT_SIGNER {
        &["client auth", "digital signature", "key encipherment"]
    } else {
        &["digital signature", "key encipherment", "server auth"]
    };
    let needed = if signer == CLIENT_SIGNER {
        "client auth"
    } else {
        "server auth"
    };
    if usages.iter().any(|u| !allowed.contains(&u.as_str()))
        || !usages.iter().any(|u| u == needed)
        || !usages.iter().any(|u| u == "digital signature")
    {
        return Err(format!("usages did not match {allowed:?}: {usages:?}"));
    }
    if signer == CLIENT_SIGNER {
        if !p.dns.is_empty() || !p.ips.is_empty() || p.other_sans {
            return Err("DNS, email, and IP subjectAltNames are not allowed".into());
        }
    } else {
        if p.other_sans {
            return Err("email and URI subjectAltNames are not allowed".into());
        }
        if p.dns.is_empty() && p.ips.is_empty() {
            return Err("DNS or IP subjectAltName is required".into());
        }
    }
    Ok(())
}

fn has_condition(csr: &Value, t: &str) -> bool {
    csr["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == t))
}

fn add_condition(store: &mut Store, csr: &Value, t: &str, reason: &str, message: &str) {
    let mut next = csr.clone();
    let now = store::now();
    let cond = json!({"type": t, "status": "True", "reason": reason, "message": message, "lastUpdateTime": now, "lastTransitionTime": now});
    match next["status"]["conditions"].as_array_mut() {
        Some(list) => list.push(cond),
        None => next["status"]["conditions"] = json!([cond]),
    }
    update_csr(store, next);
}

/// Writes a CSR back (the controllers' own updates; a conflict is retried on the next tick).
fn update_csr(store: &mut Store, csr: Value) {
    let name = csr["metadata"]["name"].as_str().unwrap_or("").to_string();
    let _ = store.update(
        res("certificates.k8s.io", "certificatesigningrequests"),
        "",
        &name,
        csr,
    );
}

fn csr_approver(store: &mut Store, approve_serving: bool) {
    let pending: Vec<Value> = store
        .list(res("certificates.k8s.io", "certificatesigningrequests"), "")
        .into_iter()
        .filter(|c| {
            !has_condition(c, "Approved")
                && !has_condition(c, "Denied")
                && !has_condition(c, "Failed")
        })
        .cloned()
        .collect();
    for csr in pending {
        let signer = csr["spec"]["signerName"].as_str().unwrap_or("");
        let Ok(p) = parse_csr(&csr) else { continue };
        if validate(signer, &p, &usages(&csr)).is_err() {
            continue;
        }
        let requester = User {
            name: csr["spec"]["username"].as_str().unwrap_or("").to_string(),
            groups: csr["spec"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(String::from))
                .collect(),
            uid: String::new(),
        };
        match signer {
            CLIENT_SIGNER => {
                let sub = if requester.name == p.cn {
                    "selfnodeclient"
                } else {
                    "nodeclient"
                };
                let a = Attrs {
                    verb: "create".into(),
                    group: "certificates.k8s.io".into(),
                    resource: "certificatesigningrequests".into(),
                    subresource: sub.into(),
                    is_resource: true,
                    ..Default::default()
                };
                if auth::rbac_allows(store, &requester, &a) {
                    add_condition(
                        store,
                        &csr,
                        "Approved",
                        "AutoApproved",
                        "Auto approving kubelet client certificate after SubjectAccessReview.",
                    );
                }
            }
            SERVING_SIGNER if approve_serving => {
                add_condition(
                    store,
                    &csr,
                    "Approved",
                    "AutoApproved",
                    "Auto approving kubelet serving certificate (kube-sim --approve-serving-csrs).",
                );
            }
            _ => {}
        }
    }
}

fn csr_signer(store: &mut Store, ca: &Ca, max: Duration, backdate: Duration) {
    let approved: Vec<Value> = store
        .list(res("certificates.k8s.io", "certificatesigningrequests"), "")
        .into_iter()
        .filter(|c| {
            has_condition(c, "Approved")
                && !has_condition(c, "Failed")
                && !has_condition(c, "Denied")
                && c["status"]["certificate"]
                    .as_str()
                    .is_none_or(str::is_empty)
        })
        .cloned()
        .collect();
    for csr in approved {
        let signer = csr["spec"]["signerName"].as_str().unwrap_or("").to_string();
        if signer != CLIENT_SIGNER && signer != SERVING_SIGNER {
            continue;
        }
        let u = usages(&csr);
        let checked = parse_csr(&csr).and_then(|p| validate(&signer, &p, &u).map(|_| p));
        let p = match checked {
            Ok(p) => p,
            Err(e) => {
                add_condition(
                    store,
                    &csr,
                    "Failed",
                    "SignerValidationFailure",
                    &format!("invalid certificate request: {e}"),
                );
                continue;
            }
        };
        let mut duration = max;
        if let Some(s) = csr["spec"]["expirationSeconds"].as_u64() {
            duration = duration.min(Duration::from_secs(s.max(600)));
        }
        match ca.sign_csr(&p.pem, &u, duration, backdate) {
            Ok(pem) => {
                let mut next = csr.clone();
                next["status"]["certificate"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(pem));
                update_csr(store, next);
            }
            Err(e) => add_condition(store, &csr, "Failed", "SignerValidationFailure", &e),
        }
    }
}

fn token_cleaner(store: &mut Store) {
    let secrets = res("", "secrets");
    let expired: Vec<String> = store
        .list(secrets, "kube-system")
        .into_iter()
        .filter(|s| s["type"] == "bootstrap.kubernetes.io/token")
        .filter(|s| {
            s["data"]["expiration"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .is_some_and(|t| t.timestamp() <= auth::unix_now())
        })
        .filter_map(|s| s["metadata"]["name"].as_str().map(String::from))
        .collect();
    for name in expired {
        let _ = store.remove(secrets, "kube-system", &name);
    }
}

fn node_lifecycle(store: &mut Store) {
    let nodes: Vec<Value> = store
        .list(res("", "nodes"), "")
        .into_iter()
        .cloned()
        .collect();
    let now = auth::unix_now();
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or("").to_string();
        let Some(conds) = node["status"]["conditions"].as_array() else {
            continue;
        };
        if !conds
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] != "Unknown")
        {
            continue;
        }
        let lease = store.get(
            res("coordination.k8s.io", "leases"),
            "kube-node-lease",
            &name,
        );
        let renewed = lease
            .and_then(|l| l["spec"]["renewTime"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .or_else(|| {
                node["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.timestamp())
            })
            .unwrap_or(now);
        let duration = lease
            .and_then(|l| l["spec"]["leaseDurationSeconds"].as_i64())
            .unwrap_or(40);
        if now - renewed <= duration {
            continue;
        }
        let mut next = node.clone();
        let ts = store::now();
        if let Some(list) = next["status"]["conditions"].as_array_mut() {
            for c in list.iter_mut() {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(ts);
            }
        }
        let _ = store.update(res("", "nodes"), "", &name, next);
    }
}

fn scheduler(store: &mut Store) {
    let ready: Vec<String> = store
        .list(res("", "nodes"), "")
        .into_iter()
        .filter(|n| n["spec"]["unschedulable"].as_bool() != Some(true))
        .filter(|n| {
            n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
        .collect();
    let Some(node) = ready.first() else { return };
    let pods: Vec<Value> = store
        .list(res("", "pods"), "")
        .into_iter()
        .filter(|p| {
            p["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
                && !p["metadata"]["deletionTimestamp"].is_string()
        })
        .cloned()
        .collect();
    for mut pod in pods {
        let ns = pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
        pod["spec"]["nodeName"] = json!(node);
        if store
            .update(res("", "pods"), &ns, &name, pod.clone())
            .is_ok()
        {
            let ev = json!({
                "metadata": {"generateName": format!("{name}.")},
                "involvedObject": {"kind": "Pod", "namespace": ns, "name": name, "uid": pod["metadata"]["uid"], "apiVersion": "v1"},
                "reason": "Scheduled", "message": format!("Successfully assigned {ns}/{name} to {node}"),
                "type": "Normal", "source": {"component": "default-scheduler"},
                "firstTimestamp": store::now(), "lastTimestamp": store::now(), "count": 1
            });
            let _ = store.create(res("", "events"), &ns, ev);
        }
    }
}

/// Objects every cluster starts with: namespaces and the bootstrap RBAC policy.
pub fn seed(store: &mut Store) {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = store.create(res("", "namespaces"), "", json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}));
    }
    // The API server's own service, as every cluster has it (the first IP of the service
    // range the tests' real control plane uses too).
    let _ = store.create(
        res("", "services"),
        "default",
        json!({"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"type": "ClusterIP", "clusterIP": "10.254.0.1", "clusterIPs": ["10.254.0.1"],
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}),
    );
    let (roles, bindings) = auth::bootstrap_policy();
    for r in roles {
        let _ = store.create(res("rbac.authorization.k8s.io", "clusterroles"), "", r);
    }
    for b in bindings {
        let _ = store.create(
            res("rbac.authorization.k8s.io", "clusterrolebindings"),
            "",
            b,
        );
    }
}
