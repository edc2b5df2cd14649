//! `/containerLogs/<ns>/<pod>/<container>`: a container's CRI log file as `kubectl logs` shows
//! it (`follow`, `previous`, `timestamps`, `tailLines` or the legacy `tail`, `limitBytes`,
//! `sinceSeconds`, `sinceTime`), for app, init and ephemeral containers, with the kubelet's
//! texts. The body streams from a producer thread: tail and since are found by seeking, so a
//! log of hundreds of MB costs a few chunks of memory, and `follow` reads on as the log grows
//! until the container stops or the client goes.

use std::time::Duration;

use super::routes::{parse_bool, query, query_pairs};
use super::stream::Sink;
use super::{Request, Response, State};
use crate::logs::{LogReader, Options, Progress};
use crate::pods::view::{self, ContainerView};

/// How often a follower looks for more of a log at its end.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn bad_request(message: &str) -> Response {
    Response::text(400, format!("{{\"message\": \"{message}\"}}"))
}

/// The query, as the kubelet decodes and validates PodLogOptions: an undecodable value is 400
/// `Unable to decode query.`, an invalid one 422 `Invalid request.`.
fn options(q: &[(String, String)]) -> Result<(Options, bool, bool), Response> {
    let undecodable = || bad_request("Unable to decode query.");
    let invalid = || Response::text(422, "{\"message\": \"Invalid request.\"}");
    let flag = |k: &str| query(q, k).map_or(Some(false), parse_bool);
    let int = |k: &str| {
        query(q, k)
            .map(|v| v.parse::<i64>().map_err(|_| undecodable()))
            .transpose()
    };
    let (follow, previous, timestamps) =
        match (flag("follow"), flag("previous"), flag("timestamps")) {
            (Some(f), Some(p), Some(t)) => (f, p, t),
            _ => return Err(undecodable()),
        };
    // The legacy `tail` stands for tailLines; `all` means no limit.
    let tail = match query(q, "tail") {
        Some("all") => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| undecodable())?),
        None => int("tailLines")?,
    };
    let limit = int("limitBytes")?;
    let since_seconds = int("sinceSeconds")?;
    let since_time = query(q, "sinceTime")
        .map(|v| crate::timefmt::parse_rfc3339_nanos(v).ok_or_else(undecodable))
        .transpose()?;
    if tail.is_some_and(|t| t < 0)
        || limit.is_some_and(|l| l < 1)
        || since_seconds.is_some_and(|s| s < 1)
        || (since_seconds.is_some() && since_time.is_some())
    {
        return Err(invalid());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let since = since_time
        .or_else(|| since_seconds.map(|s| now.saturating_sub(s.saturating_mul(1_000_000_000))));
    let o = Options {
        timestamps,
        tail_lines: tail.map(|t| usize::try_from(t).unwrap_or(usize::MAX)),
        limit_bytes: limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        since,
        stream: None,
        follow,
    };
    Ok((o, follow, previous))
}

/// The runtime id of the container whose log to read, as the kubelet's
/// validateContainerLogStatus picks it (or its error, a 400).
fn log_container_id(
    pod: &str,
    c: Option<&ContainerView>,
    name: &str,
    previous: bool,
) -> Result<String, String> {
    let Some(c) = c else {
        return Err(format!(
            "container {name:?} in pod {pod:?} is not available"
        ));
    };
    let terminated_here = || format!("container {name:?} in pod {pod:?} is terminated");
    if previous {
        return c.last_terminated_id.clone().ok_or_else(|| {
            format!("previous terminated container {name:?} in pod {pod:?} not found")
        });
    }
    match &c.state {
        view::State::Running => c.id.clone().ok_or_else(terminated_here),
        view::State::Terminated => c
            .terminated_id
            .clone()
            .or_else(|| c.last_terminated_id.clone())
            .ok_or_else(terminated_here),
        view::State::Waiting(_) if c.last_terminated_id.is_some() => {
            c.last_terminated_id.clone().ok_or_else(terminated_here)
        }
        view::State::Waiting(reason) => Err(match reason.as_str() {
            "ErrImagePull" => format!(
                "container {name:?} in pod {pod:?} is waiting to start: image can't be pulled"
            ),
            "ImagePullBackOff" => format!(
                "container {name:?} in pod {pod:?} is waiting to start: trying and failing to pull image"
            ),
            "" => format!("container {name:?} in pod {pod:?} is waiting to start - no logs yet"),
            reason => format!("container {name:?} in pod {pod:?} is waiting to start: {reason}"),
        }),
    }
}

/// Whether container `id` of pod `uid` still runs, as the snapshot says.
fn running(pods: &crate::pods::Snapshot, uid: &str, id: &str) -> bool {
    let list = pods.read().unwrap_or_else(|p| p.into_inner());
    list.iter()
        .filter(|p| p.uid == uid)
        .flat_map(|p| &p.containers)
        .any(|c| c.state == view::State::Running && c.id.as_deref() == Some(id))
}

/// Whether the log at `path` is another file than `open` now: rotated (renamed away, and
/// the runtime writes a new one there). Not while the new one is not there yet.
fn rotated(path: &std::path::Path, open: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), open.metadata()) {
        (Ok(now), Ok(was)) => (now.dev(), now.ino()) != (was.dev(), was.ino()),
        _ => false,
    }
}

/// Sends what `reader` renders until the end (or, following, until the container stops and
/// its log is read to the end, or the client goes). A follower whose log is rotated reads
/// the old file to its end, then goes on in the new one at `path`, as the kubelet's.
fn pump(
    mut reader: LogReader<std::fs::File>,
    path: &std::path::Path,
    sink: &mut Sink,
    follow: Option<&dyn Fn() -> bool>,
) {
    let mut out = Vec::with_capacity(crate::logs::CHUNK);
    let mut last_pass = follow.is_none();
    // The log was seen rotated: at the old file's end, the new one.
    let mut switch = false;
    loop {
        let progress = match reader.read_chunk(&mut out) {
            Ok(p) => p,
            Err(e) => {
                crate::vinfo!(2, "reading a container log: {e}");
                return;
            }
        };
        if progress != Progress::More || out.len() >= crate::logs::CHUNK {
            let chunk = std::mem::replace(&mut out, Vec::with_capacity(crate::logs::CHUNK));
            if !sink.send(chunk) {
                return;
            }
        }
        match progress {
            Progress::More => {}
            Progress::Done => return,
            Progress::Eof if last_pass => {
                reader.finish(&mut out);
                sink.send(out);
                return;
            }
            Progress::Eof if switch => {
                switch = false;
                match std::fs::File::open(path) {
                    Ok(f) => reader.reopen(f),
                    Err(e) => {
                        crate::vinfo!(2, "reopening a rotated log {}: {e}", path.display());
                        return;
                    }
                }
            }
            Progress::Eof => {
                std::thread::sleep(FOLLOW_POLL);
                if sink.is_closed() {
                    return;
                }
                if rotated(path, reader.get_ref()) {
                    // What the runtime wrote to the old file before it reopened is read first.
                    switch = true;
                    continue;
                }
                // Once the container has stopped, what it wrote is read to the end, once.
                last_pass = follow.is_some_and(|still| !still());
            }
        }
    }
}

pub fn container_logs(s: &State, r: &Request) -> Response {
    let rest = r.head.path.trim_start_matches("/containerLogs/");
    let parts: Vec<&str> = rest.split('/').collect();
    let [ns, pod, container] = parts.as_slice() else {
        return Response::text(404, "404 page not found\n");
    };
    if pod.is_empty() {
        return bad_request("Missing podID.");
    }
    if container.is_empty() {
        return bad_request("Missing container name.");
    }
    if ns.is_empty() {
        return bad_request("Missing podNamespace.");
    }
    let (o, follow, previous) = match options(&query_pairs(&r.head.query)) {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let (uid, id, fallback) = {
        let list = s.pods.read().unwrap_or_else(|p| p.into_inner());
        let Some(p) = list.iter().find(|p| p.namespace == *ns && p.name == *pod) else {
            return Response::text(404, format!("pod {pod:?} does not exist"));
        };
        if !p.spec_containers.iter().any(|c| c == container) {
            return Response::text(
                404,
                format!("container {container:?} not found in pod {pod:?}"),
            );
        }
        let status = p.container(container);
        let id = match log_container_id(pod, status, container, previous) {
            Ok(id) => id,
            Err(e) => return Response::text(400, e),
        };
        // The restart count names the file when the runtime cannot say (it always can).
        let restarts = status.map_or(0, |c| c.restart_count);
        let attempt = if previous {
            restarts.saturating_sub(1)
        } else {
            restarts
        };
        let fallback = crate::pods::layout::log_dir(&s.pod_logs_dir, ns, pod, &p.uid)
            .join(crate::pods::layout::container_log(container, attempt));
        (p.uid.clone(), id, fallback)
    };
    let path = s
        .runtime
        .as_ref()
        .and_then(|rt| {
            rt.container_status(&crate::cri::api::ContainerStatusRequest {
                container_id: id.clone(),
                verbose: false,
            })
            .ok()
        })
        .and_then(|st| st.status)
        .map(|st| st.log_path)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or(fallback);
    let reader = match std::fs::File::open(&path).and_then(|f| LogReader::new(f, &o)) {
        Ok(r) => r,
        Err(e) => {
            return Response::text(
                400,
                format!("failed to open log file {:?}: {e}", path.display()),
            );
        }
    };
    let pods = s.pods.clone();
    Response::stream(
        "text/plain",
        Box::new(move |sink: &mut Sink| {
            let still_running = move || running(&pods, &uid, &id);
            pump(
                reader,
                &path,
                sink,
                follow.then_some(&still_running as &dyn Fn() -> bool),
            );
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(q: &str) -> Result<(Options, bool, bool), u16> {
        options(&query_pairs(q)).map_err(|r| r.status)
    }

    #[test]
    fn query_decodes_and_validates_as_the_kubelet() {
        let (o, follow, previous) = opts("follow=true&tailLines=5&limitBytes=100&timestamps=1")
            .unwrap_or_else(|c| panic!("{c}"));
        assert!(follow && !previous && o.timestamps);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(5), Some(100)));
        assert_eq!(opts("tail=all").map(|o| o.0.tail_lines), Ok(None));
        assert_eq!(opts("tail=3").map(|o| o.0.tail_lines), Ok(Some(3)));
        let since = opts("sinceTime=2026-12-01T10%3A00%3A00Z").map(|o| o.0.since);
        assert_eq!(since, Ok(Some(1_796_119_200_000_000_000)));
        assert!(opts("sinceSeconds=60").is_ok_and(|o| o.0.since.is_some()));
        for (q, code) in [
            ("follow=yes", 400),
            ("tailLines=x", 400),
            ("sinceTime=yesterday", 400),
            ("tailLines=-1", 422),
            ("limitBytes=0", 422),
            ("sinceSeconds=0", 422),
            ("sinceSeconds=5&sinceTime=2026-12-01T10:00:00Z", 422),
        ] {
            assert_eq!(opts(q).map(|_| ()), Err(code), "{q}");
        }
    }

    #[test]
    fn the_container_whose_log_is_read() {
        let view = |status: serde_json::Value| {
            crate::pods::view::PodView::of(json!({"status": {"containerStatuses": [status]}}))
                .containers
                .into_iter()
                .next()
        };
        let running = view(
            json!({"name": "c", "containerID": "containerd://c2", "state": {"running": {}},
            "lastState": {"terminated": {"containerID": "containerd://c1"}}}),
        );
        let id = |c: &Option<ContainerView>, prev| log_container_id("p", c.as_ref(), "c", prev);
        assert_eq!(id(&running, false).as_deref(), Ok("c2"));
        assert_eq!(id(&running, true).as_deref(), Ok("c1"));
        let done =
            view(json!({"name": "c", "state": {"terminated": {"containerID": "containerd://i1"}}}));
        assert_eq!(id(&done, false).as_deref(), Ok("i1"));
        assert_eq!(
            id(&done, true),
            Err("previous terminated container \"c\" in pod \"p\" not found".into())
        );
        let pulling =
            view(json!({"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}));
        assert_eq!(
            id(&pulling, false),
            Err("container \"c\" in pod \"p\" is waiting to start: trying and failing to pull image".into())
        );
        let new = view(json!({"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}));
        assert_eq!(
            id(&new, false),
            Err("container \"c\" in pod \"p\" is waiting to start: ContainerCreating".into())
        );
        assert_eq!(
            id(&None, false),
            Err("container \"c\" in pod \"p\" is not available".into())
        );
    }
}
