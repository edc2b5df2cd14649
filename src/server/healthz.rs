//! The plain-HTTP healthz endpoint (`healthzBindAddress:healthzPort`, 10248): `/healthz` and
//! its checks `/healthz/ping`, `/healthz/log`, `/healthz/syncloop`, answered as apiserver's
//! healthz handler does (also on 10250). Its own async-io thread serves every connection at
//! once: heads are read incrementally (split over segments is fine), each connection has 5 s,
//! and a slot table evicts the longest-waiting silent client when full, so no client can delay
//! another's health check.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer, future};

use super::http::{self, Framing, Limits, Parsed};
use super::slots::{Counters, Slots};

/// Whether the pod sync loop is healthy (`Err`: why not), for `/healthz/syncloop`.
pub type SyncLoopCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Connections at once at most; past it the longest-waiting one is closed.
const MAX_CONNS: usize = 256;
/// A connection's whole life: the request and the answer.
const DEADLINE: Duration = Duration::from_secs(5);

/// The answer to a healthz path (`None`: not a healthz path): as k8s.io/apiserver's healthz,
/// `ok` when every check passes; else 500 with each check's line (`[+]ping ok`,
/// `[-]syncloop failed: reason withheld`) and `healthz check failed`; a single check's path
/// gives its own error.
pub fn answer(path: &str, query: &str, syncloop: &SyncLoopCheck) -> Option<(u16, String)> {
    let checks: [(&str, Result<(), String>); 3] =
        [("ping", Ok(())), ("log", Ok(())), ("syncloop", syncloop())];
    if let Some(name) = path.strip_prefix("/healthz/") {
        let (_, result) = checks.iter().find(|(n, _)| *n == name)?;
        return Some(match result {
            Ok(()) => (200, "ok".into()),
            Err(e) => (500, format!("internal server error: {e}\n")),
        });
    }
    if path != "/healthz" {
        return None;
    }
    let healthy = checks.iter().all(|(_, r)| r.is_ok());
    let verbose = query
        .split('&')
        .any(|kv| kv == "verbose" || kv.starts_with("verbose="));
    if healthy && !verbose {
        return Some((200, "ok".into()));
    }
    let mut out = String::new();
    for (name, r) in &checks {
        match r {
            Ok(()) => out.push_str(&format!("[+]{name} ok\n")),
            Err(_) => out.push_str(&format!("[-]{name} failed: reason withheld\n")),
        }
    }
    if healthy {
        out.push_str("healthz check passed\n");
        Some((200, out))
    } else {
        out.push_str("healthz check failed\n");
        Some((500, out))
    }
}

/// One connection: a request head (read as it comes), one answer, close.
async fn connection(mut tcp: Async<TcpStream>, syncloop: &SyncLoopCheck) {
    let limits = Limits {
        max_head: 16 * 1024,
        max_headers: 64,
        max_target: 4096,
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let (status, body) = loop {
        match http::parse_head(&buf, &limits) {
            Ok(Parsed::Complete(h)) if h.method == "GET" || h.method == "HEAD" => {
                break answer(&h.path, &h.query, syncloop)
                    .unwrap_or((404, "404 page not found\n".into()));
            }
            Ok(Parsed::Complete(_)) => break (405, "Method Not Allowed\n".into()),
            Ok(Parsed::Incomplete) => {}
            Err(e) => break (e.status(), format!("{e}\n")),
        }
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let mut out = http::response_head(
        status,
        &[("Content-Type", "text/plain; charset=utf-8")],
        Framing::Length(body.len()),
        false,
    );
    out.extend_from_slice(body.as_bytes());
    let _ = tcp.write_all(&out).await;
}

/// Serves healthz on `addr` on a thread of its own. As the kubelet's, a port that cannot be
/// bound is retried every 5 s (logged once), not fatal.
pub fn start(addr: std::net::SocketAddr, syncloop: SyncLoopCheck) {
    let spawned = std::thread::Builder::new()
        .name("healthz".into())
        .spawn(move || {
            let mut logged = false;
            loop {
                match TcpListener::bind(addr) {
                    Ok(l) => {
                        crate::info!("healthz on http://{addr}/healthz");
                        serve_healthz(l, syncloop.clone());
                    }
                    Err(e) if !logged => {
                        crate::error!(
                            "Failed to start healthz server on {addr}: {e}; retrying every 5s"
                        );
                        logged = true;
                    }
                    Err(_) => {}
                }
                std::thread::sleep(Duration::from_secs(5));
            }
        });
    if let Err(e) = spawned {
        crate::error!("starting the healthz thread: {e}");
    }
}

/// Serves healthz on `listener` until it fails.
pub fn serve_healthz(listener: TcpListener, syncloop: SyncLoopCheck) {
    let slots = Slots::new(MAX_CONNS, MAX_CONNS, Arc::new(Counters::default()));
    super::slots::accept_loop(listener, slots, "healthz", move |tcp, slot| {
        let syncloop = syncloop.clone();
        async move {
            let deadline = async {
                Timer::after(DEADLINE).await;
            };
            future::or(connection(tcp, &syncloop), deadline).await;
            drop(slot);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_apiserver_healthz() {
        let ok: SyncLoopCheck = Arc::new(|| Ok(()));
        let stuck: SyncLoopCheck =
            Arc::new(|| Err("sync Loop took longer than expected".to_string()));
        assert_eq!(answer("/healthz", "", &ok), Some((200, "ok".into())));
        assert_eq!(
            answer("/healthz/ping", "", &stuck),
            Some((200, "ok".into()))
        );
        assert_eq!(answer("/metrics", "", &ok), None);
        assert_eq!(answer("/healthz/nope", "", &ok), None);
        assert_eq!(
            answer("/healthz", "", &stuck),
            Some((
                500,
                "[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\nhealthz check failed\n"
                    .into()
            ))
        );
        assert_eq!(
            answer("/healthz/syncloop", "", &stuck),
            Some((
                500,
                "internal server error: sync Loop took longer than expected\n".into()
            ))
        );
        assert_eq!(
            answer("/healthz", "verbose", &ok).map(|a| a.1),
            Some("[+]ping ok\n[+]log ok\n[+]syncloop ok\nhealthz check passed\n".into())
        );
    }
}
