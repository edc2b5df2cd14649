//! The kubelet API on port 10250: TLS (`tls`: the serving certificate hot-swapped, client
//! certificates asked for and checked after the handshake), the connection layer (`conn`, with
//! its slot table `slots`) over the sans-IO HTTP core (`http`), and a router (`routes`) whose
//! every route is reached only through authentication and authorization (`auth`). Responses are
//! whole bodies or streams produced on threads of their own (`stream`); healthz is plain HTTP on
//! its own port (`healthz`).

pub mod auth;
mod conn;
mod container_logs;
pub mod healthz;
pub mod http;
pub mod journal;
mod log_query;
pub mod metrics;
mod node_logs;
mod re2;
pub mod routes;
mod slots;
pub mod stream;
mod streaming;
pub mod tls;

pub use conn::{MAX_CONNS, MAX_HANDSHAKES, WORKERS, serve};
pub use healthz::serve_healthz;
pub use routes::ROUTES;
pub use tls::tls_config;

use std::net::SocketAddr;

pub use auth::Cert;

use auth::{Auth, Decision, User};
use http::RequestHead;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listening on {addr}: {err}")]
    Listen {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("client CA file {path}: {message}")]
    ClientCa { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// A response's body: all of it, or a stream of chunks made by a producer on a thread of its
/// own and written as they come (chunked), with backpressure: the producer waits while the
/// client is slow, so memory stays bounded whatever the size.
pub enum Body {
    Full(Vec<u8>),
    Stream(stream::Producer),
}

/// What a handler answers.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Body,
    pub headers: Vec<(&'static str, String)>,
    /// The connection is to be spliced to this runtime streaming URL (exec, attach,
    /// port-forward), the request's upgrade passed on, as the kubelet proxies them.
    pub upgrade: Option<String>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::bytes(
            status,
            "text/plain; charset=utf-8",
            body.into().into_bytes(),
        )
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body: Body::Full(body),
            headers: Vec::new(),
            upgrade: None,
        }
    }

    pub fn json(v: &serde_json::Value) -> Response {
        Response::bytes(
            200,
            "application/json",
            serde_json::to_vec(v).unwrap_or_default(),
        )
    }

    /// A streamed 200 whose body `producer` writes.
    pub fn stream(content_type: &'static str, producer: stream::Producer) -> Response {
        Response {
            status: 200,
            content_type,
            body: Body::Stream(producer),
            headers: Vec::new(),
            upgrade: None,
        }
    }

    /// The length of a whole body (streams have none).
    pub fn full_len(&self) -> Option<usize> {
        match &self.body {
            Body::Full(b) => Some(b.len()),
            Body::Stream(_) => None,
        }
    }
}

/// One request, as a handler sees it (already authenticated and authorized).
pub struct Request<'a> {
    pub head: &'a RequestHead,
    pub body: &'a [u8],
    pub user: &'a User,
}

/// Everything the server needs.
pub struct State {
    pub auth: Auth,
    pub config_json: serde_json::Value,
    pub debugging_handlers: bool,
    pub metrics: metrics::Metrics,
    /// The pods the agent runs (the pod owner writes it).
    pub pods: crate::pods::Snapshot,
    pub pod_logs_dir: std::path::PathBuf,
    /// `/logs/` serves this directory (`/var/log`) when `enableSystemLogHandler`.
    pub node_log_dir: std::path::PathBuf,
    pub system_log_handler: bool,
    /// The node log query (`enableSystemLogQuery` with the NodeLogQuery gate): journald.
    pub log_query: Option<std::sync::Arc<dyn journal::Journal>>,
    /// The container runtime, for exec and the containers' log paths.
    pub runtime: Option<std::sync::Arc<crate::cri::Runtime>>,
    /// The stats readers behind /stats/summary and /metrics/resource.
    pub stats: Option<std::sync::Arc<crate::stats::Collector>>,
    /// The probe counters behind /metrics/probes (the pod machinery's health record).
    pub probes: Option<std::sync::Arc<crate::pods::runner::Health>>,
    /// The pod sync loop's health, for `/healthz/syncloop`.
    pub syncloop: healthz::SyncLoopCheck,
}

/// Authentication, authorization, then the route: the only way into a handler. May call the
/// API server (TokenReview, SubjectAccessReview), so it runs on a handler thread.
pub fn dispatch(state: &State, cert: auth::Cert, head: &RequestHead, body: &[u8]) -> Response {
    let decision = state
        .auth
        .decide(cert, head.header("authorization"), &head.method, &head.path);
    respond(state, decision, head, body)
}

/// [`dispatch`] for a request that can be answered without blocking: a non-blocking route (or
/// none) and an authn/authz decision that needs no API call. `None`: use [`dispatch`].
pub fn dispatch_inline(
    state: &State,
    cert: auth::Cert,
    head: &RequestHead,
    body: &[u8],
) -> Option<Response> {
    if routes::find(&head.path).is_some_and(|r| r.blocking) {
        return None;
    }
    let decision =
        state
            .auth
            .decide_cached(cert, head.header("authorization"), &head.method, &head.path)?;
    Some(respond(state, decision, head, body))
}

fn respond(state: &State, decision: Decision, head: &RequestHead, body: &[u8]) -> Response {
    let user = match decision {
        Decision::Allow(u) => u,
        Decision::Unauthenticated => return Response::text(401, "Unauthorized"),
        Decision::Forbidden(d) => return Response::text(403, format!("Forbidden ({d})")),
        Decision::Error(d) => return Response::text(500, format!("Authorization error ({d})")),
    };
    let Some(route) = routes::find(&head.path) else {
        return Response::text(404, "404 page not found\n");
    };
    if route.debug && !state.debugging_handlers {
        return Response::text(405, "Debug endpoints are disabled.");
    }
    if !route.methods.contains(&head.method.as_str()) {
        let mut r = Response::text(405, "Method Not Allowed");
        r.headers.push(("Allow", route.methods.join(", ")));
        return r;
    }
    (route.handler)(
        state,
        &Request {
            head,
            body,
            user: &user,
        },
    )
}
