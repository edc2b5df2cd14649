//! The route table of pkg/kubelet/server/server.go and the small handlers (healthz, pods,
//! configz, metrics); query-string decoding shared by the handlers.

use super::{Request, Response, State};

type Handler = fn(&State, &Request) -> Response;

/// A route: a path (exact, or a prefix when it ends with `/`), its methods, whether it is a
/// debugging handler (405 when `enableDebuggingHandlers: false`), and its handler. Routes are
/// only ever called from [`super::dispatch`], after authentication and authorization.
pub struct Route {
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub debug: bool,
    /// The handler may block (streams, runtime calls): it always runs on a handler thread.
    /// Others run on the I/O thread when authn/authz need no API call.
    pub blocking: bool,
    pub(super) handler: Handler,
}

impl Route {
    const fn new(path: &'static str, methods: &'static [&'static str], handler: Handler) -> Route {
        Route {
            path,
            methods,
            debug: false,
            blocking: false,
            handler,
        }
    }

    const fn on_worker(self) -> Route {
        Route {
            blocking: true,
            ..self
        }
    }

    /// A debugging handler: 405 `Debug endpoints are disabled.` unless enableDebuggingHandlers.
    const fn debug(
        path: &'static str,
        methods: &'static [&'static str],
        handler: Handler,
    ) -> Route {
        Route {
            path,
            methods,
            debug: true,
            blocking: false,
            handler,
        }
    }
}

fn healthz(s: &State, r: &Request) -> Response {
    match super::healthz::answer(&r.head.path, &r.head.query, &s.syncloop) {
        Some((status, body)) => Response::text(status, body),
        None => Response::text(404, "404 page not found\n"),
    }
}

/// A PodList of `items`, serialized straight from the snapshot (no copy of the pods).
fn pod_list<'a>(items: impl Iterator<Item = &'a serde_json::Value>) -> Response {
    // Fields in the order serde_json's maps write them, as before.
    #[derive(serde::Serialize)]
    struct List<'a> {
        #[serde(rename = "apiVersion")]
        api_version: &'static str,
        items: Vec<&'a serde_json::Value>,
        kind: &'static str,
        metadata: serde_json::Map<String, serde_json::Value>,
    }
    let list = List {
        api_version: "v1",
        items: items.collect(),
        kind: "PodList",
        metadata: serde_json::Map::new(),
    };
    Response::bytes(
        200,
        "application/json",
        serde_json::to_vec(&list).unwrap_or_default(),
    )
}

fn pods(s: &State, _: &Request) -> Response {
    let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
    pod_list(list.iter().map(|p| &p.object))
}

/// Pods with a running container, as the runtime shows them.
fn running_pods(s: &State, _: &Request) -> Response {
    let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
    pod_list(list.iter().filter(|p| p.running()).map(|p| &p.object))
}

fn configz(s: &State, _: &Request) -> Response {
    Response::json(&serde_json::json!({"kubeletconfig": s.config_json}))
}

fn metrics(s: &State, _: &Request) -> Response {
    Response::bytes(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        s.metrics.render(s).into_bytes(),
    )
}

/// `/stats/summary` (GET or POST): the Summary API, with `?only_cpu_and_memory=true` the CPU
/// and memory alone. A stats read that fails is a 500 naming what failed, as the kubelet's.
fn stats_summary(s: &State, r: &Request) -> Response {
    if r.head.path != "/stats/summary" {
        return Response::text(404, "404 page not found\n");
    }
    let Some(stats) = &s.stats else {
        return Response::text(503, "stats are not available on this node\n");
    };
    let q = query_pairs(&r.head.query);
    let values: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "only_cpu_and_memory")
        .map(|(_, v)| v.as_str())
        .collect();
    let only = values == ["true"];
    let pods = crate::stats::sources(&s.pods);
    let runtime = match (&s.runtime, only) {
        (Some(rt), false) => match stats.runtime_fs(|| crate::stats::fs::RuntimeFs::fetch(rt)) {
            Ok(r) => r,
            Err(e) => {
                return Response::text(
                    500,
                    format!("Internal Error: failed to get imageFs stats: {e}\n"),
                );
            }
        },
        _ => Default::default(),
    };
    match stats.summary(&pods, only, &runtime, std::time::SystemTime::now()) {
        Ok(sum) => Response::bytes(
            200,
            "application/json",
            serde_json::to_vec(&sum).unwrap_or_default(),
        ),
        Err(e) => Response::text(
            500,
            format!("Internal Error: failed to get node info: {}\n", e.line()),
        ),
    }
}

/// `/metrics/resource`: the CPU and memory metrics metrics-server scrapes.
fn metrics_resource(s: &State, _: &Request) -> Response {
    let pods = crate::stats::sources(&s.pods);
    let sum = s.stats.as_ref().and_then(|st| {
        st.summary(
            &pods,
            true,
            &crate::stats::fs::RuntimeFs::default(),
            std::time::SystemTime::now(),
        )
        .map_err(|e| crate::warn!("/metrics/resource: {}", e.line()))
        .ok()
    });
    Response::bytes(
        200,
        crate::stats::resource::CONTENT_TYPE,
        crate::stats::resource::render(sum.as_ref()).into_bytes(),
    )
}

/// `/metrics/cadvisor`: cAdvisor's container and machine series, as Prometheus scrapes them.
fn metrics_cadvisor(s: &State, _: &Request) -> Response {
    let Some(stats) = &s.stats else {
        return Response::text(503, "stats are not available on this node\n");
    };
    let pods = crate::stats::sources(&s.pods);
    match stats.cadvisor(&pods, std::time::SystemTime::now()) {
        Ok(text) => Response::bytes(200, crate::stats::resource::CONTENT_TYPE, text.into_bytes()),
        Err(e) => Response::text(
            500,
            format!(
                "An error has occurred while serving metrics:\n\n{}\n",
                e.line()
            ),
        ),
    }
}

/// `/metrics/probes`: `prober_probe_total`.
fn metrics_probes(s: &State, _: &Request) -> Response {
    let text = s
        .probes
        .as_ref()
        .map(|h| h.probes.render())
        .unwrap_or_default();
    Response::bytes(200, crate::stats::resource::CONTENT_TYPE, text.into_bytes())
}

/// The route table (pkg/kubelet/server/server.go).
pub static ROUTES: &[Route] = &[
    Route::new("/healthz", &["GET", "HEAD"], healthz),
    Route::new("/healthz/ping", &["GET", "HEAD"], healthz),
    Route::new("/healthz/log", &["GET", "HEAD"], healthz),
    Route::new("/healthz/syncloop", &["GET", "HEAD"], healthz),
    Route::new("/pods", &["GET"], pods),
    Route::debug("/runningpods/", &["GET"], running_pods),
    Route::new("/metrics", &["GET"], metrics),
    Route::new("/configz", &["GET"], configz),
    Route::new("/metrics/cadvisor", &["GET"], metrics_cadvisor).on_worker(),
    Route::new("/metrics/resource", &["GET"], metrics_resource).on_worker(),
    Route::new("/metrics/probes", &["GET"], metrics_probes),
    Route::new("/stats/", &["GET", "POST"], stats_summary).on_worker(),
    Route::debug(
        "/containerLogs/",
        &["GET"],
        super::container_logs::container_logs,
    )
    .on_worker(),
    Route::debug("/exec/", &["GET", "POST"], super::streaming::exec).on_worker(),
    Route::debug("/attach/", &["GET", "POST"], super::streaming::attach).on_worker(),
    Route::debug(
        "/portForward/",
        &["GET", "POST"],
        super::streaming::port_forward,
    )
    .on_worker(),
    Route::debug("/run/", &["POST"], super::streaming::run).on_worker(),
    Route::debug("/logs/", &["GET"], super::node_logs::node_logs).on_worker(),
];

/// The route of `path`: exact matches win over prefixes; `/logs` is served like `/logs/`.
pub fn find(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.path == path).or_else(|| {
        ROUTES
            .iter()
            .filter(|r| r.path.ends_with('/'))
            .find(|r| path.starts_with(r.path) || path == r.path.trim_end_matches('/'))
    })
}

/// The query string's pairs, percent-decoded (`+` is a space), in order.
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    let decode = |s: &str| crate::cri::grpc::percent_decode(s.replace('+', " ").as_bytes());
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key`.
pub fn query<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A boolean as Go's strconv.ParseBool reads it; None for anything else.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_and_bools_parse_as_go() {
        let q = query_pairs(
            "command=sh&command=-c&command=echo+a%20b&sinceTime=2026-12-01T10%3A00%3A00Z&x",
        );
        assert_eq!(query(&q, "sinceTime"), Some("2026-12-01T10:00:00Z"));
        assert_eq!(query(&q, "x"), Some(""));
        let cmd: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cmd, ["sh", "-c", "echo a b"]);
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn routes_match_exactly_or_by_prefix() {
        assert_eq!(find("/pods").map(|r| r.path), Some("/pods"));
        assert_eq!(
            find("/containerLogs/a/b/c").map(|r| r.path),
            Some("/containerLogs/")
        );
        assert_eq!(find("/logs").map(|r| r.path), Some("/logs/"));
        assert!(find("/podsx").is_none());
    }
}
