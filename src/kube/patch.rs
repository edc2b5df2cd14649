//! Two-way strategic merge patches: the minimal PATCH body that turns one version of an object
//! (or its status) into another, as client-go's `CreateTwoWayMergePatch` makes them for the
//! kubelet's node and pod status updates.

use serde_json::{Map, Value, json};

/// The merge key of a list field the agent patches, as the API's `patchMergeKey`. Every other
/// list is atomic (`containerStatuses`, `initContainerStatuses`, `images`, `volumesInUse`, ...):
/// the API server replaces it with what the patch holds, so a changed one is sent whole.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "conditions" | "addresses" => Some("type"),
        "podIPs" | "hostIPs" => Some("ip"),
        _ => None,
    }
}

/// Nothing: `null`, absent, or an empty object. Go's encoding writes a struct field without
/// `omitempty` as `{}` (a container status's `lastState`), which is the same as not written.
fn nothing(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(|m| m.values().all(nothing))
}

/// Equal as the API server's types see it: objects field by field with [`nothing`] the same
/// as absent, lists element by element, everything else exactly.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.iter()
                .all(|(k, v)| y.get(k).map_or(nothing(v), |w| same(v, w)))
                && y.iter().all(|(k, w)| x.contains_key(k) || nothing(w))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ if nothing(a) && nothing(b) => true,
        _ => a == b,
    }
}

/// A two-way strategic merge patch turning `old` into `new` (objects field by field, `null` for
/// a removed field; keyed lists element by element with `$setElementOrder`; other lists whole);
/// `None` when nothing differs. A `null` field and an absent one are the same (the API server
/// drops nulls; a patch deleting what is not there would be sent forever).
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    let (Value::Object(o), Value::Object(n)) = (old, new) else {
        return (!same(old, new)).then(|| new.clone());
    };
    let mut patch = Map::new();
    for (k, nv) in n {
        let Some(ov) = o.get(k) else {
            if !nothing(nv) {
                patch.insert(k.clone(), nv.clone());
            }
            continue;
        };
        if same(ov, nv) {
            continue;
        }
        match (merge_key(k), ov, nv) {
            (Some(key), Value::Array(oa), Value::Array(na)) => {
                let find = |v: &Value| oa.iter().find(|x| x.get(key) == v.get(key));
                let mut items: Vec<Value> = na
                    .iter()
                    .filter_map(|e| match find(e) {
                        None => Some(e.clone()),
                        Some(old) => diff(old, e).map(|mut d| {
                            if let (Value::Object(m), Some(kv)) = (&mut d, e.get(key)) {
                                m.insert(key.into(), kv.clone());
                            }
                            d
                        }),
                    })
                    .collect();
                for e in oa {
                    if !na.iter().any(|x| x.get(key) == e.get(key)) {
                        items.push(json!({key: e.get(key), "$patch": "delete"}));
                    }
                }
                let same_order = oa
                    .iter()
                    .map(|e| e.get(key))
                    .eq(na.iter().map(|e| e.get(key)));
                if items.is_empty() && same_order {
                    continue;
                }
                let order: Vec<Value> = na.iter().map(|e| json!({key: e.get(key)})).collect();
                patch.insert(format!("$setElementOrder/{k}"), Value::Array(order));
                patch.insert(k.clone(), Value::Array(items));
            }
            (None, Value::Object(_), Value::Object(_)) => {
                if let Some(d) = diff(ov, nv) {
                    patch.insert(k.clone(), d);
                }
            }
            _ => {
                patch.insert(k.clone(), nv.clone());
            }
        }
    }
    for (k, ov) in o {
        if !n.contains_key(k) && !nothing(ov) {
            patch.insert(k.clone(), Value::Null);
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_absent_are_the_same() {
        let old = json!({"conditions": [{"type": "Ready", "status": "True"}], "gone": null});
        let new = json!({"conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}], "extra": null});
        assert_eq!(diff(&old, &new), None);
        let flipped =
            json!({"conditions": [{"type": "Ready", "status": "False", "lastProbeTime": null}]});
        assert_eq!(
            diff(&old, &flipped),
            Some(json!({"$setElementOrder/conditions": [{"type": "Ready"}],
                        "conditions": [{"type": "Ready", "status": "False"}]}))
        );
    }

    /// What the API server returns for a container status has `lastState: {}` (a Go struct
    /// without omitempty); the agent's has none. The same status: no patch, no loop.
    #[test]
    fn empty_objects_are_nothing() {
        let api = json!({"containerStatuses": [{"name": "a", "lastState": {}, "state": {"running": {"startedAt": "t"}}}],
                         "conditions": [{"type": "Ready", "status": "True"}], "resize": {}});
        let ours = json!({"containerStatuses": [{"name": "a", "state": {"running": {"startedAt": "t"}}}],
                          "conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(diff(&api, &ours), None);
        let changed = json!({"containerStatuses": [{"name": "a", "state": {"running": {"startedAt": "u"}}}],
                             "conditions": [{"type": "Ready", "status": "True"}]});
        assert!(diff(&api, &changed).is_some());
    }

    #[test]
    fn atomic_lists_are_sent_whole() {
        let c = |name: &str, ready: bool| json!({"name": name, "ready": ready, "image": "x"});
        let old = json!({"containerStatuses": [c("a", false), c("b", false)],
                         "initContainerStatuses": [c("i", true)]});
        let new = json!({"containerStatuses": [c("a", true), c("b", false)],
                         "initContainerStatuses": [c("i", true)]});
        // One entry changed: the whole list goes, no directives (a real API server would
        // otherwise replace the list with the one changed entry and lose `b`).
        assert_eq!(
            diff(&old, &new),
            Some(json!({"containerStatuses": [c("a", true), c("b", false)]}))
        );
        assert_eq!(diff(&new, &new), None);
    }
}
