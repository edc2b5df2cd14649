//! `/logs/`: the node's log directory (`/var/log`) listed and read as the kubelet serves it
//! with Go's `http.FileServer` (an HTML listing, a directory without its slash redirected, files
//! streamed), behind `enableSystemLogHandler`. A request never leaves the directory: `..`
//! components are refused, and a symlink is followed only when it lands inside (the node's
//! `/var/log/containers/*.log` links into `/var/log/pods`); Go's FileServer would follow any.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::stream::Sink;
use super::{Request, Response, State};

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
}
