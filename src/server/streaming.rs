//! `/exec`, `/attach` and `/portForward`: a CRI call for a streaming URL, then the upgraded
//! connection is spliced to the runtime's streaming server (the connection layer does that).

use super::routes::{query, query_pairs};
use super::{Request, Response, State};
use crate::cri::api;

/// The runtime id of running container `container` (app, init or ephemeral) of pod
/// `ns/pod`, or the 404.
fn container_id(s: &State, ns: &str, pod: &str, container: &str) -> Result<String, Response> {
    let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
    let p = list
        .iter()
        .find(|p| p.namespace == ns && p.name == pod)
        .ok_or_else(|| Response::text(404, format!("pod {pod:?} does not exist\n")))?;
    p.container(container)
        .filter(|c| c.state == crate::pods::view::State::Running)
        .and_then(|c| c.id.clone())
        .ok_or_else(|| {
            Response::text(
                404,
                format!("container {container:?} not found in pod {pod:?}\n"),
            )
        })
}

/// The 101 that hands the connection over to the runtime's streaming `url`.
fn upgrade_to(url: String) -> Response {
    let mut r = Response::bytes(101, "", Vec::new());
    r.upgrade = Some(url);
    r
}

/// The `<ns>/<pod>[/<more>]` of a streaming route's path, after an upgrade check; or the 400.
fn stream_target<'a>(r: &'a Request, route: &str, n: usize) -> Result<Vec<&'a str>, Response> {
    let parts: Vec<&str> = r.head.path.trim_start_matches(route).split('/').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        let shape = if n == 3 {
            "<namespace>/<pod>/<container>"
        } else {
            "<namespace>/<pod>"
        };
        return Err(Response::text(400, format!("path must be {route}{shape}")));
    }
    if r.head.header("upgrade").is_none() {
        return Err(Response::text(400, "Upgrade request required"));
    }
    Ok(parts)
}

fn stream_flags(q: &[(String, String)]) -> (bool, bool, bool, bool) {
    let flag = |k: &str| matches!(query(q, k), Some("1" | "true"));
    (
        flag("input") || flag("stdin"),
        flag("output") || flag("stdout"),
        flag("error") || flag("stderr"),
        flag("tty"),
    )
}

/// `POST /run/<ns>/<pod>[/<uid>]/<container>?cmd=a+b`: the command (split on spaces, as the
/// kubelet's legacy `cmd`) run to its end with ExecSync; its stdout then stderr, as JSON's content
/// type (as the kubelet's). A non-zero exit is a 500 naming the command and its code.
pub fn run(s: &State, r: &Request) -> Response {
    let parts: Vec<&str> = r.head.path.trim_start_matches("/run/").split('/').collect();
    if !(3..=4).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
        return Response::text(
            400,
            "path must be /run/<namespace>/<pod>[/<uid>]/<container>",
        );
    }
    let (ns, pod, container) = (parts[0], parts[1], parts[parts.len() - 1]);
    let id = match container_id(s, ns, pod, container) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let q = query_pairs(&r.head.query);
    let cmd: Vec<String> = query(&q, "cmd")
        .unwrap_or("")
        .split(' ')
        .map(String::from)
        .collect();
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    match rt.exec_sync(&api::ExecSyncRequest {
        container_id: id,
        cmd: cmd.clone(),
        timeout: 0,
    }) {
        Ok(out) if out.exit_code == 0 => {
            let mut body = out.stdout;
            body.extend_from_slice(&out.stderr);
            Response::bytes(200, "application/json", body)
        }
        Ok(out) => Response::text(
            500,
            format!(
                "command '{}' exited with {}: {}",
                cmd.join(" "),
                out.exit_code,
                String::from_utf8_lossy(&out.stderr)
            ),
        ),
        Err(e) => Response::text(500, format!("running {cmd:?} in {pod}/{container}: {e}")),
    }
}

/// `/exec/<ns>/<pod>/<container>?command=...&stdin=1&stdout=1&stderr=1&tty=1`: a CRI Exec,
/// whose streaming URL the connection is then spliced to (the upgrade passes through).
pub fn exec(s: &State, r: &Request) -> Response {
    let parts = match stream_target(r, "/exec/", 3) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let id = match container_id(s, parts[0], parts[1], parts[2]) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let q = query_pairs(&r.head.query);
    let cmd: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if cmd.is_empty() {
        return Response::text(400, "you must specify at least 1 command");
    }
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    let (stdin, stdout, stderr, tty) = stream_flags(&q);
    match rt.exec(&api::ExecRequest {
        container_id: id,
        cmd,
        tty,
        stdin,
        stdout,
        stderr,
    }) {
        Ok(resp) => upgrade_to(resp.url),
        Err(e) => Response::text(500, format!("failed to exec in container: {e}")),
    }
}

/// `/attach/<ns>/<pod>/<container>?stdin=1&stdout=1&stderr=1&tty=1`: a CRI Attach to the
/// container's own streams, spliced like exec.
pub fn attach(s: &State, r: &Request) -> Response {
    let parts = match stream_target(r, "/attach/", 3) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let id = match container_id(s, parts[0], parts[1], parts[2]) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    let (stdin, stdout, stderr, tty) = stream_flags(&query_pairs(&r.head.query));
    match rt.attach(&api::AttachRequest {
        container_id: id,
        stdin,
        tty,
        stdout,
        stderr,
    }) {
        Ok(resp) => upgrade_to(resp.url),
        Err(e) => Response::text(500, format!("failed to attach to container: {e}")),
    }
}

/// `/portForward/<ns>/<pod>[/<uid>]`: a CRI PortForward to the pod's sandbox (the ports come in
/// the stream's headers, or as `port=` for websockets), spliced like exec.
pub fn port_forward(s: &State, r: &Request) -> Response {
    let n = r
        .head
        .path
        .trim_start_matches("/portForward/")
        .split('/')
        .count();
    let parts = match stream_target(r, "/portForward/", n.clamp(2, 3)) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let uid = {
        let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
        list.iter()
            .find(|p| p.namespace == parts[0] && p.name == parts[1])
            .map(|p| p.uid.clone())
    };
    let Some(uid) = uid.filter(|u| parts.get(2).is_none_or(|want| want == u)) else {
        return Response::text(404, format!("pod {:?} does not exist\n", parts[1]));
    };
    let Some(rt) = &s.runtime else {
        return Response::text(500, "no container runtime");
    };
    let sandbox = rt
        .list_pod_sandbox(&api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: [(crate::pods::layout::POD_UID_LABEL.to_string(), uid)].into(),
                state: Some(api::PodSandboxStateValue {
                    state: api::PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            }),
        })
        .ok()
        .and_then(|l| l.items.into_iter().next());
    let Some(sandbox) = sandbox else {
        return Response::text(404, format!("pod {:?} has no running sandbox\n", parts[1]));
    };
    let port = query_pairs(&r.head.query)
        .into_iter()
        .filter(|(k, _)| k == "port")
        .filter_map(|(_, p)| p.parse::<i32>().ok())
        .collect();
    match rt.port_forward(&api::PortForwardRequest {
        pod_sandbox_id: sandbox.id,
        port,
    }) {
        Ok(resp) => upgrade_to(resp.url),
        Err(e) => Response::text(500, format!("failed to forward ports: {e}")),
    }
}
