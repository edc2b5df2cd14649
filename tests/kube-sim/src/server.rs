//! The HTTPS front: TLS with optional client certificates, authentication, impersonation,
//! authorization, and the REST verbs over the store (list/get/watch/create/update/patch/delete),
//! plus discovery, OpenAPI and the subresources a kubelet and kubectl use.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::{self, ApiError, RequestInfo, Res};
use crate::auth::{self, Attrs, Tokens, User};
use crate::store::{self, Store};
use crate::{openapi, patch, pod_rules, table};

pub struct Options {
    pub signing_duration: Duration,
    /// How far issued certificates' NotBefore lies in the past (kube-controller-manager: 5m).
    pub backdate: Duration,
    pub approve_serving_csrs: bool,
    pub bookmark_interval: Duration,
    /// TokenRequests are cut to this (the apiserver's --service-account-max-token-expiration).
    pub max_token_expiration: Option<Duration>,
}

pub struct State {
    pub kubelet: crate::proxy::KubeletClient,
    pub store: Mutex<Store>,
    pub tokens: Mutex<Tokens>,
    pub ca_pem: String,
    pub address: String,
    pub opts: Options,
}

impl State {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A response body: whole, or streamed from a channel (watch).
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
    /// A kubelet's answer, relayed as it arrives.
    Incoming(Incoming),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
            Body::Incoming(inc) => match Pin::new(inc).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => Poll::Ready(Some(Ok(Frame::data(d)))),
                    // Trailers are not relayed; wake again for the end of the stream.
                    Err(_) => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                },
                // A broken backend stream ends the relayed body.
                Poll::Ready(Some(Err(_))) | Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn respond(code: u16, ctype: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(body.into())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = ctype.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn json_resp(code: u16, v: &Value) -> Response<Body> {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn err_resp(e: &ApiError) -> Response<Body> {
    json_resp(e.code, &e.status())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

struct Req {
    method: String,
    path: String,
    raw_query: String,
    upgrade: Mutex<Option<hyper::upgrade::OnUpgrade>>,
    query: Vec<(String, String)>,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
    fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
    fn wants_table(&self) -> bool {
        self.header("accept")
            .is_some_and(|a| a.contains("as=Table"))
    }
    fn json_body(&self) -> Result<Value, ApiError> {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/vnd.kubernetes.protobuf"))
        {
            return crate::proto::to_json(&self.body)
                .map_err(|e| ApiError::new(415, "UnsupportedMediaType", e));
        }
        serde_json::from_slice(&self.body).map_err(|e| ApiError::bad_request(format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: {e}")))
    }
}

/// Serves one HTTP request. `cert_user` is the identity from a verified client certificate.
pub async fn handle(
    state: Arc<State>,
    cert_user: Option<User>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let upgrade = req
        .headers()
        .contains_key("upgrade")
        .then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return err_resp(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    if body.len() > 3 * 1024 * 1024 {
        return err_resp(&ApiError::new(
            413,
            "RequestEntityTooLarge",
            "the request body is too large",
        ));
    }
    let r = Req {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        upgrade: Mutex::new(upgrade),
        query: parse_query(parts.uri.query()),
        headers: parts.headers,
        body,
    };
    // Authentication: client certificate, else bearer token, else anonymous.
    let user = match cert_user {
        Some(u) => u,
        None => match r
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
        {
            Some(tok) => {
                let found = {
                    let store = state.store();
                    let tokens = state.tokens();
                    auth::authenticate_token(&store, &tokens, tok.trim())
                };
                match found {
                    Some(u) => u,
                    None => return err_resp(&ApiError::new(401, "Unauthorized", "Unauthorized")),
                }
            }
            None => User::anonymous(),
        },
    };
    let user = match impersonate(&state, user, &r) {
        Ok(u) => u,
        Err(e) => return err_resp(&e),
    };
    let info = api::request_info(&r.method, &r.path, &r.query);
    let attrs = Attrs::from_info(&info);
    let allowed = auth::authorize(&state.store(), &user, &attrs);
    if !allowed {
        return err_resp(&forbidden(&user, &attrs));
    }
    let result = if info.is_resource {
        resource(&state, &user, &info, &r).await
    } else {
        non_resource(&state, &r)
    };
    match result {
        Ok(resp) => resp,
        Err(e) => err_resp(&e),
    }
}

fn forbidden(u: &User, a: &Attrs) -> ApiError {
    let mut e = ApiError::new(403, "Forbidden", auth::forbidden_message(u, a));
    if a.is_resource {
        e.details = Some(json!({"name": a.name, "group": a.group, "kind": a.resource}));
    }
    e
}

/// `Impersonate-User` / `Impersonate-Group` (kubectl --as / --as-group).
fn impersonate(state: &State, user: User, r: &Req) -> Result<User, ApiError> {
    let Some(name) = r.header("impersonate-user") else {
        return Ok(user);
    };
    let groups: Vec<String> = r
        .headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(String::from)
        .collect();
    let store = state.store();
    let check = |resource: &str, n: &str| {
        let a = Attrs {
            verb: "impersonate".into(),
            resource: resource.into(),
            name: n.into(),
            is_resource: true,
            ..Default::default()
        };
        if auth::authorize(&store, &user, &a) {
            Ok(())
        } else {
            Err(forbidden(&user, &a))
        }
    };
    check("users", name)?;
    for g in &groups {
        check("groups", g)?;
    }
    let mut gs = groups;
    if name != "system:anonymous" && !gs.iter().any(|g| g == "system:authenticated") {
        gs.push("system:authenticated".into());
    }
    Ok(User {
        name: name.to_string(),
        groups: gs,
        uid: String::new(),
    })
}

fn non_resource(state: &State, r: &Req) -> Result<Response<Body>, ApiError> {
    let p = r.path.trim_end_matches('/');
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    Ok(match p {
        "/healthz" | "/readyz" | "/livez" => respond(200, "text/plain; charset=utf-8", "ok"),
        "/version" => json_resp(
            200,
            &json!({
                "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "kube-sim", "gitTreeState": "clean",
                "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.3", "compiler": "gc", "platform": "linux/amd64"
            }),
        ),
        "/api" => json_resp(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.address.trim_start_matches("https://")}]}),
        ),
        "/apis" => json_resp(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": api::groups().iter().map(|g| group_doc(g)).collect::<Vec<_>>()}),
        ),
        "/openapi/v3" => json_resp(200, &openapi::root()),
        // Served as JSON only; clients asking for the protobuf form alone get 406.
        "/openapi/v2"
            if r.header("accept")
                .is_none_or(|a| a.contains("json") || a.contains("*/*")) =>
        {
            json_resp(200, &openapi::v2())
        }
        "/openapi/v2" => {
            return Err(ApiError::new(
                406,
                "NotAcceptable",
                "only application/json is supported",
            ));
        }
        _ => {
            if let Some(gv) = p.strip_prefix("/openapi/v3/") {
                return openapi::group_version(gv)
                    .map(|d| json_resp(200, &d))
                    .ok_or_else(not_found);
            }
            let parts: Vec<&str> = p.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["api", v] => resource_list("", v).ok_or_else(not_found)?,
                ["apis", g] if api::groups().contains(g) => json_resp(200, &{
                    let mut d = group_doc(g);
                    d["kind"] = json!("APIGroup");
                    d["apiVersion"] = json!("v1");
                    d
                }),
                ["apis", g, v] => resource_list(g, v).ok_or_else(not_found)?,
                _ => return Err(not_found()),
            }
        }
    })
}

fn group_doc(g: &str) -> Value {
    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
}

fn resource_list(group: &str, version: &str) -> Option<Response<Body>> {
    let rs: Vec<&Res> = api::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in rs {
        let mut main = json!({"name": r.resource, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": r.verbs});
        if !r.short.is_empty() {
            main["shortNames"] = json!(r.short);
        }
        out.push(main);
        for sub in r.subresources {
            let (kind, verbs): (&str, Vec<&str>) = match *sub {
                "status" => (r.kind, vec!["get", "patch", "update"]),
                "approval" => (r.kind, vec!["get", "patch", "update"]),
                "log" => ("Pod", vec!["get"]),
                "token" => ("TokenRequest", vec!["create"]),
                "binding" => ("Binding", vec!["create"]),
                "eviction" => ("Eviction", vec!["create"]),
                "exec" | "attach" | "portforward" => ("PodExecOptions", vec!["create", "get"]),
                _ => (
                    "NodeProxyOptions",
                    vec!["create", "delete", "get", "patch", "update"],
                ),
            };
            out.push(json!({"name": format!("{}/{sub}", r.resource), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json_resp(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    ))
}

// ---- selectors ----

fn lookup<'a>(o: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(o, |v, k| &v[k])
}

/// `fieldSelector`: `a.b=v`, `a.b==v`, `a.b!=v`, comma-separated.
fn field_match(o: &Value, sel: &str) -> bool {
    sel.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (path, want, neg) = if let Some((p, v)) = term.split_once("!=") {
            (p, v, true)
        } else if let Some((p, v)) = term.split_once("==") {
            (p, v, false)
        } else if let Some((p, v)) = term.split_once('=') {
            (p, v, false)
        } else {
            return false;
        };
        // Events' `source` label is the reporting component.
        let path = match path.trim() {
            "source" => "source.component",
            p => p,
        };
        let got = match lookup(o, path) {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        (got == want.trim()) != neg
    })
}

/// The values of `(a, b, c)` in a set-based selector term.
fn value_set(s: &str) -> Vec<&str> {
    s.trim()
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .collect()
}

/// A label selector's terms: split on the commas outside parentheses.
fn label_terms(sel: &str) -> Vec<&str> {
    let (mut depth, mut start, mut terms) = (0, 0, Vec::new());
    for (i, c) in sel.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&sel[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&sel[start..]);
    terms
}

/// `labelSelector`: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`.
fn label_match(o: &Value, sel: &str) -> bool {
    let labels = &o["metadata"]["labels"];
    let get = |k: &str| labels[k.trim()].as_str().map(String::from);
    label_terms(sel)
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|t| {
            if let Some((k, v)) = t.split_once("!=") {
                get(k).as_deref() != Some(v.trim())
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                get(k).as_deref() == Some(v.trim())
            } else if let Some(k) = t.strip_prefix('!') {
                get(k).is_none()
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                get(k).is_none_or(|v| !value_set(rest).contains(&v.as_str()))
            } else if let Some((k, rest)) = t.split_once(" in ") {
                get(k).is_some_and(|v| value_set(rest).contains(&v.as_str()))
            } else {
                get(t).is_some()
            }
        })
}

/// The field labels a resource's field selectors may name (the API server's
/// `GetAttrs`/field label conversion funcs): anything else is refused.
fn field_labels(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        "nodes" => &["spec.unschedulable"],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        "services" => &["spec.clusterIP", "spec.type"],
        "certificatesigningrequests" => &["spec.signerName"],
        _ => &[],
    }
}

/// A syntactically valid label key (`[prefix/]name`) or value, as the API server's parser.
fn label_ok(s: &str, key: bool) -> bool {
    let part = |p: &str, max: usize| {
        p.len() <= max
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && p.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
            && p.chars().last().is_none_or(|c| c.is_ascii_alphanumeric())
    };
    if !key {
        return part(s, 63);
    }
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    !name.is_empty()
        && part(name, 63)
        && prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && part(p, 253))
}

/// 400 for a field selector naming a label the resource does not support, or a label selector
/// that does not parse, as the API server answers them.
fn check_selectors(res: &Res, r: &Req) -> Result<(), ApiError> {
    if let Some(sel) = r.q("fieldSelector") {
        for term in sel.split(',').filter(|t| !t.is_empty()) {
            let path = term
                .split_once("!=")
                .or_else(|| term.split_once("=="))
                .or_else(|| term.split_once('='))
                .map(|(p, _)| p.trim())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "invalid selector: '{term}'; can't understand '{term}'"
                    ))
                })?;
            let generic = matches!(path, "metadata.name" | "metadata.namespace");
            let source = res.resource == "events" && path == "source.component";
            if !generic && !source && !field_labels(res.resource).contains(&path) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
        }
    }
    if let Some(sel) = r.q("labelSelector") {
        for t in label_terms(sel)
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let (k, values): (&str, Vec<&str>) = if let Some((k, v)) = t.split_once("!=") {
                (k, vec![v])
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                (k, vec![v])
            } else if let Some(k) = t.strip_prefix('!') {
                (k, vec![])
            } else if let Some((k, rest)) = t.split_once(" notin ").or_else(|| t.split_once(" in "))
            {
                let rest = rest.trim();
                if !rest.starts_with('(') || !rest.ends_with(')') {
                    return Err(ApiError::bad_request(format!(
                        "unable to parse requirement: found '{rest}', expected: '('"
                    )));
                }
                (k, value_set(rest))
            } else {
                (t, vec![])
            };
            let k = k.trim();
            if !label_ok(k, true) {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: <nil>: Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                )));
            }
            if let Some(v) = values
                .iter()
                .map(|v| v.trim())
                .find(|v| !label_ok(v, false))
            {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: <nil>: Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                )));
            }
        }
    }
    Ok(())
}

/// An event as a watch with a selector sees it, as the API server's watch cache makes it: an
/// object entering the selection is ADDED, one leaving it DELETED (its old state with the new
/// resourceVersion); None when it was and stays outside.
fn seen_through(
    ev: &store::Event,
    matches: &dyn Fn(&Value) -> bool,
) -> Option<(&'static str, Value)> {
    let now_in = matches(&ev.object);
    let was_in = ev.prev.as_ref().map(matches);
    match (ev.kind, was_in, now_in) {
        ("MODIFIED", Some(false), true) => Some(("ADDED", ev.object.clone())),
        ("MODIFIED", Some(true), false) => {
            let mut gone = ev.prev.clone().unwrap_or_default();
            gone["metadata"]["resourceVersion"] = ev.object["metadata"]["resourceVersion"].clone();
            Some(("DELETED", gone))
        }
        (_, _, true) => Some((ev.kind, ev.object.clone())),
        _ => None,
    }
}

fn selected(o: &Value, r: &Req) -> bool {
    r.q("fieldSelector").is_none_or(|s| field_match(o, s))
        && r.q("labelSelector").is_none_or(|s| label_match(o, s))
}

// ---- resources ----

async fn resource(
    state: &Arc<State>,
    user: &User,
    info: &RequestInfo,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let res = api::find(&info.group, &info.version, &info.resource).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })?;
    let ns = if res.namespaced {
        info.namespace.as_str()
    } else {
        ""
    };
    let sub_head = info.subresource.split('/').next().unwrap_or("");
    if !info.subresource.is_empty() && !res.subresources.contains(&sub_head) {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    if !info.subresource.is_empty() && !matches!(info.subresource.as_str(), "status" | "approval") {
        return subresource(state, user, res, ns, info, r).await;
    }
    match info.verb.as_str() {
        "list" => {
            check_selectors(res, r)?;
            let store = state.store();
            let rv = store.rv().to_string();
            let items: Vec<&Value> = store
                .list(res, ns)
                .into_iter()
                .filter(|o| selected(o, r))
                .collect();
            if r.wants_table() {
                return Ok(json_resp(
                    200,
                    &table::table(res, &items, &rv, r.q("includeObject").unwrap_or("Metadata")),
                ));
            }
            Ok(json_resp(
                200,
                &json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv}, "items": items}),
            ))
        }
        "get" => {
            let store = state.store();
            let o = store
                .get(res, ns, &info.name)
                .ok_or_else(|| ApiError::not_found(res, &info.name))?;
            if r.wants_table() {
                let rv = o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                return Ok(json_resp(
                    200,
                    &table::table(res, &[o], &rv, r.q("includeObject").unwrap_or("Metadata")),
                ));
            }
            Ok(json_resp(200, o))
        }
        "watch" => watch(state, res, ns, info, r),
        "create" => create(state, user, res, ns, r).map(|(code, o)| json_resp(code, &o)),
        "update" => {
            let body = r.json_body()?;
            check_body(res, ns, &info.name, &body, strict(r))?;
            let mut store = state.store();
            let cur = store
                .get(res, ns, &info.name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(res, &info.name))?;
            check_uid(&cur, &body)?;
            let mut merged = apply_subresource(res, &info.subresource, &cur, body);
            normalize(res, &mut merged);
            match info.subresource.as_str() {
                "" => pod_rules::check_pod_update(res, &info.name, &cur, &merged)?,
                "status" => pod_rules::check_pod_status_update(res, &info.name, &cur, &mut merged)?,
                _ => {}
            }
            let out = store.update(res, ns, &info.name, merged)?;
            Ok(json_resp(
                200,
                &finalize(&mut store, res, ns, &info.name, out)?,
            ))
        }
        "patch" => {
            let ctype = r
                .header("content-type")
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let p = r.json_body()?;
            let mut store = state.store();
            let cur = store
                .get(res, ns, &info.name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(res, &info.name))?;
            check_uid(&cur, &p)?;
            let mut next = cur.clone();
            match ctype.as_str() {
                "application/merge-patch+json" => patch::merge(&mut next, &p),
                "application/strategic-merge-patch+json" => patch::strategic(&mut next, &p),
                "application/json-patch+json" => patch::json_patch(&mut next, &p)
                    .map_err(|e| ApiError::new(422, "Invalid", e))?,
                other => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"
                        ),
                    ));
                }
            }
            // A patch may only change what the addressed (sub)resource owns.
            let mut next = apply_subresource(res, &info.subresource, &cur, next);
            normalize(res, &mut next);
            match info.subresource.as_str() {
                "" => pod_rules::check_pod_update(res, &info.name, &cur, &next)?,
                "status" => pod_rules::check_pod_status_update(res, &info.name, &cur, &mut next)?,
                _ => {}
            }
            (res.decode)(&next).map_err(|e| {
                ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {e}",
                    res.kind, res.version, res.kind
                ))
            })?;
            let out = store.update(res, ns, &info.name, next)?;
            Ok(json_resp(
                200,
                &finalize(&mut store, res, ns, &info.name, out)?,
            ))
        }
        "delete" => delete(state, res, ns, &info.name, r).map(|o| json_resp(200, &o)),
        other => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "verb {other} is not supported by kube-sim for {}",
                res.qualified()
            ),
        )),
    }
}

/// `fieldValidation=Strict`: unknown fields are an error. Without it (the API server's default,
/// Warn) they are accepted; kube-sim keeps them where the real server would drop them with a
/// warning.
fn strict(r: &Req) -> bool {
    r.q("fieldValidation") == Some("Strict")
}

/// Validates a request body: a decode (strict with `fieldValidation=Strict`), kind and namespace
/// consistent with the URL.
fn check_body(res: &Res, ns: &str, name: &str, body: &Value, strict: bool) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    // An empty or missing kind is taken from the URL, as the apiserver's decoder does.
    if let Some(k) = body["kind"].as_str()
        && !k.is_empty()
        && k != res.kind
    {
        return Err(ApiError::bad_request(format!(
            "{k} in version \"{}\" cannot be handled as a {}: the kind does not match",
            res.version, res.kind
        )));
    }
    match (res.decode)(body) {
        Err(e) if strict || !e.starts_with("strict decoding error") => {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                res.kind, res.version, res.kind
            )));
        }
        _ => {}
    }
    if res.namespaced
        && let Some(bns) = body["metadata"]["namespace"].as_str()
        && !bns.is_empty()
        && bns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if !name.is_empty()
        && let Some(bn) = body["metadata"]["name"].as_str()
        && bn != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({bn}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

/// What the apiserver does to every written object of a kind: Secret `stringData` is folded into
/// `data` (base64), as the Secret REST strategy does.
fn normalize(res: &Res, body: &mut Value) {
    if res.resource == "secrets"
        && let Some(Value::Object(sd)) = body.as_object_mut().and_then(|m| m.remove("stringData"))
    {
        use base64::Engine;
        if !body["data"].is_object() {
            body["data"] = json!({});
        }
        for (k, v) in sd {
            body["data"][k] =
                json!(base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or("")));
        }
    }
}

/// A `metadata.uid` in an update or patch is a precondition: it must be the stored object's.
fn check_uid(cur: &Value, body: &Value) -> Result<(), ApiError> {
    match (
        body["metadata"]["uid"].as_str(),
        cur["metadata"]["uid"].as_str(),
    ) {
        (Some(want), Some(have)) if !want.is_empty() && want != have => Err(ApiError::new(
            409,
            "Conflict",
            format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
        )),
        _ => Ok(()),
    }
}

/// Keeps what the addressed (sub)resource does not own from the current object.
fn apply_subresource(res: &Res, sub: &str, cur: &Value, mut next: Value) -> Value {
    match sub {
        "status" => {
            let mut out = cur.clone();
            out["status"] = next["status"].take();
            out["metadata"]["resourceVersion"] = next["metadata"]["resourceVersion"].take();
            out
        }
        "approval" => {
            let mut out = cur.clone();
            out["status"]["conditions"] = next["status"]["conditions"].take();
            out["metadata"]["resourceVersion"] = next["metadata"]["resourceVersion"].take();
            out
        }
        _ if res.resource == "certificatesigningrequests" => {
            // The main resource cannot change the request or the status.
            let mut out = next;
            out["spec"] = cur["spec"].clone();
            out["status"] = cur["status"].clone();
            out
        }
        _ if res.subresources.contains(&"status") && res.resource != "namespaces" => {
            let mut out = next;
            out["status"] = cur["status"].clone();
            out
        }
        _ => next,
    }
}

/// Removes an object whose deletion was pending once its finalizers are gone.
fn finalize(
    store: &mut Store,
    res: &Res,
    ns: &str,
    name: &str,
    obj: Value,
) -> Result<Value, ApiError> {
    let deleting = obj["metadata"]["deletionTimestamp"].is_string();
    let finalizers = obj["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if deleting && !finalizers && res.resource != "pods" {
        return store.remove(res, ns, name);
    }
    Ok(obj)
}

fn create(
    state: &Arc<State>,
    user: &User,
    res: &Res,
    ns: &str,
    r: &Req,
) -> Result<(u16, Value), ApiError> {
    let mut body = r.json_body()?;
    check_body(res, ns, "", &body, strict(r))?;
    if body.get("metadata").is_none_or(Value::is_null) {
        body["metadata"] = json!({});
    }
    let mut store = state.store();
    if res.namespaced {
        let nsr = api::find("", "v1", "namespaces")
            .ok_or_else(|| ApiError::bad_request("no namespaces"))?;
        if store.get(nsr, "", ns).is_none() {
            return Err(ApiError::not_found(nsr, ns));
        }
    }
    match res.resource {
        "tokenreviews" => {
            let tok = body["spec"]["token"].as_str().unwrap_or("").to_string();
            let tokens = state.tokens();
            let mut out = body.clone();
            out["status"] = match auth::authenticate_token(&store, &tokens, &tok) {
                Some(u) => {
                    json!({"authenticated": true, "user": {"username": u.name, "uid": u.uid, "groups": u.groups}, "audiences": ["https://kubernetes.default.svc.cluster.local"]})
                }
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            out["apiVersion"] = json!(res.api_version());
            out["kind"] = json!(res.kind);
            return Ok((201, out));
        }
        "subjectaccessreviews" | "selfsubjectaccessreviews" => {
            let spec = &body["spec"];
            let subject = if res.resource == "selfsubjectaccessreviews" {
                user.clone()
            } else {
                let groups: Vec<String> = spec["groups"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|g| g.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                User {
                    name: spec["user"].as_str().unwrap_or("").to_string(),
                    groups,
                    uid: spec["uid"].as_str().unwrap_or("").to_string(),
                }
            };
            let ra = &spec["resourceAttributes"];
            let na = &spec["nonResourceAttributes"];
            let s = |v: &Value| v.as_str().unwrap_or("").to_string();
            let a = if ra.is_object() {
                Attrs {
                    verb: s(&ra["verb"]),
                    group: s(&ra["group"]),
                    resource: s(&ra["resource"]),
                    subresource: s(&ra["subresource"]),
                    namespace: s(&ra["namespace"]),
                    name: s(&ra["name"]),
                    path: String::new(),
                    is_resource: true,
                }
            } else {
                Attrs {
                    verb: s(&na["verb"]),
                    path: s(&na["path"]),
                    ..Default::default()
                }
            };
            let allowed = auth::authorize(&store, &subject, &a);
            let mut out = body.clone();
            out["status"] = if allowed {
                json!({"allowed": true, "reason": "allowed by kube-sim RBAC"})
            } else {
                json!({"allowed": false})
            };
            out["apiVersion"] = json!(res.api_version());
            out["kind"] = json!(res.kind);
            return Ok((201, out));
        }
        "certificatesigningrequests" => {
            let req_b64 = body["spec"]["request"].as_str().unwrap_or("");
            let pem = {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(req_b64)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default()
            };
            if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
                return Err(ApiError::invalid(
                    res,
                    body["metadata"]["name"].as_str().unwrap_or(""),
                    &[(
                        "spec.request",
                        "Invalid value: \"...\": PEM block type must be CERTIFICATE REQUEST".into(),
                    )],
                ));
            }
            if body["spec"]["signerName"].as_str().unwrap_or("").is_empty() {
                return Err(ApiError::invalid(
                    res,
                    body["metadata"]["name"].as_str().unwrap_or(""),
                    &[("spec.signerName", "Required value".into())],
                ));
            }
            if body["spec"]["usages"]
                .as_array()
                .is_none_or(|u| u.is_empty())
            {
                return Err(ApiError::invalid(
                    res,
                    body["metadata"]["name"].as_str().unwrap_or(""),
                    &[("spec.usages", "Required value".into())],
                ));
            }
            body["spec"]["username"] = json!(user.name);
            body["spec"]["groups"] = json!(user.groups);
            if !user.uid.is_empty() {
                body["spec"]["uid"] = json!(user.uid);
            }
            body["status"] = json!({});
        }
        "pods" => {
            if let Some(node) = user.name.strip_prefix("system:node:")
                && user.in_group("system:nodes")
            {
                let node_uid = api::find("", "v1", "nodes")
                    .and_then(|r| store.get(r, "", node))
                    .and_then(|n| n["metadata"]["uid"].as_str().map(String::from));
                if let Err(why) =
                    auth::node_restriction_pod_create(node, node_uid.as_deref(), &body)
                {
                    let name = body["metadata"]["name"].as_str().unwrap_or("");
                    let mut e = ApiError::new(
                        403,
                        "Forbidden",
                        format!("pods {name:?} is forbidden: {why}"),
                    );
                    e.details = Some(json!({"name": name, "kind": "pods"}));
                    return Err(e);
                }
            }
            service_account_admission(&store, ns, &mut body)?;
            // As the pod strategy's PrepareForCreate: whatever status was sent is replaced.
            body["status"] =
                json!({"phase": "Pending", "qosClass": pod_rules::qos_class(&body["spec"])});
        }
        "namespaces" => {
            body["status"] = json!({"phase": "Active"});
            body["spec"] = json!({"finalizers": ["kubernetes"]});
        }
        _ => {}
    }
    normalize(res, &mut body);
    let out = store.create(res, ns, body)?;
    Ok((201, out))
}

/// The ServiceAccount admission plugin: default the ServiceAccount, require it to exist, and mount
/// its token, the cluster CA and the namespace as the `kube-api-access-*` projected volume.
fn service_account_admission(store: &Store, ns: &str, pod: &mut Value) -> Result<(), ApiError> {
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Ok(());
    }
    let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
    let spec = &mut pod["spec"];
    let sa_name = match spec["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        Some(s) => s.to_string(),
        None => "default".to_string(),
    };
    spec["serviceAccountName"] = json!(sa_name);
    spec["serviceAccount"] = json!(sa_name);
    let sas = api::find("", "v1", "serviceaccounts")
        .ok_or_else(|| ApiError::bad_request("no serviceaccounts"))?;
    let Some(sa) = store.get(sas, ns, &sa_name) else {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "pods \"{name}\" is forbidden: error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found"
            ),
        ));
    };
    let automount = spec["automountServiceAccountToken"]
        .as_bool()
        .or(sa["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|_| ALNUM[rand::random_range(0..ALNUM.len())] as char)
        .collect();
    let vol_name = format!("kube-api-access-{suffix}");
    let volume = json!({"name": vol_name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    ]}});
    let mut used = false;
    for list in ["initContainers", "containers"] {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            if c["volumeMounts"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT))
            {
                continue;
            }
            let mount = json!({"name": vol_name, "readOnly": true, "mountPath": MOUNT});
            match c["volumeMounts"].as_array_mut() {
                Some(m) => m.push(mount),
                None => c["volumeMounts"] = json!([mount]),
            }
            used = true;
        }
    }
    if used {
        match spec["volumes"].as_array_mut() {
            Some(v) => v.push(volume),
            None => spec["volumes"] = json!([volume]),
        }
    }
    Ok(())
}

fn delete(state: &Arc<State>, res: &Res, ns: &str, name: &str, r: &Req) -> Result<Value, ApiError> {
    let opts: Value = if r.body.is_empty() {
        json!({})
    } else {
        r.json_body()?
    };
    let mut store = state.store();
    let cur = store
        .get(res, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(res, name))?;
    if let Some(uid) = opts["preconditions"]["uid"].as_str()
        && cur["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::new(
            409,
            "Conflict",
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                cur["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    let grace: Option<i64> = opts["gracePeriodSeconds"]
        .as_i64()
        .or_else(|| r.q("gracePeriodSeconds").and_then(|g| g.parse().ok()));
    if res.resource == "pods" && cur["spec"]["nodeName"].is_string() {
        let grace = grace.unwrap_or_else(|| {
            cur["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        });
        if grace > 0 {
            let mut next = cur.clone();
            let already = cur["metadata"]["deletionGracePeriodSeconds"].as_i64();
            if already.is_none_or(|a| grace < a) {
                let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
                next["metadata"]["deletionTimestamp"] =
                    json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                return store.set_deletion(res, ns, name, next);
            }
            return Ok(cur);
        }
    }
    if cur["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        let mut next = cur.clone();
        next["metadata"]["deletionTimestamp"] = json!(store::now());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        return store.set_deletion(res, ns, name, next);
    }
    store.remove(res, ns, name)
}

fn watch(
    state: &Arc<State>,
    res: &'static Res,
    ns: &str,
    info: &RequestInfo,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    check_selectors(res, r)?;
    let rv_param = r.q("resourceVersion").unwrap_or("");
    let bookmarks = r.q("allowWatchBookmarks") == Some("true");
    let timeout = r
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let name = if info.name.is_empty() {
        None
    } else {
        Some(info.name.clone())
    };
    let field = r.q("fieldSelector").map(String::from);
    let label = r.q("labelSelector").map(String::from);
    let matches = move |o: &Value| {
        name.as_ref()
            .is_none_or(|n| o["metadata"]["name"].as_str() == Some(n.as_str()))
            && field.as_ref().is_none_or(|s| field_match(o, s))
            && label.as_ref().is_none_or(|s| label_match(o, s))
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let line =
        |kind: &str, o: &Value| Bytes::from(format!("{}\n", json!({"type": kind, "object": o})));
    let (initial, mut sub, start_rv) = {
        let store = state.store();
        let cur = store.rv();
        if rv_param.is_empty() || rv_param == "0" {
            let objs: Vec<Bytes> = store
                .list(res, ns)
                .into_iter()
                .filter(|o| matches(o))
                .map(|o| line("ADDED", o))
                .collect();
            let (_, sub) = store
                .watch_from(res, ns, cur)
                .ok_or_else(|| ApiError::bad_request("watch failed"))?;
            (objs, sub, cur)
        } else {
            let from: u64 = rv_param.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid resource version {rv_param:?}"))
            })?;
            match store.watch_from(res, ns, from) {
                Some((past, sub)) => (
                    past.iter()
                        .filter_map(|e| seen_through(e, &matches))
                        .map(|(kind, o)| line(kind, &o))
                        .collect(),
                    sub,
                    cur,
                ),
                None => {
                    let gone = ApiError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {from} ({cur})"),
                    );
                    let body = format!("{}\n", json!({"type": "ERROR", "object": gone.status()}));
                    return Ok(respond(200, "application/json", body));
                }
            }
        }
    };
    let gr = store::gr(res);
    let ns = ns.to_string();
    let kind = res.kind;
    let api_version = res.api_version();
    let interval = state.opts.bookmark_interval;
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_rv = start_rv;
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = tick.tick() => {
                    if bookmarks {
                        let bm = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last_rv.to_string()}}});
                        if tx.send(Bytes::from(format!("{bm}\n"))).await.is_err() { return; }
                    }
                }
                ev = sub.recv() => {
                    let Ok(ev) = ev else { return };  // lagged or closed: the client re-watches
                    if ev.rv <= last_rv { continue; }
                    // Bookmarks carry the newest version seen, of any object, as the apiserver's do.
                    last_rv = ev.rv;
                    if ev.gr != gr || (!ns.is_empty() && ev.namespace != ns) { continue; }
                    let Some((kind, obj)) = seen_through(&ev, &matches) else { continue };
                    if tx.send(line(kind, &obj)).await.is_err() { return; }
                }
            }
        }
    });
    let mut resp = Response::new(Body::Stream(rx));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        "transfer-encoding",
        hyper::header::HeaderValue::from_static("chunked"),
    );
    Ok(resp)
}

async fn subresource(
    state: &Arc<State>,
    user: &User,
    res: &Res,
    ns: &str,
    info: &RequestInfo,
    r: &Req,
) -> Result<Response<Body>, ApiError> {
    let _ = user;
    match (res.resource, info.subresource.as_str(), info.verb.as_str()) {
        ("serviceaccounts", "token", "create") => {
            let body = r.json_body()?;
            k8s_openapi::api::authentication::v1::TokenRequest::deserialize_strict(&body)?;
            let (sa_uid, exp_secs) = {
                let store = state.store();
                let sa = store
                    .get(res, ns, &info.name)
                    .ok_or_else(|| ApiError::not_found(res, &info.name))?;
                let mut exp = body["spec"]["expirationSeconds"]
                    .as_i64()
                    .unwrap_or(3600)
                    .max(600);
                if let Some(max) = state.opts.max_token_expiration {
                    exp = exp.min(max.as_secs() as i64);
                }
                (
                    sa["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                    exp,
                )
            };
            let mut raw = [0u8; 32];
            rand::fill(&mut raw[..]);
            let token = format!(
                "kube-sim.{}",
                raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            let exp = auth::unix_now() + exp_secs;
            let u = User {
                name: format!("system:serviceaccount:{ns}:{}", info.name),
                groups: vec![
                    "system:serviceaccounts".into(),
                    format!("system:serviceaccounts:{ns}"),
                    "system:authenticated".into(),
                ],
                uid: sa_uid,
            };
            state.tokens().issued.insert(token.clone(), (u, exp));
            let ts = chrono::DateTime::from_timestamp(exp, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let mut out = body.clone();
            out["apiVersion"] = json!("authentication.k8s.io/v1");
            out["kind"] = json!("TokenRequest");
            out["metadata"]["name"] = json!(info.name);
            out["metadata"]["namespace"] = json!(ns);
            out["spec"]["expirationSeconds"] = json!(exp_secs);
            out["status"] = json!({"token": token, "expirationTimestamp": ts});
            Ok(json_resp(201, &out))
        }
        ("pods", "binding", "create") => {
            let body = r.json_body()?;
            let target = body["target"]["name"].as_str().unwrap_or("").to_string();
            let mut store = state.store();
            let mut pod = store
                .get(res, ns, &info.name)
                .cloned()
                .ok_or_else(|| ApiError::not_found(res, &info.name))?;
            if pod["spec"]["nodeName"].is_string() {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on pods/binding \"{}\": pod {} is already assigned to node \"{}\"",
                        info.name,
                        info.name,
                        pod["spec"]["nodeName"].as_str().unwrap_or("")
                    ),
                ));
            }
            pod["spec"]["nodeName"] = json!(target);
            store.update(res, ns, &info.name, pod)?;
            Ok(json_resp(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        ("pods", "log" | "exec" | "attach" | "portforward", _) => {
            let (endpoint, path) = {
                let store = state.store();
                let pod = store
                    .get(res, ns, &info.name)
                    .ok_or_else(|| ApiError::not_found(res, &info.name))?;
                let node_name = pod["spec"]["nodeName"].as_str().unwrap_or("");
                if node_name.is_empty() {
                    return Err(ApiError::bad_request(format!(
                        "pod {} does not have a host assigned",
                        info.name
                    )));
                }
                let nodes = api::find("", "v1", "nodes")
                    .ok_or_else(|| ApiError::bad_request("no nodes"))?;
                let node = store
                    .get(nodes, "", node_name)
                    .ok_or_else(|| ApiError::not_found(nodes, node_name))?;
                let endpoint = crate::proxy::kubelet_endpoint(node)?;
                let sub = info.subresource.as_str();
                let path = if sub == "portforward" {
                    format!("/portForward/{ns}/{}", info.name)
                } else {
                    let names: Vec<&str> = pod["spec"]["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c["name"].as_str())
                        .collect();
                    let container = match r.q("container") {
                        Some(c) if !c.is_empty() => c.to_string(),
                        _ if names.len() == 1 => names[0].to_string(),
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "a container name must be specified for pod {}, choose one of: [{}]",
                                info.name,
                                names.join(" ")
                            )));
                        }
                    };
                    let prefix = match sub {
                        "log" => "containerLogs",
                        "exec" => "exec",
                        _ => "attach",
                    };
                    format!("/{prefix}/{ns}/{}/{container}", info.name)
                };
                (endpoint, path)
            };
            forward(state, r, endpoint, path).await
        }
        ("nodes", sub, _) if sub == "proxy" || sub.starts_with("proxy/") => {
            let endpoint = {
                let store = state.store();
                let node = store
                    .get(res, "", &info.name)
                    .ok_or_else(|| ApiError::not_found(res, &info.name))?;
                crate::proxy::kubelet_endpoint(node)?
            };
            // As the API server's node proxy: never to a loopback or link-local address.
            let ip = endpoint.0;
            let link_local = match ip {
                std::net::IpAddr::V4(v4) => v4.is_link_local(),
                std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            if ip.is_loopback() || link_local {
                return Err(ApiError::bad_request("address not allowed"));
            }
            let rest = sub.strip_prefix("proxy").unwrap_or("");
            let path = if rest.is_empty() {
                "/".to_string()
            } else {
                rest.to_string()
            };
            forward(state, r, endpoint, path).await
        }
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!(
                "{} {}/{} is not supported",
                info.verb, res.resource, info.subresource
            ),
        )),
    }
}

/// Relays the request to the kubelet at `endpoint` under `path`, with the original query.
async fn forward(
    state: &State,
    r: &Req,
    endpoint: (std::net::IpAddr, u16),
    path: String,
) -> Result<Response<Body>, ApiError> {
    let pq = if r.raw_query.is_empty() {
        path
    } else {
        format!("{path}?{}", r.raw_query)
    };
    let up = r.upgrade.lock().unwrap_or_else(|p| p.into_inner()).take();
    crate::proxy::forward(
        &state.kubelet,
        endpoint,
        &r.method,
        &pq,
        &r.headers,
        r.body.clone(),
        up,
    )
    .await
}

trait StrictDecode {
    fn deserialize_strict(v: &Value) -> Result<(), ApiError>;
}

impl<T: serde::de::DeserializeOwned + serde::Serialize> StrictDecode for T {
    fn deserialize_strict(v: &Value) -> Result<(), ApiError> {
        api::strict::<T>(v).map_err(ApiError::bad_request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let o = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "fe"}}, "spec": {"nodeName": "n1"}});
        assert!(field_match(&o, "spec.nodeName=n1"));
        assert!(!field_match(&o, "spec.nodeName=n2"));
        assert!(field_match(&o, "spec.nodeName!=n2,metadata.name=a"));
        assert!(label_match(&o, "app=web,tier in (fe,be)"));
        assert!(!label_match(&o, "app=web,tier notin (fe)"));
        assert!(label_match(&o, "!missing,app"));
    }

    /// As the API server: a selector on an unsupported field or a label that does not parse is
    /// refused; a watch with a selector sees objects enter (ADDED) and leave (DELETED) it.
    #[test]
    fn selector_checks_and_transitions() {
        assert!(field_labels("pods").contains(&"spec.nodeName"));
        assert!(!field_labels("configmaps").contains(&"data.a"));
        assert!(label_ok("app.kubernetes.io/name", true) && label_ok("web-1", false));
        assert!(!label_ok("a b", true) && !label_ok("-x", false) && !label_ok("/x", true));
        let ev = |prev: Value, now: Value| store::Event {
            rv: 9,
            kind: "MODIFIED",
            gr: "/configmaps".into(),
            namespace: "default".into(),
            object: now,
            prev: Some(prev),
        };
        let with = |l: &str| json!({"metadata": {"name": "w", "resourceVersion": "9", "labels": {"x": l}}});
        let m = |o: &Value| label_match(o, "x=y");
        let kind = |e: &store::Event| seen_through(e, &m).map(|(k, _)| k);
        assert_eq!(kind(&ev(with("n"), with("y"))), Some("ADDED"));
        assert_eq!(kind(&ev(with("y"), with("y"))), Some("MODIFIED"));
        assert_eq!(kind(&ev(with("n"), with("n"))), None);
        let gone = seen_through(&ev(with("y"), with("n")), &m).unwrap_or_else(|| panic!("DELETED"));
        assert_eq!(gone.0, "DELETED");
        assert_eq!(gone.1["metadata"]["labels"]["x"], "y", "the old state");
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some(
            "fieldSelector=spec.nodeName%3Dn1&watch=true&labelSelector=a+b",
        ));
        assert_eq!(q[0], ("fieldSelector".into(), "spec.nodeName=n1".into()));
        assert_eq!(q[2].1, "a b");
    }
}
