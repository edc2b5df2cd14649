//! OpenAPI v3 discovery for kubectl: the root path index and one document per group-version
//! whose PATCH operations carry `x-kubernetes-group-version-kind` and the `fieldValidation`
//! parameter, so kubectl 1.32 leaves validation to the server (`fieldValidation=Strict`).
//! /openapi/v2 is served as JSON only (kubectl asks for protobuf, and only as a fallback); every
//! kind has a PATCH operation so that fallback is never needed.

use serde_json::{Map, Value, json};

use crate::api::{RESOURCES, Res};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub fn root() -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        let p = gv_path(r.group, r.version);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=kube-sim-1")}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str, inn: &str) -> Value {
    json!({"name": name, "in": inn, "schema": {"type": "string", "uniqueItems": true}})
}

fn op(r: &Res, action: &str, op_id: &str) -> Value {
    let mut params = vec![param("dryRun", "query"), param("fieldManager", "query")];
    if matches!(action, "patch" | "put" | "post") {
        params.push(param("fieldValidation", "query"));
    }
    json!({
        "operationId": op_id,
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind}
    })
}

/// The document for `api/v1` or `apis/<group>/<version>`; `None` for a path not served.
pub fn group_version(path: &str) -> Option<Value> {
    let served: Vec<&Res> = RESOURCES
        .iter()
        .filter(|r| gv_path(r.group, r.version) == path)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for r in served {
        let base = format!("/{path}");
        let (coll, item) = if r.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", r.resource),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.resource),
            )
        } else {
            (
                format!("{base}/{}", r.resource),
                format!("{base}/{}/{{name}}", r.resource),
            )
        };
        let id = |verb: &str| format!("{verb}{}", r.kind);
        paths.insert(
            coll,
            json!({"post": op(r, "post", &id("create")), "get": op(r, "list", &id("list"))}),
        );
        // Create-only kinds (TokenReview, SubjectAccessReview) get a PATCH entry too: kubectl
        // looks for fieldValidation support on a PATCH operation of the kind, and would otherwise
        // fall back to client-side validation with the protobuf-only /openapi/v2.
        paths.insert(item, json!({"get": op(r, "get", &id("read")), "put": op(r, "put", &id("replace")), "patch": op(r, "patch", &id("patch")), "delete": op(r, "delete", &id("delete"))}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    }))
}

/// A Swagger 2.0 document listing the same operations (JSON form of /openapi/v2).
pub fn v2() -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        if let Some(Value::Object(doc)) =
            group_version(&gv_path(r.group, r.version)).map(|d| d["paths"].clone())
        {
            paths.extend(doc);
        }
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "definitions": {}})
}
