//! A container's environment as the kubelet builds it: `envFrom` (configMaps and secrets, with
//! prefixes), then `env` in order, then the service variables it does not set itself (values with `$(VAR)` references expanded, `valueFrom`
//! fieldRef, resourceFieldRef for limits, configMapKeyRef, secretKeyRef), and the same
//! expansion of `command` and `args`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::admit::NodeLimits;
use super::spec::Pod;

/// Expands `$(NAME)` with `vars` (unknown references stay as written; `$$` is a literal `$`).
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    expand_with(s, &mut |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

/// Expands `$(NAME)` with what `value` says of each name (None: the reference stays as
/// written; `$$` is a literal `$`), as Kubernetes' expansion.Expand.
pub fn expand_with(s: &str, value: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match value(name) {
                Some(v) => out.push_str(&v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Reads a configMap's (`"configmap"`) or secret's (`"secret"`) data; None when it does not exist.
pub type Lookup<'a> = &'a dyn Fn(&str, &str) -> Result<Option<BTreeMap<String, String>>, String>;

fn field(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, String> {
    let m = &pod.metadata;
    let spec = &pod.raw["spec"];
    Ok(match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => pod.spec.node_name.clone(),
        "spec.serviceAccountName" => spec["serviceAccountName"].as_str().unwrap_or("").into(),
        "status.podIP" | "status.podIPs" => pod_ip.into(),
        "status.hostIP" | "status.hostIPs" => host_ip.into(),
        other => {
            let label = other
                .strip_prefix("metadata.labels['")
                .and_then(|k| k.strip_suffix("']"));
            let annotation = other
                .strip_prefix("metadata.annotations['")
                .and_then(|k| k.strip_suffix("']"));
            match (label, annotation) {
                (Some(k), _) => m.labels.get(k).cloned().unwrap_or_default(),
                (_, Some(k)) => m.annotations.get(k).cloned().unwrap_or_default(),
                _ => return Err(format!("fieldRef {other:?} is not supported")),
            }
        }
    })
}

/// `limits.memory` and friends of `container`, in the divisor's units (default 1), rounded up
/// as the kubelet's ExtractContainerResourceValue; a limit of cpu, memory or ephemeral-storage
/// the container does not set is the node's allocatable (its defaultPodLimitsForDownwardAPI).
pub fn resource_field(container: &Value, r: &Value, node: &NodeLimits) -> Result<String, String> {
    let res = r["resource"].as_str().unwrap_or("");
    let (kind, name) = res
        .split_once('.')
        .ok_or_else(|| format!("resourceFieldRef {res:?} is not <limits|requests>.<resource>"))?;
    let nanos = match (container["resources"][kind][name].as_str(), kind, name) {
        (Some(q), _, _) => crate::config::quantity::Quantity::parse(q)
            .map_err(|e| format!("{res}: {e}"))?
            .nanos(),
        (None, "limits", "cpu") => i128::from(node.cpu_millis) * 1_000_000,
        (None, "limits", "memory") => i128::from(node.memory) * 1_000_000_000,
        (None, "limits", "ephemeral-storage") => i128::from(node.ephemeral) * 1_000_000_000,
        (None, _, _) => 0,
    };
    let divisor = r["divisor"]
        .as_str()
        .map(crate::config::quantity::Quantity::parse)
        .transpose()
        .map_err(|e| format!("{res} divisor: {e}"))?;
    // The API server writes an unset divisor as "0": 1, as the kubelet takes it.
    let d = divisor
        .map(|d| d.nanos())
        .filter(|&d| d > 0)
        .unwrap_or(1_000_000_000);
    Ok((nanos + d - 1).div_euclid(d).to_string())
}

/// The environment of container `name` of `pod`.
pub fn build(
    pod: &Pod,
    name: &str,
    pod_ip: &str,
    host_ip: &str,
    node: &NodeLimits,
    lookup: Lookup,
    service_env: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let c = pod.raw_container(name);
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(x, _)| x != &k);
        vars.push((k, v));
    };
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or("");
        let (kind, r) = if from["configMapRef"].is_object() {
            ("configmap", &from["configMapRef"])
        } else if from["secretRef"].is_object() {
            ("secret", &from["secretRef"])
        } else {
            continue;
        };
        let obj = r["name"].as_str().unwrap_or("");
        match lookup(kind, obj)? {
            Some(data) => {
                for (k, v) in data {
                    set(&mut vars, format!("{prefix}{k}"), v);
                }
            }
            None if r["optional"] == true => {}
            None => return Err(format!("{kind} {obj:?} not found")),
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let key = e["name"].as_str().unwrap_or("").to_string();
        let vf = &e["valueFrom"];
        let value = if vf.is_object() {
            if let Some(p) = vf["fieldRef"]["fieldPath"].as_str() {
                field(pod, p, pod_ip, host_ip)?
            } else if vf["resourceFieldRef"].is_object() {
                resource_field(&c, &vf["resourceFieldRef"], node)?
            } else {
                let (kind, r) = if vf["configMapKeyRef"].is_object() {
                    ("configmap", &vf["configMapKeyRef"])
                } else if vf["secretKeyRef"].is_object() {
                    ("secret", &vf["secretKeyRef"])
                } else {
                    return Err(format!("env {key:?}: unsupported valueFrom"));
                };
                let obj = r["name"].as_str().unwrap_or("");
                let k = r["key"].as_str().unwrap_or("");
                match lookup(kind, obj)?.and_then(|d| d.get(k).cloned()) {
                    Some(v) => v,
                    None if r["optional"] == true => continue,
                    None => {
                        return Err(format!(
                            "env {key:?}: couldn't find key {k} in {kind} {}/{obj}",
                            pod.metadata.namespace
                        ));
                    }
                }
            }
        } else {
            // References see the container's own variables first, then the services'.
            expand_with(e["value"].as_str().unwrap_or(""), &mut |name| {
                vars.iter()
                    .rev()
                    .chain(service_env.iter().rev())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        };
        set(&mut vars, key, value);
    }
    // The service variables the container does not define itself come last.
    for (k, v) in service_env {
        if !vars.iter().any(|(x, _)| x == k) {
            vars.push((k.clone(), v.clone()));
        }
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_as_the_api_documents_it() {
        let vars = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "x".to_string()),
        ];
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x");
        assert_eq!(expand("$(C) stays", &vars), "$(C) stays");
        assert_eq!(expand("$$(A) escaped", &vars), "$(A) escaped");
        assert_eq!(expand("cost $5 and $(A", &vars), "cost $5 and $(A");
    }

    #[test]
    fn env_from_value_from_and_order() {
        let pod = Pod::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": [{
                "name": "c", "image": "x",
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}, {"secretRef": {"name": "gone", "optional": true}}],
                "env": [
                    {"name": "CM_a", "value": "overridden"},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": true}}},
                    {"name": "BOTH", "value": "$(POD)@$(IP)"},
                    {"name": "SVC", "value": "http://$(WEB_SERVICE_HOST)"}
                ]}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let lookup = |kind: &str, name: &str| -> Result<Option<BTreeMap<String, String>>, String> {
            Ok(match (kind, name) {
                ("configmap", "cm") => Some(BTreeMap::from([
                    ("a".into(), "1".into()),
                    ("b".into(), "2".into()),
                ])),
                ("secret", "s") => Some(BTreeMap::from([("password".into(), "pw".into())])),
                _ => None,
            })
        };
        let services = vec![
            ("WEB_SERVICE_HOST".to_string(), "10.96.0.5".to_string()),
            ("CM_b".to_string(), "the container's own wins".to_string()),
        ];
        let node = NodeLimits {
            cpu_millis: 1500,
            memory: 1 << 30,
            ..Default::default()
        };
        let env = build(
            &pod,
            "c",
            "10.0.0.9",
            "192.0.2.1",
            &node,
            &lookup,
            &services,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let get = |k: &str| env.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CM_a"), Some("overridden"));
        assert_eq!(get("CM_b"), Some("2"));
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.0.0.9"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("CPU"), Some("1"), "rounded up to whole cores");
        assert_eq!(get("PASS"), Some("pw"));
        assert_eq!(get("MISSING"), None);
        assert_eq!(get("BOTH"), Some("p@10.0.0.9"));
        // Service variables: after the container's, not over them, and seen by references.
        assert_eq!(get("WEB_SERVICE_HOST"), Some("10.96.0.5"));
        assert_eq!(
            env.last().map(|(k, _)| k.as_str()),
            Some("WEB_SERVICE_HOST")
        );
        assert_eq!(get("SVC"), Some("http://10.96.0.5"));
        let bad = |kind: &str, _: &str| -> Result<Option<BTreeMap<String, String>>, String> {
            Ok((kind == "secret").then(BTreeMap::new))
        };
        let e = build(&pod, "c", "", "", &node, &bad, &[]).map_or_else(|e| e, |_| String::new());
        assert_eq!(e, "configmap \"cm\" not found");
    }

    #[test]
    fn resource_fields_default_to_the_node_allocatable() {
        let node = NodeLimits {
            cpu_millis: 1500,
            memory: 1 << 30,
            ephemeral: 10 << 30,
            ..Default::default()
        };
        let field = |c: Value, resource: &str, divisor: Option<&str>| {
            let r = json!({"resource": resource, "divisor": divisor});
            resource_field(&c, &r, &node).unwrap_or_else(|e| e)
        };
        let none = json!({"name": "c"});
        assert_eq!(
            field(none.clone(), "limits.cpu", None),
            "2",
            "1500m, rounded up"
        );
        assert_eq!(field(none.clone(), "limits.cpu", Some("1m")), "1500");
        assert_eq!(field(none.clone(), "limits.memory", Some("1Mi")), "1024");
        assert_eq!(
            field(none.clone(), "limits.ephemeral-storage", Some("1Gi")),
            "10"
        );
        assert_eq!(
            field(none.clone(), "requests.cpu", None),
            "0",
            "no request is 0"
        );
        let set = json!({"resources": {"limits": {"cpu": "1250m", "memory": "64Mi"}, "requests": {"cpu": "250m"}}});
        assert_eq!(field(set.clone(), "limits.cpu", None), "2");
        assert_eq!(
            field(set.clone(), "limits.cpu", Some("0")),
            "2",
            "as the API writes none"
        );
        assert_eq!(field(set.clone(), "limits.cpu", Some("1m")), "1250");
        assert_eq!(field(set.clone(), "requests.cpu", Some("1m")), "250");
        assert_eq!(field(set.clone(), "limits.memory", None), "67108864");
        assert_eq!(
            field(set, "memory", None),
            "resourceFieldRef \"memory\" is not <limits|requests>.<resource>"
        );
    }
}
