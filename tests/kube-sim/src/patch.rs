//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge patch
//! for the list fields kubelets and kubectl patch (merge keys from the Kubernetes API).

use serde_json::{Map, Value};

/// RFC 7386.
pub fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The merge key of a list field (`patchMergeKey` in the API types), by field name. Lists not
/// named here are atomic, as upstream: `containerStatuses`, `initContainerStatuses`, `taints`,
/// `tolerations`, `images`, ... are replaced whole by a patch that names them.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaimStatuses" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "addresses" => "type",
        "ports" => "containerPort",
        "podIPs" | "hostIPs" => "ip",
        "ownerReferences" => "uid",
        "volumeDevices" => "devicePath",
        _ => return None,
    })
}

/// Strategic merge patch: like merge, but lists with a merge key are merged by that key, and
/// `$patch: delete` / `$deleteFromPrimitiveList` / `$setElementOrder` directives are honoured.
pub fn strategic(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut clean = p.clone();
        clean.remove("$patch");
        *target = Value::Object(clean);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(items)), Value::Array(del)) = (t.get_mut(field), v) {
                items.retain(|i| !del.contains(i));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (merge_key(k), v) {
            (Some(key), Value::Array(items)) => {
                let cur = t.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                if let Value::Array(list) = cur {
                    for item in items {
                        let id = &item[key];
                        let pos = list.iter().position(|x| &x[key] == id);
                        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                        match (pos, delete) {
                            (Some(i), true) => {
                                list.remove(i);
                            }
                            (Some(i), false) => strategic(&mut list[i], item),
                            (None, true) => {}
                            (None, false) => {
                                let mut fresh = Value::Object(Map::new());
                                strategic(&mut fresh, item);
                                list.push(fresh);
                            }
                        }
                    }
                }
            }
            (_, Value::Object(_)) => strategic(t.entry(k.clone()).or_insert(Value::Null), v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// RFC 6902 (add, remove, replace, test, move, copy).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("a JSON patch must be a list of operations")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("operation without path")?;
        match op["op"].as_str() {
            Some("add") => add(target, path, op["value"].clone())?,
            Some("remove") => {
                take(target, path)?;
            }
            Some("replace") => {
                take(target, path)?;
                add(target, path, op["value"].clone())?;
            }
            Some("test") => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some("move") => {
                let v = take(target, op["from"].as_str().ok_or("move without from")?)?;
                add(target, path, v)?;
            }
            Some("copy") => {
                let v = target
                    .pointer(op["from"].as_str().ok_or("copy without from")?)
                    .cloned()
                    .ok_or("copy from a missing path")?;
                add(target, path, v)?;
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(())
}

fn split(path: &str) -> Result<(String, String), String> {
    let i = path
        .rfind('/')
        .ok_or_else(|| format!("bad path {path:?}"))?;
    let last = path[i + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..i].to_string(), last))
}

fn add(target: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = v;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, v);
            Ok(())
        }
        Some(Value::Array(a)) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last.parse().map_err(|_| format!("bad index in {path:?}"))?;
                if i > a.len() {
                    return Err(format!("index out of range in {path:?}"));
                }
                a.insert(i, v);
            }
            Ok(())
        }
        _ => Err(format!("missing parent for {path:?}")),
    }
}

fn take(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    match target.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| format!("missing path {path:?}")),
        Some(Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("bad index in {path:?}"))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(format!("index out of range in {path:?}"))
            }
        }
        _ => Err(format!("missing path {path:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_conditions_by_type() {
        let mut node = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}});
        strategic(
            &mut node,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PIDPressure", "status": "False"}]}}),
        );
        assert_eq!(
            node["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}, {"type": "PIDPressure", "status": "False"}])
        );
        strategic(
            &mut node,
            &json!({"status": {"conditions": [{"type": "MemoryPressure", "$patch": "delete"}]}}),
        );
        assert_eq!(
            node["status"]["conditions"].as_array().map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn atomic_lists_are_replaced_whole() {
        let mut pod = json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]},
                             "status": {"containerStatuses": [{"name": "a", "ready": true}, {"name": "b", "ready": true}]}});
        strategic(
            &mut pod,
            &json!({"spec": {"tolerations": [{"key": "c"}]},
                    "status": {"containerStatuses": [{"name": "b", "ready": false}]}}),
        );
        assert_eq!(pod["spec"]["tolerations"], json!([{"key": "c"}]));
        assert_eq!(
            pod["status"]["containerStatuses"],
            json!([{"name": "b", "ready": false}])
        );
    }

    #[test]
    fn merge_and_json_patch() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
        json_patch(&mut v, &json!([{"op": "add", "path": "/l/-", "value": 4}, {"op": "replace", "path": "/a/c", "value": 9}, {"op": "remove", "path": "/a/d"}])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, json!({"a": {"c": 9}, "l": [3, 4]}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 1}])).is_err());
    }
}
