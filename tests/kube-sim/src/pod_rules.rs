//! The API server's rules for pods that kube-sim enforces: the spec fields an update may
//! change, the QoS class set at creation, and the status-update validation of
//! `ValidatePodStatusUpdate` (pkg/apis/core/validation) a kubelet's status writes meet.

use std::net::IpAddr;

use serde_json::Value;

use crate::api::{ApiError, Res};

/// The apiserver's pod update rule: only images, activeDeadlineSeconds, tolerations and
/// terminationGracePeriodSeconds may change in a pod's spec.
pub fn check_pod_update(res: &Res, name: &str, cur: &Value, next: &Value) -> Result<(), ApiError> {
    if res.resource != "pods" {
        return Ok(());
    }
    let masked = |spec: &Value| {
        let mut s = spec.clone();
        for list in ["containers", "initContainers"] {
            if let Some(cs) = s[list].as_array_mut() {
                for c in cs {
                    c["image"] = Value::Null;
                }
            }
        }
        for k in [
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
        ] {
            s[k] = Value::Null;
        }
        s
    };
    if masked(&cur["spec"]) != masked(&next["spec"]) {
        return Err(ApiError::invalid(
            res,
            name,
            &[("spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)".into())],
        ));
    }
    Ok(())
}

pub fn qos_class(spec: &Value) -> &'static str {
    let cs: Vec<&Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["initContainers"].as_array().into_iter().flatten())
        .collect();
    let has = |c: &Value, k: &str| c["resources"][k].as_object().is_some_and(|m| !m.is_empty());
    if cs.iter().all(|c| !has(c, "requests") && !has(c, "limits")) {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let l = &c["resources"]["limits"][*r];
            let q = &c["resources"]["requests"][*r];
            l.is_string() && (q.is_null() || q == l)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// `pods/status` writes, as the pod status strategy takes them: an empty `qosClass` keeps the
/// old one, then the update is validated as `ValidatePodStatusUpdate` does (the checks that
/// concern what a kubelet writes: QoS class, conditions, container state transitions, pod and
/// host IPs, observed generations).
pub fn check_pod_status_update(
    res: &Res,
    name: &str,
    cur: &Value,
    next: &mut Value,
) -> Result<(), ApiError> {
    if res.resource != "pods" {
        return Ok(());
    }
    let old_qos = &cur["status"]["qosClass"];
    if next["status"]["qosClass"]
        .as_str()
        .is_none_or(str::is_empty)
        && !old_qos.is_null()
    {
        next["status"]["qosClass"] = old_qos.clone();
    }
    let causes = status_causes(cur, next);
    if causes.is_empty() {
        Ok(())
    } else {
        let causes: Vec<(&str, String)> = causes
            .iter()
            .map(|(f, m)| (f.as_str(), m.clone()))
            .collect();
        Err(ApiError::invalid(res, name, &causes))
    }
}

fn status_causes(cur: &Value, next: &Value) -> Vec<(String, String)> {
    let (old, new) = (&cur["status"], &next["status"]);
    let mut out = Vec::new();
    if new["qosClass"] != old["qosClass"] {
        out.push((
            "status.qosClass".into(),
            format!("Invalid value: {}: field is immutable", new["qosClass"]),
        ));
    }
    if new["observedGeneration"].as_i64().is_some_and(|g| g < 0) {
        out.push((
            "status.observedGeneration".into(),
            format!(
                "Invalid value: {}: must be a non-negative integer",
                new["observedGeneration"]
            ),
        ));
    }
    for (i, c) in list(&new["conditions"]).enumerate() {
        let ty = c["type"].as_str().unwrap_or("");
        let system = matches!(ty, "PodScheduled" | "Ready" | "Initialized");
        if !system && !qualified_name(ty) {
            out.push((
                format!("status.conditions[{i}].Type"),
                format!(
                    "Invalid value: {ty:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            ));
        }
    }
    let policy = cur["spec"]["restartPolicy"].as_str().unwrap_or("Always");
    let restartable_init = |n: &str| {
        list(&cur["spec"]["initContainers"])
            .any(|c| c["name"] == n && c["restartPolicy"] == "Always")
    };
    for (field, keeps_terminated) in [
        ("containerStatuses", policy != "Always"),
        ("initContainerStatuses", policy != "Always"),
        ("ephemeralContainerStatuses", true),
    ] {
        if !keeps_terminated {
            continue;
        }
        for (i, was) in list(&old[field]).enumerate() {
            let Some(term) = was["state"]["terminated"].as_object() else {
                continue;
            };
            let failed = term.get("exitCode").and_then(Value::as_i64) != Some(0);
            let name = was["name"].as_str().unwrap_or("");
            let may_restart = field != "ephemeralContainerStatuses"
                && ((failed && policy == "OnFailure")
                    || (field == "initContainerStatuses" && restartable_init(name)));
            if may_restart {
                continue;
            }
            let revived = list(&new[field])
                .any(|now| now["name"] == was["name"] && now["state"]["terminated"].is_null());
            if revived {
                out.push((
                    format!("status.{field}[{i}].state"),
                    "Forbidden: may not be transitioned to non-terminated state".into(),
                ));
            }
        }
    }
    for (field, single) in [("podIPs", None), ("hostIPs", Some("hostIP"))] {
        let ips: Vec<&str> = list(&new[field])
            .map(|e| e["ip"].as_str().unwrap_or(""))
            .collect();
        if let (Some(single), Some(first)) = (single, ips.first())
            && new[single].as_str() != Some(first)
        {
            out.push((
                format!("status.{field}[0].ip"),
                format!("Invalid value: {first:?}: must be equal to `{single}`"),
            ));
        }
        let existing: Vec<&str> = list(&old[field]).filter_map(|e| e["ip"].as_str()).collect();
        for (i, ip) in ips.iter().enumerate() {
            if ip.parse::<IpAddr>().is_err() && !existing.contains(ip) {
                out.push((
                    format!("status.{field}[{i}]"),
                    format!("Invalid value: {ip:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
                ));
            }
        }
        let parsed: Vec<IpAddr> = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        let dual = parsed.len() == 2 && parsed[0].is_ipv4() != parsed[1].is_ipv4();
        if ips.len() > 1 && !dual {
            out.push((
                format!("status.{field}"),
                "Invalid value: may specify no more than one IP for each IP family".into(),
            ));
        }
    }
    out
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// A qualified name (`[prefix/]name`), as `ValidateQualifiedName`.
fn qualified_name(s: &str) -> bool {
    let part = |p: &str, max: usize| {
        !p.is_empty()
            && p.len() <= max
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && p.starts_with(|c: char| c.is_ascii_alphanumeric())
            && p.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    match s.split_once('/') {
        Some((prefix, name)) => part(prefix, 253) && part(name, 63),
        None => part(s, 63),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(policy: &str, status: Value) -> Value {
        json!({"spec": {"restartPolicy": policy, "containers": [{"name": "c"}]}, "status": status})
    }

    fn causes(cur: &Value, next: &Value) -> Vec<String> {
        status_causes(cur, next)
            .into_iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect()
    }

    #[test]
    fn terminated_containers_stay_terminated_unless_the_policy_restarts_them() {
        let done = |code: i64| json!({"qosClass": "BestEffort", "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": code}}}]});
        let running = json!({"qosClass": "BestEffort", "containerStatuses": [{"name": "c", "state": {"running": {}}}]});
        let forbidden = vec!["status.containerStatuses[0].state: Forbidden: may not be transitioned to non-terminated state".to_string()];
        assert_eq!(
            causes(&pod("Never", done(0)), &pod("Never", running.clone())),
            forbidden
        );
        assert_eq!(
            causes(
                &pod("OnFailure", done(0)),
                &pod("OnFailure", running.clone())
            ),
            forbidden
        );
        assert!(
            causes(
                &pod("OnFailure", done(1)),
                &pod("OnFailure", running.clone())
            )
            .is_empty()
        );
        assert!(causes(&pod("Always", done(0)), &pod("Always", running.clone())).is_empty());
        assert!(causes(&pod("Never", done(0)), &pod("Never", done(0))).is_empty());
    }

    #[test]
    fn qos_ips_and_conditions() {
        let cur = pod("Always", json!({"qosClass": "BestEffort"}));
        let next = |s: Value| pod("Always", s);
        assert_eq!(
            causes(&cur, &next(json!({"qosClass": "Burstable"}))),
            ["status.qosClass: Invalid value: \"Burstable\": field is immutable"]
        );
        let ok = json!({"qosClass": "BestEffort", "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}],
            "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}], "conditions": [{"type": "Ready"}, {"type": "example.com/ok"}]});
        assert!(causes(&cur, &next(ok)).is_empty());
        let bad = json!({"qosClass": "BestEffort", "hostIP": "10.0.0.2", "hostIPs": [{"ip": "10.0.0.1"}],
            "podIPs": [{"ip": "10.1.0.5"}, {"ip": "10.1.0.6"}, {"ip": "nope"}], "conditions": [{"type": "bad type"}]});
        let got = causes(&cur, &next(bad));
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].starts_with("status.conditions[0].Type: Invalid value: \"bad type\""));
        assert_eq!(
            got[1],
            "status.podIPs[2]: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        assert_eq!(
            got[2],
            "status.podIPs: Invalid value: may specify no more than one IP for each IP family"
        );
        assert_eq!(
            got[3],
            "status.hostIPs[0].ip: Invalid value: \"10.0.0.1\": must be equal to `hostIP`"
        );
    }

    #[test]
    fn an_empty_qos_class_keeps_the_old_one() {
        let res = crate::api::find("", "v1", "pods").unwrap_or_else(|| panic!("pods"));
        let cur = pod("Always", json!({"qosClass": "Guaranteed"}));
        let mut next = pod("Always", json!({"phase": "Running"}));
        assert!(check_pod_status_update(res, "p", &cur, &mut next).is_ok());
        assert_eq!(next["status"]["qosClass"], "Guaranteed");
    }
}
