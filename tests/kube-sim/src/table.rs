//! Server-side printing: `meta.k8s.io/v1` Tables with the real apiserver's columns, so `kubectl get`
//! reads as on a real cluster.

use serde_json::{Value, json};

use crate::api::Res;

/// `duration.HumanDuration` from apimachinery.
pub fn human(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{}d", h / 24)
        } else {
            format!("{}d{}h", h / 24, h % 24)
        }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        let y = h / (24 * 365);
        let d = (h / 24) % 365;
        if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        }
    } else {
        format!("{}y", h / (24 * 365))
    }
}

fn since(ts: &Value) -> String {
    match ts
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => human(chrono::Utc::now().timestamp() - t.timestamp()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": ty, "format": format, "description": "", "priority": priority})
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn or_none(v: String) -> String {
    if v.is_empty() { "<none>".into() } else { v }
}

fn node_cells(o: &Value) -> Vec<Value> {
    let conds = o["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = match conds
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| s(&c["status"]))
    {
        Some(st) if st == "True" => "Ready".to_string(),
        Some(st) if st == "False" => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = o["metadata"]["labels"]
        .as_object()
        .map(|l| {
            l.keys()
                .filter_map(|k| {
                    k.strip_prefix("node-role.kubernetes.io/")
                        .map(String::from)
                        .or_else(|| (k == "kubernetes.io/role").then(|| s(&l[k])))
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let addr = |t: &str| {
        o["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["type"] == t))
            .map(|x| s(&x["address"]))
            .unwrap_or_default()
    };
    let info = &o["status"]["nodeInfo"];
    vec![
        json!(s(&o["metadata"]["name"])),
        json!(status),
        json!(or_none(roles.join(","))),
        json!(since(&o["metadata"]["creationTimestamp"])),
        json!(s(&info["kubeletVersion"])),
        json!(or_none(addr("InternalIP"))),
        json!(or_none(addr("ExternalIP"))),
        json!(s(&info["osImage"])),
        json!(s(&info["kernelVersion"])),
        json!(s(&info["containerRuntimeVersion"])),
    ]
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let st = &o["status"];
    let total = o["spec"]["containers"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let statuses = st["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|c| c["ready"].as_bool() == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut reason = if st["reason"].is_string() {
        s(&st["reason"])
    } else {
        s(&st["phase"])
    };
    if reason.is_empty() {
        reason = "Pending".into();
    }
    for c in &statuses {
        if let Some(r) = c["state"]["waiting"]["reason"].as_str() {
            reason = r.to_string();
        } else if let Some(r) = c["state"]["terminated"]["reason"].as_str() {
            reason = r.to_string();
        }
    }
    if o["metadata"]["deletionTimestamp"].is_string() {
        reason = "Terminating".into();
    }
    vec![
        json!(s(&o["metadata"]["name"])),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        json!(since(&o["metadata"]["creationTimestamp"])),
        json!(or_none(s(&st["podIP"]))),
        json!(or_none(s(&o["spec"]["nodeName"]))),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn csr_cells(o: &Value) -> Vec<Value> {
    let conds = o["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut parts: Vec<String> = conds
        .iter()
        .map(|c| s(&c["type"]))
        .filter(|t| !t.is_empty())
        .collect();
    if o["status"]["certificate"]
        .as_str()
        .is_some_and(|c| !c.is_empty())
    {
        parts.push("Issued".into());
    }
    let cond = if parts.is_empty() {
        "Pending".to_string()
    } else {
        parts.join(",")
    };
    let dur = o["spec"]["expirationSeconds"]
        .as_i64()
        .map(human)
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(s(&o["metadata"]["name"])),
        json!(since(&o["metadata"]["creationTimestamp"])),
        json!(s(&o["spec"]["signerName"])),
        json!(s(&o["spec"]["username"])),
        json!(dur),
        json!(cond),
    ]
}

type Cells = fn(&Value) -> Vec<Value>;

fn columns(r: &Res) -> (Vec<Value>, Cells) {
    match r.resource {
        "nodes" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
                col("Internal-IP", "string", 1),
                col("External-IP", "string", 1),
                col("OS-Image", "string", 1),
                col("Kernel-Version", "string", 1),
                col("Container-Runtime", "string", 1),
            ],
            node_cells,
        ),
        "pods" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
                col("Nominated Node", "string", 1),
                col("Readiness Gates", "string", 1),
            ],
            pod_cells,
        ),
        "certificatesigningrequests" => (
            vec![
                col("Name", "string", 0),
                col("Age", "string", 0),
                col("SignerName", "string", 0),
                col("Requestor", "string", 0),
                col("RequestedDuration", "string", 0),
                col("Condition", "string", 0),
            ],
            csr_cells,
        ),
        "namespaces" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(if o["status"]["phase"].is_string() {
                        s(&o["status"]["phase"])
                    } else {
                        "Active".into()
                    }),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "secrets" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let n = o["data"].as_object().map(|m| m.len()).unwrap_or(0);
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["type"])),
                    json!(n.to_string()),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "configmaps" => (
            vec![
                col("Name", "string", 0),
                col("Data", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let n = o["data"].as_object().map(|m| m.len()).unwrap_or(0)
                    + o["binaryData"].as_object().map(|m| m.len()).unwrap_or(0);
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(n.to_string()),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "serviceaccounts" => (
            vec![
                col("Name", "string", 0),
                col("Secrets", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let n = o["secrets"].as_array().map(Vec::len).unwrap_or(0);
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(n.to_string()),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "leases" => (
            vec![
                col("Name", "string", 0),
                col("Holder", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["spec"]["holderIdentity"])),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "clusterrolebindings" | "rolebindings" => (
            vec![
                col("Name", "string", 0),
                col("Role", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(format!(
                        "{}/{}",
                        s(&o["roleRef"]["kind"]),
                        s(&o["roleRef"]["name"])
                    )),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "clusterroles" | "roles" => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(s(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
        "events" => (
            vec![
                col("Last Seen", "string", 0),
                col("Type", "string", 0),
                col("Reason", "string", 0),
                col("Object", "string", 0),
                col("Message", "string", 0),
            ],
            |o| {
                let last = if o["lastTimestamp"].is_string() {
                    &o["lastTimestamp"]
                } else {
                    &o["eventTime"]
                };
                let obj = format!(
                    "{}/{}",
                    s(&o["involvedObject"]["kind"]).to_lowercase(),
                    s(&o["involvedObject"]["name"])
                );
                vec![
                    json!(since(last)),
                    json!(s(&o["type"])),
                    json!(s(&o["reason"])),
                    json!(obj),
                    json!(s(&o["message"])),
                ]
            },
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            |o| {
                vec![
                    json!(s(&o["metadata"]["name"])),
                    json!(since(&o["metadata"]["creationTimestamp"])),
                ]
            },
        ),
    }
}

/// A Table for `objects`; `include` is the `includeObject` parameter (None, Metadata, Object).
pub fn table(r: &Res, objects: &[&Value], rv: &str, include: &str) -> Value {
    let (cols, cells) = columns(r);
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include {
                "None" => Value::Null,
                "Object" => (*o).clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            let mut row = json!({"cells": cells(o)});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv}, "columnDefinitions": cols, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_durations() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (50 * 3600, "2d2h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
        ] {
            assert_eq!(human(s), want, "{s}");
        }
    }
}
