//! `/logs/`: the node's log directory (`/var/log`) listed and read as the kubelet serves it
//! with Go's `http.FileServer` (an HTML listing, a directory without its slash redirected, files
//! streamed), behind `enableSystemLogHandler`. A request never leaves the directory: `..`
//! components are refused, and a symlink is followed only when it lands inside (the node's
//! `/var/log/containers/*.log` links into `/var/log/pods`); Go's FileServer would follow any.
//! With `enableSystemLogQuery` (and the NodeLogQuery gate), a request with a query is the node
//! log query: journald units through journalctl, else the files the kubelet's heuristics find
//! (`/var/log/<svc>`, `<svc>.log`, `<svc>/<svc>.log`), or one file; under a 30 s deadline.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::journal::{Journal, RunEnd};
use super::log_query;
use super::routes::query_pairs;
use super::stream::Sink;
use super::{Request, Response, State};

/// The kubelet's deadline on one node log query.
const QUERY_DEADLINE: Duration = Duration::from_secs(30);

const NOT_FOUND: &str = "404 page not found\n";

/// Where `rel` (the request path after `/logs/`, percent-decoded) lands under `root`, with
/// symlinks resolved; None when it does not exist or lands outside.
pub fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let real = root.join(rel).canonicalize().ok()?;
    real.starts_with(&root).then_some(real)
}

/// `<` `>` `&` `"` `'` escaped for HTML text, as Go's htmlReplacer.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// A path segment percent-encoded for an href (Go's url.URL{Path: name}.String()).
fn href(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Go's dirList: the entries sorted by name, directories with a trailing slash.
pub fn listing(dir: &Path) -> std::io::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| {
            let mut n = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                n.push('/');
            }
            n
        })
        .collect();
    names.sort();
    let mut out = String::from(
        "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n",
    );
    for n in names {
        out.push_str(&format!("<a href=\"{}\">{}</a>\n", href(&n), html(&n)));
    }
    out.push_str("</pre>\n");
    Ok(out)
}

/// Text when the first bytes are UTF-8 without NULs (Go sniffs the same way for text/plain).
fn content_type(head: &[u8]) -> &'static str {
    let text = !head.contains(&0)
        && match std::str::from_utf8(head) {
            Ok(_) => true,
            // A multi-byte character cut at the end of the sniffed bytes is still text.
            Err(e) => e.error_len().is_none(),
        };
    if text {
        "text/plain; charset=utf-8"
    } else {
        "application/octet-stream"
    }
}

pub fn node_logs(s: &State, r: &Request) -> Response {
    if !s.system_log_handler {
        return Response::text(405, "logs endpoint is disabled.");
    }
    let raw = r.head.path.strip_prefix("/logs").unwrap_or("");
    let Some(journal) = &s.log_query else {
        return serve(s, raw);
    };
    let q = match log_query::parse(&query_pairs(&r.head.query)) {
        Err(errs) => return Response::text(400, format!("{}\n", log_query::aggregate(&errs))),
        Ok(None) => return serve(s, raw),
        Ok(Some(q)) => q,
    };
    // Go's req.URL.Path after StripPrefix("/logs/").
    if !matches!(raw.strip_prefix('/').unwrap_or(raw), "" | "/") {
        return Response::text(406, "path not allowed in query mode\n");
    }
    let errs = q.validate(&s.node_log_dir);
    if !errs.is_empty() {
        return Response::text(406, format!("{}\n", log_query::aggregate(&errs)));
    }
    if !q.services.is_empty() {
        return services(journal.clone(), s.node_log_dir.clone(), q);
    }
    // One file, served as a read of its path (validation found it inside the directory).
    let file = q
        .files
        .first()
        .map(|f| f.replace('\\', "/"))
        .unwrap_or_default();
    serve(s, &format!("/{}", clean(&file)))
}

/// `name` with `.` and `..` taken out lexically (Go's path.Clean, the trailing slash kept).
fn clean(name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = parts.join("/");
    if name.ends_with('/') && !out.is_empty() {
        out.push('/');
    }
    out
}

/// The services' logs: journald's for the units it knows, the heuristics' files for the rest.
fn services(journal: Arc<dyn Journal>, dir: PathBuf, q: log_query::Query) -> Response {
    Response::stream(
        "text/plain;charset=UTF-8",
        Box::new(move |sink: &mut Sink| {
            let deadline = Instant::now() + QUERY_DEADLINE;
            let units = journal.units().unwrap_or_default();
            let (native, files): (Vec<String>, Vec<String>) = q
                .services
                .iter()
                .cloned()
                .partition(|svc| units.contains(&format!("{svc}.service")));
            if !native.is_empty() {
                let args = q.journalctl_args(&native);
                let end = journal.run(&args, deadline, &mut |b| sink.send(b.to_vec()));
                if end == RunEnd::Failed && q.options.boot.unwrap_or(0) == 0 && !sink.is_closed() {
                    sink.send(b"\nerror: journal output not available\n".to_vec());
                }
            }
            if !files.is_empty() && q.options != log_query::Options::default() {
                sink.send(
                    format!(
                        "\noptions present and query resolved to log files for [{}]\ntry without specifying options\n",
                        files.join(" ")
                    )
                    .into_bytes(),
                );
                return;
            }
            for svc in files {
                if Instant::now() >= deadline {
                    sink.send(b"\ncontext error: context deadline exceeded\n".to_vec());
                    return;
                }
                if !heuristic_copy(sink, &dir, &svc, deadline) {
                    return;
                }
            }
        }),
    )
}

/// heuristicsCopyFileLogs: the first of `<svc>`, `<svc>.log`, `<svc>/<svc>.log` that is a file
/// inside `dir`, copied until the deadline; "log not found" when none is. False when the client
/// went away.
fn heuristic_copy(sink: &mut Sink, dir: &Path, svc: &str, deadline: Instant) -> bool {
    for name in [
        svc.to_string(),
        format!("{svc}.log"),
        format!("{svc}/{svc}.log"),
    ] {
        let path = match log_query::root_resolve_path(dir, &name) {
            Ok(p) if !p.is_dir() => p,
            Ok(_) => continue,
            Err(e) if e == "no such file or directory" => continue,
            Err(e) => {
                return sink.send(
                    format!("\nerror getting log for {svc}: openat {name}: {e}\n").into_bytes(),
                );
            }
        };
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                return sink.send(format!("\nerror getting log for {svc}: {e}\n").into_bytes());
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if Instant::now() >= deadline {
                return sink.send(
                    format!("\nerror getting log for {svc}: context deadline exceeded\n")
                        .into_bytes(),
                );
            }
            match file.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    if !sink.send(buf[..n].to_vec()) {
                        return false;
                    }
                }
                Err(e) => {
                    return sink.send(format!("\nerror getting log for {svc}: {e}\n").into_bytes());
                }
            }
        }
    }
    sink.send(format!("\nlog not found for {svc}\n").into_bytes())
}

/// A read of `/logs<raw>`: a listing, a redirect or a file.
fn serve(s: &State, raw: &str) -> Response {
    let rel = crate::cri::grpc::percent_decode(raw.trim_start_matches('/').as_bytes());
    let Some(path) = resolve(&s.node_log_dir, &rel) else {
        return Response::text(404, NOT_FOUND);
    };
    if path.is_dir() {
        if !raw.ends_with('/') {
            let base = raw.rsplit('/').next().unwrap_or("logs");
            let base = if base.is_empty() { "logs" } else { base };
            let mut resp = Response::text(301, "");
            resp.headers.push(("Location", format!("{}/", href(base))));
            return resp;
        }
        return match listing(&path) {
            Ok(body) => Response::bytes(200, "text/html; charset=utf-8", body.into_bytes()),
            Err(e) => Response::text(500, format!("reading {}: {e}\n", path.display())),
        };
    }
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(_) => return Response::text(404, NOT_FOUND),
    };
    let mut head = vec![0u8; 512];
    let n = match file.read(&mut head) {
        Ok(n) => n,
        Err(e) => return Response::text(500, format!("reading {}: {e}\n", path.display())),
    };
    head.truncate(n);
    Response::stream(
        content_type(&head),
        Box::new(move |sink: &mut Sink| {
            if !sink.send(head) {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match file.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if !sink.send(buf[..n].to_vec()) {
                            return;
                        }
                    }
                }
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_log_directory() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = d.path().join("log");
        std::fs::create_dir_all(root.join("pods/ns_p_u/c")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(root.join("containers")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("pods/ns_p_u/c/0.log"), "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("secret"), "s").unwrap_or_else(|e| panic!("{e}"));
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap_or_else(|e| panic!("{e}"))
        };
        link(&root.join("pods/ns_p_u/c/0.log"), "containers/p_ns_c-1.log");
        link(&d.path().join("secret"), "escape");
        link(Path::new("/"), "slash");
        assert!(
            resolve(&root, "containers/p_ns_c-1.log").is_some(),
            "a link inside is followed"
        );
        assert!(resolve(&root, "pods/ns_p_u/c/0.log").is_some());
        assert!(resolve(&root, "").is_some_and(|p| p.ends_with("log")));
        for bad in [
            "escape",
            "slash/etc/passwd",
            "../secret",
            "pods/../../secret",
            "/etc/passwd",
            "nope",
        ] {
            assert_eq!(resolve(&root, bad), None, "{bad}");
        }
    }

    #[test]
    fn listings_as_go_writes_them() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(d.path().join("apt")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("a <b>.log"), "").unwrap_or_else(|e| panic!("{e}"));
        let l = listing(d.path()).unwrap_or_default();
        assert_eq!(
            l,
            "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n\
             <a href=\"a%20%3Cb%3E.log\">a &lt;b&gt;.log</a>\n<a href=\"apt/\">apt/</a>\n</pre>\n"
        );
        assert_eq!(
            content_type(b"Dec  2 01:00:00 host kernel: hi\n"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            content_type(&[0x1f, 0x8b, 0, 0]),
            "application/octet-stream"
        );
    }

    /// journald as the query sees it: the units it knows, a canned run, the arguments asked.
    struct FakeJournal {
        units: Option<String>,
        output: &'static str,
        end: RunEnd,
        runs: std::sync::Mutex<Vec<Vec<String>>>,
    }

    impl Journal for FakeJournal {
        fn units(&self) -> Option<String> {
            self.units.clone()
        }
        fn run(&self, args: &[String], _: Instant, out: &mut dyn FnMut(&[u8]) -> bool) -> RunEnd {
            self.runs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(args.to_vec());
            out(self.output.as_bytes());
            self.end
        }
    }

    fn fake(units: Option<&str>, output: &'static str, end: RunEnd) -> Arc<FakeJournal> {
        Arc::new(FakeJournal {
            units: units.map(String::from),
            output,
            end,
            runs: Default::default(),
        })
    }

    /// The streamed body of a services query, and its size (counted, not kept, past 1 MiB).
    fn body(journal: Arc<FakeJournal>, dir: &Path, q: &str) -> (String, usize) {
        let q = match log_query::parse(&query_pairs(q)) {
            Ok(Some(q)) => q,
            other => panic!("{q}: {other:?}"),
        };
        let resp = services(journal, dir.to_path_buf(), q);
        let super::super::Body::Stream(producer) = resp.body else {
            panic!("not a stream");
        };
        let streams = super::super::stream::Streams::default();
        let rx = streams
            .start(producer)
            .unwrap_or_else(|| panic!("no stream"));
        let (mut text, mut size) = (String::new(), 0);
        while let Ok(chunk) = rx.recv_blocking() {
            size += chunk.len();
            if text.len() < 1 << 20 {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        }
        (text, size)
    }

    #[test]
    fn services_come_from_journald_or_the_heuristics_files() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = d.path();
        let mk = |p: &str, body: &str| {
            let p = dir.join(p);
            std::fs::create_dir_all(p.parent().unwrap_or(dir)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, body).unwrap_or_else(|e| panic!("{e}"));
        };
        mk("plain", "plain's log\n");
        mk("dotlog.log", "dotlog's log\n");
        mk("nested/nested.log", "nested's log\n");
        std::os::unix::fs::symlink("/etc/hostname", dir.join("escape"))
            .unwrap_or_else(|e| panic!("{e}"));

        // A unit journald knows: journalctl with the kubelet's arguments, its output streamed.
        let j = fake(
            Some("containerd.service\nkubelet.service\n"),
            "journal lines\n",
            RunEnd::Ran,
        );
        assert_eq!(
            body(j.clone(), dir, "query=kubelet&tailLines=5").0,
            "journal lines\n"
        );
        let runs = j.runs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(
            runs,
            [[
                "--utc",
                "--no-pager",
                "--output=short-precise",
                "--pager-end",
                "--lines=5",
                "--unit=kubelet"
            ]
            .map(String::from)
            .to_vec()]
        );
        // journalctl that cannot run: the kubelet's line (not for an earlier boot).
        let broken = || fake(Some("kubelet.service"), "", RunEnd::Failed);
        assert_eq!(
            body(broken(), dir, "query=kubelet").0,
            "\nerror: journal output not available\n"
        );
        assert_eq!(body(broken(), dir, "query=kubelet&boot=-1").0, "");

        // No journald (this machine's case): the three file names, in order, inside the dir.
        let none = || fake(None, "", RunEnd::Ran);
        for (q, want) in [
            ("query=plain", "plain's log\n"),
            ("query=dotlog", "dotlog's log\n"),
            ("query=nested", "nested's log\n"),
            ("query=plain&query=nested", "plain's log\nnested's log\n"),
            ("query=nothing", "\nlog not found for nothing\n"),
            (
                "query=escape",
                "\nerror getting log for escape: openat escape: path escapes from parent\n",
            ),
            (
                "query=plain&query=dotlog&pattern=x",
                "\noptions present and query resolved to log files for [plain dotlog]\ntry without specifying options\n",
            ),
        ] {
            assert_eq!(body(none(), dir, q).0, want, "{q}");
        }
        // A unit journald does not know is looked for in files, beside one it knows.
        let j = fake(Some("kubelet.service"), "journal\n", RunEnd::Ran);
        assert_eq!(
            body(j, dir, "query=kubelet&query=plain").0,
            "journal\nplain's log\n"
        );
    }

    #[test]
    fn a_log_of_hundreds_of_megabytes_is_streamed() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let big = std::fs::File::create(d.path().join("big.log")).unwrap_or_else(|e| panic!("{e}"));
        let size: u64 = 300 << 20;
        big.set_len(size).unwrap_or_else(|e| panic!("{e}"));
        let (_, got) = body(fake(None, "", RunEnd::Ran), d.path(), "query=big");
        assert_eq!(got as u64, size);
    }

    #[test]
    fn clean_takes_dots_out() {
        for (name, want) in [
            ("a/../b.log", "b.log"),
            ("./x/./y/", "x/y/"),
            ("a\\b", "a\\b"),
            ("", ""),
        ] {
            assert_eq!(clean(name), want, "{name}");
        }
    }
}
